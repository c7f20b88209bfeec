"""The files a converted folder takes over unchanged from its source: tokenizer, chat template,
generation settings. Copied byte for byte, so the chat template and special tokens are exactly the
source's (re-saving through transformers can rewrite them)."""

from __future__ import annotations

import shutil
from pathlib import Path

#: Exact names, plus anything starting with "tokenizer" (tokenizer.json, tokenizer.model, ...).
COPIED = ("special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt",
          "chat_template.jinja", "chat_template.json", "generation_config.json")


def copy_tokenizer_files(source: Path, dest: Path, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Copy the tokenizer/template/generation files of `source` into `dest`; returns their names.
    `skip`: names already written into `dest` by the converter (left as they are)."""
    copied = []
    for entry in sorted(Path(source).iterdir()):
        name = entry.name
        if not entry.is_file() or name in skip:
            continue
        if name in COPIED or name.startswith("tokenizer"):
            shutil.copy2(entry, Path(dest) / name)  # follows HF-cache symlinks to the blobs
            copied.append(name)
    return copied
