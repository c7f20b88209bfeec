"""Bytes of one quantized layer's stored tensors, from its layout's `packed_shapes()`; shared by the
GPTQ and AWQ layouts so that the shard planner and the runtime read sizes from the same table."""

from __future__ import annotations

from math import prod

import torch

#: The bias of a quantized layer is stored in float16 by both layouts.
BIAS_DTYPE = torch.float16


def tensor_bytes(name: str, shapes: dict[str, tuple[tuple[int, ...], torch.dtype]], out: int,
                 has_bias: bool) -> list[tuple[str, int]]:
    sizes = [(f"{name}.{suffix}", prod(shape) * dtype.itemsize) for suffix, (shape, dtype) in shapes.items()]
    return sizes + ([(f"{name}.bias", out * BIAS_DTYPE.itemsize)] if has_bias else [])
