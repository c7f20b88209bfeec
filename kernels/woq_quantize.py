"""Weight-only integer quantization per group of input columns: the grid every method shares.

A weight W [out, in] is split along the input dim into groups (`g_idx[c]` names the group of column
c); each (output row, group) pair has a float scale and an integer zero point, and
    q = clamp(round(w / scale) + zero, 0, 2**bits - 1),    w ~ scale * (q - zero).
The range is widened to include 0, so a zero weight stays exactly zero. Symmetric grids put the zero
point in the middle (2**(bits-1)). `min_zero=1` keeps asymmetric zero points >= 1: GPTQ v1 files
store zero - 1, and readers that add the 1 back to a packed word would overflow on a stored -1.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


#: Smallest positive float16 (subnormal): a smaller scale would round to 0 on disk.
FP16_TINY = 2.0**-24


class GroupQuant(NamedTuple):
    """A quantized weight in Bitsmith's neutral form, before any on-disk packing."""

    q: torch.Tensor  # [out, in] int32 in [0, 2**bits)
    scales: torch.Tensor  # [groups, out] float32
    zeros: torch.Tensor  # [groups, out] int32
    g_idx: torch.Tensor  # [in] int32, the group of each input column
    bits: int


def sequential_g_idx(in_features: int, group_size: int, device=None) -> torch.Tensor:
    size = in_features if group_size == -1 else group_size
    return (torch.arange(in_features, device=device) // size).to(torch.int32)


def group_params(w: torch.Tensor, bits: int, sym: bool, min_zero: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point [rows] for each row of `w` [rows, k] (one group per row)."""
    maxq = 2**bits - 1
    xmin = w.min(dim=1).values.clamp(max=0)
    xmax = w.max(dim=1).values.clamp(min=0)
    if sym:
        xmax = torch.maximum(xmin.abs(), xmax)
        xmin = torch.where(xmin < 0, -xmax, xmin)
    empty = (xmin == 0) & (xmax == 0)  # an all-zero group: any scale works; avoid dividing by 0
    xmin = torch.where(empty, torch.full_like(xmin, -1.0), xmin)
    xmax = torch.where(empty, torch.full_like(xmax, 1.0), xmax)
    # Both layouts store scales as float16: round them now, so the codes are chosen for the scale
    # the reader will use (dequantizing a file then reproduces the quantizer's weights exactly).
    scale = ((xmax - xmin) / maxq).clamp(min=FP16_TINY).half().float()
    if sym:
        zero = torch.full_like(scale, float((maxq + 1) // 2))
    else:
        zero = torch.round(-xmin / scale).clamp(min_zero, maxq)
    return scale, zero


def search_group_params(w: torch.Tensor, bits: int, sym: bool, min_zero: int = 0,
                        importance: torch.Tensor | None = None, grid: int = 20,
                        step: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Like `group_params`, but the range [xmin, xmax] of each row shrunk by the factor among
    1, 1 - step, ..., 1 - (grid - 1) * step whose rounded row has the least squared error, each
    column weighted by `importance` [k] (GPTQ: the diagonal of H, the share of the layer's output
    error a column's rounding error costs). Shrinking clips a few outliers to round the rest on a
    finer grid. Factor 1 is the plain min/max grid and ties keep it, so by this objective the
    search never does worse than `group_params`."""
    best_scale, best_zero = group_params(w, bits, sym, min_zero)
    if grid <= 1:
        return best_scale, best_zero
    w = w.float()
    weight = importance.float().clamp(min=0)[None, :] if importance is not None else 1.0

    def error(scale, zero):
        q = scale[:, None] * (quantize_values(w, scale[:, None], zero[:, None], bits) - zero[:, None])
        return ((q - w) ** 2 * weight).sum(1)

    best_err = error(best_scale, best_zero)
    for k in range(1, grid):
        shrink = 1.0 - k * step
        scale, zero = group_params(w * shrink, bits, sym, min_zero)  # the grid of the shrunk range
        err = error(scale, zero)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_scale = torch.where(better, scale, best_scale)
        best_zero = torch.where(better, zero, best_zero)
    return best_scale, best_zero


def quantize_values(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer codes of `w` on the grid (scale, zero); broadcasting as given."""
    return torch.clamp(torch.round(w / scale) + zero, 0, 2**bits - 1)


def rtn_quantize(weight: torch.Tensor, bits: int, group_size: int, sym: bool, min_zero: int = 0) -> GroupQuant:
    """Round to nearest per group: the floor every calibrated method must beat."""
    out, inp = weight.shape
    size = inp if group_size == -1 else group_size
    if inp % size:
        raise ValueError(f"group size {size} does not divide the input width {inp}")
    w = weight.float().reshape(out, inp // size, size)
    scale, zero = group_params(w.reshape(-1, size), bits, sym, min_zero)
    scale = scale.reshape(out, inp // size)
    zero = zero.reshape(out, inp // size)
    q = quantize_values(w, scale[..., None], zero[..., None], bits).reshape(out, inp)
    return GroupQuant(q.to(torch.int32), scale.t().contiguous(), zero.t().contiguous().to(torch.int32),
                      sequential_g_idx(inp, group_size, weight.device), bits)


def dequantize(gq: GroupQuant, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[out, in] weights the codes stand for: scale * (q - zero), per column's group."""
    g = gq.g_idx.long()
    scales = gq.scales.float()[g].t()  # [out, in]
    zeros = gq.zeros.float()[g].t()
    return ((gq.q.float() - zeros) * scales).to(dtype)
