"""The weight-only checkpoint layouts by the name config.json gives them ("gptq", "awq"): one
lookup for the folder writer, the shard planner and the runtime's QuantLinear."""

from __future__ import annotations

from . import awq_layout, gptq_layout

LAYOUTS = {"gptq": gptq_layout, "awq": awq_layout}
