"""Our GGUF quantizers against gguf.quants, byte for byte, through every path we ship."""

from __future__ import annotations

from enum import Enum

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as QT

from bitsmith import kernels
from bitsmith.kernels import ggml_reference, ggml_vectorized

from .gguf_cases import (ALL_TYPES, BLOCK_TYPES, X86, edge_cases, gguf_quantize_reference,
                         nan_payloads, same_bytes, subnormal_blocks)

CASES = edge_cases()
IMPLEMENTATIONS = {"reference": ggml_reference.quantize, "vectorized": ggml_vectorized.quantize}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("qtype", ALL_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_matches_gguf_quants(impl, qtype, case):
    x = CASES[case]
    ours = IMPLEMENTATIONS[impl](x, qtype, "cpu").numpy()
    assert same_bytes(ours, gguf_quantize_reference(x, qtype))


@pytest.mark.parametrize("qtype", ALL_TYPES, ids=lambda t: t.name)
def test_public_entry_point_matches_gguf_quants(qtype):
    x = CASES["normal_576"]
    assert same_bytes(kernels.gguf_quantize(x, qtype), gguf_quantize_reference(x, qtype))


@pytest.mark.skipif(not X86, reason="what ggml stores for an overflowed 1/d is x86's conversion of inf/NaN")
@pytest.mark.parametrize("qtype", BLOCK_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_subnormal_blocks_match_gguf_on_x86(impl, qtype):
    x = subnormal_blocks()
    assert same_bytes(IMPLEMENTATIONS[impl](x, qtype, "cpu").numpy(), gguf_quantize_reference(x, qtype))


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_bf16_keeps_nan_sign_and_payload_like_ggml(impl):
    x = nan_payloads()
    assert same_bytes(IMPLEMENTATIONS[impl](x, QT.BF16, "cpu").numpy(), gguf_quantize_reference(x, QT.BF16))


@pytest.mark.parametrize("native_cast_trusted", [True, False])
def test_bf16_matches_gguf_on_every_exponent_with_and_without_the_native_cast(native_cast_trusted, monkeypatch):
    # The vectorized path uses torch's cast only where a probe says it rounds like ggml.
    monkeypatch.setattr(ggml_vectorized, "_native_bf16_rounds_like_ggml", lambda device: native_cast_trusted)
    bits = (torch.arange(0, 0x10000, 3, dtype=torch.int64) << 16) | 0x8000  # ties, all exponents
    bits = torch.cat([bits, bits + 1, bits - 1, bits ^ 0x8000])
    x = (bits - (bits >= 2**31) * 2**32).to(torch.int32).view(torch.float32).reshape(1, -1)
    for case in (x, nan_payloads(), CASES["normal_576"]):
        ours = ggml_vectorized.quantize(case, QT.BF16, "cpu").numpy()
        assert same_bytes(ours, gguf_quantize_reference(case, QT.BF16))


@pytest.mark.parametrize("qtype", BLOCK_TYPES + [QT.BF16, QT.F16], ids=lambda t: t.name)
def test_vectorized_equals_reference_across_chunk_boundaries(qtype, monkeypatch):
    monkeypatch.setattr(ggml_vectorized, "CHUNK_BLOCKS", 7)  # chunks end mid-row, last one short
    x = torch.randn(13, 96, generator=torch.Generator().manual_seed(3))
    ours = ggml_vectorized.quantize(x, qtype, "cpu")
    assert torch.equal(ours, ggml_reference.quantize(x, qtype, "cpu"))
    assert same_bytes(ours.numpy(), gguf_quantize_reference(x, qtype))


@pytest.mark.parametrize("qtype", [QT.Q8_0, QT.Q5_1, QT.BF16, QT.F16], ids=lambda t: t.name)
def test_shapes_and_layouts_follow_gguf(qtype):
    g = torch.Generator().manual_seed(11)
    three_d = torch.randn(2, 3, 64, generator=g)
    one_d = torch.randn(128, generator=g)
    transposed = torch.randn(64, 32, generator=g).t()  # non-contiguous
    for x in (three_d, one_d, transposed, torch.zeros(0, 64)):
        assert same_bytes(kernels.gguf_quantize(x, qtype), gguf_quantize_reference(x.contiguous(), qtype))


def test_numpy_input_and_parameter_input_are_accepted():
    x = torch.nn.Parameter(torch.randn(4, 64))
    expected = gguf_quantize_reference(x.detach(), QT.Q4_0)
    assert same_bytes(kernels.gguf_quantize(x, QT.Q4_0), expected)
    assert same_bytes(kernels.gguf_quantize(x.detach().numpy(), QT.Q4_0), expected)
    assert x.grad is None


def test_qtype_may_be_named_in_several_ways():
    class GGUFType(str, Enum):  # shaped like engine.config.GGUFType
        Q5_0 = "Q5_0"

    x = CASES["normal_576"]
    expected = gguf_quantize_reference(x, QT.Q5_0)
    for name in (QT.Q5_0, "Q5_0", "q5_0", GGUFType.Q5_0):
        assert same_bytes(kernels.gguf_quantize(x, name), expected)


def test_bad_requests_say_what_is_wrong():
    with pytest.raises(ValueError, match="multiple of 32"):
        kernels.gguf_quantize(torch.randn(2, 48), "Q8_0")
    with pytest.raises(ValueError, match="unknown GGML type"):
        kernels.gguf_quantize(torch.randn(2, 64), "Q9_9")
    with pytest.raises(kernels.KernelUnavailable, match="qtype=Q4_K is not supported"):
        kernels.gguf_quantize(torch.randn(2, 256), "Q4_K")
    with pytest.raises(kernels.KernelUnavailable, match="dtype=torch.int8 is not supported"):
        kernels.gguf_quantize(torch.ones(2, 64, dtype=torch.int8), "Q8_0")
    with pytest.raises(ValueError, match="at least one dimension"):
        kernels.gguf_quantize(torch.tensor(1.0), "F16")


def test_input_is_not_modified():
    x = CASES["outlier"].clone()
    before = x.clone()
    for qtype in ALL_TYPES:
        kernels.gguf_quantize(x, qtype)
    assert torch.equal(x, before)


def test_output_goes_straight_into_gguf_writer(tmp_path):
    from gguf import GGUFReader, GGUFWriter

    x = CASES["normal_576"]
    path = tmp_path / "t.gguf"
    writer = GGUFWriter(str(path), "llama")
    for qtype in ALL_TYPES:
        writer.add_tensor(f"w.{qtype.name}", kernels.gguf_quantize(x, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    for tensor in GGUFReader(str(path)).tensors:
        qtype = QT[tensor.name.split(".")[1]]
        assert tensor.tensor_type == qtype
        assert list(tensor.shape) == [576, 16]  # GGUF lists dimensions innermost first
        np.testing.assert_array_equal(kernels.gguf_dequantize(tensor.data, qtype).numpy(),
                                      kernels.gguf_dequantize(kernels.gguf_quantize(x, qtype), qtype).numpy())
