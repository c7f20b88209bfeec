"""Calibration text and the fixed-length token windows cut from it.

A stand-in for the calibration service (built-in, user file, model-generated sources): methods call
`calibration_text` and `calibration_windows` only, so replacing this module changes nothing else.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from ..calibration.resources import builtin_text_path
from ..errors import InvalidInput

BUILTIN = "builtin"
MODEL_GENERATED = "model"
MIN_TOKENS = 8


@dataclass(frozen=True)
class CalibrationText:
    text: str
    source: str  # "builtin" or the file's path
    sha256: str
    note: str = ""  # why the source differs from the one asked for, if it does


def calibration_text(source: str) -> CalibrationText:
    """The text for a QuantizeConfig.calibration value: "builtin", "model" or a file path."""
    note = ""
    if source == MODEL_GENERATED:
        note = "model-generated calibration is not available yet; using the built-in text"
        source = BUILTIN
    path = builtin_text_path() if source == BUILTIN else Path(source)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the calibration text ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: the calibration text is not UTF-8") from None
    if not text.strip():
        raise InvalidInput(f"{path}: the calibration text is empty")
    label = BUILTIN if source == BUILTIN else str(path)
    return CalibrationText(text, label, hashlib.sha256(raw).hexdigest(), note)


def calibration_windows(tokenizer, text: str, n: int, seq_len: int, seed: int) -> list[list[int]]:
    """Up to `n` windows of `seq_len` token ids, chosen at random (reproducibly from `seed`) among
    the non-overlapping windows of the tokenized text, returned in text order.

    A text shorter than one window gives a single window of the whole text.
    """
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) < MIN_TOKENS:
        raise InvalidInput(f"the calibration text has {len(ids)} tokens; at least {MIN_TOKENS} are needed")
    n_full = len(ids) // seq_len
    if n_full == 0:
        return [ids]
    picked = sorted(random.Random(seed).sample(range(n_full), min(n, n_full)))
    return [ids[i * seq_len:(i + 1) * seq_len] for i in picked]
