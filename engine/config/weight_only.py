"""GPTQ, AWQ and RTN settings once resolved against a model: what the quantizers run with and what
the writers record in the output's quantization config."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

from .jobs import Method

#: (bits, group size) settings a size-budget GPTQ chooses from per layer (engine/quant/gptq/budget.py),
#: smallest first. With fp16 scales and packed zeros a layer costs about bits + (16 + bits) / group
#: bits per weight: 2.28, 2.56, 3.15, 3.30, 3.59, 4.16, 4.31, 4.63, 8.19 and 8.38. Every packable width that
#: transformers' and GPTQModel's v1 kernels read (2, 3, 4, 8), each at the group sizes that
#: matter: 2-bit only at 32/64 (coarser groups lose too much), 8-bit at 64/128 (finer groups cost
#: bits without a gain worth them), and 64 as well as 128 throughout because 128 does not divide
#: the 576-wide inputs of small models (SmolLM2). A layer is offered only the settings whose group
#: divides its input width and whose packing fits its shape.
GPTQ_BUDGET_CANDIDATES = ((2, 64), (2, 32), (3, 128), (3, 64), (3, 32), (4, 128), (4, 64), (4, 32), (8, 128), (8, 64))


#: How AWQ may round its scaled weights (WeightOnlySettings.awq_rounding).
AWQ_ROUNDINGS = ("gptq", "nearest")


@dataclass(frozen=True)
class WeightOnlySettings:
    method: Method
    bits: int
    group_size: int  # resolved: -1, 32, 64 or 128
    sym: bool
    desc_act: bool = False
    static_groups: bool = True  # GPTQ with desc_act: grids from the unmodified weights
    damp: float = 0.01
    # The grid search before the GPTQ pass (kernels/woq_quantize.search_group_params), each group's
    # range shrunk by its rounding error weighted by H's diagonal; 0: min/max grids. GPTQ: the two
    # ends independently in steps of 1/mse_grid down to 1 - mse_max_shrink (25 pairs at 20 and
    # 0.2); AWQ's GPTQ rounding: both ends by one factor, mse_grid steps of 1 % (1.00 .. 0.81 at 20)
    # (bench/QUALITY.md).
    mse_grid: int = 20
    mse_max_shrink: float = 0.2
    # GPTQ clips deeper (to 1 - mse_deep_shrink, 64 pairs) a layer whose Hessian came from at least
    # mse_deep_tokens calibration tokens per input channel. The search weighs each column by H's
    # diagonal, which few tokens estimate badly: clipping to 0.65 on 1,024 tokens cost Gemma 3
    # 270M's attention-sink weights (2,048-wide inputs: 0.5 tokens per channel), while the bundled
    # model at 32 x 256 (5-14 per channel) gained 4 % of KL over 0.8 on three calibration draws.
    mse_deep_shrink: float = 0.35
    mse_deep_tokens: float = 4.0
    block_size: int = 128
    true_sequential: bool = True
    awq_grid: int = 20
    awq_clip: bool = True
    # AWQ's clipping search: each end of a group's grid shrunk by up to this much, in steps of
    # 1 / awq_grid (1.00, 0.95, ... 0.65: 64 pairs). Only with awq_rounding "nearest".
    awq_max_shrink: float = 0.35
    # How AWQ rounds its scaled weights: "gptq" (GPTQ's error feedback, act-order with static groups,
    # the AWQ paper's AWQ+GPTQ) or "nearest" (the AWQ paper's own round-to-nearest after a clipping
    # search). Either way the file is a standard AWQ (GEMM) checkpoint.
    awq_rounding: str = "gptq"
    # With GPTQ's rounding, AWQ's own statistics pass (for the scale search alone) reads only the
    # first calibration batches holding this many tokens; GPTQ's passes read them all. One alpha per
    # group of layers is chosen from means over tokens, which 16k tokens estimate as well as 64k, and
    # the pass costs a forward with every Hessian of the block (bench/SCALE.md, session 9).
    awq_search_tokens: int = 16384
    # Per-layer (bits, group size) where it differs from the above, keyed by the full linear name
    # ("model.layers.3.mlp.down_proj"): a size-budget GPTQ's choice, written as the "dynamic" config.
    overrides: tuple[tuple[str, int, int], ...] = ()

    def gptq_max_shrink(self, tokens: int, n_in: int) -> float:
        """How far GPTQ's grid search may shrink each end of a group's range, for a layer of input
        width `n_in` whose Hessian came from `tokens` calibration tokens."""
        return self.mse_deep_shrink if tokens >= self.mse_deep_tokens * n_in else self.mse_max_shrink

    def layer_setting(self, name: str) -> tuple[int, int]:
        """(bits, group size) of the linear `name` (full module name, without ".weight")."""
        return self._override_map.get(name, (self.bits, self.group_size))

    @cached_property
    def _override_map(self) -> dict[str, tuple[int, int]]:
        return {layer: (bits, group) for layer, bits, group in self.overrides}

    def to_card(self) -> dict:
        d = asdict(self)
        d["method"] = self.method.value
        d["overrides"] = {layer: {"bits": b, "group_size": g} for layer, b, g in self.overrides}
        return d
