"""Entry points for Bitsmith INT8: quantize a weight, and pick the linear kernel for a device.

  quantize_per_channel(weight) -> (q int8 [out, in], scale float32 [out])
  dequantize(q, scale, dtype) -> weight
  select_int8_linear(device, dtype, prefer=None) -> registry Choice (impl, name, device, skipped)
"""

from __future__ import annotations

import torch

from .catalog import INT8_LINEAR
from .int8_reference import dequantize, quantize_per_channel
from .registry import Choice, select


def select_int8_linear(device: str = "cpu", dtype: torch.dtype = torch.float32,
                       prefer: str | None = None) -> Choice:
    """The int8 linear kernel for `device` and activation `dtype`, with why others were skipped.

    `prefer`: "fast" (the default), "reference", or a kernel's own name ("int-mm-cpu",
    "dequant-tiled", ...); it must be able to run here, else KernelUnavailable says why.
    """
    return select(INT8_LINEAR, device, prefer=prefer, dtype=dtype)


__all__ = ["quantize_per_channel", "dequantize", "select_int8_linear"]
