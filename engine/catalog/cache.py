"""Catalog results cached by path and modification time, so a rescan reads only what changed."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import __version__
from ..paths import cache_dir
from ..reportcard import report_card_path
from .model_info import ModelInfo

CACHE_FILE = "catalog-cache.json"


def fingerprint(path: Path) -> list | None:
    """Sizes and mtimes of the model's files (and its report card); None when it is gone."""
    try:
        if path.is_dir():
            entries = [(e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in path.iterdir() if e.is_file()]
            return sorted(entries)
        st = path.stat()
        card = report_card_path(path)
        card_mtime = card.stat().st_mtime_ns if card.exists() else 0
        return [st.st_size, st.st_mtime_ns, card_mtime]
    except OSError:
        return None


class CatalogCache:
    def __init__(self, file: Path | None = None):
        self.file = file or cache_dir() / CACHE_FILE
        self._entries: dict = {}
        self._dirty = False
        try:
            with open(self.file, encoding="utf-8") as f:
                data = json.load(f)
            if data.get("version") == __version__:
                self._entries = data.get("entries", {})
        except (OSError, ValueError, AttributeError):
            pass

    def get(self, path: Path, fp) -> ModelInfo | None:
        entry = self._entries.get(str(path))
        if entry and fp is not None and entry.get("fp") == json.loads(json.dumps(fp)):
            try:
                return ModelInfo.from_dict(entry["info"])
            except (KeyError, TypeError, ValueError):
                return None
        return None

    def put(self, path: Path, fp, info: ModelInfo) -> None:
        self._entries[str(path)] = {"fp": fp, "info": info.to_dict()}
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        temp = self.file.with_suffix(".tmp")
        with open(temp, "w", encoding="utf-8") as f:
            json.dump({"version": __version__, "entries": self._entries}, f)
        os.replace(temp, self.file)
        self._dirty = False
