"""The text files the project ships: the built-in calibration text, the seed prompts for
model-generated calibration, and a small held-out sample for quick evaluations (written separately,
so a model is never scored on its own calibration text). They live in `resources/`, beside the
source tree in a checkout and in the bundle's data folder when frozen by PyInstaller."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InvalidInput
from ..paths import bundle_root

BUILTIN_TEXT = "builtin.txt"
SEED_PROMPTS = "seed_prompts.json"


def resources_root() -> Path:
    bundle = bundle_root()
    return (bundle if bundle is not None else Path(__file__).resolve().parents[2]) / "resources"


def calibration_resources() -> Path:
    return resources_root() / "calibration"


def heldout_text_path() -> Path:
    return resources_root() / "evaluation" / "heldout.txt"


def heldout_text(name: str | Path) -> Path:
    """'builtin' names the held-out sample Bitsmith ships; anything else must be an existing file."""
    if str(name) == "builtin":
        return heldout_text_path()
    path = Path(name)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such text file to evaluate on",
                           suggestion="give a UTF-8 text or JSONL file, or 'builtin' for Bitsmith's sample")
    return path


def builtin_text_path() -> Path:
    return calibration_resources() / BUILTIN_TEXT


def seed_prompts() -> list[str]:
    """The prompts' texts, in file order (callers shuffle them with their seed)."""
    path = calibration_resources() / SEED_PROMPTS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        prompts = [p["text"] for p in data["prompts"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path}: the seed prompts are missing or malformed ({exc})") from exc
    if not prompts:
        raise InvalidInput(f"{path}: holds no seed prompts")
    return prompts
