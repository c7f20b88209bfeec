"""Scanning every source into one list of `ModelInfo`, and inspecting a single path."""

from __future__ import annotations

from pathlib import Path

from ..errors import EngineError
from .cache import CatalogCache, fingerprint
from .model_info import ModelInfo, Origin
from .readers import inspect_path
from .sources import ALL_SOURCES, Candidate, bundled


def inspect(path: Path | str) -> ModelInfo:
    """Metadata of one model. Raises a typed EngineError when the path is not a usable model."""
    path = Path(path).expanduser()
    for cand in bundled():
        if path.exists() and cand.path.resolve() == path.resolve():
            return inspect_path(path, cand.origin, cand.name)
    return inspect_path(path, Origin.USER)


def _inspect_candidate(c: Candidate, cache: CatalogCache) -> ModelInfo:
    fp = fingerprint(c.path)
    cached = cache.get(c.path, fp)
    if cached is not None:
        cached.origin, cached.name = c.origin, c.name or cached.name
        return cached
    try:
        info = inspect_path(c.path, c.origin, c.name)
    except EngineError as exc:
        info = ModelInfo(name=c.name or c.path.name, path=str(c.path), origin=c.origin, error=str(exc))
    if fp is not None:
        cache.put(c.path, fp, info)
    return info


def scan(sources=ALL_SOURCES) -> list[ModelInfo]:
    """Every model found, the bundled one first; unusable ones carry an `error` instead of vanishing."""
    cache = CatalogCache()
    seen: set[str] = set()
    found: list[ModelInfo] = []
    for source in sources:
        for cand in source():
            key = str(cand.path.resolve()) if cand.path.exists() else str(cand.path)
            if key in seen:
                continue
            seen.add(key)
            found.append(_inspect_candidate(cand, cache))
    cache.save()
    return found
