"""Bitsmith's own icons (resources/icons/*.svg), loaded once each."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtGui import QIcon

from bitsmith.engine.api import resources_root


@lru_cache(maxsize=None)
def icon(name: str) -> QIcon:
    """The icon `name` (a file resources/icons/<name>.svg); an empty icon if it is missing."""
    path = resources_root() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()
