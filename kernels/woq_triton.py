"""Fused dequantize-and-multiply for GPTQ v1 (2/4/8 bits) and AWQ GEMM (4 bits) weights on CUDA, in
Triton: each program loads a tile of packed words, unpacks and scales it in registers, and feeds it
straight to tl.dot, so the full-width weight never exists in GPU memory.

Imported only when selected (the registry checks that triton imports and a GPU is visible). It has
not run on a GPU in this repository's CI (no GPU there); QuantLinear therefore checks its first
result against the reference and falls back, with the reason, if they disagree or it fails.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .woq_dequant import PackedWeight


@triton.jit
def _woq_matmul(x_ptr, qw_ptr, qz_ptr, sc_ptr, gi_ptr, y_ptr, M, N, K,
                s_xm, s_xk, s_qwr, s_qwc, s_qzr, s_qzc, s_scr, s_scc, s_ym, s_yn,
                BITS: tl.constexpr, AWQ: tl.constexpr, GROUP: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    PER: tl.constexpr = 32 // BITS
    MASK: tl.constexpr = (1 << BITS) - 1
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    n_ok = rn[None, :] < N
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        k_ok = rk[:, None] < K
        x = tl.load(x_ptr + rm[:, None] * s_xm + rk[None, :] * s_xk,
                    mask=(rm[:, None] < M) & (rk[None, :] < K), other=0.0)
        if AWQ:
            # nibble i of a word holds column 8c + (0,2,4,6,1,3,5,7)[i]: column j sits at nibble
            # (j % 2) * 4 + j // 2 of its word.
            j = rn % 8
            shift = ((j % 2) * 4 + j // 2) * 4
            word = tl.load(qw_ptr + rk[:, None] * s_qwr + (rn[None, :] // 8) * s_qwc, mask=k_ok & n_ok, other=0)
            q = (word >> shift[None, :]) & MASK
            g = rk // GROUP
            zw = tl.load(qz_ptr + g[:, None] * s_qzr + (rn[None, :] // 8) * s_qzc, mask=k_ok & n_ok, other=0)
            z = (zw >> shift[None, :]) & MASK
        else:
            word = tl.load(qw_ptr + (rk[:, None] // PER) * s_qwr + rn[None, :] * s_qwc, mask=k_ok & n_ok, other=0)
            q = (word >> ((rk[:, None] % PER) * BITS)) & MASK
            g = tl.load(gi_ptr + rk, mask=rk < K, other=0)
            zw = tl.load(qz_ptr + g[:, None] * s_qzr + (rn[None, :] // PER) * s_qzc, mask=k_ok & n_ok, other=0)
            z = ((zw >> ((rn[None, :] % PER) * BITS)) + 1) & MASK  # v1 stores zero - 1
        s = tl.load(sc_ptr + g[:, None] * s_scr + rn[None, :] * s_scc, mask=k_ok & n_ok, other=0.0)
        w = (q - z).to(tl.float32) * s.to(tl.float32)
        acc += tl.dot(x, w.to(x.dtype))
    tl.store(y_ptr + rm[:, None] * s_ym + rn[None, :] * s_yn, acc.to(y_ptr.dtype.element_ty),
             mask=(rm[:, None] < M) & n_ok)


def linear_triton(x: torch.Tensor, weight: PackedWeight, bias: torch.Tensor | None = None) -> torch.Tensor:
    lead = x.shape[:-1]
    x2 = x.reshape(-1, weight.in_features)
    if x2.dtype == torch.float32:  # tl.dot on fp32 would use TF32; half precision is what GPUs run
        x2 = x2.half()
    M, K, N = x2.shape[0], weight.in_features, weight.out_features
    y = torch.empty((M, N), dtype=x2.dtype, device=x.device)
    awq = weight.layout == "awq"
    g_idx = weight.g_idx if weight.g_idx is not None else weight.scales  # unused by the AWQ branch
    group = K if weight.group_size == -1 else weight.group_size
    block_m = 16 if M <= 16 else 64
    grid = (triton.cdiv(M, block_m), triton.cdiv(N, 64))
    _woq_matmul[grid](x2, weight.qweight, weight.qzeros, weight.scales, g_idx, y, M, N, K,
                      x2.stride(0), x2.stride(1), weight.qweight.stride(0), weight.qweight.stride(1),
                      weight.qzeros.stride(0), weight.qzeros.stride(1), weight.scales.stride(0),
                      weight.scales.stride(1), y.stride(0), y.stride(1),
                      BITS=weight.bits, AWQ=awq, GROUP=group, BLOCK_M=block_m, BLOCK_N=64, BLOCK_K=32)
    y = y.to(x.dtype).reshape(*lead, N)
    return y + bias.to(y.dtype) if bias is not None else y
