"""What a finished GGUF file actually holds: each tensor's type, read back from the file.

llama.cpp picks types per tensor (more bits for some layers, fallbacks for rows that do not fit a
K-quant block), so the result reports what was written rather than what was asked for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from math import prod
from pathlib import Path

import gguf

K_QUANT_TYPES = frozenset(t.name for t in gguf.GGMLQuantizationType if t.name.endswith("_K"))


@dataclass(frozen=True)
class Census:
    tensor_types: dict[str, str]  # GGUF tensor name -> type name
    n_params: int

    @property
    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.tensor_types.values()).items()))

    def k_quant_fallbacks(self) -> dict[str, str]:
        """Matrices of a K-quant file that did not get a K-quant type (their rows are not a
        multiple of 256 values, or llama.cpp keeps them wider on purpose)."""
        return {n: t for n, t in self.tensor_types.items() if t not in K_QUANT_TYPES and t not in ("F32",)}


def census(path: Path) -> Census:
    reader = gguf.GGUFReader(path)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    n_params = sum(int(prod(int(d) for d in t.shape)) for t in reader.tensors)
    return Census(types, n_params)
