"""A report card's figures as a person reads them: each figure with its baseline (the original
model's value on the same text), its error bar, and a verdict in plain words; each technical label
with a one-sentence tooltip. The numbers come from the engine; this only arranges them."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication

from bitsmith.engine.api import report_card_lines

from .terms import TERMS

#: Which tooltip each report-card label gets.
LABEL_TERMS = {"Perplexity": "perplexity", "KL divergence": "kl divergence", "Top-1 agreement": "top-1",
               "Evaluation speed": "evaluation speed", "Bits/weight": "bits/weight"}


def _tr(text: str) -> str:
    return QCoreApplication.translate("Figures", text)


def verdict_of(card: dict | None) -> str | None:
    """The engine's plain-words verdict of the last evaluation against the source, if any."""
    ev = (card or {}).get("evaluation") or {}
    if ev.get("verdict"):
        return ev["verdict"]
    return None


def baseline_line(card: dict | None) -> str | None:
    """ "12.40 ± 0.31 → 12.79 ± 0.33 (the original → this model, same text)" when both were measured."""
    dist = ((card or {}).get("evaluation") or {}).get("distribution") or {}
    src, mod = dist.get("ppl_source"), dist.get("ppl_model")
    if src is None or mod is None:
        return None

    def pm(v, e):
        return f"{v:.2f}" + (f" ± {e:.2f}" if e else "")
    return _tr("%1 → %2 (the original → this model, on the same text)").replace(
        "%1", pm(src, dist.get("ppl_source_stderr"))).replace("%2", pm(mod, dist.get("ppl_model_stderr")))


def explained(rows: list[tuple[str, str]], card: dict | None) -> list[tuple[str, str, str]]:
    """(label, value, tooltip) rows from (label, value) lines that include a report card's: the
    baseline beside perplexity, a tooltip for each technical label, and the verdict after them. A
    figure measured without its source says so rather than standing alone."""
    out = []
    for label, value in rows:
        term = LABEL_TERMS.get(label)
        tooltip = _tr(TERMS[term]) if term else ""
        if label == "Perplexity" and (base := baseline_line(card)) is not None:
            value = f"{value}\n{base}"
        out.append((_tr(label), value, tooltip))
    ev = (card or {}).get("evaluation") or {}
    if ev.get("perplexity") is not None:
        verdict = verdict_of(card) or _tr("no verdict yet: evaluate it against the model it was made from")
        out.append((_tr("Verdict"), verdict, _tr("What the loss against the original means in use")))
    return out


def card_rows(card: dict | None, source_bytes: int | None = None) -> list[tuple[str, str, str]]:
    return explained(report_card_lines(card, source_bytes), card)


def card_summary(card: dict | None) -> list[str]:
    """The same rows as text lines (for logs and the Convert area's details)."""
    return [f"{label}: {value}" for label, value, _tip in card_rows(card)]


def metric_value(p: VariantPoint, metric: str) -> float | None:
    if metric == "kl_divergence" and p.generation == 0 and p.perplexity is not None:
        return 0.0  # the source against itself, by definition
    return getattr(p, metric)
