"""A model's metadata as labelled rows, for the CLI's `info` and the GUI's details panel."""

from __future__ import annotations

from .model_info import ModelInfo
from ..units import human_bytes, human_count


def detail_lines(m: ModelInfo) -> list[tuple[str, str]]:
    rows = [
        ("Name", m.name), ("Path", m.path), ("Found in", m.origin.value),
        ("Format", m.format.value if m.format else "?"), ("Architecture", m.architecture or "?"),
        ("Parameters", f"{human_count(m.parameters)} ({m.parameters:,})" if m.parameters else "?"),
        ("Type", m.dtype or "?"),
        ("Bits per weight", f"{m.bits_per_weight:.2f}" if m.bits_per_weight else "?"),
        ("Size on disk", human_bytes(m.size_bytes)),
        ("Context length", f"{m.context_length:,}" if m.context_length else "?"),
        ("Layers", str(m.layers or "?")), ("Hidden size", str(m.hidden_size or "?")),
        ("Chat template", "yes" if m.has_chat_template else "no"),
        ("RAM to chat (est.)", human_bytes(m.ram_to_chat_bytes)),
        ("RAM to quantize (est.)", human_bytes(m.ram_to_quantize_bytes)),
    ]
    if m.source:
        rows.append(("Converted from", m.source))
    if m.error:
        rows.append(("Problem", m.error))
    return rows
