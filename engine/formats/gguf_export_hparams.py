"""Model hyperparameters, RoPE settings and `general.*` metadata of a GGUF export, from config.json.

config.json is read as written, so both the transformers 4 layout (`rope_theta`, `rope_scaling`)
and the transformers 5 one (`rope_parameters`) work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gguf
import numpy as np

from ..errors import UnsupportedModel
from .hf_folder import HFFolder


@dataclass(frozen=True)
class HParams:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx: int
    vocab_size: int
    rms_eps: float
    rope_theta: float
    rope: dict  # the scaling settings, {} when there are none
    tied_embeddings: bool


def read_hparams(src: HFFolder) -> HParams:
    c = src.config
    where = src.path / "config.json"
    try:
        n_head = int(c["num_attention_heads"])
        n_embd = int(c["hidden_size"])
        hp = HParams(
            n_layer=int(c["num_hidden_layers"]),
            n_embd=n_embd,
            n_ff=int(c["intermediate_size"]),
            n_head=n_head,
            n_head_kv=int(c.get("num_key_value_heads") or n_head),
            head_dim=int(c.get("head_dim") or n_embd // n_head),
            n_ctx=int(c.get("max_position_embeddings") or 4096),
            vocab_size=int(c["vocab_size"]),
            rms_eps=float(c.get("rms_norm_eps") or 1e-6),
            rope_theta=float(_rope_settings(c).get("rope_theta") or c.get("rope_theta") or 10000.0),
            rope=_rope_scaling(c),
            tied_embeddings=bool(c.get("tie_word_embeddings", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnsupportedModel(f"{where}: missing or bad hyperparameter ({exc})") from None
    kind = hp.rope.get("rope_type") or hp.rope.get("type")
    if kind not in (None, "default", "linear", "yarn", "llama3", "dynamic"):
        raise UnsupportedModel(f"{where}: RoPE scaling '{kind}' is not supported by the GGUF export")
    return hp


def _rope_settings(c: dict) -> dict:
    return c.get("rope_parameters") or c.get("rope_scaling") or {}


def _rope_scaling(c: dict) -> dict:
    settings = dict(_rope_settings(c))
    kind = settings.get("rope_type") or settings.get("type")
    return {} if kind in (None, "default") else settings


def add_hparams(w: gguf.GGUFWriter, hp: HParams) -> list[str]:
    """Write the architecture keys; returns warnings about settings llama.cpp cannot express."""
    warnings = []
    w.add_context_length(hp.n_ctx)
    w.add_embedding_length(hp.n_embd)
    w.add_block_count(hp.n_layer)
    w.add_feed_forward_length(hp.n_ff)
    w.add_head_count(hp.n_head)
    w.add_head_count_kv(hp.n_head_kv)
    w.add_layer_norm_rms_eps(hp.rms_eps)
    w.add_rope_freq_base(hp.rope_theta)
    w.add_rope_dimension_count(hp.head_dim)
    w.add_vocab_size(hp.vocab_size)
    if hp.head_dim != hp.n_embd // hp.n_head:
        w.add_key_length(hp.head_dim)
        w.add_value_length(hp.head_dim)
    kind = hp.rope.get("rope_type") or hp.rope.get("type")
    factor = hp.rope.get("factor")
    if kind == "linear" and factor:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(factor))
    elif kind == "yarn" and factor:
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(float(factor))
        orig = hp.rope.get("original_max_position_embeddings")
        if orig:
            w.add_rope_scaling_orig_ctx_len(int(orig))
    elif kind == "dynamic":
        # llama.cpp has no dynamic NTK scaling; the model still works within its trained context.
        warnings.append("dynamic RoPE scaling is not supported by llama.cpp and was left out")
    return warnings


def llama3_rope_factors(hp: HParams) -> np.ndarray | None:
    """Llama 3.1-style frequency factors, stored by llama.cpp as the `rope_freqs.weight` tensor.

    Wavelengths shorter than the original context's high-frequency cut keep their frequency,
    longer than the low-frequency cut are divided by `factor`, and the band between blends the two.
    """
    kind = hp.rope.get("rope_type") or hp.rope.get("type")
    if kind != "llama3":
        return None
    factor = float(hp.rope.get("factor", 8.0))
    low = float(hp.rope.get("low_freq_factor", 1.0))
    high = float(hp.rope.get("high_freq_factor", 4.0))
    orig_ctx = float(hp.rope.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / (hp.rope_theta ** (np.arange(0, hp.head_dim, 2, dtype=np.float64) / hp.head_dim))
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < orig_ctx / high:
            out.append(1.0)
        elif wavelen > orig_ctx / low:
            out.append(factor)
        else:
            smooth = (orig_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def add_general(w: gguf.GGUFWriter, name: str, file_type: int, n_params: int) -> None:
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    w.add_size_label(gguf.size_label(n_params, n_params, 0, 0))
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
