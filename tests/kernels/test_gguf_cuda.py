"""The same bytes on a CUDA GPU (skipped where torch sees none)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as QT

from bitsmith import kernels

from .gguf_cases import (ALL_TYPES, edge_cases, gguf_dequantize_reference, gguf_quantize_reference,
                         nan_payloads, same_bytes)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")

CASES = edge_cases()


def test_cuda_selects_the_vectorized_kernel_on_the_gpu():
    choice = kernels.select("gguf_quantize", "cuda", qtype=QT.Q8_0, dtype=torch.float32)
    assert (choice.name, choice.device, choice.skipped) == ("torch-vectorized", "cuda", ())


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("qtype", ALL_TYPES, ids=lambda t: t.name)
def test_cuda_matches_gguf_quants(qtype, case):
    x = CASES[case]
    data = gguf_quantize_reference(x, qtype)
    for source in (x, x.cuda()):  # a CPU tensor is moved chunk by chunk
        assert same_bytes(kernels.gguf_quantize(source, qtype, device="cuda"), data)
    ours = kernels.gguf_dequantize(data, qtype, device="cuda")
    assert ours.device.type == "cuda"
    np.testing.assert_array_equal(ours.cpu().numpy().view(np.uint32), gguf_dequantize_reference(data, qtype).view(np.uint32))


@pytest.mark.parametrize("qtype", ALL_TYPES, ids=lambda t: t.name)
def test_cuda_reference_matches_gguf_quants(qtype):
    from bitsmith.kernels import ggml_reference

    x = CASES["ties"]
    assert same_bytes(ggml_reference.quantize(x, qtype, "cuda").cpu().numpy(), gguf_quantize_reference(x, qtype))


def test_cuda_bf16_nan_payloads():
    x = nan_payloads()
    assert same_bytes(kernels.gguf_quantize(x, QT.BF16, device="cuda"), gguf_quantize_reference(x, QT.BF16))
