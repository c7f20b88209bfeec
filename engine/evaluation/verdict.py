"""Figures into plain words: how much a conversion lost against its source, and how variants of one
source compare. Used by the CLI, the report card's lines and the GUI through the facade.

The measure is the perplexity ratio PPL(model)/PPL(source) on the same tokens, with its standard
error: "loses 3.1 % ± 0.4 %". The words for each band say what a user would notice; they follow
the usual reading of llama.cpp's figures (under 1 % is hard to tell apart in use, a few percent
shows in long answers, beyond 10 % the model is visibly weaker).
"""

from __future__ import annotations

from dataclasses import dataclass

#: (upper bound of the loss in percent, what a user notices)
BANDS = ((0.5, "indistinguishable from the original"),
         (1.5, "very close to the original; hard to tell apart in use"),
         (5.0, "slightly worse; noticeable in long answers"),
         (15.0, "clearly worse; mistakes show in everyday use"),
         (float("inf"), "much worse; expect frequent mistakes"))


def loss_percent(ratio: float) -> float:
    return 100.0 * (ratio - 1.0)


def words_for(loss_pct: float) -> str:
    for bound, words in BANDS:
        if loss_pct < bound:
            return words
    return BANDS[-1][1]


def verdict(ratio: float | None, ratio_stderr: float | None = None) -> str:
    """"loses 3.1 % ± 0.4 % against the original: slightly worse; noticeable in long answers"."""
    if ratio is None:
        return "not measured against its source yet"
    loss = loss_percent(ratio)
    err = f" ± {100 * ratio_stderr:.1f} %" if ratio_stderr is not None else ""
    if abs(loss) < 0.05:
        head = f"matches the original (±{100 * ratio_stderr:.1f} %)" if ratio_stderr is not None else "matches the original"
    elif loss < 0:
        head = f"scores {-loss:.1f} %{err} better than the original on this text (within noise for a conversion)"
    else:
        head = f"loses {loss:.1f} %{err}"
    return f"{head}: {words_for(max(loss, 0.0))}"


@dataclass(frozen=True)
class Variant:
    label: str  # e.g. "Q4_K_M" or "GPTQ 4-bit g128"
    ratio: float  # PPL(variant)/PPL(source)
    ratio_stderr: float | None
    size_bytes: int | None


def compare(variants: list[Variant]) -> list[str]:
    """One sentence per variant after the first, against the best-scoring one:
    "Q4_K_M loses 3.1 % ± 0.4 %; GPTQ g128 loses 2.2 % at 8 % smaller size"."""
    ranked = sorted(variants, key=lambda v: v.ratio)
    if not ranked:
        return []
    best = ranked[0]
    lines = [f"{best.label} loses {loss_percent(best.ratio):.1f} %"
             + (f" ± {100 * best.ratio_stderr:.1f} %" if best.ratio_stderr is not None else "")
             + " (the closest to the original)"]
    for v in ranked[1:]:
        size = ""
        if v.size_bytes and best.size_bytes:
            change = 100.0 * (v.size_bytes - best.size_bytes) / best.size_bytes
            size = f" at {abs(change):.0f} % {'smaller' if change < 0 else 'larger'} size" if abs(change) >= 0.5 else " at the same size"
        lines.append(f"{v.label} loses {loss_percent(v.ratio):.1f} %"
                     + (f" ± {100 * v.ratio_stderr:.1f} %" if v.ratio_stderr is not None else "") + size)
    return lines
