"""The files and folders the user added to the catalog, remembered in a small JSON settings file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InvalidInput
from ..paths import config_dir

SETTINGS_FILE = "catalog.json"


def _settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def load() -> list[str]:
    try:
        with open(_settings_path(), encoding="utf-8") as f:
            paths = json.load(f).get("paths", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [p for p in paths if isinstance(p, str)]


def _save(paths: list[str]) -> None:
    target = _settings_path()
    temp = target.with_suffix(".tmp")
    with open(temp, "w", encoding="utf-8") as f:
        json.dump({"paths": paths}, f, indent=2)
    os.replace(temp, target)


def add(path: Path | str) -> str:
    resolved = str(Path(path).expanduser().resolve())
    if not os.path.exists(resolved):
        raise InvalidInput(f"{path}: no such file or folder")
    paths = load()
    if resolved not in paths:
        _save(paths + [resolved])
    return resolved


def remove(path: Path | str) -> bool:
    """Forget a path (never touches the files). Returns whether it was in the list."""
    resolved = str(Path(path).expanduser().resolve())
    paths = load()
    if resolved not in paths:
        return False
    _save([p for p in paths if p != resolved])
    return True
