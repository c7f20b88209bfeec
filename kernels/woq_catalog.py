"""Declarations of the weight-only (GPTQ/AWQ/RTN) kernels, registered through the public registry.

Kept apart from kernels/catalog.py (the GGUF kernels) so each family is declared where it lives.
Importing this module registers them once; engine modules that need these ops import it.

Ops:
- "gptq_quantize"  (weight, hessian, GPTQSettings) -> GPTQOutput
- "rtn_quantize"   (weight, bits, group_size, sym, min_zero) -> GroupQuant
- "woq_linear"     (x, PackedWeight, bias) -> y; needs kind="gptq4"/"awq4"/... (layout + bits)
"""

from __future__ import annotations

from .registry import Kernel, register

#: layout+bits the fused Triton kernel handles (3-bit GPTQ words straddle; it is left to torch).
TRITON_KINDS = frozenset({"gptq2", "gptq4", "gptq8", "awq4"})
ALL_KINDS = frozenset({"gptq2", "gptq3", "gptq4", "gptq8", "awq4"})


def triton_status() -> tuple[bool, str]:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False, "triton is not installed (it ships with CUDA builds of torch on Linux)"
    import torch

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
register(Kernel("woq_linear", "torch-dequant", "bitsmith.kernels.woq_linear:linear_reference", devices=("cpu", "cuda"),
                supports={"kind": ALL_KINDS}, reference=True))
