"""Writing a model's tensors as safetensors shards, one tensor in memory at a time.

Shards are planned up front from the tensors' sizes, so their final names
(`model-00001-of-00003.safetensors`) are known before the first byte is written. A model that fits
in one shard is written as `model.safetensors` with no index, as transformers does.

Each tensor's bytes go to a side file as it arrives; when a shard's last tensor is in, the shard is
written (header, then the tensors from the side file) and the side file removed. Holding a whole
shard in memory instead made a job's peak grow with the model up to the shard size (INT8 of the 1B
shape: 1.01 GiB at 4 layers, 2.44 GiB at 32, bench/SCALE.md). The file is the format's own layout
(github.com/huggingface/safetensors: an 8-byte little-endian header length, a JSON header padded
with spaces to a multiple of 8, then the tensors back to back); tensors are ordered by decreasing
element size so that each starts aligned to its own, as safetensors' writer orders them.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

#: Largest shard; bounds the memory held before a write.
MAX_SHARD_BYTES = 2 * 1024**3
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def plan_shards(
    sizes: list[tuple[str, int]], max_bytes: int = MAX_SHARD_BYTES
) -> list[tuple[str, list[str]]]:
    """(file, names) shards of at most `max_bytes`, in the given order (a larger tensor goes alone)."""
    groups: list[list[str]] = []
    filled = max_bytes
    for name, size in sizes:
        if filled + size > max_bytes:
            groups.append([])
            filled = 0
        groups[-1].append(name)
        filled += size
    if len(groups) <= 1:
        return [(SINGLE_FILE, groups[0] if groups else [])]
    n = len(groups)
    return [(f"model-{i:05d}-of-{n:05d}.safetensors", names) for i, names in enumerate(groups, 1)]


class ShardWriter:
    """Collects torch tensors in planned order; writes each shard when it is complete."""

    def __init__(self, folder: Path, plan: list[tuple[str, list[str]]]):
        self.folder = Path(folder)
        self.plan = plan
        self._shard = 0
        self._pending: dict[str, tuple[str, list[int], int, int]] = {}  # name -> dtype, shape, bytes in side file
        self._total_bytes = 0

    def add(self, name: str, tensor) -> None:
        file, names = self.plan[self._shard]
        if name not in names:
            raise ValueError(f"tensor {name} does not belong in {file}")
        t = tensor.detach().to("cpu").contiguous()
        raw = t.reshape(-1).view(_torch().uint8).numpy()
        side = self.folder / (file + ".part")
        # Opened per tensor, not held: a failed job's staging folder can then be removed at once
        # (Windows refuses to delete an open file).
        with open(side, "ab" if self._pending else "wb") as f:
            start = f.tell()
            f.write(raw.data)
        self._pending[name] = (_dtype_name(t.dtype), list(t.shape), start, raw.nbytes)
        self._total_bytes += raw.nbytes
        if len(self._pending) == len(names):
            self._flush(file)

    def _flush(self, file: str) -> None:
        side_path = self.folder / (file + ".part")
        order = sorted(self._pending, key=lambda n: (-_ITEMSIZE[self._pending[n][0]], n))
        header: dict = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name in order:
            dtype, shape, _start, size = self._pending[name]
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
            offset += size
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        with open(side_path, "rb") as src, open(self.folder / file, "wb") as out:
            out.write(struct.pack("<Q", len(text)))
            out.write(text)
            for name in order:
                _dtype, _shape, start, size = self._pending[name]
                src.seek(start)
                _copy_bytes(src, out, size)
        side_path.unlink()
        self._pending = {}
        self._shard += 1

    def close(self) -> None:
        """Drop an unfinished shard's side file (a cancelled or failed job)."""
        if self._pending and self._shard < len(self.plan):
            (self.folder / (self.plan[self._shard][0] + ".part")).unlink(missing_ok=True)
            self._pending = {}

    def finish(self) -> list[str]:
        """Write the index when there are several shards; returns the files written."""
        if self._shard != len(self.plan):
            raise ValueError(f"{len(self.plan) - self._shard} shard(s) still incomplete")
        files = [file for file, _ in self.plan]
        if len(files) > 1:
            weight_map = {name: file for file, names in self.plan for name in names}
            index = {"metadata": {"total_size": self._total_bytes}, "weight_map": weight_map}
            (self.folder / INDEX_FILE).write_text(json.dumps(index, indent=2))
            files.append(INDEX_FILE)
        return files


#: safetensors' dtype names and their element sizes.
_ITEMSIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
             "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def _torch():
    import torch

    return torch


def _dtype_name(dtype) -> str:
    torch = _torch()
    names = {torch.float64: "F64", torch.int64: "I64", torch.float32: "F32", torch.int32: "I32",
             torch.float16: "F16", torch.bfloat16: "BF16", torch.int16: "I16", torch.int8: "I8",
             torch.uint8: "U8", torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2"}
    if dtype not in names:
        raise ValueError(f"cannot store {dtype} in safetensors")
    return names[dtype]


def _copy_bytes(src, out, size: int, chunk: int = 16 * 1024**2) -> None:
    while size > 0:
        data = src.read(min(chunk, size))
        if not data:
            raise OSError("side file ended early")
        out.write(data)
        size -= len(data)
