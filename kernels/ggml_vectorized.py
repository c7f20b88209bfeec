"""Fast GGML block quantizers: same bytes as ggml_reference, fewer passes over memory.

Device-agnostic torch (CPU or CUDA). What makes it faster than the reference:
  * blocks are processed in chunks that stay in cache, written straight into one preallocated
    output, so temporaries never grow with the tensor;
  * the block's extremes come from amax/amin (argmax only for the rare blocks where the
    positive and negative extremes tie and ggml's "first one wins" matters);
  * Q5's 32 high bits are gathered by shifting whole int64 words, 8 values at a time;
  * float->int conversion does the truncation, and Q8_0's round-half-away-from-zero is
    trunc(v + sign(v) * 0.49999997), exact for every float32 |v| <= 130 (checked exhaustively;
    plain trunc(v + 0.5) would round 0.49999997 up);
  * BF16 uses torch's own float->bf16 cast (one pass) once a probe has shown that, on this
    device, it rounds like ggml (subnormals, ties, overflow); NaNs are then patched to ggml's
    quiet NaN. Where the probe fails, the same rule runs in int32 bit arithmetic.
The op contract is the one described in ggml_reference.
"""

from __future__ import annotations

from functools import cache

import torch
from gguf import GGMLQuantizationType as QT

from . import ggml_reference
from .ggml_reference import divide, inverse, signed_absmax
from .ggml_types import BLOCK, type_size

CHUNK_BLOCKS = 1 << 14  # 16384 blocks = 512 Ki values = 2 MiB of float32 per chunk
_JUST_BELOW_HALF = 0.49999997  # nextafter(0.5, 0) in float32


def quantize(x: torch.Tensor, qtype: QT, device: str = "cpu") -> torch.Tensor:
    rows, cols = x.shape
    if qtype in _ELEMENT_QUANTIZERS:
        out_dtype, kernel = _ELEMENT_QUANTIZERS[qtype]
        out = torch.empty((rows * cols,), dtype=out_dtype, device=device)
        flat, step = x.reshape(-1), CHUNK_BLOCKS * BLOCK
        for start in range(0, flat.numel(), step):
            kernel(flat[start:start + step].to(device=device, dtype=torch.float32), out[start:start + step])
        if qtype == QT.BF16:  # gguf hands BF16 over as raw bytes
            return out.view(torch.uint8).view(rows, 2 * cols)
        return out.view(rows, cols)
    size = type_size(qtype)[1]
    blocks = x.reshape(-1, BLOCK)
    out = torch.empty((blocks.shape[0], size), dtype=torch.uint8, device=device)
    for start in range(0, blocks.shape[0], CHUNK_BLOCKS):
        chunk = blocks[start:start + CHUNK_BLOCKS].to(device=device, dtype=torch.float32)
        _BLOCK_QUANTIZERS[qtype](chunk, out[start:start + CHUNK_BLOCKS])  # never writes `chunk`
    return out.view(rows, cols // BLOCK * size)


def dequantize(data: torch.Tensor, qtype: QT, device: str = "cpu") -> torch.Tensor:
    if qtype in _ELEMENT_QUANTIZERS:  # a single conversion: nothing to gain over the reference
        return ggml_reference.dequantize(data, qtype, device)
    rows, nbytes = data.shape
    size = type_size(qtype)[1]
    blocks = data.reshape(-1, size)
    out = torch.empty((blocks.shape[0], BLOCK), dtype=torch.float32, device=device)
    for start in range(0, blocks.shape[0], CHUNK_BLOCKS):
        chunk = blocks[start:start + CHUNK_BLOCKS].to(device)
        _BLOCK_DEQUANTIZERS[qtype](chunk, out[start:start + CHUNK_BLOCKS])
    return out.view(rows, nbytes // size * BLOCK)


# --- quantize: each writes one chunk of blocks into `out` (uint8 [n, type_size]) ----------------

def _q8_0(b: torch.Tensor, out: torch.Tensor) -> None:
    d = divide(b.abs().amax(dim=1, keepdim=True), 127)
    inv = inverse(d)
    v = b * inv
    v += torch.sign(v).mul_(_JUST_BELOW_HALF)  # sign() is twice as fast as copysign() here
    _zero_where_scale_overflowed(v, inv)
    out[:, 2:].view(torch.int8).copy_(v)  # the conversion truncates
    out[:, :2].view(torch.float16).copy_(d)


def _q4_0(b: torch.Tensor, out: torch.Tensor) -> None:
    _symmetric(b, out, levels=16)


def _q5_0(b: torch.Tensor, out: torch.Tensor) -> None:
    _symmetric(b, out, levels=32)


def _q4_1(b: torch.Tensor, out: torch.Tensor) -> None:
    _affine(b, out, levels=16)


def _q5_1(b: torch.Tensor, out: torch.Tensor) -> None:
    _affine(b, out, levels=32)


def _symmetric(b: torch.Tensor, out: torch.Tensor, levels: int) -> None:
    """Q4_0 / Q5_0: d = signed extreme / -(levels/2); q = trunc(x/d + levels/2 + 0.5)."""
    d = divide(_signed_extreme(b), -(levels // 2))
    inv = inverse(d)
    q = b * inv
    q += levels // 2 + 0.5
    q.clamp_(0, levels - 1)
    _zero_where_scale_overflowed(q, inv)
    out[:, :2].view(torch.float16).copy_(d)
    _pack(q.to(torch.uint8), out[:, 2:], levels)


def _affine(b: torch.Tensor, out: torch.Tensor, levels: int) -> None:
    """Q4_1 / Q5_1: d = (max - min) / (levels-1); q = trunc((x - min)/d + 0.5)."""
    low, high = b.amin(dim=1, keepdim=True), b.amax(dim=1, keepdim=True)
    d = divide(high - low, levels - 1)
    inv = inverse(d)
    q = b - low
    q *= inv
    q += 0.5
    q.clamp_(0, levels - 1)
    _zero_where_scale_overflowed(q, inv)
    out[:, :2].view(torch.float16).copy_(d)
    out[:, 2:4].view(torch.float16).copy_(low)
    _pack(q.to(torch.uint8), out[:, 4:], levels)


def _signed_extreme(b: torch.Tensor) -> torch.Tensor:
    low, high = b.amin(dim=1, keepdim=True), b.amax(dim=1, keepdim=True)
    extreme = torch.where(high > -low, high, low)
    # Equal magnitudes (all-zero blocks included): ggml keeps the first in the block.
    tie = (high == -low).squeeze(1)
    if tie.any():
        extreme[tie] = signed_absmax(b[tie])
    return extreme


def _pack(q: torch.Tensor, out: torch.Tensor, levels: int) -> None:
    """uint8 values -> [qh (4 bytes, 5-bit types only)] + 16 bytes of nibbles."""
    if levels == 32:
        out[:, :4] = _gather_bits(q >> 4)
        out = out[:, 4:]
        q &= 0x0F
    torch.bitwise_or(q[:, :16], q[:, 16:] << 4, out=out)


def _gather_bits(bits: torch.Tensor) -> torch.Tensor:
    """[n, 32] bytes of 0/1 -> [n, 4] bytes, value j at bit j%8 of byte j//8."""
    # Each int64 word holds 8 of the bytes (value i at bit 8i: torch only runs little-endian);
    # three shift-ORs slide them together into the word's low byte.
    x = bits.view(torch.int64)
    x = x | (x >> 7)
    x = x | (x >> 14)
    x = x | (x >> 28)
    return (x & 0xFF).to(torch.uint8)


def _spread_bits(packed: torch.Tensor) -> torch.Tensor:
    """The inverse of _gather_bits: [n, 4] bytes -> [n, 32] bytes of 0/1."""
    x = packed.to(torch.int64)
    x = (x | (x << 28)) & 0x0000000F0000000F
    x = (x | (x << 14)) & 0x0003000300030003
    x = (x | (x << 7)) & 0x0101010101010101
    return x.view(torch.uint8).view(-1, 32)


def _zero_where_scale_overflowed(q: torch.Tensor, inv: torch.Tensor) -> None:
    # Subnormal d: 1/d is inf and the block's values are +-inf/NaN, which ggml stores as 0.
    overflowed = torch.isinf(inv)
    if overflowed.any():
        q.masked_fill_(overflowed, 0.0)


# --- dequantize: each writes float32 [n, 32] into `out` ------------------------------------------

def _dq8_0(b: torch.Tensor, out: torch.Tensor) -> None:
    out.copy_(b[:, 2:].view(torch.int8))
    out *= _scale(b, 0)


def _dq4_0(b: torch.Tensor, out: torch.Tensor) -> None:
    _unpack(b[:, 2:], out, levels=16)
    out -= 8
    out *= _scale(b, 0)


def _dq5_0(b: torch.Tensor, out: torch.Tensor) -> None:
    _unpack(b[:, 2:], out, levels=32)
    out -= 16
    out *= _scale(b, 0)


def _dq4_1(b: torch.Tensor, out: torch.Tensor) -> None:
    _unpack(b[:, 4:], out, levels=16)
    out *= _scale(b, 0)
    out += _scale(b, 2)


def _dq5_1(b: torch.Tensor, out: torch.Tensor) -> None:
    _unpack(b[:, 4:], out, levels=32)
    out *= _scale(b, 0)
    out += _scale(b, 2)


def _scale(b: torch.Tensor, offset: int) -> torch.Tensor:
    return b[:, offset:offset + 2].view(torch.float16).to(torch.float32)


def _unpack(packed: torch.Tensor, out: torch.Tensor, levels: int) -> None:
    qs = packed[:, -16:]
    if levels == 32:
        high = _spread_bits(packed[:, :4]) << 4
        out[:, :16] = (qs & 0x0F) | high[:, :16]
        out[:, 16:] = (qs >> 4) | high[:, 16:]
    else:
        out[:, :16] = qs & 0x0F
        out[:, 16:] = qs >> 4


# --- element types -------------------------------------------------------------------------------

def _copy(x: torch.Tensor, out: torch.Tensor) -> None:
    out.copy_(x)  # into a float16 output this is the IEEE round to nearest even gguf does


def _bf16(x: torch.Tensor, out: torch.Tensor) -> None:
    """x float32 -> out int16 holding the bf16 bits."""
    if not _native_bf16_rounds_like_ggml(x.device.type):
        out.copy_(_bf16_bits(x))
        return
    out.view(torch.bfloat16).copy_(x)
    if _has_nan(x):  # torch writes one canonical NaN; ggml keeps the sign and top payload, quiet
        nan = torch.isnan(x)
        out[nan] = ((x.view(torch.int32)[nan] >> 16) | 0x0040).to(torch.int16)


def _has_nan(x: torch.Tensor) -> bool:
    return bool(torch.isnan(x.amax()))  # amax propagates NaN: one reduction, no mask


def _bf16_bits(x: torch.Tensor) -> torch.Tensor:
    """ggml's float->bf16 rule in int32 arithmetic: quiet NaNs, round to nearest even."""
    n = x.view(torch.int32)
    if _has_nan(x):  # zeroing the low half first also keeps the sum below from overflowing
        n = torch.where(torch.isnan(x), (n & -0x10000) | 0x00400000, n)
    r = n >> 16
    r &= 1
    r += 0x7FFF
    r += n
    r >>= 16  # arithmetic: the bf16 bits as a signed 16-bit number
    return r.to(torch.int16)


@cache
def _native_bf16_rounds_like_ggml(device: str) -> bool:
    # Some bf16 conversion instructions flush subnormals; check the cases where a cast could
    # differ: all exponents with tie, just-below/above-tie and odd/even mantissas, both signs.
    high = torch.arange(0, 0x7F81, dtype=torch.int32, device=device) << 16
    low = torch.tensor([0, 1, 0x7FFF, 0x8000, 0x8001, 0x18000, 0xFFFF], dtype=torch.int32, device=device)
    bits = (high.unsqueeze(1) | low).reshape(-1)
    probe = torch.cat([bits, bits | -0x80000000]).view(torch.float32)
    probe = probe[~torch.isnan(probe)]
    return torch.equal(probe.to(torch.bfloat16).view(torch.int16), _bf16_bits(probe))


_ELEMENT_QUANTIZERS = {  # type -> (output dtype, kernel writing one chunk into the output)
    QT.F32: (torch.float32, _copy),
    QT.F16: (torch.float16, _copy),
    QT.BF16: (torch.int16, _bf16),
}
_BLOCK_QUANTIZERS = {QT.Q8_0: _q8_0, QT.Q4_0: _q4_0, QT.Q4_1: _q4_1, QT.Q5_0: _q5_0, QT.Q5_1: _q5_1}
_BLOCK_DEQUANTIZERS = {QT.Q8_0: _dq8_0, QT.Q4_0: _dq4_0, QT.Q4_1: _dq4_1, QT.Q5_0: _dq5_0, QT.Q5_1: _dq5_1}
