"""Model hyperparameters, RoPE settings and `general.*` metadata of a GGUF export, from config.json.

config.json is read as written, so both the transformers 4 layout (`rope_theta`, `rope_scaling`)
and the transformers 5 one (`rope_parameters`) work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import gguf
import numpy as np

from ...errors import UnsupportedModel
from .arch import rope_groups, traits
from ..hf_folder import HFFolder


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
    rope: dict  # the full-attention scaling settings, {} when there are none
    tied_embeddings: bool
    rope_dims: int = 0  # rotary width per head (partial rotary models rotate fewer than head_dim)
    rope_theta_swa: float | None = None  # the sliding-window layers' own base, when they have one
    config: dict = field(default_factory=dict, compare=False)  # config.json as written


def read_hparams(src: HFFolder) -> HParams:
    c = src.config
    where = src.path / "config.json"
    full, sliding = rope_groups(c)
    try:
        n_head = int(c["num_attention_heads"])
        n_embd = int(c["hidden_size"])
        head_dim = int(c.get("head_dim") or n_embd // n_head)
        partial = float(full.get("partial_rotary_factor") or c.get("partial_rotary_factor") or 1.0)
        hp = HParams(
            n_layer=int(c["num_hidden_layers"]),
            n_embd=n_embd,
            n_ff=int(c["intermediate_size"]),
            n_head=n_head,
            n_head_kv=int(c.get("num_key_value_heads") or n_head),
            head_dim=head_dim,
            n_ctx=int(c.get("max_position_embeddings") or 4096),
            vocab_size=int(c["vocab_size"]),
            rms_eps=float(c.get("rms_norm_eps") or 1e-6),
            rope_theta=float(full.get("rope_theta") or 10000.0),
            rope=_rope_scaling(full),
            tied_embeddings=bool(c.get("tie_word_embeddings", False)),
            rope_dims=int(partial * n_embd) // n_head if partial != 1.0 else head_dim,
            rope_theta_swa=float(sliding["rope_theta"]) if sliding.get("rope_theta") is not None else None,
            config=dict(c),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnsupportedModel(f"{where}: missing or bad hyperparameter ({exc})") from None
    kind = hp.rope.get("rope_type") or hp.rope.get("type")
    if kind in LONGROPE and src.family.gguf_export_arch != "phi3":
        raise UnsupportedModel(f"{where}: RoPE scaling '{kind}' is written to GGUF for Phi-3 models only "
                               f"(llama.cpp reads its factors for no other architecture)")
    if kind not in (None, "default", "linear", "yarn", "llama3", "dynamic", *LONGROPE):
        raise UnsupportedModel(f"{where}: RoPE scaling '{kind}' is not supported by the GGUF export")
    return hp


#: Phi-3's long-context RoPE ("su" is its first name): per-frequency factors for short and long contexts.
LONGROPE = ("longrope", "su")


def _rope_scaling(full: dict) -> dict:
    kind = full.get("rope_type") or full.get("type")
    return {} if kind in (None, "default") else dict(full)


def add_hparams(w: gguf.GGUFWriter, hp: HParams, arch: str) -> list[str]:
    """Write the architecture keys; returns warnings about settings llama.cpp cannot express.

    The common keys are those llama.cpp's converter writes for every text model; `gguf_arch`
    adds each architecture's own."""
    c = hp.config
    warnings = []
    w.add_context_length(hp.n_ctx)
    w.add_embedding_length(hp.n_embd)
    w.add_block_count(hp.n_layer)
    w.add_feed_forward_length(hp.n_ff)
    w.add_head_count(hp.n_head)
    w.add_head_count_kv(hp.n_head_kv)
    layer_norm_eps = next((c[k] for k in ("layer_norm_eps", "layer_norm_epsilon", "norm_epsilon") if c.get(k)), None)
    if layer_norm_eps is not None:  # LayerNorm models (StarCoder 2, ...)
        w.add_layer_norm_eps(float(layer_norm_eps))
    if c.get("rms_norm_eps") is not None or layer_norm_eps is None:
        w.add_layer_norm_rms_eps(hp.rms_eps)
    w.add_rope_freq_base(hp.rope_theta)
    if hp.rope_theta_swa is not None:
        w.add_rope_freq_base_swa(hp.rope_theta_swa)
    w.add_rope_dimension_count(hp.rope_dims)
    w.add_vocab_size(hp.vocab_size)
    # Always written: llama.cpp otherwise assumes n_embd / n_head, wrong wherever head_dim is set apart.
    w.add_key_length(hp.head_dim)
    w.add_value_length(hp.head_dim)
    n_experts = c.get("num_local_experts") or c.get("num_experts")
    if n_experts:
        w.add_expert_count(int(n_experts))
    if c.get("num_experts_per_tok"):
        w.add_expert_used_count(int(c["num_experts_per_tok"]))
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
        for key, add in (("extrapolation_factor", w.add_rope_scaling_yarn_ext_factor),
                         ("attention_factor", w.add_rope_scaling_yarn_attn_factor),
                         ("beta_fast", w.add_rope_scaling_yarn_beta_fast),
                         ("beta_slow", w.add_rope_scaling_yarn_beta_slow)):
            if hp.rope.get(key) is not None:
                add(float(hp.rope[key]))
    elif kind == "dynamic":
        # llama.cpp has no dynamic NTK scaling; the model still works within its trained context.
        warnings.append("dynamic RoPE scaling is not supported by llama.cpp and was left out")
    extra = traits(arch).extra_kv
    if extra is not None:
        extra(w, c)
    return warnings


def llama3_rope_factors(hp: HParams) -> np.ndarray | None:
    """Llama 3.1-style frequency factors, stored by llama.cpp as the `rope_freqs.weight` tensor.

    Wavelengths shorter than the original context's high-frequency cut keep their frequency,
    longer than the low-frequency cut are divided by `factor`, and the band between blends the two.
    Computed in float32 throughout, as llama.cpp's converter does, so the tensor matches its bits.
    """
    import torch

    kind = hp.rope.get("rope_type") or hp.rope.get("type")
    if kind != "llama3":
        return None
    factor = float(hp.rope.get("factor", 8.0))
    low = float(hp.rope.get("low_freq_factor", 1.0))
    high = float(hp.rope.get("high_freq_factor", 4.0))
    orig_ctx = float(hp.rope.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / (hp.rope_theta ** (torch.arange(0, hp.head_dim, 2, dtype=torch.float32) / hp.head_dim))
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < orig_ctx / high:
            out.append(1.0)
        elif wavelen > orig_ctx / low:
            out.append(factor)
        else:
            smooth = (orig_ctx / wavelen - low) / (high - low)
            out.append(float(1.0 / ((1 - smooth) / factor + smooth)))
    return np.asarray(out, dtype=np.float32)


def longrope_factors(hp: HParams) -> dict[str, np.ndarray]:
    """Phi-3 longrope's factors as llama.cpp stores them, {"long": ..., "short": ...} in float32
    ({} for other models): one per rotary frequency, and llama.cpp picks the long ones beyond the
    original context. Two lists of another length would rotate the wrong frequencies: refused."""
    if (hp.rope.get("rope_type") or hp.rope.get("type")) not in LONGROPE:
        return {}
    out = {}
    for which in ("long", "short"):
        factors = hp.rope.get(f"{which}_factor")
        if not factors or len(factors) * 2 != hp.rope_dims:
            raise UnsupportedModel(f"RoPE scaling longrope: {which}_factor must hold {hp.rope_dims // 2} values "
                                   f"(one per rotary frequency), not {len(factors or [])}")
        out[which] = np.asarray(factors, dtype=np.float32)
    return out


def add_general(w: gguf.GGUFWriter, name: str, file_type: int, counts: tuple[int, int, int, int]) -> None:
    """`counts`: (total, shared, expert, expert count) parameters, as GGUFWriter counts them."""
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name)
    w.add_size_label(gguf.size_label(*counts))
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
