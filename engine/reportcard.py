"""Where a model's report card lives and how it is read. Each output gets one: a JSON file beside a
GGUF file (`model.gguf.report.json`) or inside an output folder (`bitsmith-report.json`)."""

from __future__ import annotations

import json
from pathlib import Path

FOLDER_CARD = "bitsmith-report.json"
FILE_SUFFIX = ".report.json"


def report_card_path(model_path: Path) -> Path:
    model_path = Path(model_path)
    if model_path.is_dir():
        return model_path / FOLDER_CARD
    return model_path.with_name(model_path.name + FILE_SUFFIX)


def read_report_card(model_path: Path) -> dict | None:
    path = report_card_path(model_path)
    try:
        with open(path, encoding="utf-8") as f:
            card = json.load(f)
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None
