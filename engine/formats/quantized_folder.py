"""Writing a GPTQ or AWQ output folder block by block, as the block runner finishes each block.

The shard plan is made before any quantization (every packed tensor's size follows from the shapes),
so shards are written and dropped as soon as they are complete. Tensors outside the quantized
linears (embeddings, norms, the output layer) keep the source dtype; AWQ's folded norm weights are
taken from the block as the method left it. config.json gets `quantization_config`; tokenizer files,
the chat template and generation_config.json are copied.
"""

from __future__ import annotations

import json
import shutil
from math import prod
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..checkpoint import TORCH_DTYPES
from .hf_folder import HFFolder
from .quant_layouts import LAYOUTS
from .safetensors_shards import ShardWriter, plan_shards

DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
COPIED = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
          "tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json",
          "generation_config.json")


#: Module name of a linear -> its (bits, group size): WeightOnlySettings.layer_setting, where layers differ.
LayerSetting = Callable[[str], tuple[int, int]]


#: Chosen when a shard was held in memory until complete (2 GiB shards grew the peak with depth);
#: the writer now holds no tensor (safetensors_shards.py), so this only sets how many files a
#: folder has. Kept: a resumed job must cut the shards exactly as the run it continues did.
SHARD_BYTES = 512 * 1024**2


class QuantizedFolderWriter:
    def __init__(self, src: HFFolder, folder: Path, layout: str, group_size: int, bits: int,
                 layer_setting: LayerSetting | None = None):
        self.src, self.folder, self.layout = src, Path(folder), layout
        self.format = LAYOUTS[layout]
        self.bits, self.group_size = bits, group_size
        self.dtype = TORCH_DTYPES.get(src.source_dtype, torch.float16)
        block_of = src.structure.block_of
        self.rest = [n for n in src.shapes if block_of(n) is None]
        sizes = plan_sizes(src, layout, group_size, bits, layer_setting)
        self.order: dict[int, list[str]] = {}
        for name, _ in sizes:
            if (i := block_of(name)) is not None:
                self.order.setdefault(i, []).append(name)
        self.writer = ShardWriter(self.folder, plan_shards(sizes, SHARD_BYTES))
        for name in self.rest:  # embeddings, final norm, output layer: as they are in the source
            self.writer.add(name, self.src.tensor(name).to(self.dtype))

    def write_block(self, index: int, block: nn.Module, layers: dict, prefix: str) -> None:
        """`layers`: relative linear name -> LayerResult; everything else comes from the block."""
        self.add_block(index, self.block_tensors(block, layers, prefix))

    def block_tensors(self, block: nn.Module, layers: dict, prefix: str) -> dict[str, torch.Tensor]:
        """One block's output tensors on the CPU, under the source's own tensor names (per-expert
        weights as the source stores them): also what a resumable job keeps per block."""
        state = block.state_dict()
        tensors = {}
        name = self.src.checkpoint_name
        for rel, result in layers.items():
            bias = state.get(f"{rel}.bias")
            tensors.update(self.format.layer_tensors(name(f"{prefix}{rel}.weight")[:-len(".weight")],
                                                     result.quant, bias))
        for rel, tensor in state.items():
            if rel.rsplit(".", 1)[0] not in layers:
                tensors[name(f"{prefix}{rel}")] = tensor.detach().to(self.dtype)
        return {n: t.cpu() for n, t in tensors.items()}

    def add_block(self, index: int, tensors: dict[str, torch.Tensor]) -> None:
        """Block `index`'s tensors (from `block_tensors`, or a checkpoint's copy of them) into the shards."""
        tensors = dict(tensors)
        for name in self.order[index]:  # the planned order, so shards fill one after another
            self.writer.add(name, tensors.pop(name))
        if tensors:
            raise ValueError(f"block {index} produced tensors the plan does not hold: {sorted(tensors)[:3]}")

    def finish(self, quantization_config: dict) -> list[str]:
        files = self.writer.finish()
        config = dict(self.src.config)
        config["quantization_config"] = quantization_config
        config["dtype"] = str(self.dtype).replace("torch.", "")
        if "torch_dtype" in config:
            config["torch_dtype"] = config["dtype"]
        (self.folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        for name in COPIED:
            if (self.src.path / name).is_file():
                shutil.copy2(self.src.path / name, self.folder / name)
                files.append(name)
        return files + ["config.json"]


def plan_sizes(src: HFFolder, layout: str, group_size: int, bits: int,
               layer_setting: LayerSetting | None = None) -> list[tuple[str, int]]:
    """Every output tensor's bytes in writing order: the rest, then block 0, 1, 2, ...
    `layer_setting`: each linear's own (bits, group size) where layers differ."""
    fmt = LAYOUTS[layout]
    block_of = src.structure.block_of
    linears = {n[:-len(".weight")] for n in src.structure.quantizable}
    rest = [n for n in src.shapes if block_of(n) is None]
    sizes = [(n, prod(src.shapes[n]) * DTYPE_BYTES.get(src.dtypes[n], 2)) for n in rest]
    in_blocks = sorted((n for n in src.shapes if block_of(n) is not None), key=lambda n: (block_of(n), n))
    for name in in_blocks:
        shape = src.shapes[name]
        base = name.rsplit(".", 1)[0]
        if base in linears:
            if name.endswith(".weight"):
                out, inp = shape
                if layer_setting is not None:
                    bits, group_size = layer_setting(src.module_name(name)[:-len(".weight")])
                groups = 1 if group_size == -1 else inp // group_size
                has_bias = f"{base}.bias" in src.shapes
                sizes += fmt.layer_sizes(base, out, inp, groups, bits, has_bias)
            continue  # a quantized layer's bias is planned with it
        sizes.append((name, prod(shape) * DTYPE_BYTES.get(src.dtypes[name], 2)))
    return sizes


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())
