"""GPTQ, AWQ and RTN settings once resolved against a model: what the quantizers run with and what
the writers record in the output's quantization config."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .jobs import Method


@dataclass(frozen=True)
class WeightOnlySettings:
    method: Method
    bits: int
    group_size: int  # resolved: -1, 32, 64 or 128
    sym: bool
    desc_act: bool = False
    static_groups: bool = True  # GPTQ with desc_act: grids from the unmodified weights
    damp: float = 0.01
    block_size: int = 128
    true_sequential: bool = True
    awq_grid: int = 20
    awq_clip: bool = True
    awq_max_shrink: float = 0.5

    def to_card(self) -> dict:
        d = asdict(self)
        d["method"] = self.method.value
        return d
