"""AWQ for one decoder block: activation-aware scales per group of layers sharing an input, folded
into the op before them, then a clipping search, then 4-bit asymmetric rounding per group.

Scale groups are read from the block (quant/block_groups.py), not listed per family:
  a norm whose output is exactly the input of some linears -> those linears (q/k/v or a fused qkv
      after the input norm; gate/up after the post-attention or pre-feed-forward norm). Gemma's
      (1 + w) norms are recognised by probing and folded as such;
  up -> down and v -> o siblings, when the widths match (never v -> o with grouped-query attention).
A norm fold is checked on the first calibration batch: if the block's float output moved (the norm
also feeds something that was not scaled, e.g. a MoE router through a reshape), it is undone and
logged. The searches (awq_search.py) minimize the layers' output error over every calibration
token. q and k (or fused qkv) are not clipped: their outputs meet in the attention softmax, where a
per-layer error says little. Experts the router sent fewer tokens than their input width are
rounded to nearest without scale or clip search (`rtn_fallback`).
"""

from __future__ import annotations

import torch
from torch import nn

from bitsmith.kernels.woq_quantize import dequantize, rtn_quantize

from ...events import Log
from ...layers import BlockStep
from .search import apply_clip, search_clip, search_scale
from ..weight_only.block_groups import block_groups, norm_offset
from ..gptq.hessian import StatsCollector, relative_output_error
from ...config import WeightOnlySettings
from ..weight_only.settings import LayerResult

NO_CLIP = ("q_proj", "k_proj", "qkv_proj")
#: A norm fold must leave the block's float output this close (relative squared error): folding is
#: exact up to float32 rounding (~1e-12 relative squared), far below any real change of function.
FOLD_CHECK = 1e-8


def fold_scales(prev: nn.Module, layers: list[nn.Linear], s: torch.Tensor, offset: float = 0.0) -> None:
    """Multiply the layers' input channels by s and divide the previous op's outputs by s: the
    float model computes exactly the same function. `offset`: 1 for norms computing (1 + w) x_hat."""
    with torch.no_grad():
        if isinstance(prev, nn.Linear):
            prev.weight.div_(s[:, None])
            if prev.bias is not None:
                prev.bias.div_(s)
        else:  # a norm: y = (offset + weight) * normalized(x) (+ bias, for LayerNorm)
            prev.weight.copy_((prev.weight + offset) / s - offset)
            if getattr(prev, "bias", None) is not None:
                prev.bias.div_(s)
        for layer in layers:
            layer.weight.mul_(s[None, :])


class AWQMethod:
    def __init__(self, settings: WeightOnlySettings, device: str = "cpu"):
        self.s = settings
        self.alphas: dict[str, float] = {}
        self.skipped: list[str] = []
        self.rtn_fallback: dict[str, int] = {}

    def quantize_block(self, step: BlockStep):
        linears = step.linears()
        modules = dict(step.block.named_modules())
        traced = block_groups(step)
        stats = StatsCollector(linears, traced.shared_input)  # the pass ends before the last layer computes
        step.forward(pre_hooks=stats.pre_hooks(), stop_before=stats.stop_before(), before_batch=stats.new_batch)
        stats.new_batch()
        reference = step.forward(keep=True, batches=1)[0]
        scales = {}
        for prev_name, name in traced.narrow_chains:
            prev, layer = linears[prev_name], linears[name]
            if step.index == 0:
                yield Log(f"AWQ: {prev_name} -> {name} not scaled: {prev_name} has {prev.out_features} outputs but "
                          f"{name} takes {layer.in_features} inputs (grouped-query attention)")
            self.skipped.append(f"{step.prefix}{prev_name}")
        for prev_name, names in [*traced.norm_groups, *traced.chains]:
            prev, layers = modules[prev_name], [linears[n] for n in names]
            rows = stats.rows(names[0])
            if any(n in scales for n in names) or not rows or (names[0] in traced.experts
                                                                and rows < layers[0].in_features):
                continue
            st = stats.get(names[0])
            s, alpha, _ = search_scale([lay.weight for lay in layers], st.H, st.abs_mean, self.s.bits,
                                       self.s.group_size, self.s.awq_grid)
            offset = 0.0 if isinstance(prev, nn.Linear) else norm_offset(prev)
            fold_scales(prev, layers, s, offset)
            if not isinstance(prev, nn.Linear):
                moved = _relative_error(step.forward(keep=True, batches=1)[0], reference)
                if moved > FOLD_CHECK:
                    fold_scales(prev, layers, 1.0 / s, offset)
                    self.skipped.append(f"{step.prefix}{prev_name}")
                    yield Log(f"AWQ: {step.prefix}{prev_name} -> {', '.join(names)} not scaled: folding changed "
                              f"the block's output ({moved:.2g}), so the norm feeds more than these layers")
                    continue
            self.alphas[f"{step.prefix}{prev_name}"] = alpha
            scales.update({n: s for n in names})
        results = {}
        for name, layer in linears.items():
            rows = stats.rows(name)
            s = scales.get(name)
            with torch.no_grad():
                W = layer.weight.float()
                H = None
                if rows and name in traced.experts and rows < layer.in_features:
                    self.rtn_fallback[f"{step.prefix}{name}"] = rows
                elif not rows:
                    self.rtn_fallback[f"{step.prefix}{name}"] = 0
                else:
                    H = stats.get(name).H
                    if s is not None:  # the input the scaled layer now sees is x / s
                        H = H / s[:, None] / s[None, :]
                if H is not None and self.s.awq_clip and name.rsplit(".", 1)[-1] not in NO_CLIP:
                    limits = search_clip(W, H, self.s.bits, self.s.group_size, self.s.awq_grid, self.s.awq_max_shrink)
                    W = apply_clip(W, limits, self.s.group_size)
                gq = rtn_quantize(W, self.s.bits, self.s.group_size, sym=False, min_zero=0)
                approx = dequantize(gq, layer.weight.dtype)
                err = relative_output_error(layer.weight, approx, H) if H is not None else None
                layer.weight.copy_(approx)
            results[name] = LayerResult(gq, err)
            yield step.layer_done(name)
        return results


def _relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    den = float((ref.float() ** 2).sum())
    return float(((out.float() - ref.float()) ** 2).sum()) / den if den else 0.0
