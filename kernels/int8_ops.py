"""Entry points for Bitsmith INT8: quantize a weight, and pick the linear kernel for a device.

  quantize_per_channel(weight) -> (q int8 [out, in], scale float32 [out])
  dequantize(q, scale, dtype) -> weight
  select_int8_linear(device, dtype, prefer=None) -> registry Choice (impl, name, device, skipped)
"""

from __future__ import annotations

import importlib
from dataclasses import replace

import torch

from . import int8_catalog
from .int8_reference import dequantize, quantize_per_channel
from .registry import REGISTRY, Choice, KernelUnavailable

#: Names accepted by `prefer`: "fast" takes the best available (the default), "reference" the
#: ground truth, or a kernel's own name ("int-mm-cpu", "dequant-tiled", ...).
PREFER_ALIASES = {"fast": None, "reference": int8_catalog.REFERENCE.name}


def select_int8_linear(device: str = "cpu", dtype: torch.dtype = torch.float32,
                       prefer: str | None = None) -> Choice:
    """The int8 linear kernel for `device` and activation `dtype`, with why others were skipped.

    `prefer` forces a kernel by name (benchmarks, tests, a user override); it must be able to run
    here, else KernelUnavailable says why.
    """
    choice = REGISTRY.select(int8_catalog.OP, device, dtype=dtype)
    name = PREFER_ALIASES.get(prefer, prefer)
    if name is None or name == choice.name:
        return choice
    for kernel in REGISTRY.candidates(int8_catalog.OP):
        if kernel.name == name:
            if choice.device.split(":", 1)[0] not in kernel.devices:
                raise KernelUnavailable(f"int8 kernel {name!r} does not run on {choice.device}")
            ok, why = kernel.available()
            if not ok:
                raise KernelUnavailable(f"int8 kernel {name!r} cannot run here: {why}")
            module, _, attr = kernel.target.partition(":")
            impl = getattr(importlib.import_module(module), attr)
            return replace(choice, impl=impl, name=name, skipped=((choice.name, f"{name} was asked for"),))
    known = ", ".join(k.name for k in REGISTRY.candidates(int8_catalog.OP))
    raise KernelUnavailable(f"no int8 kernel named {name!r}; known: {known}, or 'fast'/'reference'")


__all__ = ["quantize_per_channel", "dequantize", "select_int8_linear"]
