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
               "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "U16": 2, "U32": 4, "U64": 8,
               "C64": 8}
#: Packed types narrower than a byte: bits per value.
SUBBYTE_BITS = {"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}


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
        except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
            raise InvalidInput(f"{path}: corrupt safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise InvalidInput(f"{path}: corrupt safetensors header")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise InvalidInput(f"{path}: corrupt safetensors header (__metadata__ is not an object)")
    tensors = [_entry(path, name, t) for name, t in header.items()]
    _check_extents(path, tensors, [header[t.name]["data_offsets"] for t in tensors], size - 8 - n)
    return tensors, meta


def _entry(path: Path, name: str, t) -> TensorHeader:
    """One tensor's entry, checked: a known dtype, a shape of natural numbers, and offsets whose
    span is exactly the bytes that dtype and shape need."""
    try:
        begin, stop = t["data_offsets"]
        dtype, shape = t["dtype"], tuple(t["shape"])
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"{path}: corrupt safetensors header entry '{name}'") from None
    if dtype not in DTYPE_BYTES and dtype not in SUBBYTE_BITS:
        raise InvalidInput(f"{path}: tensor '{name}' has unknown dtype {str(dtype)[:20]!r}")
    if not all(type(v) is int and v >= 0 for v in (begin, stop, *shape)) or stop < begin:
        raise InvalidInput(f"{path}: tensor '{name}' has invalid offsets or shape")
    th = TensorHeader(name, dtype, shape, stop - begin)
    bits = SUBBYTE_BITS.get(dtype) or 8 * DTYPE_BYTES[dtype]
    need = -(-th.numel * bits // 8)
    if need != th.nbytes:
        raise InvalidInput(f"{path}: tensor '{name}' spans {th.nbytes:,} bytes but its shape "
                           f"{list(shape)[:8]} of {dtype} needs {need:,}")
    return th


def _check_extents(path: Path, tensors: list[TensorHeader], offsets: list, room: int) -> None:
    previous_end, previous = 0, None
    for (begin, stop), t in sorted(zip(offsets, tensors), key=lambda pair: pair[0][0]):
        if stop > room:
            raise InvalidInput(f"{path}: truncated safetensors file (tensor '{t.name}' ends at byte "
                               f"{stop:,} of the data, which has {room:,})")
        if begin < previous_end:
            raise InvalidInput(f"{path}: tensors '{previous}' and '{t.name}' overlap")
        previous_end, previous = stop, t.name
