"""Mixture-of-experts tensors between llama.cpp's layout and the Hugging Face checkpoint's.

llama.cpp keeps one 3-D tensor per kind and block (`blk.N.ffn_up_exps.weight`, experts stacked
first). transformers 5 builds the experts as fused 3-D parameters (`mlp.experts.gate_up_proj`,
gate rows first, and `mlp.experts.down_proj`) but saves and reads checkpoints with one matrix per
expert (`mlp.experts.E.up_proj.weight`), the layout every released MoE checkpoint has; the import
writes that one.
"""

from __future__ import annotations

import re

_FUSED = re.compile(r"^(.*\.experts)\.(gate_up_proj|down_proj)$")
_PER_EXPERT = re.compile(r"^(?:.*\.)?layers\.(\d+)\..*\.experts\.(\d+)\.(gate|up|down)_proj\.weight$")


def per_expert_shapes(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """The model's parameter shapes with each fused expert parameter split per expert and kind."""
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in shapes.items():
        m = _FUSED.match(name)
        if not m or len(shape) != 3:
            out[name] = shape
            continue
        prefix, kind = m.groups()
        n_experts, rows, cols = shape
        for e in range(n_experts):
            if kind == "gate_up_proj":
                out[f"{prefix}.{e}.gate_proj.weight"] = (rows // 2, cols)
                out[f"{prefix}.{e}.up_proj.weight"] = (rows // 2, cols)
            else:
                out[f"{prefix}.{e}.down_proj.weight"] = (rows, cols)
    return out


def expert_groups(gguf_names: list[str], hf_names: list[str]) -> dict[str, tuple[str, ...]]:
    """{stacked GGUF tensor: its per-expert HF names in expert order}, for the names both have."""
    found: dict[tuple[int, str], dict[int, str]] = {}
    for name in hf_names:
        m = _PER_EXPERT.match(name)
        if m:
            found.setdefault((int(m.group(1)), m.group(3)), {})[int(m.group(2))] = name
    present = set(gguf_names)
    groups = {}
    for (block, kind), members in found.items():
        gguf_name = f"blk.{block}.ffn_{kind}_exps.weight"
        if gguf_name in present:
            groups[gguf_name] = tuple(members[e] for e in sorted(members))
    return groups
