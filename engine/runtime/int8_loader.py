"""Opening a Bitsmith INT8 folder for inference: the checkpoint reader's meta-device skeleton
(engine.checkpoint, experts split per expert), its quantized Linears swapped for Int8Linear, the safetensors loaded with `assign=True` (each tensor
read once, cast once, never copied into a second model), embeddings tied as the config says."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bitsmith.kernels.int8_ops import select_int8_linear

from ..architectures import family_for_model_type
from ..checkpoint import compute_dtype, fill, float_cast, load_config, read_config_json, read_state, skeleton, tensor_files
from ..errors import InvalidInput
from ..formats.bitsmith_int8 import SCALE_SUFFIX, check_quantization_config
from .int8_linear import Int8Linear


def load_int8_model(path: Path | str, device: str = "cpu", *, dtype: torch.dtype | None = None,
                    kernel: str | None = None):
    """(model in eval mode on `device`, tokenizer). `kernel`: None/"fast" picks the best int8 kernel
    that runs here, "reference" the dequantize-then-matmul ground truth, or a kernel's name."""
    from transformers import AutoTokenizer, GenerationConfig

    path = Path(path)
    config_file = path / "config.json"
    raw = read_config_json(path)
    check_quantization_config(raw, config_file)
    dtype = dtype or compute_dtype(device)
    choice = select_int8_linear(device, dtype, prefer=kernel)

    config = load_config(path)  # without quantization_config: transformers knows no "bitsmith-int8"
    family = family_for_model_type(str(config.model_type), where=str(config_file))
    model = skeleton(config, dtype)
    files = tensor_files(path)
    suffix = ".weight" + SCALE_SUFFIX
    for name in sorted(n[: -len(suffix)] for n in files if n.endswith(suffix)):
        _swap(model, family.module_name(name + ".weight")[: -len(".weight")], dtype, choice, path)
    state = read_state(files, family.module_name, float_cast(dtype, keep=(SCALE_SUFFIX,)), device=device)
    model = fill(model, state, path, device)  # the buffers built on the CPU (rotary tables) follow
    if (path / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(str(path))
    model.int8_kernel = choice  # which matmul runs, and why the others did not (for stats)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model.eval(), tokenizer


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
