"""Loading a GPTQ or AWQ folder into a transformers model with Bitsmith's QuantLinear layers, without
AutoGPTQ, AutoAWQ, GPTQModel or optimum.

The model is built from config.json on the meta device; every nn.Linear whose `<name>.qweight` the
checkpoint holds becomes a QuantLinear; the state dict is loaded with assign=True (no copy, no
float weights ever materialized); embeddings are tied when the config says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from ..errors import InvalidInput, UnsupportedModel
from .quant_linear import QuantLinear

LAYOUTS = {"gptq": "gptq", "awq": "awq"}


def read_quantization_config(path: Path) -> dict:
    try:
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: cannot read config.json ({exc})") from None
    qcfg = config.get("quantization_config") or {}
    method = qcfg.get("quant_method")
    if method not in LAYOUTS:
        raise UnsupportedModel(f"{path}: quant_method {method!r} is not GPTQ or AWQ")
    if method == "gptq" and qcfg.get("checkpoint_format", qcfg.get("format", "gptq")) != "gptq":
        raise UnsupportedModel(f"{path}: GPTQ checkpoint format {qcfg.get('checkpoint_format')!r} "
                               "is not supported (Bitsmith reads the v1 'gptq' format)")
    if method == "awq" and str(qcfg.get("version", "gemm")).lower() != "gemm":
        raise UnsupportedModel(f"{path}: AWQ version {qcfg.get('version')!r} is not supported (Bitsmith reads 'gemm')")
    return qcfg


def _tensor_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()})
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise InvalidInput(f"{folder}: no .safetensors weights")
    return files


def _replace_linears(model: nn.Module, names: list[str], qcfg: dict, kernel: str | None) -> None:
    layout = LAYOUTS[qcfg["quant_method"]]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        old = getattr(parent, child)
        if not isinstance(old, nn.Linear):
            raise InvalidInput(f"{name}: the checkpoint quantizes it, but the model has a {type(old).__name__} there")
        with torch.device("meta"):
            new = QuantLinear(old.in_features, old.out_features, old.bias is not None, layout,
                              int(qcfg["bits"]), int(qcfg["group_size"]), kernel)
        setattr(parent, child, new)


def _rebuild_meta_buffers(model: nn.Module) -> None:
    """Non-persistent buffers (rotary frequencies) are not in checkpoints: rebuild their modules."""
    for name, module in list(model.named_modules()):
        if any(b.is_meta for b in module.buffers(recurse=False)):
            if not type(module).__name__.endswith("RotaryEmbedding"):
                raise InvalidInput(f"{name}: buffers missing from the checkpoint")
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, type(module)(config=model.config))


def load_quantized_model(path: Path | str, device: str = "cpu", dtype: torch.dtype | None = None,
                         kernel: str | None = None):
    """(model, tokenizer) for a GPTQ/AWQ folder. dtype: the compute dtype of everything not
    quantized and of the activations (float32 on the CPU, float16 on CUDA by default)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    path = Path(path)
    qcfg = read_quantization_config(path)
    dtype = dtype or (torch.float32 if device == "cpu" else torch.float16)
    config = AutoConfig.from_pretrained(str(path))
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # built by hand here; keep transformers' quantizers out of it
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    config.quantization_config = qcfg
    files = _tensor_files(path)
    state = {}
    for file in files:
        with safe_open(file, framework="pt") as f:
            for name in f.keys():
                t = f.get_tensor(name)
                state[name] = t.to(dtype) if t.is_floating_point() and not name.endswith((".scales", ".bias")) else t
    quantized = sorted(n[:-len(".qweight")] for n in state if n.endswith(".qweight"))
    _replace_linears(model, quantized, qcfg, kernel)
    result = model.load_state_dict(state, assign=True, strict=False)
    if result.unexpected_keys:
        raise InvalidInput(f"{path}: tensors the model has no place for: {result.unexpected_keys[:3]}")
    if getattr(config, "tie_word_embeddings", False):
        model.lm_head.weight = model.get_input_embeddings().weight
    missing = [k for k in result.missing_keys if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing:
        raise InvalidInput(f"{path}: tensors missing from the checkpoint: {missing[:3]}")
    _rebuild_meta_buffers(model)
    if (path / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(str(path))
    model = model.to(device).eval()
    return model, AutoTokenizer.from_pretrained(str(path))


def kernel_summary(model: nn.Module) -> dict[str, int]:
    """How many QuantLinear layers run on each kernel (after a first forward)."""
    counts: dict[str, int] = {}
    for m in model.modules():
        if isinstance(m, QuantLinear):
            counts[m.kernel_name or "not chosen yet"] = counts.get(m.kernel_name or "not chosen yet", 0) + 1
    return counts
