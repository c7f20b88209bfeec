"""Where models are found: the bundled model, the user's own paths, the Hugging Face cache, and
(read-only, never copied) Ollama's and LM Studio's model stores."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..config import IMATRIX_SUFFIX
from ..errors import EngineError
from ..paths import bundled_model_path
from . import user_paths
from .model_info import Origin

#: How deep a user folder is searched for models.
MAX_DEPTH = 3
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"


@dataclass(frozen=True)
class Candidate:
    path: Path
    origin: Origin
    name: str | None = None


def bundled() -> Iterator[Candidate]:
    try:
        yield Candidate(bundled_model_path(), Origin.BUNDLED, "SmolLM2-135M-Instruct Q4_1 (bundled)")
    except EngineError:
        return


def models_under(root: Path, origin: Origin, depth: int = MAX_DEPTH) -> Iterator[Candidate]:
    """A file, a model folder, or a folder holding models (GGUF files or model folders)."""
    if root.is_file():
        yield Candidate(root, origin)
        return
    if not root.is_dir():
        return
    if (root / "config.json").is_file():
        yield Candidate(root, origin)
        return
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue  # hidden folders, and our own partial outputs
        if entry.is_file() and entry.suffix.lower() == ".gguf":
            if entry.name.lower().endswith(IMATRIX_SUFFIX):
                continue  # an importance matrix written beside its model, not a model
            yield Candidate(entry, origin)
        elif entry.is_dir() and depth > 0:
            yield from models_under(entry, origin, depth - 1)


def user() -> Iterator[Candidate]:
    for p in user_paths.load():
        path = Path(p)
        if not path.exists():
            yield Candidate(path, Origin.USER)  # shown with a "missing" error, so it can be removed
        else:
            yield from models_under(path, Origin.USER)


def hf_cache() -> Iterator[Candidate]:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(os.environ.get("HF_HUB_CACHE"))
    except (CacheNotFound, OSError):
        return
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        newest = max(repo.revisions, key=lambda r: r.last_modified)
        snap = Path(newest.snapshot_path)
        if (snap / "config.json").is_file():
            yield Candidate(snap, Origin.HF_CACHE, repo.repo_id)
        for f in sorted(snap.rglob("*.gguf")):
            yield Candidate(f, Origin.HF_CACHE, f"{repo.repo_id}/{f.name}")


def _ollama_root() -> Path:
    return Path(os.environ.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models")


def ollama() -> Iterator[Candidate]:
    root = _ollama_root()
    manifests = root / "manifests"
    if not manifests.is_dir():
        return
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        try:
            layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers", [])
        except (OSError, ValueError, AttributeError):
            continue
        for layer in layers:
            if layer.get("mediaType") == OLLAMA_MODEL_LAYER:
                blob = root / "blobs" / str(layer.get("digest", "")).replace(":", "-")
                rel = manifest.relative_to(manifests).parts
                name = f"{'/'.join(rel[-3:-1]).removeprefix('library/')}:{rel[-1]}" if len(rel) >= 2 else manifest.name
                if blob.is_file():
                    yield Candidate(blob, Origin.OLLAMA, name)


def _lmstudio_roots() -> list[Path]:
    env = os.environ.get("LMSTUDIO_MODELS")
    if env:
        return [Path(env)]
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def lmstudio() -> Iterator[Candidate]:
    for root in _lmstudio_roots():
        if root.is_dir():
            yield from models_under(root, Origin.LMSTUDIO, depth=3)


ALL_SOURCES = (bundled, user, hf_cache, ollama, lmstudio)
