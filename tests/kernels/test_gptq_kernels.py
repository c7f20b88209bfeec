"""The GPTQ kernels: the blocked (lazy-batch) kernel against the column-by-column reference, GPTQ
against RTN, the weight-only matmul paths against each other, and their registration."""

from __future__ import annotations

import pytest
import torch

from bitsmith.kernels.gptq_blocked import gptq_quantize as blocked
from bitsmith.kernels.gptq_common import GPTQSettings
from bitsmith.kernels.gptq_reference import gptq_quantize as reference
from bitsmith.kernels.registry import select
from bitsmith.kernels.woq_dequant import PackedWeight
from bitsmith.kernels.woq_linear import linear_cached, linear_reference
from bitsmith.kernels.woq_pack import pack_cols, pack_rows
from bitsmith.kernels.woq_quantize import dequantize, rtn_quantize


def _problem(out=48, inp=256, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    # Correlated inputs, as real activations are: that is where GPTQ's error feedback pays.
    x = torch.randn(2048, 32, generator=g) @ torch.randn(32, inp, generator=g) + 0.3 * torch.randn(2048, inp, generator=g)
    x[:, 5] = 0  # a dead input channel
    H = (2 * x.t() @ x / x.shape[0]).to(dtype)
    return torch.randn(out, inp, generator=g).to(dtype), H


def _error(W, Wq, H):
    D = (Wq - W).double()
    return float(torch.trace(D @ H.double() @ D.t()) / torch.trace(W.double() @ H.double() @ W.double().t()))


@pytest.mark.parametrize("bits,group,sym,act", [(4, 64, False, False), (4, 32, True, True), (3, 64, False, True),
                                                (2, -1, False, False), (8, 128, True, False), (4, 64, False, "dyn")])
def test_blocked_matches_reference(bits, group, sym, act):
    W, H = _problem()
    s = GPTQSettings(bits=bits, group_size=group, sym=sym, act_order=bool(act), static_groups=act != "dyn")
    a, b = reference(W, H, s), blocked(W, H, s)
    assert torch.equal(a.quant.q, b.quant.q)
    assert torch.equal(a.quant.g_idx, b.quant.g_idx)
    assert torch.allclose(a.dequantized, b.dequantized, atol=1e-6)
    assert torch.equal(dequantize(b.quant), b.dequantized.float())  # the codes stand for the result
    assert b.quant.q.min() >= 0 and b.quant.q.max() < 2**bits


@pytest.mark.parametrize("bits", [3, 4])
def test_gptq_beats_rtn(bits):
    W, H = _problem(dtype=torch.float32)
    rtn = _error(W, dequantize(rtn_quantize(W, bits, 64, False, min_zero=1)), H)
    gptq = _error(W, blocked(W, H, GPTQSettings(bits=bits, group_size=64)).dequantized, H)
    act = _error(W, blocked(W, H, GPTQSettings(bits=bits, group_size=64, act_order=True)).dequantized, H)
    assert gptq < 0.5 * rtn and act < 0.5 * rtn


def test_dynamic_act_order_permutes_g_idx():
    W, H = _problem(dtype=torch.float32)
    out = blocked(W, H, GPTQSettings(group_size=64, act_order=True, static_groups=False))
    assert sorted(torch.bincount(out.quant.g_idx.long()).tolist()) == [64] * 4
    assert not torch.equal(out.quant.g_idx, torch.arange(256, dtype=torch.int32) // 64)


def test_asymmetric_zero_points_stay_v1_safe():
    W = torch.rand(16, 64)  # all positive: the grid's minimum is 0, zero point would be 0
    gq = rtn_quantize(W, 4, 64, sym=False, min_zero=1)
    assert int(gq.zeros.min()) >= 1


def test_registry_picks_blocked_and_falls_back_to_cpu_without_cuda():
    assert select("gptq_quantize", "cpu").name == "torch-blocked"
    choice = select("woq_linear", "cuda", kind="gptq4")
    if not torch.cuda.is_available():
        assert choice.device == "cpu" and any("CUDA" in why for _, why in choice.skipped)
    assert select("woq_linear", "cpu", kind="gptq3").name == "torch-cached"


def _packed(bits=4):
    g = torch.Generator().manual_seed(1)
    gq = rtn_quantize(torch.randn(64, 128, generator=g), bits, 32, sym=False, min_zero=1)
    return PackedWeight("gptq", bits, 32, 128, 64, pack_rows(gq.q.t(), bits),
                        pack_cols((gq.zeros.long() - 1) & (2**bits - 1), bits), gq.scales.half(), gq.g_idx), gq


def test_cached_path_matches_reference_and_caches():
    w, gq = _packed()
    x = torch.randn(3, 5, 128)
    bias = torch.randn(64)
    assert torch.allclose(linear_cached(x, w, bias), linear_reference(x, w, bias), atol=1e-5)
    assert len(w.cache) == 1
    assert torch.equal(w.dequantize().t(), dequantize(gq))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_triton_matches_reference_on_cuda():
    pytest.importorskip("triton")
    from bitsmith.kernels.woq_triton import linear_triton

    w, _ = _packed()
    cuda = PackedWeight(w.layout, w.bits, w.group_size, w.in_features, w.out_features, w.qweight.cuda(),
                        w.qzeros.cuda(), w.scales.cuda(), w.g_idx.cuda())
    x = torch.randn(7, 128, device="cuda", dtype=torch.float16)
    assert torch.allclose(linear_triton(x, cuda), linear_reference(x, cuda), rtol=1e-2, atol=1e-2)


def test_inverse_factor_is_the_upper_cholesky_factor_of_the_inverse():
    """The one-factorization route (Cholesky of the reversed H, then a triangular inverse) gives the
    factor the textbook route (factorize, invert, factorize the inverse) gives."""
    from bitsmith.kernels.gptq_common import _inverse_factor

    _, H = _problem(dtype=torch.float64)
    H[5, 5] = 1  # Prepared's fix for the dead channel, which leaves H singular
    U, damp = _inverse_factor(H, 0.01)
    Hd = H + damp * torch.diag(H).mean() * torch.eye(H.shape[0], dtype=H.dtype)
    textbook = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(Hd)), upper=True)
    assert torch.equal(U, torch.triu(U)) and bool((torch.diag(U) > 0).all())
    # float64 on a matrix of condition ~1e3: both routes agree to ~1e-13 relative; 1e-9 is loose.
    assert torch.allclose(U, textbook, rtol=1e-9, atol=1e-9 * float(textbook.abs().max()))


def _heavy_tailed(rows=64, k=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Student-t-like rows: a few large weights per group, the case where shrinking the range pays.
    w = torch.randn(rows, k, generator=g) / torch.rand(rows, k, generator=g).clamp(min=0.05).sqrt()
    importance = torch.rand(k, generator=g) * 3
    return w, importance


@pytest.mark.parametrize("bits,sym", [(4, False), (4, True), (3, False), (2, False)])
def test_grid_search_never_worsens_the_weighted_error(bits, sym):
    from bitsmith.kernels.woq_quantize import group_params, quantize_values, search_group_params

    w, importance = _heavy_tailed()

    def error(scale, zero):
        q = scale[:, None] * (quantize_values(w, scale[:, None], zero[:, None], bits) - zero[:, None])
        return ((q - w) ** 2 * importance).sum(1)

    plain = error(*group_params(w, bits, sym, 1))
    searched = error(*search_group_params(w, bits, sym, 1, importance, grid=20))
    assert bool((searched <= plain).all())  # shrink 1 (plain min/max) is a candidate, ties keep it
    assert float(searched.sum()) < 0.95 * float(plain.sum())  # and outliers make shrinking pay
    # grid 1 is exactly the plain grid
    assert all(torch.equal(a, b) for a, b in zip(search_group_params(w, bits, sym, 1, importance, grid=1),
                                                  group_params(w, bits, sym, 1)))


def test_independent_range_ends_beat_one_shrink_factor_on_lopsided_groups():
    """On an asymmetric grid the two ends are searched independently: the pairs include every
    one-factor shrink, so no row does worse than the best single factor, and groups whose values
    lean to one side (a long positive tail here) do better in sum."""
    from bitsmith.kernels.woq_quantize import quantize_values, range_params, range_shrinks, search_group_params

    g = torch.Generator().manual_seed(3)
    w = torch.randn(512, 64, generator=g).abs().pow(1.5) - 0.3  # lopsided: a long tail above, a short one below
    importance = torch.rand(64, generator=g) + 0.1

    def error(scale, zero):
        q = scale[:, None] * (quantize_values(w, scale[:, None], zero[:, None], 4) - zero[:, None])
        return ((q - w) ** 2 * importance).sum(1)

    one_factor = torch.stack([error(*range_params(w.amin(1) * f, w.amax(1) * f, 4, False, 1))
                              for f in range_shrinks(20, 0.35)]).amin(0)
    pairs = error(*search_group_params(w, 4, False, 1, importance, grid=20, max_shrink=0.35))
    assert bool((pairs <= one_factor).all())
    assert float(pairs.sum()) < 0.99 * float(one_factor.sum())  # 1.8 % measured on these rows


def test_grid_search_never_worsens_the_layer_objective_with_independent_inputs():
    """With uncorrelated inputs H is diagonal and the search's weighted error is the layer objective
    tr(D H D^T) itself: GPTQ's error feedback has nothing to spread (U is diagonal), so the layer
    with the searched grids is never worse than with min/max grids, row by row."""
    g = torch.Generator().manual_seed(2)
    W = torch.randn(32, 128, generator=g) / torch.rand(32, 128, generator=g).clamp(min=0.05).sqrt()
    H = torch.diag(torch.rand(128, generator=g) * 4 + 0.1).double()
    plain = blocked(W.double(), H, GPTQSettings(group_size=64, act_order=True))
    mse = blocked(W.double(), H, GPTQSettings(group_size=64, act_order=True, mse_grid=20))
    row_err = lambda out: (((out.dequantized.double() - W.double()) @ H) * (out.dequantized.double() - W.double())).sum(1)
    # 1e-12 relative: float64 rounding of identical choices where the search kept min/max
    assert bool((row_err(mse) <= row_err(plain) * (1 + 1e-12)).all())
    assert float(row_err(mse).sum()) < float(row_err(plain).sum())


def test_act_order_static_groups_with_search_reads_back_exactly():
    """Act-order with static groups keeps g_idx sequential, so every GPTQ loader (those that ignore
    g_idx too) reads the same weights; the stored scales and zeros are the searched ones."""
    from bitsmith.engine.formats import gptq_layout
    from bitsmith.engine.runtime.quant_linear import QuantLinear

    W, H = _problem(dtype=torch.float32)
    out = blocked(W, H, GPTQSettings(group_size=64, act_order=True, static_groups=True, mse_grid=20))
    assert torch.equal(out.quant.g_idx, torch.arange(256, dtype=torch.int32) // 64)
    tensors = gptq_layout.layer_tensors("m", out.quant, None)
    layer = QuantLinear(256, 48, False, "gptq", 4, 64)
    layer.load_state_dict({k[2:]: v for k, v in tensors.items()}, strict=True)
    assert torch.equal(layer.dequantized_weight(), out.dequantized)


def test_lower_inverse_by_halves_matches_a_triangular_solve():
    from bitsmith.kernels.gptq_common import _lower_inverse

    g = torch.Generator().manual_seed(3)
    x = torch.randn(900, 600, generator=g, dtype=torch.float64)
    L = torch.linalg.cholesky(x.t() @ x / 900 + 0.1 * torch.eye(600, dtype=torch.float64))
    got = _lower_inverse(L, leaf=64)  # three levels of halving, odd sizes included (600 -> 300 -> 150 -> 75)
    want = torch.linalg.solve_triangular(L, torch.eye(600, dtype=torch.float64), upper=False)
    assert torch.equal(got, torch.tril(got))
    # float64, condition ~1e2: the two orders of operations agree to ~1e-14; 1e-10 is loose.
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("bits,group,sym,min_zero", [(4, 128, False, 0), (3, 64, True, 1), (4, -1, False, 1),
                                                     (2, 32, False, 0)])
def test_fake_quantize_is_dequantized_rtn(bits, group, sym, min_zero):
    """AWQ's searches round through `rtn_fake_quantize`: the very values the codes stand for."""
    from bitsmith.kernels.woq_quantize import rtn_fake_quantize

    g = torch.Generator().manual_seed(bits)
    W = torch.randn(64, 256, generator=g) * 0.05
    W[0, :64] = 0  # an all-zero group
    assert torch.equal(rtn_fake_quantize(W, bits, group, sym, min_zero),
                       dequantize(rtn_quantize(W, bits, group, sym, min_zero)))
