"""Import a GGUF as a Hugging Face folder: config.json, safetensors, tokenizer, generation config.

The result loads with `AutoModelForCausalLM.from_pretrained(folder)` and
`AutoTokenizer.from_pretrained(folder)` with no GGUF code involved. Tensors are dequantized and
written one at a time (none held once written), into a staged folder that only takes the
target's name once complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from math import prod
from pathlib import Path

import gguf

from ...architectures import Family, family_for_gguf_arch, family_for_model_type
from ...cancel import NEVER, CancelToken
from ...config import ImportConfig
from ...errors import UnsupportedModel
from ...events import Progress, Done, EtaClock, Job, Log
from ...fsutil import check_disk, staged_output
from ...reportcard import tool_versions, write_report_card
from .arch import traits
from .experts import expert_groups, per_expert_shapes
from .hparams import read_hparams
from .source import architecture, field_value, open_gguf
from .tensors import OUTPUT_WEIGHT, dequantize, gguf_to_hf_names, rope_heads, unpermute_rope
from .tokenizer import build_tokenizer, save_tokenizer, stop_token_ids
from ..safetensors_shards import ShardWriter, plan_shards

BYTES_PER_VALUE = {"float16": 2, "bfloat16": 2, "float32": 4}
#: Room for the tokenizer and the small JSON files, on top of the weights.
METADATA_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class ImportResult:
    out_dir: Path
    architecture: str  # the family's name, e.g. "Llama"
    n_params: int
    dtype: str
    n_tensors: int
    seconds: float


@dataclass(frozen=True)
class _Plan:
    """Everything decided before writing: the config and where each GGUF tensor goes."""

    family: Family
    config: object  # a transformers PretrainedConfig
    names: dict[str, str | tuple[str, ...]]  # GGUF name -> HF name (per-expert names for stacked experts)
    shapes: dict[str, tuple[int, ...]]  # HF name -> shape
    n_head: int
    n_head_kv: int

    def hf_names(self, gguf_name: str) -> tuple[str, ...]:
        target = self.names[gguf_name]
        return target if isinstance(target, tuple) else (target,)

    @property
    def n_params(self) -> int:
        return sum(prod(self.shapes[hf]) for g in self.names for hf in self.hf_names(g))


def import_gguf(cfg: ImportConfig, cancel: CancelToken = NEVER) -> Job:
    """Yields Log and Progress events, then Done(ImportResult)."""
    started = time.monotonic()
    yield Progress(0, 1, "import", f"reading {cfg.source.name}")
    reader = open_gguf(cfg.source)
    arch = architecture(reader, cfg.source)
    family = family_for_gguf_arch(arch, where=str(cfg.source))
    moe_type = traits(arch).moe_model_type
    if moe_type and field_value(reader, gguf.Keys.LLM.EXPERT_COUNT.format(arch=arch)):
        family = family_for_model_type(moe_type, where=str(cfg.source))  # Mixtral is "llama" with experts
    yield Log(f"{cfg.source.name}: {family.name} model, {len(reader.tensors)} tensors")
    if not family.listed:
        yield Log(f"{arch} is outside Bitsmith's family table: its config is built from llama.cpp's common keys, "
                  f"and what a GGUF does not carry (activation, biases) is transformers' default for {arch}",
                  "warning")
    plan = _make_plan(reader, family, cfg)
    check_disk(cfg.out_dir, plan.n_params * BYTES_PER_VALUE[cfg.dtype] + METADATA_BYTES)
    with staged_output(cfg.out_dir, is_dir=True, overwrite=cfg.overwrite) as staging:
        yield Log("writing the tokenizer and configuration")
        _write_metadata(reader, plan, cfg, staging)
        cancel.check()
        yield from _write_tensors(reader, plan, cfg, staging, cancel)
        seconds = time.monotonic() - started
        # Inside the staged folder, so the card is never missing from a finished import: it gives
        # the import its lineage (the browser and the Compare view follow `source`).
        write_report_card(staging, {
            "kind": "import", "source": str(cfg.source), "method": "import", "dtype": cfg.dtype,
            "n_params": plan.n_params, "seconds": round(seconds, 2), "tool_versions": tool_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
    yield Log(f"imported {plan.n_params / 1e6:.1f}M parameters as {cfg.dtype} in {seconds:.1f} s")
    yield Done(ImportResult(cfg.out_dir, family.name, plan.n_params, cfg.dtype, len(plan.names), seconds))


def _make_plan(reader: gguf.GGUFReader, family: Family, cfg: ImportConfig) -> _Plan:
    arch = family.gguf_arch
    tokens = reader.get_field(gguf.Keys.Tokenizer.LIST)
    n_vocab = len(tokens.data) if tokens is not None else 0
    hparams = read_hparams(reader, arch, cfg.source, n_vocab)
    gguf_names = [t.name for t in reader.tensors]
    config = _hf_config(reader, family, hparams.config, cfg.dtype, tied=OUTPUT_WEIGHT not in gguf_names)
    shapes = per_expert_shapes(_expected_shapes(family, config))
    experts = expert_groups(gguf_names, list(shapes))
    grouped = {hf for members in experts.values() for hf in members}
    names: dict[str, str | tuple[str, ...]] = dict(gguf_to_hf_names(
        [g for g in gguf_names if g not in experts], [hf for hf in shapes if hf not in grouped],
        arch, config.num_hidden_layers, cfg.source))
    names.update(experts)
    return _Plan(family, config, names, shapes, hparams.n_head, hparams.n_head_kv)


def _hf_config(reader, family: Family, hparams: dict, dtype: str, tied: bool):
    from transformers import AutoConfig

    token_ids = {
        "bos_token_id": field_value(reader, gguf.Keys.Tokenizer.BOS_ID),
        "eos_token_id": field_value(reader, gguf.Keys.Tokenizer.EOS_ID),
        "pad_token_id": field_value(reader, gguf.Keys.Tokenizer.PAD_ID),
    }
    config = AutoConfig.for_model(
        family.hf_model_types[0], architectures=[family.hf_class], tie_word_embeddings=tied,
        dtype=dtype, **hparams, **token_ids,
    )
    # LayerNorm models name their epsilon three ways; the one this config class has takes it.
    eps = field_value(reader, gguf.Keys.Attention.LAYERNORM_EPS.format(arch=family.gguf_arch))
    for name in ("layer_norm_eps", "layer_norm_epsilon", "norm_epsilon") if eps is not None else ():
        if hasattr(config, name):
            setattr(config, name, float(eps))
    return config


def _expected_shapes(family: Family, config) -> dict[str, tuple[int, ...]]:
    """The parameters transformers' class has for this config, built on the meta device (no memory)."""
    import torch
    import transformers

    with torch.device("meta"):
        model = getattr(transformers, family.hf_class)(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def _write_metadata(reader, plan: _Plan, cfg: ImportConfig, folder: Path) -> None:
    from transformers import GenerationConfig

    tokenizer = build_tokenizer(cfg.source)
    fallback = traits(plan.family.gguf_arch).chat_template
    if not tokenizer.chat_template and fallback and all(m in tokenizer.get_vocab() for m in fallback.markers):
        tokenizer.chat_template = fallback.template  # the file has none; the family's turn format
    save_tokenizer(tokenizer, folder, plan.config.max_position_embeddings)
    plan.config.save_pretrained(folder)
    stops = stop_token_ids(reader, tokenizer)
    generation = GenerationConfig(
        bos_token_id=plan.config.bos_token_id,
        eos_token_id=stops[0] if len(stops) == 1 else (stops or None),
        pad_token_id=plan.config.pad_token_id,
    )
    generation.save_pretrained(folder)


def _write_tensors(reader, plan: _Plan, cfg: ImportConfig, folder: Path, cancel: CancelToken) -> Job:
    import torch

    dtype = getattr(torch, cfg.dtype)
    tensors = [t for t in reader.tensors if t.name in plan.names]
    width = BYTES_PER_VALUE[cfg.dtype]
    # Saved under the checkpoint's names (Mixtral keeps block_sparse_moe.experts.E.w1 on disk).
    disk = plan.family.checkpoint_name
    sizes = [(disk(hf), prod(plan.shapes[hf]) * width) for t in tensors for hf in plan.hf_names(t.name)]
    writer = ShardWriter(folder, plan_shards(sizes))
    clock = EtaClock(len(tensors), "import")
    for step, tensor in enumerate(tensors, 1):
        cancel.check()
        values = _hf_values(tensor, plan, cfg.source)
        members = plan.hf_names(tensor.name)
        parts = [values] if len(members) == 1 else list(values)  # stacked experts: one matrix each
        for hf_name, part in zip(members, parts):
            writer.add(disk(hf_name), torch.from_numpy(part).to(dtype))
        yield clock.progress(step, tensor.name)
    writer.finish()


def _hf_values(tensor, plan: _Plan, path: Path):
    """One tensor dequantized, un-permuted where llama.cpp permuted it, and shape-checked."""
    values = dequantize(tensor, path)
    heads = rope_heads(tensor.name, plan.n_head, plan.n_head_kv) if plan.family.rope_permute else None
    if heads:
        values = unpermute_rope(values, heads)
    shift = traits(plan.family.gguf_arch).norm_shift
    if shift and tensor.name.endswith("norm.weight"):
        values = values - shift  # the export wrote Gemma's (1 + w) norms as w + 1
    members = plan.hf_names(tensor.name)
    expected = plan.shapes[members[0]] if len(members) == 1 else (len(members), *plan.shapes[members[0]])
    if tuple(values.shape) != expected:
        raise UnsupportedModel(
            f"{path}: tensor {tensor.name} has shape {tuple(values.shape)}, the header implies {expected}"
        )
    return values
