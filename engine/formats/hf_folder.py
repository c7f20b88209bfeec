"""A Hugging Face model folder opened for reading: config.json as a dict, and its safetensors
tensors by name, read one at a time (memory-mapped; nothing is loaded until asked for).

Used by the GGUF exporter and anything else that streams a full-precision model from disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from math import prod
from pathlib import Path

import torch
from safetensors import safe_open

from ..architectures import Family, family_for_model_type
from ..errors import InvalidInput, UnsupportedModel

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class HFFolder:
    path: Path
    config: dict  # config.json as written (nested text_config is not supported)
    family: Family
    files: dict[str, Path]  # tensor name -> the .safetensors file holding it
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]  # tensor name -> safetensors dtype name ("F16", "BF16", "F32")

    @property
    def n_params(self) -> int:
        return sum(prod(s) for s in self.shapes.values())

    def tensor(self, name: str) -> torch.Tensor:
        """One tensor, read from disk now (a copy owned by the caller)."""
        with safe_open(self.files[name], framework="pt") as f:
            return f.get_tensor(name)

    @property
    def source_dtype(self) -> str:
        """The dtype most of the weights are stored in, e.g. "F16"."""
        counts: dict[str, int] = {}
        for name, dtype in self.dtypes.items():
            counts[dtype] = counts.get(dtype, 0) + prod(self.shapes[name])
        return max(counts, key=counts.get) if counts else "F32"


def open_hf_folder(path: Path | str) -> HFFolder:
    """Check that `path` is a Hugging Face causal LM folder with safetensors weights and index it.

    Every refusal is one line naming the path; a GGUF file gets a pointer to the importer.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file or folder")
    if path.is_file():
        with open(path, "rb") as f:
            is_gguf = f.read(4) == GGUF_MAGIC
        if is_gguf:
            raise InvalidInput(
                f"{path}: is a GGUF file, but GGUF export needs a Hugging Face model folder",
                suggestion=f"convert it to a Hugging Face folder first: bitsmith import-gguf {path} OUTDIR",
            )
        raise InvalidInput(f"{path}: not a Hugging Face model folder (it is a file)")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise InvalidInput(f"{path}: not a Hugging Face model folder (no config.json)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{config_file}: unreadable ({exc})") from None
    family = family_for_model_type(str(config.get("model_type")), where=str(config_file))
    files = _tensor_files(path)
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    for file in sorted(set(files.values())):
        with safe_open(file, framework="pt") as f:
            for name in f.keys():
                sl = f.get_slice(name)
                shapes[name] = tuple(sl.get_shape())
                dtypes[name] = sl.get_dtype()
    missing = set(files) - set(shapes)
    if missing:
        raise InvalidInput(f"{path}: the safetensors index names {len(missing)} tensors that no shard holds")
    return HFFolder(path, config, family, files, shapes, dtypes)


def _tensor_files(folder: Path) -> dict[str, Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidInput(f"{index}: unreadable safetensors index ({exc})") from None
        return {name: folder / file for name, file in weight_map.items()}
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
            raise UnsupportedModel(
                f"{folder}: holds only pickle weights (.bin), which Bitsmith does not load",
                suggestion="use a safetensors copy of the model",
            )
        raise InvalidInput(f"{folder}: no .safetensors weights")
    files: dict[str, Path] = {}
    for shard in shards:
        with safe_open(shard, framework="pt") as f:
            for name in f.keys():
                files[name] = shard
    return files
