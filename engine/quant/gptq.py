"""GPTQ for one decoder block: input Hessians from the calibration activations, then the GPTQ kernel
(kernels/gptq_blocked.py, chosen through the registry) layer by layer.

True-sequential order: q/k/v, then o, then gate/up, then down. Each group's inputs are captured
after the groups before it were quantized, so o_proj is fitted to the attention output that the
already-quantized q/k/v produce (and so on down the block). Each capture pass stops the batch as
soon as the group's layers have run.
"""

from __future__ import annotations

import torch

from bitsmith.kernels.gptq_common import GPTQSettings
from bitsmith.kernels.registry import select

from ..errors import InvalidInput
from ..layers import BlockStep
from .hessian import StatsCollector, relative_output_error
from ..config import WeightOnlySettings
from .weight_only import LayerResult

SEQUENTIAL_GROUPS = (
    ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    ("self_attn.o_proj",),
    ("mlp.gate_proj", "mlp.up_proj"),
    ("mlp.down_proj",),
)


def sequential_groups(names: list[str], true_sequential: bool = True) -> list[list[str]]:
    """The block's linear layers in quantization groups; unknown layers form a last group."""
    if not true_sequential:
        return [list(names)]
    groups = [[n for n in g if n in names] for g in SEQUENTIAL_GROUPS]
    known = {n for g in groups for n in g}
    rest = [n for n in names if n not in known]
    return [g for g in groups if g] + ([rest] if rest else [])


class GPTQMethod:
    def __init__(self, settings: WeightOnlySettings, device: str = "cpu"):
        self.s = settings
        choice = select("gptq_quantize", device)
        self.kernel, self.kernel_name = choice.impl, choice.name
        self.kernel_settings = GPTQSettings(
            bits=settings.bits, group_size=settings.group_size, sym=settings.sym, act_order=settings.desc_act,
            static_groups=settings.static_groups, damp=settings.damp, block_size=settings.block_size, min_zero=1)
        self.damps: dict[str, float] = {}

    def quantize_block(self, step: BlockStep):
        if not step.has_inputs:
            raise InvalidInput("GPTQ needs calibration windows")
        linears = step.linears()
        results = {}
        for group in sequential_groups(list(linears), self.s.true_sequential):
            stats = StatsCollector({n: linears[n] for n in group})
            step.forward(hooks=stats.hooks(), stop_after=group, before_batch=stats.new_batch)
            stats.new_batch()
            for name in group:
                layer = linears[name]
                H = stats.get(name).H
                with torch.no_grad():
                    out = self.kernel(layer.weight, H, self.kernel_settings)
                    approx = out.dequantized.to(layer.weight.dtype)
                    err = relative_output_error(layer.weight, approx, H)
                    layer.weight.copy_(approx)
                self.damps[f"{step.prefix}{name}"] = out.damp
                results[name] = LayerResult(out.quant, err)
                yield step.layer_done(name)
            del stats
        return results
