"""Rough memory needs, from metadata alone. Deliberately simple and conservative; the conversion
planner refines them per method."""

from __future__ import annotations

#: Context assumed for a chat when estimating the KV cache (the model's own if smaller).
CHAT_CONTEXT = 4096
#: Runtime, framework and scratch buffers not accounted for by weights and cache.
RUNTIME_OVERHEAD = 300 * 1024**2


def kv_cache_bytes(layers: int | None, hidden: int | None, kv_ratio: float, context: int | None) -> int:
    """f16 keys and values for every layer at the chat context."""
    if not layers or not hidden:
        return 0
    ctx = min(context or CHAT_CONTEXT, CHAT_CONTEXT)
    return int(2 * layers * hidden * kv_ratio * ctx * 2)


def ram_to_chat(weights_bytes: int, kv_bytes: int) -> int:
    return weights_bytes + kv_bytes + RUNTIME_OVERHEAD


def ram_to_quantize(parameters: int | None, layers: int | None) -> int | None:
    """Block-by-block quantization holds one decoder block in fp32 plus embeddings and activations;
    we budget two blocks, the embedding matrix, and the overhead."""
    if not parameters:
        return None
    per_block = parameters / max(layers or 1, 1)
    return int(4 * (2 * per_block + 0.15 * parameters)) + RUNTIME_OVERHEAD
