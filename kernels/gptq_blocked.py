"""GPTQ with lazy batch updates and no inverse: columns are processed in blocks of `block_size`;
inside a block each column's rounding error reaches the block's own remaining columns, and the
columns after the block take the block's errors as one matrix product when it ends. Same result as
the reference (up to float rounding). Device-agnostic torch: runs where the tensors are.

The textbook update uses U, the upper Cholesky factor of H^-1: err_j = (w'_j - q_j) / U_jj, then
w'_k -= err_j U_jk for the columns k after j. Summed over the run that is W = Q + E U (E the errors
as columns), so E = (W - Q) R with R = U^-1, the upper triangular factor of H = R R^T, and

    w'_j = w_j + sum_{k<j} (w_k - q_k) R_kj / R_jj

with W the original weights. So with fixed grids (static groups, GPTQ's default here) the kernel needs only R, one Cholesky
factorization, and not the triangular inverse that makes U (as much arithmetic again: on an
8192-wide input the two took as long as a block's forward pass over 2048 calibration tokens).

Two refinements for memory traffic (the rank-1 updates were a quarter of a GPTQ run on the CPU):
- the weights are held transposed, [in, out], so a column of W is a contiguous row;
- inside a block, rank-1 updates reach only the rest of a sub-block of `SUB` columns; the rest of
  the block takes the sub-block's differences as one small product when the sub-block ends.

A dynamic group never straddles two blocks (the group size divides the block size and blocks start
at multiples of it), and starts on a sub-block boundary, so a group's grid is taken from columns
that carry every update so far.
"""

from __future__ import annotations

import math

import torch

from .gptq_common import GPTQOutput, GPTQSettings, Prepared, one_cpu_thread

#: Columns per sub-block of rank-1 updates.
SUB = 16


def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, settings: GPTQSettings = GPTQSettings()) -> GPTQOutput:
    bs = settings.block_size
    if settings.group_size != -1 and bs % settings.group_size:
        raise ValueError(f"block size {bs} must be a multiple of the group size {settings.group_size}")
    fixed = settings.group_size == -1 or (settings.static_groups and settings.act_order)
    # Dynamic groups are gridded from their columns as they stand mid-run, which only the textbook
    # update reproduces (the partial sums of the two forms differ): those keep U.
    p = Prepared(weight, hessian, settings, factor="cholesky" if fixed else "inverse")
    if fixed:
        R = p.R
        c = R.diagonal().clone()  # err_j = (w'_j - q_j) * R_jj
        F, sign = R.div_(c[None, :]), 1.0  # R_kj / R_jj, in place: R is not needed otherwise
    else:
        F, sign = p.U, -1.0
        c = 1 / p.U.diagonal()
    W0 = p.W.t().contiguous()  # [in, out]
    p.W = None
    Wt = W0.clone() if fixed else W0  # w'_k: the original plus every update so far
    Qt = torch.empty_like(Wt)
    codes_t = torch.empty_like(Wt)
    sub = math.gcd(SUB, p.size)
    loss = 0.0
    for i1 in range(0, p.cols, bs):
        i2 = min(i1 + bs, p.cols)
        W1, D1 = Wt[i1:i2], torch.empty_like(Wt[i1:i2])
        F1 = F[i1:i2, i1:i2]
        n = i2 - i1
        with one_cpu_thread(Wt.device):  # the factorization and the update below use every thread
            for j1 in range(0, n, sub):
                j2 = min(j1 + sub, n)
                for i in range(j1, j2):
                    scale, zero = p.params_for(i1 + i, W1, i, transposed=True)
                    code, q = p.quantize_column(W1[i], scale, zero)
                    diff = W1[i] - q
                    loss += float((diff * c[i1 + i]).square().sum()) / 2
                    if fixed:
                        torch.sub(W0[i1 + i], q, out=D1[i])  # w_j - q_j
                    else:
                        torch.mul(diff, c[i1 + i], out=D1[i])  # err_j
                    if i + 1 < j2:
                        W1[i + 1:j2].addr_(F1[i, i + 1:j2], D1[i], alpha=sign)
                    Qt[i1 + i], codes_t[i1 + i] = q, code
                if j2 < n:
                    W1[j2:].addmm_(F1[j1:j2, j2:].t(), D1[j1:j2], alpha=sign)
        if i2 < p.cols:
            Wt[i2:].addmm_(F[i1:i2, i2:].t(), D1, alpha=sign)
    return p.finish(Qt, codes_t, loss, transposed=True)
