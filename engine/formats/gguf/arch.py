"""What a GGUF export needs per llama.cpp architecture that cannot be derived from the model.

Tensor names come from gguf's own table (gguf.TensorNameMap) and the common hyperparameters from
config.json (export_hparams.py); this table holds only the rest, learned by reading llama.cpp's
converter and checked against it by tests/engine/test_gguf_families.py:
- `norm_shift`: Gemma's RMSNorm scales by (1 + w) and checkpoints store w; llama.cpp scales by
  the stored value, so every norm weight is written as w + 1;
- `extra_kv`: the architecture's own keys (soft-capping, sliding windows, Granite's multipliers,
  expert widths), written after the common ones;
- `extra_config`: the same keys read back into config.json settings by the GGUF import, with
  llama.cpp's defaults where a file leaves a key out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import gguf


def rope_groups(c: dict) -> tuple[dict, dict]:
    """(full-attention, sliding-attention) RoPE settings from config.json, each with `rope_theta`
    when known. transformers 5 writes `rope_parameters`, flat or keyed by layer type (Gemma 3);
    transformers 4 writes `rope_theta` beside a `rope_scaling` dict (and Gemma 3's local base)."""
    params = c.get("rope_parameters")
    if isinstance(params, dict) and ("full_attention" in params or "sliding_attention" in params):
        return dict(params.get("full_attention") or {}), dict(params.get("sliding_attention") or {})
    full = dict(params or c.get("rope_scaling") or {})
    if "rope_theta" not in full and c.get("rope_theta") is not None:
        full["rope_theta"] = c["rope_theta"]
    sliding = {"rope_theta": c["rope_local_base_freq"]} if c.get("rope_local_base_freq") is not None else {}
    return full, sliding


K = gguf.Keys
#: Reads one GGUF key given its template ("{arch}.attention.sliding_window"); None when absent.
Getter = Callable[[str], object]


@dataclass(frozen=True)
class ChatTemplate:
    """A family's turn format, for GGUF files that carry no `tokenizer.chat_template` (some Gemma
    conversions do not); used only when every marker is a token of the file's vocabulary."""

    template: str
    markers: tuple[str, ...]


# Gemma's turns: <start_of_turn>user|model ... <end_of_turn>; no system role, so a system message
# opens the first user turn.
GEMMA_TURNS = ChatTemplate(
    "{{ bos_token }}{% set ns = namespace(system='') %}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = m['content'] + '\n\n' %}{% else %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{% if m['role'] == 'user' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}"
    "{{ m['content'] | trim }}<end_of_turn>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
    ("<start_of_turn>", "<end_of_turn>"),
)


@dataclass(frozen=True)
class ArchTraits:
    norm_shift: float = 0.0
    extra_kv: Callable[[gguf.GGUFWriter, dict], None] | None = None
    extra_config: Callable[[Getter, dict], None] | None = None
    chat_template: ChatTemplate | None = None
    moe_model_type: str | None = None  # the model type of a file of this architecture that has experts


def _expert_widths(w: gguf.GGUFWriter, c: dict) -> None:
    if c.get("moe_intermediate_size") is not None:
        w.add_expert_feed_forward_length(int(c["moe_intermediate_size"]))
    if c.get("shared_expert_intermediate_size") is not None:
        w.add_expert_shared_feed_forward_length(int(c["shared_expert_intermediate_size"]))


def _gemma2(w: gguf.GGUFWriter, c: dict) -> None:
    w.add_attn_logit_softcapping(float(c["attn_logit_softcapping"]))
    w.add_final_logit_softcapping(float(c["final_logit_softcapping"]))
    w.add_sliding_window(int(c["sliding_window"]))


def _gemma3(w: gguf.GGUFWriter, c: dict) -> None:
    if c.get("final_logit_softcapping"):
        w.add_final_logit_softcapping(float(c["final_logit_softcapping"]))
    if c.get("sliding_window_pattern") != 1 and c.get("sliding_window"):
        w.add_sliding_window(int(c["sliding_window"]))
        # Beyond llama.cpp's converter: without this key llama.cpp assumes every sixth layer is
        # global, as in Google's releases; a model whose layer_types say otherwise would attend
        # through the wrong window (it reads the per-layer pattern when the file has one).
        if c.get("layer_types"):
            w.add_sliding_window_pattern([t == "sliding_attention" for t in c["layer_types"]])


def _phi3(w: gguf.GGUFWriter, c: dict) -> None:
    full = rope_groups(c)[0]
    original = full.get("original_max_position_embeddings") or c.get("original_max_position_embeddings")
    if original:
        w.add_rope_scaling_orig_ctx_len(int(original))
    if (full.get("rope_type") or full.get("type")) in ("longrope", "su") and full.get("long_factor"):
        # The factors themselves are tensors (rope_factors_long/short, export_tensors.py); the key
        # is the attention scale beyond the original context, which llama.cpp does not derive.
        n_ctx = int(c.get("max_position_embeddings") or 4096)
        w.add_rope_scaling_attn_factors(longrope_attn_factor(full, n_ctx, int(original)))
    # Phi-4 has no sliding window; llama.cpp reads 0 as "none".
    w.add_sliding_window(int(c.get("sliding_window") or 0))


def longrope_attn_factor(full: dict, n_ctx: int, original: int) -> float:
    """The attention scale longrope applies beyond its original context: the config's, else
    sqrt(1 + ln(scale) / ln(original context)) as transformers and llama.cpp's converter compute it."""
    if full.get("attention_factor") is not None:
        return float(full["attention_factor"])
    scale = n_ctx / original
    return math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1.0 else 1.0


def _granite(w: gguf.GGUFWriter, c: dict) -> None:
    for key, add in (("attention_multiplier", w.add_attention_scale), ("embedding_multiplier", w.add_embedding_scale),
                     ("residual_multiplier", w.add_residual_scale), ("logits_scaling", w.add_logit_scale)):
        if c.get(key):
            add(float(c[key]))


def _olmo2(w: gguf.GGUFWriter, c: dict) -> None:
    if "sliding_window" in c and c["sliding_window"] is not None:
        w.add_sliding_window(int(c["sliding_window"]))
        types = c.get("layer_types")
        n = int(c["num_hidden_layers"])
        w.add_sliding_window_pattern([t == "sliding_attention" for t in types] if types
                                     else [(i + 1) % 4 != 0 for i in range(n)])


def _query_scale(c: dict) -> None:
    # llama.cpp scales Gemma's queries by 1/sqrt(head_dim), except the 27B models (46 and 62
    # layers), which use 1/sqrt(hidden / heads); transformers reads the same from this setting.
    wide = c["num_hidden_layers"] in (46, 62)
    c["query_pre_attn_scalar"] = c["hidden_size"] // c["num_attention_heads"] if wide else c.get("head_dim")


def _gemma2_config(get: Getter, c: dict) -> None:
    for key, name in ((K.LLM.ATTN_LOGIT_SOFTCAPPING, "attn_logit_softcapping"),
                      (K.LLM.FINAL_LOGIT_SOFTCAPPING, "final_logit_softcapping")):
        c[name] = float(get(key)) if get(key) else None
    if get(K.Attention.SLIDING_WINDOW):
        c["sliding_window"] = int(get(K.Attention.SLIDING_WINDOW))
    _query_scale(c)


def _gemma3_config(get: Getter, c: dict) -> None:
    n = int(c["num_hidden_layers"])
    window = get(K.Attention.SLIDING_WINDOW)
    pattern = get(K.Attention.SLIDING_WINDOW_PATTERN)
    if not window:
        layer_types = ["full_attention"] * n
    elif isinstance(pattern, list):
        layer_types = ["sliding_attention" if p else "full_attention" for p in pattern]
    else:  # llama.cpp's default for Gemma 3: every sixth layer (or every `pattern`-th) is global
        period = int(pattern or 6)
        layer_types = ["full_attention" if (i + 1) % period == 0 else "sliding_attention" for i in range(n)]
    c["layer_types"] = layer_types
    c["sliding_window"] = int(window) if window else None
    c["final_logit_softcapping"] = float(get(K.LLM.FINAL_LOGIT_SOFTCAPPING)) if get(K.LLM.FINAL_LOGIT_SOFTCAPPING) else None
    full = {"rope_type": "default", "rope_theta": float(c.pop("rope_theta", 1_000_000.0))}
    scaling = c.pop("rope_scaling", None)
    if scaling:
        full.update(scaling)
    local = float(get(K.Rope.FREQ_BASE_SWA) or 10_000.0)  # llama.cpp's default for Gemma 3's local layers
    c["rope_parameters"] = {"full_attention": full, "sliding_attention": {"rope_type": "default", "rope_theta": local}}
    _query_scale(c)


def _phi3_config(get: Getter, c: dict) -> None:
    window = get(K.Attention.SLIDING_WINDOW)
    c["sliding_window"] = int(window) if window else None
    original = get(K.Rope.SCALING_ORIG_CTX_LEN)
    if original:
        c["original_max_position_embeddings"] = int(original)


def _granite_config(get: Getter, c: dict) -> None:
    for key, name in ((K.Attention.SCALE, "attention_multiplier"), (K.LLM.EMBEDDING_SCALE, "embedding_multiplier"),
                      (K.LLM.RESIDUAL_SCALE, "residual_multiplier"), (K.LLM.LOGIT_SCALE, "logits_scaling")):
        if get(key) is not None:
            c[name] = float(get(key))


def _moe_config(get: Getter, c: dict, norm_topk: bool | None = None) -> None:
    if not get(K.LLM.EXPERT_COUNT):
        return
    if norm_topk is not None:
        c["norm_topk_prob"] = norm_topk
    for key, name in ((K.LLM.EXPERT_COUNT, "num_experts"), (K.LLM.EXPERT_USED_COUNT, "num_experts_per_tok"),
                      (K.LLM.EXPERT_FEED_FORWARD_LENGTH, "moe_intermediate_size"),
                      (K.LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH, "shared_expert_intermediate_size")):
        if get(key) is not None:
            c[name] = int(get(key))
    c["num_local_experts"] = c.get("num_experts")  # Mixtral's spelling
    c["decoder_sparse_step"] = 1
    c["mlp_only_layers"] = []


TRAITS: dict[str, ArchTraits] = {
    "gemma2": ArchTraits(norm_shift=1.0, extra_kv=_gemma2, extra_config=_gemma2_config, chat_template=GEMMA_TURNS),
    "gemma3": ArchTraits(norm_shift=1.0, extra_kv=_gemma3, extra_config=_gemma3_config, chat_template=GEMMA_TURNS),
    "phi3": ArchTraits(extra_kv=_phi3, extra_config=_phi3_config),
    "granite": ArchTraits(extra_kv=_granite, extra_config=_granite_config),
    "olmo2": ArchTraits(extra_kv=_olmo2),
    "llama": ArchTraits(extra_config=_moe_config, moe_model_type="mixtral"),
    # llama.cpp renormalises the chosen experts' weights for Qwen3-MoE and not for Qwen2-MoE
    # (fixed in its graphs, no key), so the import says the same to transformers.
    "qwen2moe": ArchTraits(extra_kv=_expert_widths, extra_config=lambda get, c: _moe_config(get, c, norm_topk=False)),
    "qwen3moe": ArchTraits(extra_kv=_expert_widths, extra_config=lambda get, c: _moe_config(get, c, norm_topk=True)),
}


def traits(arch: str) -> ArchTraits:
    return TRAITS.get(arch, ArchTraits())


def require_export_arch(family, where: str) -> str:
    """The architecture to write, or UnsupportedModel at once naming the family and what works.
    `Family.gguf_export_arch` decides (engine/architectures.py), so the catalog's "Not available"
    row, plan() and this writer give one answer."""
    family.check("gguf-export", where)  # raises, with the paths that do work for the family
    return family.gguf_export_arch
