"""Round to nearest per group (sym or asym): no calibration needed, the floor every calibrated
method must beat. With calibration windows the block runner still runs, only to measure each
layer's output error on them (and to report block errors comparable with GPTQ's and AWQ's)."""

from __future__ import annotations

import torch

from bitsmith.kernels.registry import select
from bitsmith.kernels.woq_quantize import dequantize

from ...layers import BlockStep
from ..gptq.hessian import StatsCollector, relative_output_error
from ...config import WeightOnlySettings
from .settings import LayerResult


class RTNMethod:
    def __init__(self, settings: WeightOnlySettings, device: str = "cpu"):
        self.s = settings
        self.quantize = select("rtn_quantize", device).impl

    def quantize_block(self, step: BlockStep):
        linears = step.linears()
        stats = None
        if step.has_inputs:
            stats = StatsCollector(linears)
            step.forward(hooks=stats.hooks(), stop_after=list(linears), before_batch=stats.new_batch)
            stats.new_batch()
        results = {}
        with torch.no_grad():
            for name, layer in linears.items():
                gq = self.quantize(layer.weight, self.s.bits, self.s.group_size, self.s.sym, min_zero=1)
                approx = dequantize(gq, layer.weight.dtype)
                # An expert the router never picked has no inputs to measure its error on.
                err = relative_output_error(layer.weight, approx, stats.get(name).H) if stats and stats.rows(name) else None
                layer.weight.copy_(approx)
                results[name] = LayerResult(gq, err)
                yield step.layer_done(name)
        return results
