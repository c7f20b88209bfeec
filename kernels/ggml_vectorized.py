"""Fast GGML block quantizers: same bytes as ggml_reference, fewer passes over memory.

Device-agnostic torch (CPU or CUDA). What makes it faster than the reference:
  * blocks are processed in chunks that stay in cache, written straight into one preallocated
    output, so temporaries never grow with the tensor;
  * one min/max pass gives the block's extremes (argmax only for the rare blocks where the
    positive and negative extremes tie and ggml's "first one wins" matters);
  * float->int conversion does the truncation, and Q8_0's round-half-away-from-zero is
    trunc(v + copysign(0.49999997, v)), exact for every float32 |v| <= 130 (checked exhaustively);
  * BF16 is rounded in int32 bit arithmetic, never through a float->bf16 instruction, so NaNs
    and subnormals come out as ggml writes them on every CPU and GPU.
The op contract is the one described in ggml_reference.
"""

from __future__ import annotations

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
        out_dtype, width, kernel = _ELEMENT_QUANTIZERS[qtype]
        out = torch.empty((rows * cols * width,), dtype=out_dtype, device=device)
        flat = x.reshape(-1)
        for start in range(0, flat.numel(), CHUNK_BLOCKS * BLOCK):
            chunk = flat[start:start + CHUNK_BLOCKS * BLOCK].to(device=device, dtype=torch.float32)
            out[start * width:(start + chunk.numel()) * width] = kernel(chunk)
        return out.view(rows, cols * width)
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
    low, high = torch.aminmax(b, dim=1, keepdim=True)
    d = divide(torch.maximum(high, -low).abs_(), 127)  # abs_: an all -0.0 block has scale +0
    inv = inverse(d)
    v = b * inv
    v += torch.copysign(torch.tensor(_JUST_BELOW_HALF, device=v.device), v)
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
    low, high = torch.aminmax(b, dim=1, keepdim=True)
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
    low, high = torch.aminmax(b, dim=1, keepdim=True)
    extreme = torch.where(high > -low, high, low)
    # Equal magnitudes (all-zero blocks included): ggml keeps the first in the block.
    tie = (high == -low).squeeze(1)
    if tie.any():
        extreme[tie] = signed_absmax(b[tie])
    return extreme


def _pack(q: torch.Tensor, out: torch.Tensor, levels: int) -> None:
    """uint8 values -> [qh (4 bytes, 5-bit types only)] + 16 bytes of nibbles."""
    if levels == 32:
        bits = (q >> 4).view(-1, 4, 8) << _BIT_SHIFTS.to(q.device)
        out[:, :4] = bits.sum(dim=2, dtype=torch.uint8)  # bits are disjoint: the sum is an OR
        out = out[:, 4:]
        q &= 0x0F
    torch.bitwise_or(q[:, :16], q[:, 16:] << 4, out=out)


def _zero_where_scale_overflowed(q: torch.Tensor, inv: torch.Tensor) -> None:
    # Subnormal d: 1/d is inf and the block's values are +-inf/NaN, which ggml stores as 0.
    overflowed = torch.isinf(inv)
    if overflowed.any():
        q.masked_fill_(overflowed, 0.0)


_BIT_SHIFTS = torch.arange(8, dtype=torch.uint8)


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
        high = ((packed[:, :4].unsqueeze(-1) >> _BIT_SHIFTS.to(packed.device)) & 1).view(-1, 32) << 4
        out[:, :16] = (qs & 0x0F) | high[:, :16]
        out[:, 16:] = (qs >> 4) | high[:, 16:]
    else:
        out[:, :16] = qs & 0x0F
        out[:, 16:] = qs >> 4


# --- element types -------------------------------------------------------------------------------

def _bf16(x: torch.Tensor) -> torch.Tensor:
    n = x.view(torch.int32)
    high = n >> 16  # arithmetic shift: the bf16 bits as a signed 16-bit number
    carry = ((n & 0xFFFF) + (high & 1) + 0x7FFF) >> 16  # round to nearest, ties to even
    rounded = high + carry  # cannot leave int16 range: only NaNs have high == 0x7FFF or -1
    nan = (n & 0x7FFFFFFF) > 0x7F800000
    rounded = torch.where(nan, high | 0x0040, rounded)  # quiet NaN, sign and payload top kept
    return rounded.to(torch.int16).view(torch.uint8)


_ELEMENT_QUANTIZERS = {  # type -> (output dtype, output elements per value, kernel)
    QT.F32: (torch.float32, 1, lambda x: x),
    QT.F16: (torch.float16, 1, lambda x: x),  # the copy into the float16 output rounds
    QT.BF16: (torch.uint8, 2, _bf16),
}
_BLOCK_QUANTIZERS = {QT.Q8_0: _q8_0, QT.Q4_0: _q4_0, QT.Q4_1: _q4_1, QT.Q5_0: _q5_0, QT.Q5_1: _q5_1}
_BLOCK_DEQUANTIZERS = {QT.Q8_0: _dq8_0, QT.Q4_0: _dq4_0, QT.Q4_1: _dq4_1, QT.Q5_0: _dq5_0, QT.Q5_1: _dq5_1}
