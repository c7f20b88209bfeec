"""AWQ's two searches, on the layers' input second moments H (sum x x^T over every calibration token)
rather than on replayed activations: the squared output error of a weight change D over all those
tokens is tr(D H D^T), so each grid point costs one small product, independent of the token count.

- Scales: s = mean|x|^alpha (normalized to a geometric mean of 1), alpha on a grid of 20 points in
  [0, 1). Salient input channels (large activations) get larger weights before rounding, and the
  preceding op divides its outputs by s, so the float model is unchanged. alpha = 0 is plain RTN, so
  the chosen scales never do worse than RTN on the calibration data.
- Clipping: per (output row, group), shrink the max |w| by up to `max_shrink` and keep the ratio
  whose rounded group best reproduces the group's partial output sum.
"""

from __future__ import annotations

import torch

from bitsmith.kernels.woq_quantize import rtn_fake_quantize


def _fake_quant(weight: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    return rtn_fake_quantize(weight, bits, group_size, sym=False, min_zero=0)


def _output_error(delta: torch.Tensor, H: torch.Tensor) -> float:
    return float(((delta @ H) * delta).sum())


def search_scale(weights: list[torch.Tensor], H: torch.Tensor, x_mean: torch.Tensor, bits: int,
                 group_size: int, grid: int = 20, max_rows: int = 256) -> tuple[torch.Tensor, float, list[float]]:
    """Best per-input-channel scales for layers sharing one input: (s, alpha, loss per grid point).

    The loss is measured on at most `max_rows` evenly spaced output rows of each layer: one alpha
    serves the whole layer, the rows' errors are alike in distribution, and the cost (rows x in^2 per
    grid point) drops several-fold on wide layers."""
    weights = [W[::max(1, W.shape[0] // max_rows)].float() for W in weights]
    base = x_mean.float().clamp(min=1e-4)
    losses, best = [], (float("inf"), None, 0.0)
    for k in range(grid):
        alpha = k / grid
        s = base.pow(alpha)
        s = s / (s.max() * s.min()).sqrt()
        loss = 0.0
        for W in weights:
            approx = _fake_quant(W * s, bits, group_size) / s
            loss += _output_error(approx - W, H)
        losses.append(loss)
        if loss < best[0]:
            best = (loss, s, alpha)
    return best[1], best[2], losses


def search_clip(weight: torch.Tensor, H: torch.Tensor, bits: int, group_size: int, grid: int = 20,
                max_shrink: float = 0.5, rows_per_chunk: int = 1024) -> torch.Tensor:
    """Per (output row, group) clipping threshold [out, groups] minimizing the group's output error."""
    out, inp = weight.shape
    size = inp if group_size == -1 else group_size
    G = inp // size
    Hg = torch.stack([H[g * size:(g + 1) * size, g * size:(g + 1) * size] for g in range(G)])  # [G, k, k]
    limits = []
    for r0 in range(0, out, rows_per_chunk):
        w = weight[r0:r0 + rows_per_chunk].float().reshape(-1, G, size)
        amax = w.abs().amax(-1, keepdim=True)
        best_err = torch.full(amax.shape[:2], float("inf"), device=w.device)
        best = amax[..., 0].clone()
        for k in range(max(1, int(grid * max_shrink))):
            limit = amax * (1 - k / grid)
            clipped = torch.maximum(torch.minimum(w, limit), -limit)
            approx = _fake_quant(clipped.reshape(-1, inp), bits, group_size).reshape(w.shape)
            d = (approx - w).transpose(0, 1)  # [G, rows, size]
            # d_g H_g d_g^T per (row, group) as one batched product: torch.einsum took 30 times
            # longer on this three-operand form.
            err = (torch.bmm(d, Hg) * d).sum(-1).t()
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best = torch.where(better, limit[..., 0], best)
        limits.append(best)
    return torch.cat(limits)


def apply_clip(weight: torch.Tensor, limits: torch.Tensor, group_size: int) -> torch.Tensor:
    out, inp = weight.shape
    size = inp if group_size == -1 else group_size
    w = weight.reshape(out, inp // size, size)
    lim = limits[..., None].to(weight.dtype)
    return torch.maximum(torch.minimum(w, lim), -lim).reshape(out, inp)
