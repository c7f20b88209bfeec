"""Inputs that stress GGML block quantizers, and gguf.quants as the oracle."""

from __future__ import annotations

import platform

import numpy as np
import torch
from gguf import GGMLQuantizationType as QT
from gguf import quants

BLOCK_TYPES = [QT.Q8_0, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1]
FLOAT_TYPES = [QT.F32, QT.F16, QT.BF16]
ALL_TYPES = BLOCK_TYPES + FLOAT_TYPES
# ggml stores 0 where 1/d overflows; numpy gets there through x86's float->int conversion.
X86 = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686"}


def gguf_quantize_reference(x: torch.Tensor, qtype: QT) -> np.ndarray:
    with np.errstate(all="ignore"):  # outliers overflow fp16 scales on purpose
        return quants.quantize(x.float().numpy(), qtype)


def gguf_dequantize_reference(data: np.ndarray, qtype: QT) -> np.ndarray:
    with np.errstate(all="ignore"):
        return quants.dequantize(data, qtype)


def same_bytes(ours: np.ndarray, expected: np.ndarray) -> bool:
    return (ours.dtype == expected.dtype and ours.shape == expected.shape
            and np.array_equal(ours.view(np.uint8), expected.view(np.uint8)))


def _ties() -> torch.Tensor:
    """Blocks whose scale is a power of two for one type, so x/d lands exactly on a tie.

    For each type: the extremes that make d = 1 (Q8_0: 127; Q4_0: -8; Q5_0: -16; Q4_1: 0..15;
    Q5_1: 0..31), the other 30 values half-integers inside; then the same scaled by 2^-3 and
    2^5, and the next float above and below every non-extreme value.
    """
    g = torch.Generator().manual_seed(7)
    rows = []
    for extremes, low, high in (([127.0], -127, 126), ([-8.0], -8, 7), ([-16.0], -16, 15),
                                ([0.0, 15.0], 0, 14), ([0.0, 31.0], 0, 30)):
        body = torch.randint(low, high + 1, (32 - len(extremes),), generator=g) + 0.5
        block = torch.cat([torch.tensor(extremes), body])
        for scale in (1.0, 2.0**-3, 2.0**5):
            scaled = block * scale
            rows.append(scaled)
            for direction in (float("inf"), float("-inf")):
                nudged = torch.nextafter(scaled, torch.full_like(scaled, direction))
                nudged[: len(extremes)] = scaled[: len(extremes)]
                rows.append(nudged)
    just_below_half = torch.full((32,), 0.49999997) * torch.tensor([1.0, -1.0] * 16)
    just_below_half[0] = 127.0  # Q8_0 d = 1: C roundf() gives 0 here, floor(x + 0.5) gives 1
    rows.append(just_below_half)
    return torch.stack(rows)


def edge_cases() -> dict[str, torch.Tensor]:
    """name -> 2-D float tensor, last dimension a multiple of 32 (NaN-free)."""
    g = torch.Generator().manual_seed(1234)
    normal = torch.randn(16, 576, generator=g)

    outlier = torch.randn(8, 576, generator=g) * 0.02
    outlier[0, 7] = 40.0
    outlier[1, 100] = -3000.0
    outlier[2, 300] = 1e7  # its Q8_0 scale overflows fp16 to inf, as in ggml
    negative_max = torch.rand(4, 64, generator=g)
    negative_max[:, ::32] = -2.0  # largest magnitude negative: Q4_0/Q5_0 scale positive

    equal_magnitudes = torch.randint(-3, 4, (8, 576), generator=g).float()  # +a and -a tie
    equal_magnitudes[0, :32] = torch.tensor([-3.0, 3.0] * 16)
    equal_magnitudes[0, 32:64] = torch.tensor([3.0, -3.0] * 16)

    zeros = torch.zeros(4, 64)
    zeros[1] = -0.0
    zeros[2, 33] = -0.0
    zeros[3, 40] = 5.0  # zero block next to a non-zero one
    constant = torch.full((2, 64), 0.75)
    constant[1] = -1.25

    return {
        "normal_576": normal,
        "wide_4096": torch.randn(4, 4096, generator=g) * 0.05,
        "outlier": outlier,
        "negative_max": negative_max,
        "equal_magnitudes": equal_magnitudes,
        "ties": _ties(),
        "zeros_and_signed_zeros": zeros,
        "constant_blocks": constant,
        "tiny_1e-30": torch.randn(4, 64, generator=g) * 1e-30,
        "small_subnormal_scale_1e-37": torch.randn(4, 64, generator=g) * 1e-37,
        "large_1e30": torch.randn(2, 64, generator=g) * 1e30,
        "fp16_input": torch.randn(8, 576, generator=g).to(torch.float16),
        "bf16_input": torch.randn(8, 576, generator=g).to(torch.bfloat16),
    }


def subnormal_blocks() -> torch.Tensor:
    """Blocks so small that 1/d overflows: ggml stores zero quants (x86 conversion of inf/NaN)."""
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(5)) * 1e-40
    x[0, :4] = torch.tensor([1e-45, -1e-45, 0.0, -0.0])
    return x


def nan_payloads() -> torch.Tensor:
    """NaNs of both signs, quiet and signalling, plus neighbours of infinity (BF16 only)."""
    bits = torch.tensor([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FBFFFFF, 0x7FFFFFFF,
                         0xFFFFFFFF, 0x7FC0FFFF, 0x7F800000, 0xFF800000, 0x7F7FFFFF, 0x7F7F8000],
                        dtype=torch.int64)
    return (bits - (bits >= 2**31) * 2**32).to(torch.int32).view(torch.float32).reshape(1, -1)
