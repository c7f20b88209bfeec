"""Opening a GGUF file for reading, with one-line errors for the ways a file can be wrong.

`gguf.GGUFReader` maps the whole file and, on a damaged one, fails with numpy's reshape errors;
the checks here run first so the user reads which file is wrong and how.
"""

from __future__ import annotations

from pathlib import Path

import gguf

from ...errors import InvalidInput
from .header import MAGIC as GGUF_MAGIC, check_gguf_header



def open_gguf(path: Path) -> gguf.GGUFReader:
    """A reader over `path`, after checking it exists, is a GGUF and holds all its tensor data."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    with path.open("rb") as fh:
        magic = fh.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise InvalidInput(f"{path}: not a GGUF file (it does not start with 'GGUF')")
    check_gguf_header(path)  # bounded checks first: the reader trusts counts and lengths
    try:
        reader = gguf.GGUFReader(path)
    except Exception as exc:  # noqa: BLE001 - a hostile file may break the reader in any way
        # The reader slices tensors out of the mapped file, so a short file fails inside numpy
        # with a message about array shapes; say what it means instead (the cause stays chained).
        size = path.stat().st_size
        raise InvalidInput(
            f"{path}: truncated or damaged GGUF "
            f"(its header or tensor data runs past the end of the file, {size:,} bytes)"
        ) from exc
    _check_tensor_extents(path, reader)
    return reader


def _check_tensor_extents(path: Path, reader: gguf.GGUFReader) -> None:
    size = path.stat().st_size
    for tensor in reader.tensors:
        end = int(tensor.data_offset) + int(tensor.n_bytes)
        if end > size:
            raise InvalidInput(
                f"{path}: truncated GGUF (tensor {tensor.name} ends at byte {end}, the file has {size})"
            )


def field_value(reader: gguf.GGUFReader, key: str, default=None):
    """A metadata value as plain Python (str, int, float, bool or list), or `default`."""
    field = reader.get_field(key)
    return default if field is None else field.contents()


def architecture(reader: gguf.GGUFReader, path: Path) -> str:
    arch = field_value(reader, gguf.Keys.General.ARCHITECTURE)
    if not arch:
        raise InvalidInput(f"{path}: the GGUF names no architecture (general.architecture is missing)")
    return arch
