"""Opening a Bitsmith INT8 folder for inference: a meta-device skeleton from config.json, its
quantized Linears swapped for Int8Linear, the safetensors loaded with `assign=True` (each tensor
read once, cast once, never copied into a second model), embeddings tied as the config says."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from bitsmith.kernels.int8_ops import select_int8_linear

from ..errors import InvalidInput
from ..formats.bitsmith_int8 import SCALE_SUFFIX, check_quantization_config
from .int8_linear import Int8Linear
from .skeleton import empty_causal_lm


def default_dtype(device: str) -> torch.dtype:
    # Half precision matmuls are slow on most CPUs; on a GPU they are the point.
    return torch.float32 if device == "cpu" else torch.float16


def load_int8_model(path: Path | str, device: str = "cpu", *, dtype: torch.dtype | None = None,
                    kernel: str | None = None):
    """(model in eval mode on `device`, tokenizer). `kernel`: None/"fast" picks the best int8 kernel
    that runs here, "reference" the dequantize-then-matmul ground truth, or a kernel's name."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise InvalidInput(f"{path}: not a model folder (no config.json)")
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{config_file}: unreadable ({exc})") from None
    check_quantization_config(raw, config_file)
    dtype = dtype or default_dtype(device)
    choice = select_int8_linear(device, dtype, prefer=kernel)

    config = AutoConfig.from_pretrained(str(path))
    # transformers knows no "bitsmith-int8" quantizer; the swap below is ours to do.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = empty_causal_lm(config, dtype)
    files = _weight_files(path)
    quantized = _quantized_modules(files)
    for name in quantized:
        _swap(model, name, dtype, choice, path)

    state = _read_state(files, device, dtype)
    result = model.load_state_dict(state, strict=False, assign=True)
    if result.unexpected_keys:
        raise InvalidInput(f"{path}: {len(result.unexpected_keys)} tensors do not belong to the model "
                           f"(first: {result.unexpected_keys[0]})")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    still_meta = [n for n, p in [*model.named_parameters(), *model.named_buffers()] if p.device.type == "meta"]
    if still_meta:
        raise InvalidInput(f"{path}: {len(still_meta)} weights are missing from the safetensors (first: {still_meta[0]})")
    model.to(device)  # the buffers built on the CPU (rotary tables) follow the weights
    if (path / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(str(path))
    model.int8_kernel = choice  # which matmul runs, and why the others did not (for stats)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model.eval(), tokenizer


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidInput(f"{index}: unreadable safetensors index ({exc})") from None
        files = [folder / n for n in sorted(names)]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise InvalidInput(f"{missing[0]}: shard listed in {index.name} is missing")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise InvalidInput(f"{folder}: no .safetensors weights")
    return files


def _quantized_modules(files: list[Path]) -> list[str]:
    from safetensors import safe_open

    suffix = ".weight" + SCALE_SUFFIX
    names = []
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            names += [k[: -len(suffix)] for k in f.keys() if k.endswith(suffix)]
    return names


def _swap(model: nn.Module, name: str, dtype: torch.dtype, choice, path: Path) -> None:
    parent_name, _, attr = name.rpartition(".")
    try:
        old = model.get_submodule(name)
    except AttributeError:
        raise InvalidInput(f"{path}: quantized module {name} does not exist in this architecture") from None
    if not isinstance(old, nn.Linear):
        raise InvalidInput(f"{path}: {name} is a {type(old).__name__}, not a Linear; it cannot hold int8 weights")
    new = Int8Linear.like(old, dtype)
    new.use_kernel(choice.impl, choice.name)
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)


def _read_state(files: list[Path], device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Every tensor on `device`: int8 weights and their float32 scales as stored, the rest in `dtype`."""
    from safetensors import safe_open

    state = {}
    for file in files:
        with safe_open(str(file), framework="pt", device=device) as f:
            for name in f.keys():
                t = f.get_tensor(name)
                if t.is_floating_point() and not name.endswith(SCALE_SUFFIX):
                    t = t.to(dtype)
                state[name] = t
    return state
