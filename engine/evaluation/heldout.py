"""The held-out sample Bitsmith ships for quick evaluations (`resources/evaluation/heldout.txt`,
about 1,500 tokens written for the project, separate from the calibration text so that no model is
scored on what it was calibrated with), and the one rule for naming held-out text."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInput
from ..paths import resources_root


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
