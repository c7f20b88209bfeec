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
    """Scale and zero point [...] for each row of `w` [..., k] (one group per row)."""
    return range_params(w.amin(dim=-1), w.amax(dim=-1), bits, sym, min_zero)


def range_params(wmin: torch.Tensor, wmax: torch.Tensor, bits: int, sym: bool,
                 min_zero: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point of groups whose values span [wmin, wmax]."""
    maxq = 2**bits - 1
    xmin = wmin.clamp(max=0)
    xmax = wmax.clamp(min=0)
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


#: Elements of one slice of the range search: small enough that its passes stay in the cache.
SEARCH_CHUNK = 1 << 18


def range_shrinks(grid: int, max_shrink: float) -> list[float]:
    """Shrink factors 1, 1 - 1/grid, ... down to 1 - max_shrink."""
    return [1 - k / grid for k in range(int(round(grid * max_shrink)) + 1)]


def search_group_params(w: torch.Tensor, bits: int, sym: bool, min_zero: int = 0,
                        importance: torch.Tensor | None = None, grid: int = 20,
                        max_shrink: float = 0.2, independent_ends: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Like `group_params` for `w` [..., k], but each row's range [xmin, xmax] shrunk to
    [xmin * a, xmax * b], keeping the pair whose rounded row has the least squared error, each
    element weighted by `importance` (broadcast against `w`; GPTQ: the diagonal of H, the share of
    the layer's output error a column's rounding error costs). a and b run over
    `range_shrinks(grid, max_shrink)`, independently on an asymmetric grid when `independent_ends`
    (a row leaning to one side can trade its longer end alone), else together. Shrinking clips a
    few outliers to round the rest on a finer grid. (1, 1) is the plain min/max grid and ties keep
    it, so by this objective the search never does worse than `group_params`.

    Which search pays is measured, not derived (the objective is not the model's): on the bundled
    model GPTQ reached 0.151 mean KL with independent ends (20, 0.2) against 0.160 with one factor
    in steps of 1 % (100, 0.19); deeper, to 0.65 (20, 0.35), 0.149, but on Gemma 3 270M with 8 x 128
    tokens it made GPTQ answer "France is the capital of France" (its attention-sink weights
    clipped), so GPTQ goes that deep only where calibration covers a layer's inputs well
    (WeightOnlySettings.gptq_max_shrink). AWQ's rounding of its scaled weights gained nothing from
    the independent ends (0.145 against 0.141), so it keeps the one factor (bench/QUALITY.md).

    Every row of every group at once, a slice of rows at a time, in place: the search runs on
    every weight of a layer once per candidate, so it is memory traffic that costs (it took a third
    of a GPTQ run as one small call per group)."""
    best_scale, best_zero = group_params(w, bits, sym, min_zero)
    shrinks = range_shrinks(grid, max_shrink) if grid > 1 else [1.0]
    if len(shrinks) == 1:
        return best_scale, best_zero
    pairs = [(a, b) for a in shrinks for b in shrinks] if independent_ends and not sym else [(a, a) for a in shrinks]
    maxq = 2**bits - 1
    k = w.shape[-1]
    w = w.float().reshape(-1, k)
    rows = w.shape[0]
    lead = best_scale.shape
    best_scale, best_zero = best_scale.reshape(-1).clone(), best_zero.reshape(-1).clone()
    if importance is not None:
        weight = torch.broadcast_to(importance.float().clamp(min=0), lead + (k,)).reshape(-1, k)
    else:
        weight = None
    # min(w * f) = f * min(w) exactly for f > 0 (rounding is monotone): the shrunk ranges need no
    # pass over w.
    wmin, wmax = w.amin(dim=-1), w.amax(dim=-1)
    chunk = max(1, SEARCH_CHUNK // k)
    buf = torch.empty(min(chunk, rows), k, dtype=w.dtype, device=w.device)
    for r1 in range(0, rows, chunk):
        r2 = min(r1 + chunk, rows)
        wc, t = w[r1:r2], buf[:r2 - r1]
        wt = weight[r1:r2] if weight is not None else None
        best_s, best_z = best_scale[r1:r2], best_zero[r1:r2]
        best_err = None
        for a, b in pairs:
            if best_err is None:
                scale, zero = best_s, best_z
            else:
                scale, zero = range_params(wmin[r1:r2] * a, wmax[r1:r2] * b, bits, sym, min_zero)
            # (scale * (clamp(round(w / scale) + zero, 0, maxq) - zero) - w)^2 * importance, in place
            torch.div(wc, scale[:, None], out=t)
            t.round_().add_(zero[:, None]).clamp_(0, maxq).sub_(zero[:, None]).mul_(scale[:, None]).sub_(wc)
            t.square_()
            if wt is not None:
                t.mul_(wt)
            err = t.sum(-1)
            if best_err is None:
                best_err = err
                continue
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best_s.copy_(torch.where(better, scale, best_s))
            best_z.copy_(torch.where(better, zero, best_z))
    return best_scale.reshape(lead), best_zero.reshape(lead)


def quantize_values(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer codes of `w` on the grid (scale, zero); broadcasting as given."""
    return torch.clamp(torch.round(w / scale) + zero, 0, 2**bits - 1)


def _rtn_grouped(weight: torch.Tensor, bits: int, group_size: int, sym: bool, min_zero: int):
    """Round to nearest per group: codes (float) [out, groups, size], scale and zero [out, groups, 1]."""
    out, inp = weight.shape
    size = inp if group_size == -1 else group_size
    if inp % size:
        raise ValueError(f"group size {size} does not divide the input width {inp}")
    w = weight.float().reshape(out, inp // size, size)
    scale, zero = group_params(w, bits, sym, min_zero)
    scale, zero = scale[..., None], zero[..., None]
    return quantize_values(w, scale, zero, bits), scale, zero


def rtn_quantize(weight: torch.Tensor, bits: int, group_size: int, sym: bool, min_zero: int = 0) -> GroupQuant:
    """Round to nearest per group: the floor every calibrated method must beat."""
    q, scale, zero = _rtn_grouped(weight, bits, group_size, sym, min_zero)
    return _group_quant(q, scale[..., 0], zero[..., 0], bits, group_size)


def quantize_on_grid(weight: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int,
                     group_size: int) -> GroupQuant:
    """Round to nearest on given grids: scale and zero [out, groups] (a search chose them), each group
    of consecutive input columns."""
    out, inp = weight.shape
    size = inp if group_size == -1 else group_size
    w = weight.float().reshape(out, inp // size, size)
    return _group_quant(quantize_values(w, scale[..., None], zero[..., None], bits), scale, zero, bits, group_size)


def _group_quant(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int, group_size: int) -> GroupQuant:
    """Codes [out, groups, size] and grids [out, groups] in the neutral form (groups of consecutive columns)."""
    out = q.shape[0]
    inp = q.shape[1] * q.shape[2]
    return GroupQuant(q.reshape(out, inp).to(torch.int32), scale.t().contiguous().float(),
                      zero.t().contiguous().to(torch.int32), sequential_g_idx(inp, group_size, q.device), bits)


def rtn_fake_quantize(weight: torch.Tensor, bits: int, group_size: int, sym: bool = False,
                      min_zero: int = 0) -> torch.Tensor:
    """`dequantize(rtn_quantize(...))` in float32, the same values, without the codes: for searches
    that round a weight many times (AWQ's), where gathering a scale per element for `dequantize`
    cost more than the rounding itself."""
    q, scale, zero = _rtn_grouped(weight, bits, group_size, sym, min_zero)
    return q.sub_(zero).mul_(scale).reshape(weight.shape)


def dequantize(gq: GroupQuant, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[out, in] weights the codes stand for: scale * (q - zero), per column's group."""
    g = gq.g_idx.long()
    scales = gq.scales.float()[g].t()  # [out, in]
    zeros = gq.zeros.float()[g].t()
    return ((gq.q.float() - zeros) * scales).to(dtype)
