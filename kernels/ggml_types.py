"""The GGML tensor types our kernels produce, and how a caller may name them."""

from __future__ import annotations

from enum import Enum

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as QT

# Legacy block types: 32 values per block, one fp16 scale (and an fp16 minimum for the _1 kinds).
BLOCK_TYPES = frozenset({QT.Q8_0, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1})
# Plain element types: converted, not block-quantized.
FLOAT_TYPES = frozenset({QT.F32, QT.F16, QT.BF16})
SUPPORTED = BLOCK_TYPES | FLOAT_TYPES

BLOCK = 32


def parse_qtype(qtype: QT | str | Enum) -> QT:
    """A GGMLQuantizationType from itself, a name ("Q8_0", "q8_0") or a str Enum such as GGUFType."""
    if isinstance(qtype, QT):
        return qtype
    name = qtype.value if isinstance(qtype, Enum) else qtype
    try:
        return QT[str(name).upper()]
    except KeyError:
        raise ValueError(f"unknown GGML type {name!r}") from None


def type_size(qtype: QT) -> tuple[int, int]:
    """(values per block, bytes per block), as gguf lays them out."""
    return GGML_QUANT_SIZES[qtype]
