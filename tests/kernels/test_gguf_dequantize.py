"""Dequantization against gguf.quants, and the error each type is allowed to make."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as QT

from bitsmith import kernels
from bitsmith.kernels import ggml_reference, ggml_vectorized

from .gguf_cases import ALL_TYPES, BLOCK_TYPES, edge_cases, gguf_dequantize_reference, gguf_quantize_reference

CASES = edge_cases()
IMPLEMENTATIONS = {"reference": ggml_reference.dequantize, "vectorized": ggml_vectorized.dequantize}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("qtype", ALL_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_matches_gguf_dequantize(impl, qtype, case):
    data = gguf_quantize_reference(CASES[case], qtype)
    ours = IMPLEMENTATIONS[impl](torch.from_numpy(data).reshape(-1, data.shape[-1]), qtype, "cpu")
    expected = gguf_dequantize_reference(data, qtype)
    assert ours.dtype == torch.float32 and ours.shape == expected.shape
    np.testing.assert_array_equal(ours.numpy().view(np.uint32), expected.view(np.uint32))  # NaN-safe


# Worst |x - dequantize(quantize(x))| per block, in units of the block's step d, with room for
# the fp16 rounding of d (and of the minimum, for the _1 types). Q4_0/Q5_0 may lose a whole
# step: the extreme opposite the scale's sign clips from +8 (+16) to +7 (+15).
STEP = {QT.Q8_0: ("absmax", 127, 0.57), QT.Q4_0: ("absmax", 8, 1.01), QT.Q5_0: ("absmax", 16, 1.01),
        QT.Q4_1: ("range", 15, 0.51), QT.Q5_1: ("range", 31, 0.52)}


@pytest.mark.parametrize("qtype", BLOCK_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("case", ["normal_576", "wide_4096", "outlier", "negative_max", "ties"])
def test_round_trip_error_is_within_one_step(qtype, case):
    x = CASES[case].float()
    if case == "outlier":
        x = x[:2]  # row 2's scale overflows fp16 by design
    y = kernels.gguf_dequantize(kernels.gguf_quantize(x, qtype), qtype)
    blocks, err = x.reshape(-1, 32), (x - y).abs().reshape(-1, 32)
    kind, levels, allowed = STEP[qtype]
    if kind == "absmax":
        d = blocks.abs().amax(1) / levels
        slack = 0
    else:
        d = (blocks.amax(1) - blocks.amin(1)) / levels
        slack = blocks.amin(1).abs() * 2.0**-10
    assert torch.all(err.amax(1) <= allowed * d + slack + 1e-30)


@pytest.mark.parametrize("qtype,relative", [(QT.F16, 2.0**-11), (QT.BF16, 2.0**-8), (QT.F32, 0.0)],
                         ids=["F16", "BF16", "F32"])
def test_float_types_round_trip_within_half_an_ulp(qtype, relative):
    x = CASES["normal_576"]
    y = kernels.gguf_dequantize(kernels.gguf_quantize(x, qtype), qtype)
    assert torch.all((x - y).abs() <= x.abs() * relative)


def test_dequantize_accepts_reader_style_inputs():
    x = CASES["normal_576"][:4]
    bf16_bytes = kernels.gguf_quantize(x, QT.BF16)
    expected = gguf_dequantize_reference(bf16_bytes, QT.BF16)
    as_uint16 = bf16_bytes.view(np.uint16)
    read_only = bf16_bytes.copy()
    read_only.flags.writeable = False
    for data in (bf16_bytes, as_uint16, read_only, torch.from_numpy(bf16_bytes), x.to(torch.bfloat16)):
        np.testing.assert_array_equal(kernels.gguf_dequantize(data, "BF16").numpy(), expected)
    f16_as_bytes = kernels.gguf_quantize(x, QT.F16).view(np.uint8)
    np.testing.assert_array_equal(kernels.gguf_dequantize(f16_as_bytes, "F16").numpy(), x.half().float().numpy())
    with pytest.raises(ValueError, match="whole blocks"):
        kernels.gguf_dequantize(np.zeros((2, 35), np.uint8), "Q8_0")
