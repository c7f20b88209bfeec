"""The Bitsmith INT8 linear kernels, declared for the registry (op "int8_linear").

Every implementation has the signature (x, weight int8 [out, in], scale [out], bias | None) -> y
in x's dtype. Importing this module registers them once; kernels.int8_ops imports it, so callers
never need to. Declarations only: no implementation is imported until select() picks it.
"""

from __future__ import annotations

import torch

from .int8_probe import int_mm_cpu_status, int_mm_cuda_status
from .registry import Kernel, register

OP = "int8_linear"
#: Activation dtypes the kernels accept.
FLOAT_ACTIVATIONS = frozenset({torch.float32, torch.float16, torch.bfloat16})
_SUPPORTS = {"dtype": FLOAT_ACTIVATIONS}

INT_MM_CPU = register(Kernel(OP, "int-mm-cpu", "bitsmith.kernels.int8_cpu:int8_linear_int_mm", devices=("cpu",),
                             priority=20, supports=_SUPPORTS, available=int_mm_cpu_status))
INT_MM_CUDA = register(Kernel(OP, "int-mm-cuda", "bitsmith.kernels.int8_cpu:int8_linear_int_mm", devices=("cuda",),
                              priority=20, supports=_SUPPORTS, available=int_mm_cuda_status))
DEQUANT_TILED = register(Kernel(OP, "dequant-tiled", "bitsmith.kernels.int8_cpu:int8_linear_tiled",
                                devices=("cpu", "cuda"), priority=10, supports=_SUPPORTS))
REFERENCE = register(Kernel(OP, "torch-reference", "bitsmith.kernels.int8_reference:int8_linear",
                            devices=("cpu", "cuda"), supports=_SUPPORTS, reference=True))
