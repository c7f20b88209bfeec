"""Reading safetensors headers without touching tensor data, and checking them against the file."""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInput

# A header larger than this is not a real safetensors file (the format caps it at 100 MB).
MAX_HEADER = 100 * 1024**2
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}


@dataclass(frozen=True)
class TensorHeader:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def read_header(path: Path) -> tuple[list[TensorHeader], dict]:
    """Tensors and `__metadata__` of one file. Raises InvalidInput naming the file when it is
    truncated or not safetensors at all."""
    path = Path(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise InvalidInput(f"{path}: truncated safetensors file ({size} bytes, no header)")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER or 8 + n > size:
            raise InvalidInput(f"{path}: not a valid safetensors file (header of {n} bytes in a {size}-byte file)")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise InvalidInput(f"{path}: corrupt safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise InvalidInput(f"{path}: corrupt safetensors header")
    meta = header.pop("__metadata__", None) or {}
    tensors, end = [], 0
    for name, t in header.items():
        try:
            begin, stop = t["data_offsets"]
            th = TensorHeader(name, t["dtype"], tuple(t["shape"]), stop - begin)
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(f"{path}: corrupt safetensors header entry '{name}'") from None
        end = max(end, stop)
        tensors.append(th)
    if 8 + n + end > size:
        raise InvalidInput(
            f"{path}: truncated safetensors file ({size} bytes, header promises {8 + n + end})"
        )
    return tensors, meta
