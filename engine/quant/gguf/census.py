"""What a finished GGUF file actually holds: each tensor's type, read back from the file.

llama.cpp picks types per tensor (more bits for some layers, fallbacks for rows that do not fit a
K-quant block), so the result reports what was written rather than what was asked for.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from dataclasses import dataclass
from math import prod
from pathlib import Path

import gguf

from ...errors import InvalidInput

K_QUANT_TYPES = frozenset(t.name for t in gguf.GGMLQuantizationType if t.name.endswith("_K"))


@dataclass(frozen=True)
class Census:
    tensor_types: dict[str, str]  # GGUF tensor name -> type name
    n_params: int

    @property
    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.tensor_types.values()).items()))

    def k_quant_fallbacks(self) -> dict[str, str]:
        """Matrices of a K-quant file that did not get a K-quant type (their rows are not a
        multiple of 256 values, or llama.cpp keeps them wider on purpose)."""
        return {n: t for n, t in self.tensor_types.items() if t not in K_QUANT_TYPES and t not in ("F32",)}


def census(path: Path) -> Census:
    """Each tensor's type from the file's tensor table. The metadata is skipped, not decoded:
    gguf.GGUFReader builds an object per token and merge (seconds for a 50k vocabulary), for a
    table that is a few hundred entries."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        try:
            return _read_table(buf)
        except (struct.error, ValueError, KeyError) as exc:
            raise InvalidInput(f"{path}: damaged GGUF header ({exc})") from None


# Byte width of each fixed-size GGUF metadata value type (gguf.GGUFValueType numbering).
_WIDTH = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


def _read_table(buf) -> Census:
    if buf[:4] != b"GGUF":
        raise ValueError("no GGUF magic")
    n_tensors, n_kv = struct.unpack_from("<QQ", buf, 8)
    pos = 24
    for _ in range(n_kv):
        pos = _skip_string(buf, pos)
        (kind,) = struct.unpack_from("<I", buf, pos)
        pos = _skip_value(buf, pos + 4, kind)
    types, n_params = {}, 0
    for _ in range(n_tensors):
        (length,) = struct.unpack_from("<Q", buf, pos)
        name = bytes(buf[pos + 8:pos + 8 + length]).decode("utf-8")
        pos += 8 + length
        (n_dims,) = struct.unpack_from("<I", buf, pos)
        dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
        pos += 4 + 8 * n_dims
        (qtype,) = struct.unpack_from("<I", buf, pos)
        pos += 4 + 8  # the type, then the data offset
        types[name] = gguf.GGMLQuantizationType(qtype).name
        n_params += int(prod(dims))
    return Census(types, n_params)


def _skip_string(buf, pos: int) -> int:
    (length,) = struct.unpack_from("<Q", buf, pos)
    if pos + 8 + length > len(buf):
        raise ValueError("a string runs past the end of the file")
    return pos + 8 + length


def _skip_value(buf, pos: int, kind: int) -> int:
    if kind == _STRING:
        return _skip_string(buf, pos)
    if kind == _ARRAY:
        item, count = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        if item == _STRING:
            for _ in range(count):
                pos = _skip_string(buf, pos)
            return pos
        if item == _ARRAY:
            for _ in range(count):
                pos = _skip_value(buf, pos, _ARRAY)
            return pos
        return pos + _WIDTH[item] * count
    return pos + _WIDTH[kind]
