"""GGUF, llama.cpp's file format, read and written: a Hugging Face folder exported to GGUF
(`export*.py`: metadata, tensors, vocabulary), a GGUF imported back to a folder (`import_hf.py`,
with `hparams`, `tensors`, `tokenizer`, `experts`), the bounded header check every reader runs
first (`header.py`), opening a file (`source.py`) and the per-architecture facts that cannot be
derived from a model (`arch.py`)."""
