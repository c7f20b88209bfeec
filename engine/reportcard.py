"""Where a model's report card lives and how it is read. Each output gets one: a JSON file beside a
GGUF file (`model.gguf.report.json`) or inside an output folder (`bitsmith-report.json`).

Conversion jobs write the card (source, method, settings, calibration and its hash, tool versions,
time, peak memory, size); evaluation merges its figures in under `evaluation`."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from .fsutil import replace_text
from .errors import InvalidInput

FOLDER_CARD = "bitsmith-report.json"
FILE_SUFFIX = ".report.json"


def report_card_path(model_path: Path) -> Path:
    model_path = Path(model_path)
    if model_path.is_dir():
        beside = model_path / FOLDER_CARD
    else:
        beside = model_path.with_name(model_path.name + FILE_SUFFIX)
    if _not_ours(model_path, beside):
        # The bundled model lives inside the installation (read-only once installed), and other
        # read-only places cannot take a card: keep it in Bitsmith's data folder instead.
        from .paths import data_dir

        key = hashlib.sha256(str(model_path.absolute()).encode()).hexdigest()[:12]
        return data_dir() / "report-cards" / f"{model_path.name}-{key}.json"
    return beside


def _not_ours(model_path: Path, beside: Path) -> bool:
    if beside.exists():
        return False  # a card already there (written by a conversion) stays where it is
    if model_path.absolute() == _bundled_model():
        return True
    return not os.access(beside.parent, os.W_OK)


@functools.lru_cache(maxsize=1)
def _bundled_model() -> Path | None:
    """Looked up once: the catalog asks for a card path for every model on every scan."""
    from .paths import bundled_model_path

    try:
        return bundled_model_path().absolute()
    except Exception:  # noqa: BLE001 - no bundled model in this installation: nothing to compare
        return None


def read_report_card(model_path: Path) -> dict | None:
    path = report_card_path(model_path)
    try:
        with open(path, encoding="utf-8") as f:
            card = json.load(f)
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def write_report_card(model_path: Path, card: dict) -> Path:
    """Write `card` as the model's report card, replacing any old one only once the new one is complete.

    A private temporary name and a rename, rather than fsutil.staged_output: that sweeps the folder's
    partial outputs, which could belong to a conversion still writing beside this model.
    """
    path = report_card_path(model_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return replace_text(path, json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n", "the report card")


def update_report_card(model_path: Path, updates: dict) -> dict:
    """Merge `updates` (top-level keys replace) into the model's card, creating it if there is none.

    A card that exists but cannot be read is left alone rather than overwritten.
    """
    path = report_card_path(model_path)
    card = read_report_card(model_path)
    if card is None and path.exists():
        raise InvalidInput(f"{path}: the existing report card is not valid JSON; not overwriting it",
                           suggestion="move it aside and try again")
    card = {**(card or {}), **updates}
    write_report_card(model_path, card)
    return card


def tool_versions() -> dict[str, str | None]:
    """Versions of Bitsmith and the packages whose behaviour shapes an output, for the card."""
    import platform
    from importlib import metadata

    from . import __version__

    versions: dict[str, str | None] = {"bitsmith": __version__, "python": platform.python_version()}
    for dist in ("torch", "transformers", "llama-cpp-python", "gguf", "numpy", "safetensors"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


