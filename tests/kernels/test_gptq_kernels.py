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
