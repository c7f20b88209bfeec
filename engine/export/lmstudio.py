"""Placing a GGUF where LM Studio finds models: `<models>/<publisher>/<model>/<file>.gguf` under
LM Studio's models folder (LMSTUDIO_MODELS, else ~/.lmstudio/models, else the older
~/.cache/lm-studio/models), the folders Bitsmith's catalog reads too."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..catalog.sources import _lmstudio_roots
from ..config import LinkMode
from ..errors import InvalidInput, NotEnoughDisk
from ..fsutil import check_disk

PUBLISHER = "bitsmith"


def models_root(out: Path | None) -> Path:
    if out is not None:
        return Path(out)
    roots = _lmstudio_roots()
    return next((r for r in roots if r.is_dir()), roots[0])


def place(gguf: Path, root: Path, name: str, mode: LinkMode) -> tuple[Path, str]:
    """(where the file now is, how it got there). An existing different file of that name is kept."""
    gguf = Path(gguf).resolve()
    target = root / PUBLISHER / name / gguf.name
    if target.exists() or target.is_symlink():
        if target.resolve() == gguf or (target.is_file() and os.path.samefile(target, gguf)):
            return target, "already there"
        raise InvalidInput(f"{target} already exists and is another file", suggestion="choose another --name")
    target.parent.mkdir(parents=True, exist_ok=True)
    modes = [LinkMode.HARDLINK, LinkMode.COPY] if mode is LinkMode.AUTO else [mode]
    for m in modes:
        try:
            if m is LinkMode.HARDLINK:
                os.link(gguf, target)
                return target, "hard link (no extra space)"
            if m is LinkMode.SYMLINK:
                os.symlink(gguf, target)
                return target, "symbolic link"
            check_disk(target, gguf.stat().st_size)
            temp = target.with_name(f".{target.name}.partial")
            try:
                shutil.copyfile(gguf, temp)
                os.replace(temp, target)
            finally:
                temp.unlink(missing_ok=True)
            return target, "copy"
        except NotEnoughDisk:
            raise
        except OSError as exc:
            if m is modes[-1]:
                raise InvalidInput(f"{target}: cannot place the model there ({exc.strerror or exc})") from None
    raise AssertionError("unreachable")
