"""A GGUF's hyperparameters, read from llama.cpp's metadata keys and renamed for config.json.

The keys come from `gguf.Keys`, formatted with the file's architecture, so the same table reads
every family whose llama.cpp converter writes the common keys (llama, qwen2, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from ...errors import UnsupportedModel
from .arch import traits
from .source import field_value
from .tensors import ROPE_FACTORS

K = gguf.Keys

#: GGUF key template -> config.json name, for keys every supported family must have.
REQUIRED = {
    K.LLM.BLOCK_COUNT: "num_hidden_layers",
    K.LLM.EMBEDDING_LENGTH: "hidden_size",
    K.LLM.FEED_FORWARD_LENGTH: "intermediate_size",
    K.Attention.HEAD_COUNT: "num_attention_heads",
}
#: Keys with a sensible default when a converter left them out.
OPTIONAL = {
    K.Attention.HEAD_COUNT_KV: "num_key_value_heads",
    K.LLM.CONTEXT_LENGTH: "max_position_embeddings",
    K.Rope.FREQ_BASE: "rope_theta",
    K.Attention.LAYERNORM_RMS_EPS: "rms_norm_eps",
    K.LLM.VOCAB_SIZE: "vocab_size",
}


@dataclass(frozen=True)
class HParams:
    """What the importer needs besides config.json: the head counts that undo the rope permute."""

    config: dict
    n_head: int
    n_head_kv: int


def read_hparams(reader: gguf.GGUFReader, arch: str, path: Path, n_vocab: int) -> HParams:
    """config.json keys (without model_type, dtype or token ids) for the model in `reader`."""
    config = {}
    for template, name in REQUIRED.items():
        value = field_value(reader, template.format(arch=arch))
        if value is None:
            raise UnsupportedModel(f"{path}: the GGUF lacks {template.format(arch=arch)}")
        config[name] = value
    for template, name in OPTIONAL.items():
        value = field_value(reader, template.format(arch=arch))
        if value is not None:
            config[name] = _tidy(value)
    config.setdefault("num_key_value_heads", config["num_attention_heads"])
    # Older files carry no vocab_size; the token list is authoritative anyway.
    config["vocab_size"] = config.get("vocab_size") or n_vocab
    head_dim = _head_dim(reader, arch)
    if head_dim:
        config["head_dim"] = head_dim
    rope_scaling = _rope_scaling(reader, arch)
    if rope_scaling:
        config["rope_scaling"] = rope_scaling
    extra = traits(arch).extra_config
    if extra is not None:
        extra(lambda template: _tidy_any(field_value(reader, template.format(arch=arch))), config)
    longrope = _longrope(reader, arch, config)
    if longrope:
        config["rope_scaling"] = longrope
    return HParams(config, config["num_attention_heads"], config["num_key_value_heads"])


def _longrope(reader: gguf.GGUFReader, arch: str, config: dict) -> dict | None:
    """Phi-3 longrope from the factor tensors llama.cpp keeps (rope_factors_long/short) and its
    attention scale key; None when the file has no factors."""
    tensors = {t.name: t for t in reader.tensors}
    if not all(name in tensors for name in ROPE_FACTORS.values()):
        return None
    scaling = {"rope_type": "longrope", **{f"{which}_factor": [float(_tidy(float(v))) for v in
                                                                np.asarray(tensors[name].data).ravel()]
                                           for which, name in ROPE_FACTORS.items()}}
    original = config.get("original_max_position_embeddings")
    if original:
        scaling["original_max_position_embeddings"] = original
    attn = field_value(reader, K.Rope.SCALING_ATTN_FACTOR.format(arch=arch))
    if attn is not None:
        scaling["attention_factor"] = _tidy(float(attn))
    return scaling


def _tidy_any(value):
    return [_tidy(v) for v in value] if isinstance(value, list) else _tidy(value)


def _tidy(value):
    # GGUF stores floats as float32; print them as the short decimal they came from (1e-05, not
    # 9.999999747378752e-06).
    return float(str(np.float32(value))) if isinstance(value, float) else value


def _head_dim(reader: gguf.GGUFReader, arch: str) -> int | None:
    # key_length is the head width itself; rope.dimension_count equals it for full rotary models.
    for template in (K.Attention.KEY_LENGTH, K.Rope.DIMENSION_COUNT):
        value = field_value(reader, template.format(arch=arch))
        if value:
            return int(value)
    return None


def _rope_scaling(reader: gguf.GGUFReader, arch: str) -> dict | None:
    kind = field_value(reader, K.Rope.SCALING_TYPE.format(arch=arch))
    factor = field_value(reader, K.Rope.SCALING_FACTOR.format(arch=arch))
    if not kind or kind == "none" or not factor:
        return None
    scaling = {"rope_type": kind, "factor": float(factor)}
    original = field_value(reader, K.Rope.SCALING_ORIG_CTX_LEN.format(arch=arch))
    if original:
        scaling["original_max_position_embeddings"] = int(original)
    return scaling
