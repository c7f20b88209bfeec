"""AWQ's two searches, on the layers' input second moments H (sum x x^T over every calibration token)
rather than on replayed activations: the squared output error of a weight change D over all those
tokens is tr(D H D^T), so each grid point costs one small product, independent of the token count.

- Scales: s = mean|x|^alpha, or that divided by the weights' profile^(1 - alpha) (normalized to a
  geometric mean of 1), alpha on a grid of 20 points in [0, 1). Salient input channels (large
  activations) get larger weights before rounding, and the preceding op divides its outputs by s, so the float model is unchanged. alpha = 0 is plain RTN, so
  the chosen scales never do worse than RTN on the calibration data.
- Clipping: per (output row, group), shrink the max |w|, or the grid's range [min, max], by up to
  `max_shrink` and keep the candidate whose rounded group best reproduces the group's partial
  output sum.
"""

from __future__ import annotations

import torch

from bitsmith.kernels.woq_quantize import dequantize, rtn_quantize


def _fake_quant(weight: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    return dequantize(rtn_quantize(weight, bits, group_size, sym=False, min_zero=0))


def _output_error(delta: torch.Tensor, H: torch.Tensor) -> float:
    return float(((delta @ H) * delta).sum())


def weight_profile(weights: list[torch.Tensor], group_size: int) -> torch.Tensor:
    """Mean over the layers' rows of |w| relative to its group's max |w|, per input channel: how
    much of its group's range a channel's weights use (AutoAWQ's "duo scaling" statistic)."""
    rows = torch.cat([W.float() for W in weights])
    out, inp = rows.shape
    size = inp if group_size == -1 else group_size
    g = rows.abs().reshape(out, inp // size, size)
    return (g / (g.amax(-1, keepdim=True) + 1e-6)).reshape(out, inp).mean(0)


def search_scale(weights: list[torch.Tensor], H: torch.Tensor, x_mean: torch.Tensor, bits: int,
                 group_size: int, grid: int = 20, max_rows: int = 256) -> tuple[torch.Tensor, float, list[float]]:
    """Best per-input-channel scales for layers sharing one input: (s, alpha, loss per grid point).

    Two families on one alpha grid: s = mean|x|^alpha, and s = mean|x|^alpha / w^(1 - alpha) with
    w the weights' profile (`weight_profile`): channels whose weights sit low in their group's range
    are scaled up too. The loss is measured on at most `max_rows` evenly spaced output rows of each
    layer: one alpha serves the whole layer, the rows' errors are alike in distribution, and the
    cost (rows x in^2 per grid point) drops several-fold on wide layers. The first candidate
    (alpha = 0 of the first family, s = 1) is plain RTN and ties keep it, so on the calibration data
    the scales never do worse than RTN. The returned alpha is negative for the second family."""
    w_profile = weight_profile(weights, group_size)
    weights = [W[::max(1, W.shape[0] // max_rows)].float() for W in weights]
    base = x_mean.float().clamp(min=1e-4)
    losses, best = [], (float("inf"), None, 0.0)
    candidates = [(k / grid, None) for k in range(grid)] + [(k / grid, w_profile) for k in range(grid)]
    for alpha, profile in candidates:
        s = base.pow(alpha)
        if profile is not None:
            s = (s / (profile.pow(1 - alpha) + 1e-4)).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        loss = 0.0
        for W in weights:
            approx = _fake_quant(W * s, bits, group_size) / s
            loss += _output_error(approx - W, H)
        losses.append(loss)
        if loss < best[0]:
            best = (loss, s, alpha if profile is None else -alpha)
    return best[1], best[2], losses


def search_clip(weight: torch.Tensor, H: torch.Tensor, bits: int, group_size: int, grid: int = 20,
                max_shrink: float = 0.5, rows_per_chunk: int = 1024) -> torch.Tensor:
    """Per (output row, group) clipping range [out, groups, 2] (low, high) minimizing the group's
    output error. Two families of candidates, each shrinking by k / grid for k below
    grid * max_shrink: |w| clipped to a shrunk max |w| (the side that reaches further is cut), and
    the asymmetric grid's own range [min, max] shrunk toward 0 on both sides. k = 0 is no clipping
    and ties keep it."""
    out, inp = weight.shape
    size = inp if group_size == -1 else group_size
    G = inp // size
    Hg = torch.stack([H[g * size:(g + 1) * size, g * size:(g + 1) * size] for g in range(G)])  # [G, k, k]
    limits = []
    for r0 in range(0, out, rows_per_chunk):
        w = weight[r0:r0 + rows_per_chunk].float().reshape(-1, G, size)
        amax = w.abs().amax(-1)
        wmin, wmax = w.amin(-1).clamp(max=0), w.amax(-1).clamp(min=0)
        best_err = torch.full(amax.shape, float("inf"), device=w.device)
        best = torch.stack([-amax, amax], -1)
        steps = range(max(1, int(grid * max_shrink)))
        candidates = [(-amax * (1 - k / grid), amax * (1 - k / grid)) for k in steps]
        candidates += [(wmin * (1 - k / grid), wmax * (1 - k / grid)) for k in steps if k]
        for lo, hi in candidates:
            clipped = torch.maximum(torch.minimum(w, hi[..., None]), lo[..., None])
            approx = _fake_quant(clipped.reshape(-1, inp), bits, group_size).reshape(w.shape)
            d = approx - w
            err = torch.einsum("ogi,gij,ogj->og", d, Hg, d)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best = torch.where(better[..., None], torch.stack([lo, hi], -1), best)
        limits.append(best)
    return torch.cat(limits)


def apply_clip(weight: torch.Tensor, limits: torch.Tensor, group_size: int) -> torch.Tensor:
    """`weight` clipped to each (row, group)'s range from `search_clip`."""
    out, inp = weight.shape
    size = inp if group_size == -1 else group_size
    w = weight.reshape(out, inp // size, size)
    lim = limits.to(weight.dtype)
    return torch.maximum(torch.minimum(w, lim[..., 1:]), lim[..., :1]).reshape(out, inp)
