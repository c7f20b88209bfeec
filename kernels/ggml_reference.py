"""Reference GGML block quantizers in plain torch: the ground truth for every fast path.

Each type is written for reading, one step per line, on a [n_blocks, 32] float32 tensor. The
arithmetic is ggml's (as mirrored by gguf.quants), so the bytes match it bit for bit:
  * every step is a separate float32 operation (no fused multiply-add, no reciprocal in place of a
    division), in ggml's order;
  * the scale is computed in float32 and stored as IEEE half, little-endian;
  * Q8_0 rounds half away from zero; the 4/5-bit types add an offset (+8.5, +16.5 or +0.5) and
    truncate;
  * 4-bit values are packed two per byte: value j in the low nibble, value j+16 in the high one;
    Q5 types keep bit 4 of value j in bit j of a little-endian uint32.
Layouts (bytes per block): Q8_0 d|qs[32]=34, Q4_0 d|qs[16]=18, Q4_1 d|m|qs[16]=20,
Q5_0 d|qh[4]|qs[16]=22, Q5_1 d|m|qh[4]|qs[16]=24.

Op contract (shared with ggml_vectorized): quantize(x[rows, cols], qtype, device) returns, on
`device`, uint8 [rows, bytes] (float16/float32 [rows, cols] for F16/F32); dequantize(data, qtype,
device) returns float32 [rows, cols] on `device`.
"""

from __future__ import annotations

import torch
from gguf import GGMLQuantizationType as QT

from .ggml_types import BLOCK, type_size


def quantize(x: torch.Tensor, qtype: QT, device: str = "cpu") -> torch.Tensor:
    x = x.to(device=device, dtype=torch.float32)
    if qtype in _FLOAT_QUANTIZERS:
        return _FLOAT_QUANTIZERS[qtype](x)
    rows, cols = x.shape
    out = _QUANTIZERS[qtype](x.reshape(-1, BLOCK))
    return out.reshape(rows, cols // BLOCK * type_size(qtype)[1])


def dequantize(data: torch.Tensor, qtype: QT, device: str = "cpu") -> torch.Tensor:
    data = data.to(device)
    if qtype in _FLOAT_DEQUANTIZERS:
        return _FLOAT_DEQUANTIZERS[qtype](data)
    rows, nbytes = data.shape
    values = _DEQUANTIZERS[qtype](data.reshape(-1, type_size(qtype)[1]))
    return values.reshape(rows, nbytes // type_size(qtype)[1] * BLOCK)


# --- shared steps ------------------------------------------------------------------------------

def divide(x: torch.Tensor, k: float) -> torch.Tensor:
    # A tensor divisor, not a Python number: CUDA turns "x / number" into x * (1/number), which
    # can differ from ggml's division in the last bit.
    return x / torch.tensor(k, dtype=x.dtype, device=x.device)


def inverse(d: torch.Tensor) -> torch.Tensor:
    """ggml's `id = d ? 1/d : 0`."""
    return torch.where(d == 0, torch.zeros_like(d), 1 / d)


def zero_where_scale_overflowed(q: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    # A subnormal d makes 1/d infinite, so the scaled values are +-inf or NaN. ggml's C and
    # numpy on x86 turn those into integer 0; doing it explicitly makes every device agree.
    return torch.where(torch.isinf(inv), torch.zeros_like(q), q)


def round_half_away(v: torch.Tensor) -> torch.Tensor:
    """C roundf(): halves go away from zero (torch.round goes to even)."""
    a = v.abs()
    whole = a.floor()
    return torch.sign(v) * (whole + (a - whole >= 0.5))


def signed_absmax(blocks: torch.Tensor) -> torch.Tensor:
    """The value of largest magnitude, sign kept; on a tie, the first one (as argmax does)."""
    return blocks.gather(1, blocks.abs().argmax(dim=1, keepdim=True))


def half_bytes(v: torch.Tensor) -> torch.Tensor:
    """[n, 1] float32 -> [n, 2] bytes of the IEEE half it rounds to (round to nearest even)."""
    return v.to(torch.float16).view(torch.uint8)


def half_from_bytes(b: torch.Tensor) -> torch.Tensor:
    return b.contiguous().view(torch.float16).to(torch.float32)


def pack_nibbles(q: torch.Tensor) -> torch.Tensor:
    """[n, 32] values < 16 -> [n, 16] bytes: value j low, value j+16 high."""
    q = q.to(torch.uint8)
    return q[:, :16] | (q[:, 16:] << 4)


def unpack_nibbles(qs: torch.Tensor) -> torch.Tensor:
    return torch.cat([qs & 0x0F, qs >> 4], dim=1)


def pack_high_bits(q: torch.Tensor) -> torch.Tensor:
    """Bit 4 of each of 32 values -> a little-endian uint32 with value j's bit at bit j."""
    bits = (q.to(torch.int64) >> 4) & 1
    word = (bits << torch.arange(32, device=q.device)).sum(dim=1, keepdim=True)
    return torch.cat([(word >> (8 * k)) & 0xFF for k in range(4)], dim=1).to(torch.uint8)


def unpack_high_bits(qh: torch.Tensor) -> torch.Tensor:
    shifts = torch.arange(8, device=qh.device, dtype=torch.uint8)
    return ((qh.unsqueeze(-1) >> shifts) & 1).reshape(-1, 32)


# --- block types -------------------------------------------------------------------------------

def quantize_q8_0(blocks: torch.Tensor) -> torch.Tensor:
    d = divide(blocks.abs().amax(dim=1, keepdim=True), 127)
    inv = inverse(d)
    q = zero_where_scale_overflowed(round_half_away(blocks * inv), inv)
    return torch.cat([half_bytes(d), q.to(torch.int8).view(torch.uint8)], dim=1)


def quantize_q4_0(blocks: torch.Tensor) -> torch.Tensor:
    # The signed extreme maps to -8, so the full range -8..7 is used on the side it lies on.
    d = divide(signed_absmax(blocks), -8)
    inv = inverse(d)
    q = torch.trunc(blocks * inv + 8.5).clamp(0, 15)
    q = zero_where_scale_overflowed(q, inv)
    return torch.cat([half_bytes(d), pack_nibbles(q)], dim=1)


def quantize_q5_0(blocks: torch.Tensor) -> torch.Tensor:
    d = divide(signed_absmax(blocks), -16)
    inv = inverse(d)
    q = torch.trunc(blocks * inv + 16.5).clamp(0, 31)
    q = zero_where_scale_overflowed(q, inv).to(torch.uint8)
    return torch.cat([half_bytes(d), pack_high_bits(q), pack_nibbles(q & 0x0F)], dim=1)


def quantize_q4_1(blocks: torch.Tensor) -> torch.Tensor:
    low = blocks.amin(dim=1, keepdim=True)
    d = divide(blocks.amax(dim=1, keepdim=True) - low, 15)
    inv = inverse(d)
    q = torch.trunc((blocks - low) * inv + 0.5).clamp(0, 15)
    q = zero_where_scale_overflowed(q, inv)
    return torch.cat([half_bytes(d), half_bytes(low), pack_nibbles(q)], dim=1)


def quantize_q5_1(blocks: torch.Tensor) -> torch.Tensor:
    low = blocks.amin(dim=1, keepdim=True)
    d = divide(blocks.amax(dim=1, keepdim=True) - low, 31)
    inv = inverse(d)
    q = torch.trunc((blocks - low) * inv + 0.5).clamp(0, 31)
    q = zero_where_scale_overflowed(q, inv).to(torch.uint8)
    return torch.cat([half_bytes(d), half_bytes(low), pack_high_bits(q), pack_nibbles(q & 0x0F)], dim=1)


def dequantize_q8_0(b: torch.Tensor) -> torch.Tensor:
    return b[:, 2:].view(torch.int8).to(torch.float32) * half_from_bytes(b[:, :2])


def dequantize_q4_0(b: torch.Tensor) -> torch.Tensor:
    return half_from_bytes(b[:, :2]) * (unpack_nibbles(b[:, 2:]).to(torch.float32) - 8)


def dequantize_q5_0(b: torch.Tensor) -> torch.Tensor:
    q = unpack_nibbles(b[:, 6:]) | (unpack_high_bits(b[:, 2:6]) << 4)
    return half_from_bytes(b[:, :2]) * (q.to(torch.float32) - 16)


def dequantize_q4_1(b: torch.Tensor) -> torch.Tensor:
    q = unpack_nibbles(b[:, 4:]).to(torch.float32)
    return half_from_bytes(b[:, :2]) * q + half_from_bytes(b[:, 2:4])


def dequantize_q5_1(b: torch.Tensor) -> torch.Tensor:
    q = (unpack_nibbles(b[:, 8:]) | (unpack_high_bits(b[:, 4:8]) << 4)).to(torch.float32)
    return half_from_bytes(b[:, :2]) * q + half_from_bytes(b[:, 2:4])


# --- element types -----------------------------------------------------------------------------

def quantize_bf16(x: torch.Tensor) -> torch.Tensor:
    """ggml_compute_fp32_to_bf16: NaN made quiet (sign and top payload kept), else nearest-even."""
    n = x.view(torch.int32).to(torch.int64) & 0xFFFFFFFF  # the float's bits as an unsigned number
    nan = (n & 0x7FFFFFFF) > 0x7F800000
    n = torch.where(nan, (n & 0xFFFF0000) | 0x00400000, n)
    n = (n + 0x7FFF + ((n >> 16) & 1)) >> 16
    signed16 = torch.where(n >= 0x8000, n - 0x10000, n)  # same 16 bits, as int16 can hold them
    return signed16.to(torch.int16).view(torch.uint8)


def dequantize_bf16(b: torch.Tensor) -> torch.Tensor:
    return (b.contiguous().view(torch.int16).to(torch.int32) << 16).view(torch.float32)


_QUANTIZERS = {QT.Q8_0: quantize_q8_0, QT.Q4_0: quantize_q4_0, QT.Q4_1: quantize_q4_1,
               QT.Q5_0: quantize_q5_0, QT.Q5_1: quantize_q5_1}
_DEQUANTIZERS = {QT.Q8_0: dequantize_q8_0, QT.Q4_0: dequantize_q4_0, QT.Q4_1: dequantize_q4_1,
                 QT.Q5_0: dequantize_q5_0, QT.Q5_1: dequantize_q5_1}
_FLOAT_QUANTIZERS = {QT.F32: lambda x: x, QT.F16: lambda x: x.to(torch.float16), QT.BF16: quantize_bf16}
_FLOAT_DEQUANTIZERS = {QT.F32: lambda b: b.view(torch.float32), QT.F16: lambda b: b.view(torch.float16).float(),
                       QT.BF16: dequantize_bf16}
