"""Every kernel Bitsmith ships, declared in one place, for the one registry (kernels/registry.py).

A declaration is data: importing this module imports no implementation, so select() can list and
rule out candidates (no GPU, missing extension, unsupported type) before any of them is loaded.
Each op has a reference implementation (plain torch) that select() falls back on; the faster
paths are tested against it. `bitsmith.kernels` imports this module, so importing any kernel
module registers the whole catalog once.

Ops and their signatures:
- gguf_quantize    (rows, qtype, device) -> bytes per row; gguf_dequantize (data, qtype, device) -> float32
- int8_linear      (x, weight int8 [out, in], scale [out], bias | None) -> y in x's dtype
- gptq_quantize    (weight, hessian, GPTQSettings) -> GPTQOutput
- rtn_quantize     (weight, bits, group_size, sym, min_zero) -> GroupQuant
- woq_linear       (x, PackedWeight, bias) -> y; needs kind="gptq4"/"awq4"/... (layout + bits)
"""

from __future__ import annotations

import torch

from .ggml_types import SUPPORTED
from .int8_probe import int_mm_cpu_status, int_mm_cuda_status
from .registry import Kernel, register

FLOAT_INPUTS = frozenset({torch.float32, torch.float16, torch.bfloat16, torch.float64})
FLOAT_ACTIVATIONS = frozenset({torch.float32, torch.float16, torch.bfloat16})

# --- GGUF legacy blocks and float conversions ------------------------------------------------------
# One vectorized torch kernel serves both devices; the registry rules out CUDA when torch cannot use
# it, and the reference catches the rest.
_GGUF_QUANTIZE = {"qtype": SUPPORTED, "dtype": FLOAT_INPUTS}
_GGUF_DEQUANTIZE = {"qtype": SUPPORTED}
register(Kernel("gguf_quantize", "torch-vectorized", "bitsmith.kernels.ggml_vectorized:quantize",
                devices=("cpu", "cuda"), priority=10, supports=_GGUF_QUANTIZE))
register(Kernel("gguf_quantize", "torch-reference", "bitsmith.kernels.ggml_reference:quantize",
                devices=("cpu", "cuda"), supports=_GGUF_QUANTIZE, reference=True))
register(Kernel("gguf_dequantize", "torch-vectorized", "bitsmith.kernels.ggml_vectorized:dequantize",
                devices=("cpu", "cuda"), priority=10, supports=_GGUF_DEQUANTIZE))
register(Kernel("gguf_dequantize", "torch-reference", "bitsmith.kernels.ggml_reference:dequantize",
                devices=("cpu", "cuda"), supports=_GGUF_DEQUANTIZE, reference=True))

# --- Bitsmith INT8 linear ------------------------------------------------------------------------------
INT8_LINEAR = "int8_linear"
_INT8 = {"dtype": FLOAT_ACTIVATIONS}
register(Kernel(INT8_LINEAR, "int-mm-cpu", "bitsmith.kernels.int8_cpu:int8_linear_int_mm", devices=("cpu",),
                priority=20, supports=_INT8, available=int_mm_cpu_status))
register(Kernel(INT8_LINEAR, "int-mm-cuda", "bitsmith.kernels.int8_cpu:int8_linear_int_mm", devices=("cuda",),
                priority=20, supports=_INT8, available=int_mm_cuda_status))
register(Kernel(INT8_LINEAR, "dequant-tiled", "bitsmith.kernels.int8_cpu:int8_linear_tiled",
                devices=("cpu", "cuda"), priority=10, supports=_INT8))
register(Kernel(INT8_LINEAR, "torch-reference", "bitsmith.kernels.int8_reference:int8_linear",
                devices=("cpu", "cuda"), supports=_INT8, reference=True))

# --- weight-only (GPTQ / AWQ / RTN) ----------------------------------------------------------------------
#: layout+bits the fused Triton kernel handles (3-bit GPTQ words straddle; it is left to torch).
TRITON_KINDS = frozenset({"gptq2", "gptq4", "gptq8", "awq4"})
ALL_KINDS = frozenset({"gptq2", "gptq3", "gptq4", "gptq8", "awq4"})


def triton_status() -> tuple[bool, str]:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False, "triton is not installed (it ships with CUDA builds of torch on Linux)"
    if not torch.cuda.is_available():
        return False, "triton is installed but torch sees no CUDA GPU"
    return True, f"triton {triton.__version__}"


register(Kernel("gptq_quantize", "torch-blocked", "bitsmith.kernels.gptq_blocked:gptq_quantize",
                devices=("cpu", "cuda"), priority=10))
register(Kernel("gptq_quantize", "torch-reference", "bitsmith.kernels.gptq_reference:gptq_quantize",
                devices=("cpu", "cuda"), reference=True))
register(Kernel("rtn_quantize", "torch-reference", "bitsmith.kernels.woq_quantize:rtn_quantize",
                devices=("cpu", "cuda"), reference=True))
register(Kernel("woq_linear", "triton-fused", "bitsmith.kernels.woq_triton:linear_triton", devices=("cuda",),
                priority=20, supports={"kind": TRITON_KINDS}, available=triton_status))
register(Kernel("woq_linear", "torch-cached", "bitsmith.kernels.woq_linear:linear_cached", devices=("cpu",),
                priority=10, supports={"kind": ALL_KINDS}))
register(Kernel("woq_linear", "torch-dequant", "bitsmith.kernels.woq_linear:linear_reference",
                devices=("cpu", "cuda"), supports={"kind": ALL_KINDS}, reference=True))
