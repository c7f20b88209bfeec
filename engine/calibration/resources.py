"""The calibration files the project ships in `resources/calibration/`: the built-in text and the
seed prompts for model-generated calibration."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InvalidInput
from ..paths import resources_root

BUILTIN_TEXT = "builtin.txt"
SEED_PROMPTS = "seed_prompts.json"


def calibration_resources() -> Path:
    return resources_root() / "calibration"


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
