"""How many bits each tensor takes in a GGUF file of a given type: the one rule behind the plan's
size estimate and the export's disk check.

Facts from llama.cpp's quantizer (llama-quant.cpp) that shape real files:
- vectors (norms, biases) stay F32;
- K-quant blocks hold 256 values, so a matrix whose rows are not a multiple of 256 (SmolLM2's 576)
  gets a legacy type instead: Q4_0 for Q2_K/Q3_K, Q5_0 for Q4_K, Q5_1 for Q5_K, Q8_0 for Q6_K;
- the output matrix (or the token embedding standing in for a tied head) is kept at Q6_K or
  better, since the head is the layer most sensitive to rounding.
"""

from __future__ import annotations

from .config import GGUFType

K_BLOCK = 256
#: Room a GGUF job keeps for the tokenizer and metadata on top of the weights (its disk check and the plan).
METADATA_BYTES = 32 * 1024**2
Q6_K_BITS = 6.5625
Q8_0_BITS = 8.5
_FALLBACK_BITS = {"Q2_K": 4.5, "Q3_K": 4.5, "Q4_K": 5.5, "Q5_K": 6.0, "Q6_K": 8.5}  # Q4_0, Q5_0, Q5_1, Q8_0


def _k_family(gguf_type: GGUFType) -> str:
    return gguf_type.value[:4]  # "Q4_K_M" -> "Q4_K"


def tensor_bits(gguf_type: GGUFType, row: int, *, is_vector: bool, is_head: bool, upper: bool = False) -> float:
    """Bits per value of one tensor. `row`: values per row (the input width of a matrix).
    `upper`: count every K-quant fallback at Q8_0, the widest llama.cpp uses (for disk checks)."""
    if is_vector:
        return 32.0
    bits = gguf_type.nominal_bits
    k_type = gguf_type.is_k_quant
    if is_head and bits < Q6_K_BITS:
        bits, k_type = Q6_K_BITS, True
        family = "Q6_K"
    else:
        family = _k_family(gguf_type)
    if k_type and row % K_BLOCK:
        return Q8_0_BITS if upper else _FALLBACK_BITS.get(family, Q8_0_BITS)
    return bits


def estimate_bytes(gguf_type: GGUFType, matrices: list[tuple[int, int, bool]], vector_params: int,
                   *, upper: bool = False, metadata_bytes: int = 0) -> int:
    """`matrices`: (values, row width, is_head) per 2-D tensor; `is_head` for the output matrix, or the
    token embedding when the head is tied to it."""
    total = vector_params * 4.0
    for n, row, is_head in matrices:
        total += n * tensor_bits(gguf_type, row, is_vector=False, is_head=is_head, upper=upper) / 8
    return int(total) + metadata_bytes


def is_head_tensor(name: str, tied: bool) -> bool:
    """The output matrix, in Hugging Face or GGUF naming; with a tied head, the token embedding."""
    if name in ("lm_head.weight", "output.weight"):
        return True
    return tied and ("embed_tokens" in name or name.startswith("token_embd"))
