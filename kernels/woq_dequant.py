"""Reading the packed GPTQ v1 and AWQ GEMM tensors back into weights, in the [in, out] orientation a
matmul `x @ W` wants (no transpose on the hot path).

GPTQ v1 stores zero points minus one; they are read as (stored + 1) masked to the bit width, which
also reads correctly the files whose asymmetric zero point 0 was stored as -1 (all ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .woq_pack import unpack_awq, unpack_cols, unpack_rows
from .woq_quantize import GroupQuant

LAYOUTS = ("gptq", "awq")


@dataclass(eq=False)
class PackedWeight:
    """One quantized matrix as stored on disk, plus a cache slot the fast paths may use."""

    layout: str  # "gptq" (v1) or "awq" (gemm)
    bits: int
    group_size: int  # -1: one group
    in_features: int
    out_features: int
    qweight: torch.Tensor
    qzeros: torch.Tensor
    scales: torch.Tensor  # [groups, out] float16
    g_idx: torch.Tensor | None = None  # GPTQ only: [in] int32
    cache: dict = field(default_factory=dict)

    def codes(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(q [in, out], zeros [groups, out], g_idx [in]) as int64."""
        if self.layout == "gptq":
            q = unpack_rows(self.qweight, self.bits)
            zeros = (unpack_cols(self.qzeros, self.bits) + 1) & (2**self.bits - 1)
            g_idx = self.g_idx
        elif self.layout == "awq":
            q = unpack_awq(self.qweight)
            zeros = unpack_awq(self.qzeros)
            size = self.in_features if self.group_size == -1 else self.group_size
            g_idx = torch.arange(self.in_features, device=q.device) // size
        else:
            raise ValueError(f"unknown layout {self.layout!r}; expected one of {LAYOUTS}")
        return q.long(), zeros.long(), g_idx.long()

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[in, out] weights in `dtype`: scale * (q - zero) per input row's group."""
        q, zeros, g_idx = self.codes()
        return ((q - zeros[g_idx]).to(torch.float32) * self.scales.float()[g_idx]).to(dtype)

    def to_group_quant(self) -> GroupQuant:
        """The neutral form ([out, in] codes) the quantizers produce, for round-trip checks."""
        q, zeros, g_idx = self.codes()
        return GroupQuant(q.t().contiguous().to(torch.int32), self.scales.float(), zeros.to(torch.int32),
                          g_idx.to(torch.int32), self.bits)
