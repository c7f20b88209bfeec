"""What a GGUF export needs per llama.cpp architecture that cannot be derived from the model.

Tensor names come from gguf's own table (gguf.TensorNameMap) and the common hyperparameters from
config.json (gguf_export_hparams); this table holds only the rest, learned by reading llama.cpp's
converter and checked against it by tests/engine/test_gguf_families.py:
- `norm_shift`: Gemma's RMSNorm scales by (1 + w) and checkpoints store w; llama.cpp scales by
  the stored value, so every norm weight is written as w + 1;
- `extra_kv`: the architecture's own keys (soft-capping, sliding windows, Granite's multipliers,
  expert widths), written after the common ones.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class ArchTraits:
    norm_shift: float = 0.0
    extra_kv: Callable[[gguf.GGUFWriter, dict], None] | None = None


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
    # llama.cpp places Gemma 3's global layers itself (every sixth); the window is all it reads.
    if c.get("final_logit_softcapping"):
        w.add_final_logit_softcapping(float(c["final_logit_softcapping"]))
    if c.get("sliding_window_pattern") != 1 and c.get("sliding_window"):
        w.add_sliding_window(int(c["sliding_window"]))


def _phi3(w: gguf.GGUFWriter, c: dict) -> None:
    full = rope_groups(c)[0]
    original = full.get("original_max_position_embeddings") or c.get("original_max_position_embeddings")
    if original:
        w.add_rope_scaling_orig_ctx_len(int(original))
    # Phi-4 has no sliding window; llama.cpp reads 0 as "none".
    w.add_sliding_window(int(c.get("sliding_window") or 0))


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


TRAITS: dict[str, ArchTraits] = {
    "gemma2": ArchTraits(norm_shift=1.0, extra_kv=_gemma2),
    "gemma3": ArchTraits(norm_shift=1.0, extra_kv=_gemma3),
    "phi3": ArchTraits(extra_kv=_phi3),
    "granite": ArchTraits(extra_kv=_granite),
    "olmo2": ArchTraits(extra_kv=_olmo2),
    "qwen2moe": ArchTraits(extra_kv=_expert_widths),
    "qwen3moe": ArchTraits(extra_kv=_expert_widths),
}


def traits(arch: str) -> ArchTraits:
    return TRAITS.get(arch, ArchTraits())
