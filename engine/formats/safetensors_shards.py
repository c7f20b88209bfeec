"""Writing a model's tensors as safetensors shards, one shard in memory at a time.

Shards are planned up front from the tensors' sizes, so their final names
(`model-00001-of-00003.safetensors`) are known before the first byte is written, and each shard is
written and dropped as soon as its last tensor arrives. A model that fits in one shard is written
as `model.safetensors` with no index, as transformers does.
"""

from __future__ import annotations

import json
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
        self._pending: dict = {}
        self._total_bytes = 0

    def add(self, name: str, tensor) -> None:
        file, names = self.plan[self._shard]
        if name not in names:
            raise ValueError(f"tensor {name} does not belong in {file}")
        self._pending[name] = tensor.contiguous()
        self._total_bytes += tensor.numel() * tensor.element_size()
        if len(self._pending) == len(names):
            self._flush(file)

    def _flush(self, file: str) -> None:
        from safetensors.torch import save_file

        save_file(self._pending, str(self.folder / file), metadata={"format": "pt"})
        self._pending = {}
        self._shard += 1

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
