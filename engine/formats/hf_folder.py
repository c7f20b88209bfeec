"""A Hugging Face model folder opened for reading: config.json as a dict, and its safetensors
tensors by name, read one at a time (memory-mapped; nothing is loaded until asked for), plus what
the model's structure says about them (the meta-device skeleton, decoder-block prefix, the weights
quantizers convert), derived once per folder.

Tensor names here are the checkpoint's; `module_name`/`checkpoint_name` translate to and from the
names transformers' modules use (they differ only for families in architectures' rename table).
Used by the GGUF exporter, the quantizers and the block runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from math import prod
from pathlib import Path

import torch
from safetensors import safe_open

from ..architectures import Family, family_for_config
from ..checkpoint import read_config_json, skeleton, tensor_files
from ..errors import InvalidInput, UnsupportedModel
from .gguf.header import MAGIC as GGUF_MAGIC



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

    def module_name(self, name: str) -> str:
        return self.family.module_name(name)

    def checkpoint_name(self, name: str) -> str:
        return self.family.checkpoint_name(name)

    @cached_property
    def structure(self) -> "ModelStructure":
        return ModelStructure.of(self)


@dataclass(frozen=True)
class ModelStructure:
    """What the skeleton says about a folder's tensors (checkpoint names throughout)."""

    block_prefix: str  # e.g. "model.layers."
    n_blocks: int
    quantizable: tuple[str, ...]  # "<linear>.weight" of every block linear quantizers convert
    kept: tuple[str, ...]  # modules left in full precision (embeddings, output layer, routers)

    @classmethod
    def of(cls, src: "HFFolder") -> "ModelStructure":
        from ..model_structure import decoder_blocks, kept_modules, quantizable_linears

        fused = next((n for n, shape in src.shapes.items() if ".experts." in n and len(shape) == 3), None)
        if fused is not None:  # transformers saves experts one by one; a 3-D tensor on disk is another tool's
            raise UnsupportedModel(f"{src.path}: experts stored fused on disk ({fused}); Bitsmith's quantizers "
                                   "read per-expert weights, as transformers saves them",
                                   suggestion="re-save the model with transformers' save_pretrained")
        model = skeleton(src.path)
        prefix, blocks = decoder_blocks(model)
        weights = tuple(n for n in (src.checkpoint_name(f"{m}.weight") for m in quantizable_linears(model))
                        if len(src.shapes.get(n, ())) == 2)
        return cls(prefix, len(blocks), weights, tuple(kept_modules(model)))

    def block_of(self, name: str) -> int | None:
        """The decoder block a checkpoint tensor belongs to, or None outside the blocks."""
        if not name.startswith(self.block_prefix):
            return None
        head = name[len(self.block_prefix):].split(".", 1)[0]
        return int(head) if head.isdigit() else None


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
    config = read_config_json(path)
    family = family_for_config(config, where=str(config_file))
    files = tensor_files(path)
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
