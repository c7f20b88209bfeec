"""A bounded walk of a GGUF header before any library parses it.

`gguf.GGUFReader` and llama.cpp trust the counts and lengths a file declares: a crafted file with a
tensor count of 2**60, a string "of" 2**63 bytes, arrays nested a thousand deep or tensors pointing
past the end (or at each other) makes them loop for hours, allocate without bound or read out of
range. This walk checks every count and length against the bytes actually left in the file, so its
time and memory are bounded by the header's real size, and it raises one InvalidInput line naming
the file and the first thing wrong. Layout (GGUF v2/v3, little-endian): magic, version, tensor
count, key-value count, the key-values, the tensor infos, padding to the alignment, tensor data.

The same walk also keeps what a catalog shows (`read_gguf_header`): every scalar and text value,
short arrays (per-layer head counts) and the tensor infos. It skips the vocabulary, which
gguf.GGUFReader turns into a numpy object per token (seconds for 49k tokens, far more for 262k).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from ...errors import InvalidInput

MAGIC = b"GGUF"
#: Sizes of the fixed-size value types, by GGUF value type number, and their struct formats.
_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_FORMAT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
#: Arrays up to this long are kept by read_gguf_header (per-layer settings); longer ones (the
#: vocabulary, merges, token types) are only counted.
SHORT_ARRAY = 4096
_STRING, _ARRAY = 8, 9
#: llama.cpp's limits: tensors have at most 4 dimensions; deeper array nesting than this is never
#: written by any converter and only serves to exhaust a recursive parser.
MAX_DIMS = 4
MAX_ARRAY_DEPTH = 4
MAX_KEY_BYTES = 64 * 1024
DEFAULT_ALIGNMENT = 32


@dataclass(frozen=True)
class HeaderSummary:
    version: int
    n_tensors: int
    n_kv: int
    data_start: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # as the file lists it (innermost dimension first)
    type: int  # ggml type number
    n_elements: int
    n_bytes: int
    offset: int  # from the start of the data section


@dataclass(frozen=True)
class GGUFHeader:
    summary: HeaderSummary
    fields: dict  # key -> int, float, bool, str, or a list for arrays up to SHORT_ARRAY items
    array_lengths: dict  # key -> item count, for every array (kept or not)
    tensors: tuple[TensorInfo, ...]


class _Bad(Exception):
    pass


def _block_sizes() -> dict[int, tuple[int, int]]:
    import gguf

    return {int(t): size for t, size in gguf.GGML_QUANT_SIZES.items()}


class _Cursor:
    def __init__(self, buf, size: int):
        self.buf, self.size, self.pos = buf, size, 0

    def take(self, n: int, what: str) -> int:
        if n < 0 or n > self.size - self.pos:
            raise _Bad(f"{what} of {n:,} bytes at offset {self.pos:,} runs past the end of the file")
        start = self.pos
        self.pos += n
        return start

    def unpack(self, fmt: str, what: str):
        start = self.take(struct.calcsize(fmt), what)
        return struct.unpack_from(fmt, self.buf, start)[0]

    def string(self, what: str, limit: int | None = None) -> bytes:
        n = self.unpack("<Q", f"length of {what}")
        if limit is not None and n > limit:
            raise _Bad(f"{what} claims {n:,} bytes (at most {limit:,} allowed)")
        start = self.take(n, what)
        return bytes(self.buf[start:start + n])

    def left(self) -> int:
        return self.size - self.pos


_NOTHING = object()  # "not kept", distinct from any value a file holds


def _value(cur: _Cursor, vtype: int, key: str, depth: int, kept: _Kept | None = None) -> object:
    """Walk one value; return it when it is kept (scalars and text; short arrays with `kept`)."""
    if vtype in _SCALAR:
        start = cur.take(_SCALAR[vtype], f"value of {key}")
        return struct.unpack_from(_FORMAT[vtype], cur.buf, start)[0]
    if vtype == _STRING:
        raw = cur.string(f"string value of {key}")
        if depth:  # vocabulary items may hold partial UTF-8 sequences on purpose (byte tokens)
            return raw.decode("utf-8", "replace") if kept is not None else _NOTHING
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Bad(f"the value of {key} is not valid UTF-8 text") from None
    if vtype == _ARRAY:
        if depth >= MAX_ARRAY_DEPTH:
            raise _Bad(f"{key} nests arrays more than {MAX_ARRAY_DEPTH} deep")
        item = cur.unpack("<I", f"array type of {key}")
        count = cur.unpack("<Q", f"array length of {key}")
        smallest = _SCALAR.get(item, 8 if item == _STRING else 12 if item == _ARRAY else None)
        if smallest is None:
            raise _Bad(f"{key} is an array of unknown value type {item}")
        if count > cur.left() // smallest:  # every item takes at least `smallest` bytes
            raise _Bad(f"{key} claims {count:,} items but only {cur.left():,} bytes are left")
        if kept is not None and depth == 0:
            kept.array_lengths[key] = count
        keep = kept is not None and depth == 0 and count <= SHORT_ARRAY and item != _ARRAY
        if item in _SCALAR and not keep:
            cur.take(count * smallest, f"array {key}")
        elif item == _STRING and not keep:
            _skip_strings(cur, count, key)
        else:
            items = [_value(cur, item, key, depth + 1, kept if keep else None) for _ in range(count)]
            return items if keep else _NOTHING
        return _NOTHING
    raise _Bad(f"{key} has unknown value type {vtype}")


@dataclass
class _Kept:
    fields: dict
    array_lengths: dict


_U64 = struct.Struct("<Q")


def _skip_strings(cur: _Cursor, count: int, key: str) -> None:
    """The items of a string array (a vocabulary: 10**5 of them), in one tight loop."""
    buf, pos, end, unpack = cur.buf, cur.pos, cur.size, _U64.unpack_from
    for _ in range(count):
        if end - pos < 8:
            raise _Bad(f"array {key} runs past the end of the file")
        n = unpack(buf, pos)[0]
        pos += 8
        if n > end - pos:
            raise _Bad(f"a string of {n:,} bytes in {key} runs past the end of the file")
        pos += n
    cur.pos = pos


def check_gguf_header(path: Path) -> HeaderSummary:
    """Raise InvalidInput naming `path` unless its header is consistent with the file's size."""
    return _read(Path(path), None)[0]


def read_gguf_header(path: Path) -> GGUFHeader:
    """The checked header's values and tensor infos (see the module's docstring), without the
    vocabulary; InvalidInput naming `path` for anything check_gguf_header refuses."""
    kept = _Kept({}, {})
    summary, tensors = _read(Path(path), kept)
    return GGUFHeader(summary, kept.fields, kept.array_lengths, tuple(tensors))


def _read(path: Path, kept: _Kept | None) -> tuple[HeaderSummary, list[TensorInfo]]:
    size = os.path.getsize(path)
    if size < 24:
        raise InvalidInput(f"{path}: truncated GGUF file ({size} bytes, shorter than its fixed header)")
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        try:
            return _walk(buf, size, kept)
        except _Bad as exc:
            raise InvalidInput(f"{path}: damaged GGUF header ({exc})") from None


def _walk(buf, size: int, kept: _Kept | None) -> tuple[HeaderSummary, list[TensorInfo]]:
    cur = _Cursor(buf, size)
    if bytes(buf[:4]) != MAGIC:
        raise _Bad("it does not start with 'GGUF'")
    cur.take(4, "magic")
    version = cur.unpack("<I", "version")
    if version not in (2, 3):
        raise _Bad(f"version {version} (Bitsmith reads versions 2 and 3)")
    n_tensors = cur.unpack("<Q", "tensor count")
    n_kv = cur.unpack("<Q", "key-value count")
    # A key-value takes at least 13 bytes (key length, type, one byte), a tensor info at least 24.
    if n_kv > cur.left() // 13:
        raise _Bad(f"it claims {n_kv:,} key-values in a {size:,}-byte file")
    if n_tensors > cur.left() // 24:
        raise _Bad(f"it claims {n_tensors:,} tensors in a {size:,}-byte file")
    alignment = DEFAULT_ALIGNMENT
    for _ in range(n_kv):
        raw_key = cur.string("a key", MAX_KEY_BYTES)
        key = raw_key.decode("utf-8", "replace")
        vtype = cur.unpack("<I", f"type of {key}")
        if key == "general.architecture" and vtype != _STRING:
            raise _Bad("general.architecture is not text")
        value = _value(cur, vtype, key, 0, kept)
        if kept is not None and value is not _NOTHING:
            kept.fields[key] = value
        if key == "general.alignment" and vtype in _SCALAR:
            # Any scalar type may hold it; a fraction or NaN is as wrong as zero.
            alignment = int(value) if not isinstance(value, float) or value.is_integer() else 0
            if alignment <= 0 or alignment & (alignment - 1) or alignment > 1 << 20:
                raise _Bad(f"general.alignment is {alignment}, not a power of two up to 1 MiB")
    blocks = _block_sizes()
    extents, infos = [], []
    for _ in range(n_tensors):
        name = cur.string("a tensor name", MAX_KEY_BYTES).decode("utf-8", "replace")
        n_dims = cur.unpack("<I", f"dimension count of {name}")
        if n_dims > MAX_DIMS:
            raise _Bad(f"tensor {name} has {n_dims} dimensions (at most {MAX_DIMS})")
        numel, shape = 1, []
        for _ in range(n_dims):
            dim = cur.unpack("<Q", f"a dimension of {name}")
            numel *= dim
            shape.append(dim)
        ttype = cur.unpack("<I", f"type of {name}")
        offset = cur.unpack("<Q", f"offset of {name}")
        if ttype not in blocks:
            raise _Bad(f"tensor {name} has unknown type {ttype}")
        block, type_size = blocks[ttype]
        if numel % block:
            raise _Bad(f"tensor {name} has {numel:,} values, not a multiple of its block of {block}")
        if offset % alignment:
            raise _Bad(f"tensor {name} starts at offset {offset:,}, not a multiple of {alignment}")
        extents.append((offset, numel // block * type_size, name))
        infos.append(TensorInfo(name, tuple(shape), ttype, numel, numel // block * type_size, offset))
    data_start = -(-cur.pos // alignment) * alignment
    room = size - data_start
    previous_end, previous = 0, None
    for offset, nbytes, name in sorted(extents):
        if offset + nbytes > room:
            raise _Bad(f"tensor {name} ends at byte {data_start + offset + nbytes:,} of a {size:,}-byte file")
        if offset < previous_end:
            raise _Bad(f"tensors {previous} and {name} overlap")
        previous_end, previous = offset + nbytes, name
    return HeaderSummary(version, n_tensors, n_kv, data_start), infos
