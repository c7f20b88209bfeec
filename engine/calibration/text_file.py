"""Reading a text file the user picked: plain UTF-8 text, or JSON Lines with a `text` field per line.

Every refusal is one line naming the file: missing, a folder, binary (NUL bytes), not UTF-8, empty,
or JSONL records without text. The same reader serves calibration files and held-out evaluation text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInput

#: Records of a JSONL file are joined with a blank line, as separate documents.
RECORD_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class SourceText:
    text: str
    sha256: str  # of the text as used (decoded, newlines normalized, JSONL records joined)
    description: str
    records: int | None = None  # JSONL records read, None for plain text


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_text_file(path: Path | str) -> SourceText:
    path = Path(path).expanduser()
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    if path.is_dir():
        raise InvalidInput(f"{path}: is a folder, not a text file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if b"\x00" in raw:
        raise InvalidInput(f"{path}: is a binary file (it contains NUL bytes), not text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: is not UTF-8 text (undecodable byte at offset {exc.start})") from exc
    # Universal newlines, as Python's text mode reads: a CRLF file and its LF twin are the same text
    # to us (and to published perplexities, computed on LF text), not one with an extra token per line.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise InvalidInput(f"{path}: is empty")
    if _is_jsonl(path, text):
        records = _jsonl_texts(path, text)
        joined = RECORD_SEPARATOR.join(records)
        return SourceText(joined, text_sha256(joined), f"{path} (JSONL, {len(records)} records)", len(records))
    return SourceText(text, text_sha256(text), str(path))


def _is_jsonl(path: Path, text: str) -> bool:
    """By extension, or (for any name) when the first non-blank line is a JSON object."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return True
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


def _jsonl_texts(path: Path, text: str) -> list[str]:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise InvalidInput(f"{path} line {number}: not valid JSON ({exc.msg})") from exc
        value = record.get("text") if isinstance(record, dict) else None
        if not isinstance(value, str):
            raise InvalidInput(f"{path} line {number}: no 'text' field holding a string")
        if value.strip():
            records.append(value)
    if not records:
        raise InvalidInput(f"{path}: its JSONL records hold no text")
    return records
