"""Whether torch._int_mm can run the W8A8 path here: cheap checks, run once, that say why not.

On the CPU, torch._int_mm is carried out by oneDNN, which picks its own instructions (AVX-512 VNNI
where present); measured on an AVX2-only setting it is still faster than dequantizing the weight,
so any CPU where it computes exact results qualifies. On CUDA it needs cuBLASLt int8 (compute
capability 7.5 or newer, as far as torch documents it).
"""

from __future__ import annotations

from functools import lru_cache

import torch


def _exact_on(device: str) -> tuple[bool, str]:
    if not hasattr(torch, "_int_mm"):
        return False, f"torch {torch.__version__} has no torch._int_mm"
    gen = torch.Generator().manual_seed(0)
    # 32 rows and widths of 64 suit every device's shape rules; values near +-127 would reveal an
    # int16 or overflowing accumulator.
    a = torch.randint(-127, 128, (32, 64), dtype=torch.int8, generator=gen)
    b = torch.randint(-127, 128, (64, 64), dtype=torch.int8, generator=gen)
    try:
        got = torch._int_mm(a.to(device), b.to(device)).cpu()
    except (RuntimeError, NotImplementedError) as exc:
        return False, f"torch._int_mm fails on {device} ({str(exc).splitlines()[0]})"
    if not torch.equal(got, a.int() @ b.int()):
        return False, f"torch._int_mm gives wrong results on {device}"
    return True, f"torch._int_mm is exact on {device}"


@lru_cache(maxsize=None)
def int_mm_cpu_status() -> tuple[bool, str]:
    return _exact_on("cpu")


@lru_cache(maxsize=None)
def int_mm_cuda_status() -> tuple[bool, str]:
    if not torch.cuda.is_available():
        return False, "torch sees no CUDA GPU"
    major, minor = torch.cuda.get_device_capability()
    if (major, minor) < (7, 5):
        return False, f"the GPU's compute capability {major}.{minor} is below 7.5 (no int8 tensor cores)"
    return _exact_on("cuda")
