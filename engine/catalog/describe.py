"""A model's metadata as labelled rows, for the CLI's `info` and the GUI's details panel."""

from __future__ import annotations

from pathlib import Path

from .model_info import ModelInfo
from ..units import human_bytes, human_count, human_seconds


def detail_lines(m: ModelInfo, variants: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """`variants`: (label, name) of the models converted from this one, when the caller knows them."""
    rows = [
        ("Name", m.name), ("Path", m.path), ("Found in", m.origin.value),
        ("Format", m.format.value if m.format else "?"), ("Architecture", m.architecture or "?"),
        ("Family", m.family or "?"),
        ("Parameters", f"{human_count(m.parameters)} ({m.parameters:,})" if m.parameters else "?"),
        *([("Experts", f"{m.experts} per layer, {m.experts_per_token} per token"),
           ("Active parameters", f"{human_count(m.active_parameters)} ({m.active_parameters:,}) per token")]
          if m.experts else []),
        ("Type", m.dtype or "?"),
        ("Bits per weight", f"{m.bits_per_weight:.2f}" if m.bits_per_weight else "?"),
        ("Size on disk", human_bytes(m.size_bytes)),
        ("Context length", f"{m.context_length:,}" if m.context_length else "?"),
        ("Layers", str(m.layers or "?")), ("Hidden size", str(m.hidden_size or "?")),
        ("Chat template", "yes" if m.has_chat_template else "no"),
        ("RAM to chat (est.)", human_bytes(m.ram_to_chat_bytes)),
        ("RAM to quantize (est.)", human_bytes(m.ram_to_quantize_bytes)),
    ]
    if m.unavailable:  # refused paths, said where the user picks the source
        rows.append(("Not available", "; ".join(f"{p}: {why}" for p, why in m.unavailable.items())))
    if m.source:
        rows.append(("Converted from", m.source))
    if variants:
        rows.append(("Variants", "; ".join(f"{name} ({label})" for label, name in variants)))
    rows += report_card_lines(m.report_card)
    if m.error:
        rows.append(("Problem", m.error))
    return rows


def report_card_lines(card: dict | None, source_bytes: int | None = None) -> list[tuple[str, str]]:
    """The report card's headline figures: how the model was made, what it cost, what it lost."""
    if not card:
        return []
    rows = []
    if card.get("kind") == "quantization":
        what = card.get("type") or card.get("method") or "?"
        settings = card.get("settings") or {}
        used = card.get("imatrix")
        if isinstance(used, dict) and used.get("used") is not None:  # what happened, not what was asked
            settings = {**settings, "imatrix": bool(used["used"])}
        knobs = [f"{k}={_knob(settings[k])}" for k in ("bits", "group_size", "desc_act", "sym", "imatrix")
                 if settings.get(k) is not None]
        rows.append(("Made with", " ".join([str(what)] + knobs)))
    elif card.get("kind") == "import":
        rows.append(("Made with", f"import as {card.get('dtype', '?')}"))
    calib = card.get("calibration")
    if isinstance(calib, dict):
        rows.append(("Calibration", f"{calib.get('kind')}: {calib.get('samples')} × {calib.get('seq_len')} tokens"
                     + (f" ({calib['source']})" if calib.get("source") else "")))
    if card.get("size_bytes"):
        before = source_bytes or card.get("source_size_bytes")
        rows.append(("Size", f"{human_bytes(before)} → {human_bytes(card['size_bytes'])}" if before
                     else human_bytes(card["size_bytes"])))
    if card.get("seconds") is not None:
        rows.append(("Time taken", human_seconds(float(card["seconds"]))))
    if card.get("peak_rss_bytes"):
        rows.append(("Peak memory", human_bytes(card["peak_rss_bytes"])))
    ev = card.get("evaluation") or {}
    stderr = ev.get("stderr") or {}
    if ev.get("perplexity") is not None:
        pm = f" ± {stderr['perplexity']:.2f}" if stderr.get("perplexity") else ""
        rows.append(("Perplexity", f"{ev['perplexity']:.3f}{pm} on {ev.get('tokens_evaluated', '?'):,} tokens"
                     if isinstance(ev.get("tokens_evaluated"), int) else f"{ev['perplexity']:.3f}{pm}"))
    if ev.get("kl_divergence") is not None:
        against = Path(ev["source"]).name if ev.get("source") else "the source"
        rows.append(("KL divergence", f"{ev['kl_divergence']:.4f} nats/token against {against}"))
    if ev.get("top1_agreement") is not None:
        rows.append(("Top-1 agreement", f"{ev['top1_agreement']:.1%}"))
    if ev.get("tokens_per_second") is not None:
        rows.append(("Evaluation speed", f"{ev['tokens_per_second']:.0f} tokens/s ({ev.get('backend', '?')})"))
    return rows


def _knob(value) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)
