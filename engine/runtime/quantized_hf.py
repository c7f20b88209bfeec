"""Loading a GPTQ or AWQ folder into a transformers model with Bitsmith's QuantLinear layers, without
AutoGPTQ, AutoAWQ, GPTQModel or optimum.

The model is the checkpoint reader's meta-device skeleton (engine.checkpoint, experts split per
expert); every nn.Linear whose `<name>.qweight` the checkpoint holds becomes a QuantLinear, with
its own bits and group size where a GPTQ config's "dynamic" map gives them; the
state dict is loaded with assign=True (no copy, no float weights ever materialized); embeddings are
tied when the config says so.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..architectures import family_for_model_type
from ..checkpoint import compute_dtype, fill, float_cast, load_config, read_config_json, read_state, skeleton, tensor_files
from ..errors import InvalidInput, UnsupportedModel
from ..formats.gptq_layout import module_setting
from .quant_linear import QuantLinear

LAYOUTS = {"gptq": "gptq", "awq": "awq"}


def read_quantization_config(path: Path) -> dict:
    config = read_config_json(path)
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


def _replace_linears(model: nn.Module, names: dict[str, str], qcfg: dict, kernel: str | None) -> None:
    """`names`: module name -> its checkpoint name (what a GPTQ "dynamic" map's patterns match)."""
    layout = LAYOUTS[qcfg["quant_method"]]
    for name, stored in names.items():
        setting = module_setting(qcfg, stored) if layout == "gptq" else (int(qcfg["bits"]), int(qcfg["group_size"]))
        if setting is None:
            raise InvalidInput(f"{name}: the checkpoint quantizes it, but the config's \"dynamic\" map leaves it unquantized")
        bits, group = setting
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        old = getattr(parent, child)
        if not isinstance(old, nn.Linear):
            raise InvalidInput(f"{name}: the checkpoint quantizes it, but the model has a {type(old).__name__} there")
        with torch.device("meta"):
            new = QuantLinear(old.in_features, old.out_features, old.bias is not None, layout, bits, group, kernel)
        setattr(parent, child, new)


def load_quantized_model(path: Path | str, device: str = "cpu", dtype: torch.dtype | None = None,
                         kernel: str | None = None):
    """(model, tokenizer) for a GPTQ/AWQ folder. dtype: the compute dtype of everything not
    quantized and of the activations (engine.checkpoint.compute_dtype by default)."""
    from transformers import AutoTokenizer, GenerationConfig

    path = Path(path)
    qcfg = read_quantization_config(path)
    dtype = dtype or compute_dtype(device)
    config = load_config(path)  # without quantization_config: the swap below is ours to do
    family = family_for_model_type(str(config.model_type), where=str(path / "config.json"))
    model = skeleton(config, dtype)
    files = tensor_files(path)
    quantized = {family.module_name(n[:-len(".qweight")] + ".weight")[:-len(".weight")]: n[:-len(".qweight")]
                 for n in sorted(files) if n.endswith(".qweight")}
    _replace_linears(model, quantized, qcfg, kernel)
    state = read_state(files, family.module_name, float_cast(dtype, keep=(".scales", ".bias")))
    model = fill(model, state, path, device)
    model.config.quantization_config = qcfg
    if (path / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(str(path))
    return model.eval(), AutoTokenizer.from_pretrained(str(path))


def kernel_summary(model: nn.Module) -> dict[str, int]:
    """How many QuantLinear layers run on each kernel (after a first forward)."""
    counts: dict[str, int] = {}
    for m in model.modules():
        if isinstance(m, QuantLinear):
            counts[m.kernel_name or "not chosen yet"] = counts.get(m.kernel_name or "not chosen yet", 0) + 1
    return counts
