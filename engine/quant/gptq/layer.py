"""GPTQ for one decoder block: input Hessians from the calibration activations, then the GPTQ kernel
(kernels/gptq_blocked.py, chosen through the registry) layer by layer.

True-sequential order, read from the block (quant/block_groups.py): the linears fed one tensor
(q/k/v, or a fused qkv), then o, then gate/up, then down; a MoE block's experts by role. Each
group's inputs are captured after the groups before it were quantized, so o_proj is fitted to the
attention output that the already-quantized q/k/v produce (and so on down the block). Each capture
pass stops each batch just before the group's layers would compute, and replays the outputs of
the layers quantized two or more groups back (engine/layer_replay.py): all but about one forward
pass of the block's work is not done twice.

Experts: each expert's Hessian comes only from the tokens the router sent it. An expert that
calibration left under-covered - fewer tokens than its input width, so its Hessian is
rank-deficient and GPTQ would fit noise - is rounded to nearest instead (`rtn_fallback`, in the
report card and the log).
"""

from __future__ import annotations

import torch

from bitsmith.kernels.gptq_common import GPTQSettings
from bitsmith.kernels.registry import select

from bitsmith.kernels.woq_quantize import dequantize

from ...errors import InvalidInput
from ...layers import BlockStep
from ..weight_only.block_groups import block_groups
from .hessian import StatsCollector, relative_output_error
from ...config import WeightOnlySettings
from ..weight_only.settings import LayerResult

class GPTQMethod:
    """`kernel_settings`: the kernel's settings when they are not GPTQ's own (AWQ's rounding: its
    files hold zero points as they are, and its groups must stay consecutive)."""

    def __init__(self, settings: WeightOnlySettings, device: str = "cpu", kernel_settings: GPTQSettings | None = None):
        self.s = settings
        choice = select("gptq_quantize", device)
        self.kernel, self.kernel_name = choice.impl, choice.name
        # GPTQ's own settings choose the search's depth per layer from its calibration tokens.
        self.depth_from_tokens = kernel_settings is None
        self.kernel_settings = kernel_settings or GPTQSettings(
            bits=settings.bits, group_size=settings.group_size, sym=settings.sym, act_order=settings.desc_act,
            static_groups=settings.static_groups, damp=settings.damp, block_size=settings.block_size, min_zero=1,
            mse_grid=settings.mse_grid, mse_max_shrink=settings.mse_max_shrink)
        self.damps: dict[str, float] = {}
        self.rtn = select("rtn_quantize", device).impl
        self.rtn_fallback: dict[str, int] = {}  # layer -> calibration tokens it saw (too few for GPTQ)

    def quantize_block(self, step: BlockStep):
        if not step.has_inputs:
            raise InvalidInput("GPTQ needs calibration windows")
        linears = step.linears()
        traced = block_groups(step)
        groups = traced.sequential if self.s.true_sequential else [[n for g in traced.sequential for n in g]]
        results = {}
        done: list[str] = []  # the group quantized last: its outputs are final from the next pass on
        for members in groups:
            # Pre-hooks: each pass ends before the group's own layers compute (their float outputs
            # are not needed; a third of a block's work for gate/up).
            stats = StatsCollector({n: linears[n] for n in members}, traced.shared_input)
            step.forward(pre_hooks=stats.pre_hooks(), stop_before=stats.stop_before(), before_batch=stats.new_batch,
                         record=done)
            stats.new_batch()
            for name in members:
                layer = linears[name]
                rows = stats.rows(name)
                # A size-budget GPTQ gives layers their own bits and group size (settings.overrides).
                bits, group = self.s.layer_setting(f"{step.prefix}{name}")
                ks = self.kernel_settings._replace(bits=bits, group_size=group)
                if self.depth_from_tokens:
                    ks = ks._replace(mse_max_shrink=self.s.gptq_max_shrink(rows, layer.in_features))
                with torch.no_grad():
                    if name in traced.experts and rows < layer.in_features:
                        self.rtn_fallback[f"{step.prefix}{name}"] = rows
                        gq = self.rtn(layer.weight, ks.bits, ks.group_size, ks.sym, min_zero=ks.min_zero)
                        approx = dequantize(gq, layer.weight.dtype)
                        err = relative_output_error(layer.weight, approx, stats.get(name).H) if rows else None
                        layer.weight.copy_(approx)
                        results[name] = LayerResult(gq, err)
                        yield step.layer_done(name)
                        continue
                    H = stats.get(name).H
                    out = self.kernel(layer.weight, H, ks)
                    approx = out.dequantized.to(layer.weight.dtype)
                    err = relative_output_error(layer.weight, approx, H)
                    layer.weight.copy_(approx)
                self.damps[f"{step.prefix}{name}"] = out.damp
                results[name] = LayerResult(out.quant, err)
                yield step.layer_done(name)
            del stats
            done = members
        return results
