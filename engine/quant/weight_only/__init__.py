"""What GPTQ, AWQ and RTN share: settings resolved against the model (`settings.py`), the linears
of a block grouped by the input they share (`block_groups.py`), round-to-nearest (`rtn.py`), and
the job that streams the model block by block through one of them and writes the folder (`job.py`)."""
