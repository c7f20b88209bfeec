"""Scanning every source into one list of `ModelInfo`, and inspecting a single path."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from ..errors import EngineError, InvalidInput
from .cache import CatalogCache, fingerprint
from .model_info import ModelInfo, Origin
from .readers import inspect_path
from .sources import ALL_SOURCES, Candidate, bundled
from .tokenizer_files import check_tokenizer_files


def inspect(path: Path | str) -> ModelInfo:
    """Metadata of one model. Raises a typed EngineError when the path is not a usable model."""
    path = Path(path).expanduser()
    with _one_line(path):
        for cand in bundled():
            if path.exists() and cand.path.resolve() == path.resolve():
                return _checked(inspect_path(path, cand.origin, cand.name))
        return _checked(inspect_path(path, Origin.USER))


def _checked(info: ModelInfo) -> ModelInfo:
    """A Hugging Face folder's tokenizer files are checked too: everything that uses the model
    (chat, conversion, evaluation) builds its tokenizer from them."""
    path = Path(info.path)
    if path.is_dir():
        check_tokenizer_files(path)
    return info


@contextmanager
def _one_line(path: Path):
    """Whatever a hostile or odd file does to a reader (a symlink loop, a permission, a value of
    the wrong type in config.json, JSON nested too deep), the caller gets one typed line naming it."""
    if path.exists() and not path.is_dir() and not path.is_file():
        # A FIFO, a socket or a device: opening a FIFO to read its magic would block forever.
        raise InvalidInput(f"{path}: not a regular file")
    try:
        yield
    except EngineError:
        raise
    except PermissionError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from exc
    except (OSError, RuntimeError, ValueError, TypeError, AttributeError, KeyError, IndexError,
            RecursionError, OverflowError, UnicodeError) as exc:
        detail = str(exc).replace("\n", " ")[:200]
        raise InvalidInput(f"{path}: not a usable model ({type(exc).__name__}: {detail})") from exc


def _key(path: Path) -> str:
    try:
        return str(path.resolve()) if path.exists() else str(path)
    except (OSError, RuntimeError):  # a symlink loop
        return str(path)


def _inspect_candidate(c: Candidate, cache: CatalogCache) -> ModelInfo:
    fp = fingerprint(c.path)
    cached = cache.get(c.path, fp)
    if cached is not None:
        cached.origin, cached.name = c.origin, c.name or cached.name
        return cached
    try:
        with _one_line(c.path):
            info = _checked(inspect_path(c.path, c.origin, c.name))
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
            key = _key(cand.path)
            if key in seen:
                continue
            seen.add(key)
            found.append(_inspect_candidate(cand, cache))
    cache.save()
    return found
