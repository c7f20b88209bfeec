"""The GGUF method: the job (`job.py`) that writes a GGUF of one type (Bitsmith's kernels for the
float and legacy types, llama.cpp's quantizer for the rest, `llama_quantize.py`), the importance
matrix measured on calibration text and its file (`imatrix*.py`), the per-tensor census of a
written file (`census.py`), and the best file under a size (`budget.py`)."""
