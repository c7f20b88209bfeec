"""AWQ for one decoder block: activation-aware scales per group of layers sharing an input, folded
into the op before them, then the scaled weights rounded to 4-bit asymmetric groups.

Scale groups are read from the block (quant/block_groups.py), not listed per family:
  a norm whose output is exactly the input of some linears -> those linears (q/k/v or a fused qkv
      after the input norm; gate/up after the post-attention or pre-feed-forward norm). Gemma's
      (1 + w) norms are recognised by probing and folded as such;
  up -> down and v -> o siblings. With grouped-query attention v has fewer outputs than o has
      inputs (each kv head's values serve several query heads), so one scale per value channel is
      searched and repeated per query head, the head size read from the attention module.
A fold is checked on the first calibration batch (norms; grouped v -> o): if the block's float
output moved (the norm also feeds something that was not scaled, e.g. a MoE router through a
reshape), it is undone and logged. The scale search (search.py) minimizes the layers' output error
over every calibration token.

Rounding (`awq_rounding`): "gptq" (default) folds every scale first (the float block is unchanged),
then rounds the scaled block as GPTQ does (gptq/layer.py): group by group in true-sequential order,
each fitted to the inputs the already-rounded groups produce, act-order with static groups so every
group stays consecutive columns as AWQ files require. The AWQ paper reports the two as
complementary. "nearest" is the paper's own: a clipping search per group, then round-to-nearest; q
and k (or fused qkv) are not clipped there, their outputs meet in the attention softmax, where a
per-layer error says little. Measured on the bundled model (4-bit g64, 32 x 256 calibration tokens,
bench/QUALITY.md): mean KL 0.129 with "gptq", 0.160 with "nearest", RTN 0.392. Experts the router
sent fewer tokens than their input width are rounded to nearest without scale or clip search
(`rtn_fallback`).
"""

from __future__ import annotations

import torch
from torch import nn

from bitsmith.kernels.gptq_common import GPTQSettings
from bitsmith.kernels.woq_quantize import (GroupQuant, dequantize, quantize_on_grid, range_shrinks, rtn_quantize,
                                           sequential_g_idx)

from ...events import Log
from ...layers import BlockStep
from .search import search_range, search_scale
from ..weight_only.block_groups import block_groups, norm_offset
from ..gptq.hessian import StatsCollector, relative_output_error
from ..gptq.layer import GPTQMethod
from ...config import WeightOnlySettings
from ..weight_only.settings import LayerResult

NO_CLIP = ("q_proj", "k_proj", "qkv_proj")
#: A norm fold must leave the block's float output this close (relative squared error): folding is
#: exact up to float32 rounding (~1e-12 relative squared), far below any real change of function.
FOLD_CHECK = 1e-8


def fold_scales(prev: nn.Module, layers: list[nn.Linear], s: torch.Tensor, offset: float = 0.0,
                prev_s: torch.Tensor | None = None) -> None:
    """Multiply the layers' input channels by s and divide the previous op's outputs by s (or by
    `prev_s`, the same scales as the previous op's outputs map onto the layers' inputs: grouped-query
    v -> o): the float model computes exactly the same function. `offset`: 1 for norms computing
    (1 + w) x_hat."""
    p = s if prev_s is None else prev_s
    with torch.no_grad():
        if isinstance(prev, nn.Linear):
            prev.weight.div_(p[:, None])
            if prev.bias is not None:
                prev.bias.div_(p)
        else:  # a norm: y = (offset + weight) * normalized(x) (+ bias, for LayerNorm)
            prev.weight.copy_((prev.weight + offset) / p - offset)
            if getattr(prev, "bias", None) is not None:
                prev.bias.div_(p)
        for layer in layers:
            layer.weight.mul_(s[None, :])


class AWQMethod:
    def __init__(self, settings: WeightOnlySettings, device: str = "cpu"):
        self.s = settings
        self.alphas: dict[str, float] = {}
        self.skipped: list[str] = []
        self.rtn_fallback: dict[str, int] = {}
        self.damps: dict[str, float] = {}  # GPTQ rounding's dampening per layer
        self.device = device
        if settings.awq_rounding == "gptq":
            self.gptq_settings = GPTQSettings(
                bits=settings.bits, group_size=settings.group_size, sym=False, act_order=True, static_groups=True,
                damp=settings.damp, block_size=settings.block_size, min_zero=0,
                # One factor for both ends in steps of 1 %, as AWQ was measured with: GPTQ's own
                # search of each end gained nothing on the scaled weights (0.145 against 0.141 mean
                # KL at 1 thread, bench/QUALITY.md).
                mse_grid=100 if settings.mse_grid > 1 else 0, mse_max_shrink=(settings.mse_grid - 1) / 100,
                mse_independent_ends=False)

    def quantize_block(self, step: BlockStep):
        linears = step.linears()
        modules = dict(step.block.named_modules())
        traced = block_groups(step)
        stats = StatsCollector(linears, traced.shared_input)  # the pass ends before the last layer computes
        # With GPTQ's rounding these statistics serve the scale search alone (GPTQ captures its own).
        batches = step.batches_covering(self.s.awq_search_tokens) if self.s.awq_rounding == "gptq" else None
        step.forward(pre_hooks=stats.pre_hooks(), stop_before=stats.stop_before(), before_batch=stats.new_batch,
                     batches=batches)
        stats.new_batch()
        reference = step.forward(keep=True, batches=1)[0]
        scales = {}
        for prev_name, name in traced.narrow_chains:
            prev, layer = linears[prev_name], linears[name]
            shared = _query_heads_per_value(modules, prev_name, prev, layer)
            if shared is None or not stats.rows(name):
                if step.index == 0:
                    yield Log(f"AWQ: {prev_name} -> {name} not scaled: {prev_name} has {prev.out_features} outputs "
                              f"but {name} takes {layer.in_features} inputs, and no head size maps one onto the other")
                self.skipped.append(f"{step.prefix}{prev_name}")
                continue
            st = stats.get(name)
            s, alpha, _ = search_scale([layer.weight], st.H, st.abs_mean, self.s.bits, self.s.group_size,
                                       self.s.awq_grid, shared=shared)
            prev_s = s.view(-1, shared[0], shared[1])[:, 0].reshape(-1)
            fold_scales(prev, [layer], s, prev_s=prev_s)
            moved = _relative_error(step.forward(keep=True, batches=1)[0], reference)
            if moved > FOLD_CHECK:
                fold_scales(prev, [layer], 1.0 / s, prev_s=1.0 / prev_s)
                self.skipped.append(f"{step.prefix}{prev_name}")
                yield Log(f"AWQ: {step.prefix}{prev_name} -> {name} not scaled: folding changed the block's output "
                          f"({moved:.2g}), so its values are not repeated per query head as assumed")
                continue
            self.alphas[f"{step.prefix}{prev_name}"] = alpha
            scales[name] = s
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
        if self.s.awq_rounding == "gptq":
            # The scales are folded (the float block is unchanged); GPTQ now rounds the scaled
            # weights, group by group in true-sequential order, each fitted to the inputs the
            # already-rounded groups produce. Its state is this method's, so a resumed job keeps it.
            del stats, reference  # GPTQ captures its own statistics, group by group
            rounding = GPTQMethod(self.s, self.device, self.gptq_settings)
            rounding.rtn_fallback, rounding.damps = self.rtn_fallback, self.damps
            results = yield from rounding.quantize_block(step)
            for name, result in results.items():
                inp = result.quant.q.shape[1]
                if not torch.equal(result.quant.g_idx, sequential_g_idx(inp, self.s.group_size, result.quant.g_idx.device)):
                    raise AssertionError(f"{step.prefix}{name}: AWQ groups must be consecutive columns")
            return results
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
                gq = self._round(name, W, H)
                approx = dequantize(gq, layer.weight.dtype)
                err = relative_output_error(layer.weight, approx, H) if H is not None else None
                layer.weight.copy_(approx)
            results[name] = LayerResult(gq, err)
            yield step.layer_done(name)
        return results


    def _round(self, name: str, W: torch.Tensor, H: torch.Tensor | None) -> GroupQuant:
        """Rounding "nearest": AWQ's own clipping search, then round-to-nearest. Without statistics
        (an expert calibration did not reach): plain round-to-nearest."""
        bits, group = self.s.bits, self.s.group_size
        if H is not None and self.s.awq_clip and name.rsplit(".", 1)[-1] not in NO_CLIP:
            scale, zero = search_range(W, H, bits, group, range_shrinks(self.s.awq_grid, self.s.awq_max_shrink))
            return quantize_on_grid(W, scale, zero, bits, group)
        return rtn_quantize(W, bits, group, sym=False, min_zero=0)


def _query_heads_per_value(modules: dict, prev_name: str, prev: nn.Linear, layer: nn.Linear) -> tuple[int, int] | None:
    """(query heads per kv head, head size) when `prev` is grouped-query attention's v_proj and
    `layer` its o_proj: the head size is the attention module's own `head_dim` (transformers sets
    it on every attention class), the repeat count the ratio of the widths."""
    parent = modules.get(prev_name.rpartition(".")[0])
    head_dim = getattr(parent, "head_dim", None)
    if not isinstance(head_dim, int) or head_dim <= 0 or prev.out_features % head_dim:
        return None
    if layer.in_features % prev.out_features:
        return None
    return layer.in_features // prev.out_features, head_dim


def _relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    den = float((ref.float() ** 2).sum())
    return float(((out.float() - ref.float()) ** 2).sum()) / den if den else 0.0
