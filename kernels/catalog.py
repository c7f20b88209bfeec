"""Every kernel Bitsmith ships, declared in one place.

A declaration is data: importing this module imports no implementation, so select() can list and
rule out candidates (no GPU, missing extension, unsupported type) before any of them is loaded.
Later ops (GPTQ/AWQ dequant-matmul, int8 matmul, RTN quantize) add their Kernel(...) lines here,
each with a reference implementation for select() to fall back on.
"""

from __future__ import annotations

import torch

from .ggml_types import SUPPORTED
from .registry import Kernel, register

FLOAT_INPUTS = frozenset({torch.float32, torch.float16, torch.bfloat16, torch.float64})
_GGUF_QUANTIZE = {"qtype": SUPPORTED, "dtype": FLOAT_INPUTS}
_GGUF_DEQUANTIZE = {"qtype": SUPPORTED}

# GGUF legacy blocks and float conversions. One vectorized torch kernel serves both devices;
# the registry rules out CUDA when torch cannot use it, and the reference catches the rest.
register(Kernel("gguf_quantize", "torch-vectorized", "bitsmith.kernels.ggml_vectorized:quantize",
                devices=("cpu", "cuda"), priority=10, supports=_GGUF_QUANTIZE))
register(Kernel("gguf_quantize", "torch-reference", "bitsmith.kernels.ggml_reference:quantize",
                devices=("cpu", "cuda"), supports=_GGUF_QUANTIZE, reference=True))
register(Kernel("gguf_dequantize", "torch-vectorized", "bitsmith.kernels.ggml_vectorized:dequantize",
                devices=("cpu", "cuda"), priority=10, supports=_GGUF_DEQUANTIZE))
register(Kernel("gguf_dequantize", "torch-reference", "bitsmith.kernels.ggml_reference:dequantize",
                devices=("cpu", "cuda"), supports=_GGUF_DEQUANTIZE, reference=True))
