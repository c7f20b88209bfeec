"""Packing small unsigned integers into int32 words, in the two on-disk layouts Bitsmith writes.

GPTQ (v1, as AutoGPTQ/GPTQModel/transformers read it): values form one little-endian bit stream per
column, value j at bit `bits * j`. For 2/4/8 bits a value never crosses a word; for 3 bits 32 values
fill exactly 3 words and values 10 and 21 straddle a word boundary. `qweight` packs along the input
dim ([in, out] -> [in*bits/32, out]); `qzeros` packs along the output dim ([groups, out] ->
[groups, out*bits/32]).

AWQ GEMM (AutoAWQ's "gemm" version, 4 bits only): packs along the output dim, 8 values a word, in the
interleaved order 0,2,4,6,1,3,5,7: nibble i of word c holds output column 8c + AWQ_ORDER[i].

Words are stored as int32 (two's complement), as the formats require; the arithmetic runs in int64.
"""

from __future__ import annotations

from math import gcd

import torch

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
AWQ_REVERSE_ORDER = tuple(AWQ_ORDER.index(k) for k in range(8))  # (0, 4, 1, 5, 2, 6, 3, 7)
GPTQ_BITS = (2, 3, 4, 8)


def _chunk(bits: int) -> tuple[int, int]:
    """(values, words) of the smallest run of values that fills whole words."""
    if bits not in GPTQ_BITS:
        raise ValueError(f"cannot pack {bits}-bit values; supported: {GPTQ_BITS}")
    lcm = bits * 32 // gcd(bits, 32)
    return lcm // bits, lcm // 32


def _to_int32(words: torch.Tensor) -> torch.Tensor:
    """Unsigned 32-bit values held in int64 -> the same bits as int32."""
    return (words - ((words >> 31) & 1) * (1 << 32)).to(torch.int32)


def pack_rows(values: torch.Tensor, bits: int) -> torch.Tensor:
    """[n, m] integers in [0, 2**bits) -> [n*bits/32, m] int32, packed down each column."""
    per, words_per = _chunk(bits)
    n = values.shape[0]
    if n % per:
        raise ValueError(f"{n} rows cannot be packed at {bits} bits: need a multiple of {per}")
    v = values.to(torch.int64).reshape(n // per, per, *values.shape[1:])
    words = torch.zeros((n // per, words_per, *values.shape[1:]), dtype=torch.int64, device=values.device)
    for j in range(per):
        word, offset = divmod(j * bits, 32)
        words[:, word] |= (v[:, j] << offset) & 0xFFFFFFFF
        if offset + bits > 32:  # the high bits spill into the next word (3-bit only)
            words[:, word + 1] |= v[:, j] >> (32 - offset)
    return _to_int32(words.reshape(n // per * words_per, *values.shape[1:]))


def unpack_rows(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """Inverse of pack_rows: [n*bits/32, m] int32 -> [n, m] int32 values."""
    per, words_per = _chunk(bits)
    rows = packed.shape[0]
    if rows % words_per:
        raise ValueError(f"{rows} packed rows are not whole {bits}-bit chunks of {words_per} words")
    w = (packed.to(torch.int64) & 0xFFFFFFFF).reshape(rows // words_per, words_per, *packed.shape[1:])
    mask = (1 << bits) - 1
    out = []
    for j in range(per):
        word, offset = divmod(j * bits, 32)
        value = w[:, word] >> offset
        if offset + bits > 32:
            value = value | (w[:, word + 1] << (32 - offset))
        out.append(value & mask)
    return torch.stack(out, dim=1).reshape(rows // words_per * per, *packed.shape[1:]).to(torch.int32)


def pack_cols(values: torch.Tensor, bits: int) -> torch.Tensor:
    """[m, n] -> [m, n*bits/32]: the same bit stream along each row (GPTQ qzeros)."""
    return pack_rows(values.t(), bits).t().contiguous()


def unpack_cols(packed: torch.Tensor, bits: int) -> torch.Tensor:
    return unpack_rows(packed.t(), bits).t().contiguous()


def pack_awq(values: torch.Tensor) -> torch.Tensor:
    """[rows, out] 4-bit integers -> [rows, out/8] int32 in AWQ's interleaved order."""
    rows, out = values.shape
    if out % 8:
        raise ValueError(f"AWQ packs 8 output columns a word; {out} is not a multiple of 8")
    v = values.to(torch.int64).reshape(rows, out // 8, 8)[:, :, list(AWQ_ORDER)]
    shifts = torch.arange(0, 32, 4, dtype=torch.int64, device=values.device)
    return _to_int32(((v & 0xF) << shifts).sum(-1))


def unpack_awq(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of pack_awq: [rows, out/8] int32 -> [rows, out] int32 values."""
    rows, cols = packed.shape
    shifts = torch.arange(0, 32, 4, dtype=torch.int64, device=packed.device)
    nibbles = (packed.to(torch.int64)[:, :, None] >> shifts) & 0xF  # nibble i = column AWQ_ORDER[i]
    return nibbles[:, :, list(AWQ_REVERSE_ORDER)].reshape(rows, cols * 8).to(torch.int32)
