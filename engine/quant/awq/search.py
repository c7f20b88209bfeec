"""AWQ's two searches, on the layers' input second moments H (sum x x^T over every calibration token)
rather than on replayed activations: the squared output error of a weight change D over all those
tokens is tr(D H D^T), so each grid point costs one small product, independent of the token count.

- Scales: s = mean|x|^alpha (normalized to a geometric mean of 1), alpha on a grid of 20 points in
  [0, 1). Salient input channels (large activations) get larger weights before rounding, and the
  preceding op divides its outputs by s, so the float model is unchanged. alpha = 0 is plain RTN, so
  the chosen scales never do worse than RTN on the calibration data.
- Clipping: per (output row, group), the grid's two ends shrunk independently (`search_range`),
  keeping the pair whose rounded group best reproduces the group's partial output sum.
"""

from __future__ import annotations

import torch

from bitsmith.kernels.woq_quantize import quantize_values, range_params, rtn_fake_quantize


def _fake_quant(weight: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    return rtn_fake_quantize(weight, bits, group_size, sym=False, min_zero=0)


def _output_error(delta: torch.Tensor, H: torch.Tensor) -> float:
    return float(((delta @ H) * delta).sum())


def search_scale(weights: list[torch.Tensor], H: torch.Tensor, x_mean: torch.Tensor, bits: int,
                 group_size: int, grid: int = 20, max_rows: int = 256,
                 shared: tuple[int, int] | None = None) -> tuple[torch.Tensor, float, list[float]]:
    """Best per-input-channel scales for layers sharing one input: (s, alpha, loss per grid point).

    The loss is measured on at most `max_rows` evenly spaced output rows of each layer: one alpha
    serves the whole layer, the rows' errors are alike in distribution, and the cost (rows x in^2 per
    grid point) drops several-fold on wide layers."""
    weights = [W[::max(1, W.shape[0] // max_rows)].float() for W in weights]
    base = x_mean.float().clamp(min=1e-4)
    if shared is not None:
        base = gqa_reduce(base, *shared)
    losses, best = [], (float("inf"), None, 0.0)
    for k in range(grid):
        alpha = k / grid
        s = base.pow(alpha)
        s = s / (s.max() * s.min()).sqrt()
        if shared is not None:
            s = gqa_expand(s, *shared)
        loss = 0.0
        for W in weights:
            approx = _fake_quant(W * s, bits, group_size) / s
            loss += _output_error(approx - W, H)
        losses.append(loss)
        if loss < best[0]:
            best = (loss, s, alpha)
    return best[1], best[2], losses


def gqa_reduce(x: torch.Tensor, repeats: int, head_dim: int) -> torch.Tensor:
    """o_proj's input channels [heads * head_dim] -> v_proj's outputs [kv_heads * head_dim]: with
    grouped-query attention `repeats` consecutive query heads read one kv head's values, so one scale
    per value channel serves all of them (the mean of their activation magnitudes)."""
    return x.view(-1, repeats, head_dim).mean(1).reshape(-1)


def gqa_expand(s: torch.Tensor, repeats: int, head_dim: int) -> torch.Tensor:
    """v_proj's output scales -> o_proj's input channels (each kv head's values repeated per query head)."""
    return s.view(-1, 1, head_dim).expand(-1, repeats, head_dim).reshape(-1)


def search_range(weight: torch.Tensor, H: torch.Tensor, bits: int, group_size: int, shrinks: list[float],
                 rows_per_chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """AWQ's clipping search on an asymmetric grid: per (output row, group), the grid spanning
    [min * a, max * b], a and b each among `shrinks` (every pair), whose rounded group best reproduces
    the group's partial output sum, d_g H_g d_g^T. Returns scale and zero point [out, groups].

    Shrinking both ends by one factor, or clipping at +-limit as AutoAWQ does, leaves a group whose
    values lean to one side with only its longer side to trade: on the bundled model (4-bit g64) the
    pairs gave 0.159 mean KL against 0.168 for either one-factor form. (1, 1) is the plain min/max
    grid and ties keep the first candidate, so by this objective the search never does worse."""
    out, inp = weight.shape
    size = inp if group_size == -1 else group_size
    G = inp // size
    maxq = 2**bits - 1
    Hg = torch.stack([H[g * size:(g + 1) * size, g * size:(g + 1) * size] for g in range(G)]).float()  # [G, k, k]
    scales, zeros = [], []
    for r0 in range(0, out, rows_per_chunk):
        w = weight[r0:r0 + rows_per_chunk].float().reshape(-1, G, size)
        wmin, wmax = w.amin(-1), w.amax(-1)
        best_err = torch.full(wmin.shape, float("inf"), device=w.device)
        best_scale, best_zero = torch.zeros_like(wmin), torch.zeros_like(wmin)
        for a in shrinks:
            for b in shrinks:
                scale, zero = range_params(wmin * a, wmax * b, bits, False, 0)
                approx = quantize_values(w, scale[..., None], zero[..., None], bits)
                d = approx.sub_(zero[..., None]).mul_(scale[..., None]).sub_(w).transpose(0, 1)  # [G, rows, k]
                # d_g H_g d_g^T per (row, group) as one batched product: torch.einsum took 30 times
                # longer on this three-operand form.
                err = (torch.bmm(d, Hg) * d).sum(-1).t()
                better = err < best_err
                best_err = torch.where(better, err, best_err)
                best_scale = torch.where(better, scale, best_scale)
                best_zero = torch.where(better, zero, best_zero)
        scales.append(best_scale)
        zeros.append(best_zero)
    return torch.cat(scales), torch.cat(zeros)
