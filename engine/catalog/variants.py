"""A source model and the variants converted from it, with the figures their report cards hold.

The Compare view charts these points (size against perplexity or KL divergence) and the browser's
details panel lists them as lineage. Lineage comes from each card's `source`, so it survives moving
nothing but the source; a variant of a variant (the bundled GGUF imported to Hugging Face, then
quantized to GPTQ) belongs to the original source's family too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .model_info import ModelInfo


@dataclass(frozen=True)
class VariantPoint:
    name: str
    path: str
    label: str  # what the variant is: "source", "Q4_K_M", "gptq 4-bit g64", ...
    generation: int  # 0 for the source, 1 for a direct conversion, 2 for a conversion of that, ...
    size_bytes: int | None
    bits_per_weight: float | None
    perplexity: float | None = None
    perplexity_stderr: float | None = None
    kl_divergence: float | None = None
    top1_agreement: float | None = None
    tokens_per_second: float | None = None  # evaluation throughput from the card: a like-for-like speed
    evaluated_tokens: int | None = None
    reference: str | None = None  # what the KL divergence was measured against

    @property
    def evaluated(self) -> bool:
        return self.perplexity is not None


def _key(path: str | None) -> str | None:
    return os.path.normcase(os.path.realpath(path)) if path else None


def root_of(model: ModelInfo, models: list[ModelInfo]) -> ModelInfo:
    """Follow `source` links up to the first model that was not converted from a listed model."""
    by_path = {_key(m.path): m for m in models}
    seen = {_key(model.path)}
    while model.source and (parent := by_path.get(_key(model.source))) is not None and _key(parent.path) not in seen:
        seen.add(_key(parent.path))
        model = parent
    return model


def family(root: ModelInfo, models: list[ModelInfo]) -> list[VariantPoint]:
    """The root and every model descended from it, breadth first."""
    children: dict[str, list[ModelInfo]] = {}
    for m in models:
        if m.source and _key(m.path) != _key(root.path):
            children.setdefault(_key(m.source), []).append(m)
    points = [point(root, 0)]
    frontier, seen = [root], {_key(root.path)}
    generation = 0
    while frontier:
        generation += 1
        nxt = []
        for parent in frontier:
            for child in sorted(children.get(_key(parent.path), []), key=lambda m: m.size_bytes or 0):
                if _key(child.path) not in seen:
                    seen.add(_key(child.path))
                    points.append(point(child, generation))
                    nxt.append(child)
        frontier = nxt
    return points


def sources_with_variants(models: list[ModelInfo]) -> list[ModelInfo]:
    """Models that have at least one variant in the list: the choices for the Compare view."""
    roots = {}
    for m in models:
        if m.source:
            root = root_of(m, models)
            if _key(root.path) != _key(m.path):
                roots[_key(root.path)] = root
    return sorted(roots.values(), key=lambda m: m.name.lower())


def variant_label(m: ModelInfo, generation: int) -> str:
    if generation == 0:
        return "source"
    card = m.report_card or {}
    method = card.get("method")
    settings = card.get("settings") or {}
    if method == "gguf" or (method is None and m.format and m.format.value == "gguf"):
        kind = card.get("type") or m.dtype or "gguf"
        used = card.get("imatrix")
        used = used.get("used") if isinstance(used, dict) else settings.get("imatrix")  # what happened
        return f"{kind} imatrix" if used else kind
    if method in ("gptq", "awq", "rtn"):
        text = f"{method} {settings.get('bits', '?')}-bit g{settings.get('group_size', '?')}"
        return text + " act-order" if settings.get("desc_act") else text
    if card.get("kind") == "import" or method is None:
        return m.dtype or (m.format.value if m.format else "?")
    return method


def point(m: ModelInfo, generation: int) -> VariantPoint:
    ev = (m.report_card or {}).get("evaluation") or {}
    stderr = ev.get("stderr") or {}
    return VariantPoint(
        name=m.name, path=m.path, label=variant_label(m, generation), generation=generation,
        size_bytes=m.size_bytes, bits_per_weight=m.bits_per_weight,
        perplexity=ev.get("perplexity"), perplexity_stderr=stderr.get("perplexity"),
        kl_divergence=ev.get("kl_divergence"), top1_agreement=ev.get("top1_agreement"),
        tokens_per_second=ev.get("tokens_per_second"), evaluated_tokens=ev.get("tokens_evaluated"),
        reference=ev.get("source"),
    )
