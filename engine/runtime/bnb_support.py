"""Whether bitsandbytes can quantize and run here, and why not, decided by trying it once.

bitsandbytes 0.45+ has a CPU backend, but what works depends on the build, the CPU (AVX-512 BF16
for its fused 4-bit kernel) and torch; a tiny 8-bit and 4-bit Linear run on the device is the only
honest answer. transformers also needs the accelerate package for any bitsandbytes model.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib import metadata, util

from ..errors import UnsupportedModel

SUGGESTION = ("bitsandbytes needs an NVIDIA GPU or its CPU backend (pip install 'bitsandbytes>=0.45' accelerate); "
              "Bitsmith INT8 (--method int8) runs on any CPU")

# A message bitsandbytes logs that says nothing to a Bitsmith user: every 8-bit matmul on float32
# input says it casts to float16 (it always does, by design).
_QUIET = {
    "bitsandbytes.autograd._functions": "inputs will be cast",
}


class _Drop(logging.Filter):
    def __init__(self, fragment: str):
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def import_bitsandbytes():
    """`import bitsandbytes`, with its known-harmless warnings filtered (only those messages)."""
    for name, fragment in _QUIET.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(fragment))
    import bitsandbytes

    return bitsandbytes


def bnb_version() -> str | None:
    try:
        return metadata.version("bitsandbytes")
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=None)
def bnb_status(device: str = "cpu", bits: int = 8) -> tuple[bool, str]:
    """(usable, reason) for bitsandbytes `bits` (8: LLM.int8, 4: NF4/FP4) on `device`."""
    kind = device.split(":", 1)[0]
    try:
        bnb = import_bitsandbytes()
    except ImportError:
        return False, "bitsandbytes is not installed"
    except Exception as exc:  # noqa: BLE001 - a broken native library must not crash the caller
        return False, f"bitsandbytes fails to import ({type(exc).__name__}: {_first_line(exc)})"
    if util.find_spec("accelerate") is None:
        return False, "transformers needs the accelerate package to use bitsandbytes, and it is not installed"
    try:
        _smoke_test(bnb, device, bits)
    except Exception as exc:  # noqa: BLE001 - any failure means no usable backend; say which
        return False, (f"bitsandbytes {bnb_version()} has no usable {bits}-bit backend on {kind} "
                       f"({type(exc).__name__}: {_first_line(exc)})")
    return True, f"bitsandbytes {bnb_version()} runs {bits}-bit layers on {kind}"


def require_bnb(device: str, bits: int, what: str) -> None:
    """Raise UnsupportedModel naming `what` (a path or method) when bitsandbytes cannot run here."""
    ok, why = bnb_status(device, bits)
    if not ok:
        raise UnsupportedModel(f"{what}: {why}", suggestion=SUGGESTION)


def _smoke_test(bnb, device: str, bits: int) -> None:
    """Quantize and run one 64x64 layer on `device` the way transformers does (quantized on the move)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(64, 64, generator=gen, dtype=torch.float32).half()
    x = torch.randn(2, 64, generator=gen).to(device)
    if bits == 8:
        layer = bnb.nn.Linear8bitLt(64, 64, bias=False, has_fp16_weights=False, threshold=6.0)
        layer.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    else:
        layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4")
        layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
    layer = layer.to(device)
    with torch.no_grad():
        y = layer(x.half() if bits == 8 else x).float()
    expected = x.float() @ weight.float().t().to(device)
    err = float((y - expected).norm() / expected.norm())
    if not err < 0.25:  # 4-bit weights alone give ~0.1 here; garbage gives ~1
        raise RuntimeError(f"wrong results (relative error {err:.2f})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
