"""Bitsmith INT8 kernels: the per-channel quantizer, the reference linear, the W8A8 fast path
(within a measured error bound) and the tiled fallback, and their selection through the registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bitsmith.kernels import int8_cpu, int8_probe
from bitsmith.kernels.int8_cpu import MAX_IN_FEATURES, int8_linear_int_mm, int8_linear_tiled, int_mm_shape_problem
from bitsmith.kernels.int8_ops import select_int8_linear
from bitsmith.kernels.int8_reference import QMAX, dequantize, int8_linear, quantize_per_channel
from bitsmith.kernels.registry import KernelUnavailable

INT_MM_OK, INT_MM_WHY = int8_probe.int_mm_cpu_status()

# Measured on this repository's CI machine (torch 2.13 CPU, AVX-512 VNNI): with Gaussian activations
# the fast path's relative error against the reference is 0.006-0.008 for widths 64-1536, which is
# the activation rounding alone: a step of max|x|/127 (about 3.4 sigma / 127 for K = 1536), uniform
# rounding error of step/sqrt(12), relative to sigma: 0.0077. The weights are the same int8 in both
# paths, so they add nothing. Bound: twice the largest measurement.
FAST_REL_BOUND = 0.015


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tensors here are small: threads cost more than they save, and on a shared 2-core runner
    # spinning OpenMP workers make every op ten times slower.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_round_trip_within_half_a_step(dtype):
    w = (torch.randn(96, 80, generator=torch.Generator().manual_seed(1)) * 0.1).to(dtype)
    q, s = quantize_per_channel(w)
    assert q.dtype == torch.int8 and q.shape == w.shape
    assert s.dtype == torch.float32 and s.shape == (96,)
    assert int(q.min()) >= -QMAX  # -128 is never used: the grid is symmetric
    err = (dequantize(q, s) - w.float()).abs()
    # Half a step, plus the float32 rounding of q * s and of W / s.
    assert bool((err <= s[:, None] / 2 * (1 + 1e-5) + 1e-12).all())
    # The largest magnitude of each row maps to +-127 exactly.
    assert bool((q.abs().amax(dim=1) == QMAX).all())


def test_values_on_the_grid_come_back_exactly():
    gen = torch.Generator().manual_seed(2)
    s = torch.rand(16, generator=gen) * 0.01 + 1e-3
    k = torch.randint(-QMAX, QMAX + 1, (16, 40), generator=gen)
    k[:, 0] = QMAX  # so max|W| / 127 is exactly s
    w = k.float() * s[:, None]
    q, scale = quantize_per_channel(w)
    assert torch.equal(q, k.to(torch.int8))
    assert torch.equal(dequantize(q, scale), w)


def test_rounding_is_half_to_even_and_zero_rows_stay_zero():
    step = 0.5
    w = torch.tensor([[127 * step, 0.5 * step, 1.5 * step, 2.5 * step, -2.5 * step],
                      [0.0, 0.0, 0.0, 0.0, 0.0]])
    q, s = quantize_per_channel(w)
    assert q[0].tolist() == [127, 0, 2, 2, -2]
    assert q[1].tolist() == [0] * 5 and float(s[1]) == 0.0
    assert torch.equal(dequantize(q, s)[1], torch.zeros(5))


def test_quantizer_refuses_bad_weights():
    with pytest.raises(ValueError, match="2-D"):
        quantize_per_channel(torch.ones(4))
    w = torch.ones(3, 3)
    w[1, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize_per_channel(w)


def test_quantizer_leaves_its_input_alone():
    w = torch.randn(8, 8)
    before = w.clone()
    quantize_per_channel(w)
    assert torch.equal(w, before)


def test_reference_is_the_dequantized_matmul():
    gen = torch.Generator().manual_seed(3)
    q, s = quantize_per_channel(torch.randn(48, 32, generator=gen))
    x, b = torch.randn(2, 5, 32, generator=gen), torch.randn(48, generator=gen)
    assert torch.equal(int8_linear(x, q, s, b), F.linear(x, dequantize(q, s), b))


def test_tiled_matches_the_reference():
    gen = torch.Generator().manual_seed(4)
    q, s = quantize_per_channel(torch.randn(300, 64, generator=gen))
    x, b = torch.randn(7, 64, generator=gen), torch.randn(300, generator=gen)
    torch.testing.assert_close(int8_linear_tiled(x, q, s, b, tile_rows=64), int8_linear(x, q, s, b),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not INT_MM_OK, reason=f"no torch._int_mm here: {INT_MM_WHY}")
@pytest.mark.parametrize("m,k,n", [(1, 64, 128), (7, 64, 128), (33, 256, 512), (64, 576, 1536), (64, 1536, 576)])
def test_fast_path_within_the_measured_bound(m, k, n):
    gen = torch.Generator().manual_seed(m + k + n)
    q, s = quantize_per_channel(torch.randn(n, k, generator=gen) * 0.05)
    x = torch.randn(m, k, generator=gen)
    b = torch.randn(n, generator=gen)
    assert _rel(int8_linear_int_mm(x, q, s, b), int8_linear(x, q, s, b)) < FAST_REL_BOUND
    x16 = x.half()  # dtype in, dtype out
    y16 = int8_linear_int_mm(x16, q, s, b.half())
    assert y16.dtype == torch.float16
    assert _rel(y16.float(), int8_linear(x, q, s, b)) < FAST_REL_BOUND


@pytest.mark.skipif(not INT_MM_OK, reason=f"no torch._int_mm here: {INT_MM_WHY}")
def test_outlier_columns_are_computed_in_float():
    # Four feature columns 20x the rest, as LLM activations have: per-token int8 alone flattens the
    # ordinary values of each row (measured 0.05 relative error at K=1536); taking the columns
    # above the threshold out brings it back under the Gaussian bound.
    gen = torch.Generator().manual_seed(5)
    q, s = quantize_per_channel(torch.randn(576, 1536, generator=gen) * 0.05)
    x = torch.randn(64, 1536, generator=gen)
    x[:, :4] *= 20
    ref = int8_linear(x, q, s)
    plain = _rel(int8_linear_int_mm(x, q, s, threshold=0), ref)
    decomposed = _rel(int8_linear_int_mm(x, q, s), ref)
    assert decomposed < FAST_REL_BOUND < plain
    before = x.clone()
    int8_linear_int_mm(x, q, s)
    assert torch.equal(x, before)  # the outlier split never writes into the caller's tensor


def test_shapes_int_mm_cannot_take_fall_back_with_a_reason():
    assert int_mm_shape_problem(4, 64, 64, "cpu") is None
    assert "more than 16 rows" in int_mm_shape_problem(8, 64, 64, "cuda")
    assert "multiples of 8" in int_mm_shape_problem(32, 60, 64, "cuda")
    assert "overflow" in int_mm_shape_problem(1, MAX_IN_FEATURES + 1, 1, "cpu")
    k = MAX_IN_FEATURES + 8  # one row of weights: small, but an int32 accumulator could overflow
    q = torch.full((1, k), QMAX, dtype=torch.int8)
    s = torch.ones(1)
    x = torch.ones(1, k)
    before = int8_cpu.fallback_counts()
    y = int8_linear_int_mm(x, q, s)
    assert float(y) == pytest.approx(float(QMAX) * k, rel=1e-6)
    after = int8_cpu.fallback_counts()
    reason = next(r for r in after if "overflow" in r)
    assert after[reason] == before.get(reason, 0) + 1


def test_registry_prefers_int_mm_and_says_why_when_it_cannot(monkeypatch):
    choice = select_int8_linear("cpu")
    if INT_MM_OK:
        assert choice.name == "int-mm-cpu"
    # Without torch._int_mm the tiled kernel is chosen, and the skip names the reason.
    monkeypatch.delattr(torch, "_int_mm")
    int8_probe.int_mm_cpu_status.cache_clear()
    try:
        choice = select_int8_linear("cpu")
        assert choice.name == "dequant-tiled"
        assert dict(choice.skipped)["int-mm-cpu"].endswith("has no torch._int_mm")
    finally:
        monkeypatch.undo()
        int8_probe.int_mm_cpu_status.cache_clear()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU fallback")
def test_cuda_request_runs_on_the_cpu_with_the_reason():
    choice = select_int8_linear("cuda")
    assert choice.device == "cpu"
    assert any(name.startswith("int-mm-cuda") for name, _ in choice.skipped)


def test_prefer_picks_a_kernel_by_name():
    assert select_int8_linear("cpu", prefer="reference").impl is int8_linear
    assert select_int8_linear("cpu", prefer="dequant-tiled").impl is int8_linear_tiled
    with pytest.raises(KernelUnavailable, match="no int8_linear kernel named"):
        select_int8_linear("cpu", prefer="nonsense")
    with pytest.raises(KernelUnavailable, match="does not run on cpu"):
        select_int8_linear("cpu", prefer="int-mm-cuda")
