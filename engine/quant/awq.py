"""AWQ for one decoder block: activation-aware scales per group of layers sharing an input, folded
into the op before them, then a clipping search, then 4-bit asymmetric rounding per group.

Scale groups (Llama/Mistral/Qwen2 names):
  input_layernorm          -> q_proj, k_proj, v_proj
  self_attn.v_proj         -> o_proj   (only when v's outputs match o's inputs: never with
                                        grouped-query attention, where v is narrower; skipped, logged)
  post_attention_layernorm -> gate_proj, up_proj
  mlp.up_proj              -> down_proj
The searches (awq_search.py) minimize the layers' output error over every calibration token. q and
k are not clipped: their outputs meet in the attention softmax, where a per-layer error says little.
"""

from __future__ import annotations

import torch
from torch import nn

from bitsmith.kernels.woq_quantize import dequantize, rtn_quantize

from ..events import Log
from ..layers import BlockStep
from .awq_search import apply_clip, search_clip, search_scale
from .hessian import StatsCollector, relative_output_error
from ..config import WeightOnlySettings
from .weight_only import LayerResult

SCALE_GROUPS = (
    ("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
    ("self_attn.v_proj", ("self_attn.o_proj",)),
    ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj")),
    ("mlp.up_proj", ("mlp.down_proj",)),
)
NO_CLIP = ("self_attn.q_proj", "self_attn.k_proj")


def fold_scales(prev: nn.Module, layers: list[nn.Linear], s: torch.Tensor) -> None:
    """Multiply the layers' input channels by s and divide the previous op's outputs by s: the
    float model computes exactly the same function."""
    with torch.no_grad():
        if isinstance(prev, nn.Linear):
            prev.weight.div_(s[:, None])
            if prev.bias is not None:
                prev.bias.div_(s)
        else:  # RMSNorm: y = weight * normalized(x)
            prev.weight.div_(s)
        for layer in layers:
            layer.weight.mul_(s[None, :])


class AWQMethod:
    def __init__(self, settings: WeightOnlySettings, device: str = "cpu"):
        self.s = settings
        self.alphas: dict[str, float] = {}
        self.skipped: list[str] = []

    def quantize_block(self, step: BlockStep):
        linears = step.linears()
        modules = dict(step.block.named_modules())
        stats = StatsCollector(linears)
        step.forward(hooks=stats.hooks(), stop_after=list(linears), before_batch=stats.new_batch)
        stats.new_batch()
        scales = {}
        for prev_name, names in SCALE_GROUPS:
            if prev_name not in modules or not all(n in linears for n in names):
                continue
            prev, layers = modules[prev_name], [linears[n] for n in names]
            if isinstance(prev, nn.Linear) and prev.out_features != layers[0].in_features:
                if step.index == 0:
                    yield Log(f"AWQ: {prev_name} -> {', '.join(names)} not scaled: {prev_name} has "
                              f"{prev.out_features} outputs but {names[0]} takes {layers[0].in_features} inputs "
                              "(grouped-query attention)")
                self.skipped.append(f"{step.prefix}{prev_name}")
                continue
            st = stats.get(names[0])
            s, alpha, _ = search_scale([lay.weight for lay in layers], st.H, st.abs_mean, self.s.bits,
                                       self.s.group_size, self.s.awq_grid)
            fold_scales(prev, layers, s)
            self.alphas[f"{step.prefix}{prev_name}"] = alpha
            scales.update({n: s for n in names})
        results = {}
        for name, layer in linears.items():
            H = stats.get(name).H
            s = scales.get(name)
            if s is not None:  # the input the scaled layer now sees is x / s
                H = H / s[:, None] / s[None, :]
            with torch.no_grad():
                W = layer.weight.float()
                if self.s.awq_clip and name not in NO_CLIP:
                    limits = search_clip(W, H, self.s.bits, self.s.group_size, self.s.awq_grid, self.s.awq_max_shrink)
                    W = apply_clip(W, limits, self.s.group_size)
                gq = rtn_quantize(W, self.s.bits, self.s.group_size, sym=False, min_zero=0)
                approx = dequantize(gq, layer.weight.dtype)
                err = relative_output_error(layer.weight, approx, H)
                layer.weight.copy_(approx)
            results[name] = LayerResult(gq, err)
            yield step.layer_done(name)
        return results
