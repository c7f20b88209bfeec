"""Bitsmith INT8 weights, the plain-torch ground truth: per-output-channel symmetric quantization,
dequantization, and the reference linear (dequantize, then an ordinary matmul).

Layout (see docs/formats.md, "Bitsmith INT8"): a weight W [out, in] is stored as
  q     int8    [out, in]   q = clamp(round_half_even(W / s), -127, 127)
  s     float32 [out]       s = max_j |W[i, j]| / 127   (0 for an all-zero row, whose q is all 0)
and read back as W' = q * s. -128 is never used, so the grid is symmetric around 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

QMAX = 127
#: Rows quantized at a time, so a very large matrix never needs a full float32 copy in memory.
ROWS_PER_CHUNK = 1024


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q int8 [out, in], scale float32 [out]) for a 2-D float weight, on the weight's device.

    Rounding is torch.round: half to even. Raises ValueError for a non-2-D or non-finite weight.
    """
    if weight.dim() != 2:
        raise ValueError(f"per-channel int8 needs a 2-D weight, not shape {tuple(weight.shape)}")
    q = torch.empty(weight.shape, dtype=torch.int8, device=weight.device)
    scale = torch.empty(weight.shape[0], dtype=torch.float32, device=weight.device)
    for start in range(0, weight.shape[0], ROWS_PER_CHUNK):
        # A private float32 copy, worked on in place: fewer passes over memory than out-of-place ops.
        rows = weight[start:start + ROWS_PER_CHUNK].detach().to(torch.float32, copy=True)
        lo, hi = torch.aminmax(rows, dim=1)
        amax = torch.maximum(hi, -lo)
        if not torch.isfinite(amax).all():
            raise ValueError("the weight holds NaN or infinite values")
        s = amax / QMAX
        # An all-zero row keeps scale 0; dividing by 1 instead leaves its q at 0.
        divisor = torch.where(s > 0, s, torch.ones_like(s))
        q[start:start + ROWS_PER_CHUNK] = rows.div_(divisor[:, None]).round_().clamp_(-QMAX, QMAX)
        scale[start:start + ROWS_PER_CHUNK] = s
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """W' = q * scale in float32 (exact: |q| <= 127 has 7 bits, the product rounds once), then `dtype`."""
    return (q.float() * scale.float()[:, None]).to(dtype)


def int8_linear(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """y = x @ W'^T + bias in x's dtype, with W' the dequantized weight. x: [..., in]."""
    return F.linear(x, dequantize(weight, scale, x.dtype), bias)
