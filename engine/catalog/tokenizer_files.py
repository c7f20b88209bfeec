"""A look at a model folder's tokenizer files before anything builds a tokenizer from them.

transformers and tokenizers fail on a corrupt file with whatever the parser met first (a
JSONDecodeError, `'list' object has no attribute 'get'`, a UnicodeDecodeError), sometimes deep in a
conversion. These checks read each file once and say in one line which file is wrong and how."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InvalidInput

#: JSON files a tokenizer is built from, each a JSON object.
JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.json",
              "added_tokens.json", "vocab.json")
TEXT_FILES = ("merges.txt", "chat_template.jinja")
#: tokenizer_config.json keys transformers uses as text, and as numbers.
TEXT_KEYS = ("tokenizer_class", "padding_side", "truncation_side")
NUMBER_KEYS = ("model_max_length",)


def check_tokenizer_files(folder: Path) -> None:
    folder = Path(folder)
    for name in JSON_FILES:
        path = folder / name
        if path.is_file():
            data = _json_object(path)
            if name == "tokenizer.json" and not isinstance(data.get("model"), dict):
                raise InvalidInput(f"{path}: corrupt tokenizer file (no tokenizer model in it)")
            if name == "tokenizer_config.json":
                _check_config(path, data)
    for name in TEXT_FILES:
        path = folder / name
        if path.is_file():
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"{path}: corrupt tokenizer file (not UTF-8 text)") from None


def _json_object(path: Path) -> dict:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: corrupt tokenizer file (not UTF-8 text)") from None
    except RecursionError:
        raise InvalidInput(f"{path}: corrupt tokenizer file (JSON nested too deep)") from None
    except ValueError as exc:
        raise InvalidInput(f"{path}: corrupt tokenizer file (not valid JSON: {exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: corrupt tokenizer file (expected a JSON object)")
    return data


def _check_config(path: Path, data: dict) -> None:
    for key in TEXT_KEYS:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise InvalidInput(f"{path}: {key} should be text, not {type(data[key]).__name__}")
    for key in NUMBER_KEYS:
        if data.get(key) is not None and (isinstance(data[key], bool) or not isinstance(data[key], (int, float))):
            raise InvalidInput(f"{path}: {key} should be a number, not {type(data[key]).__name__}")
    template = data.get("chat_template")
    if template is not None and not isinstance(template, (str, list)):
        raise InvalidInput(f"{path}: chat_template should be text, not {type(template).__name__}")
