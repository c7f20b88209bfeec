"""GPTQ with lazy batch updates: columns are processed in blocks of `block_size`; inside a block the
error is pushed onto the block's own remaining columns, and onto the columns after the block once,
as one matrix product when the block ends. Same result as the reference (up to float rounding), far
fewer passes over W. Device-agnostic torch: runs where the tensors are.

A dynamic group never straddles two blocks (the group size divides the block size and blocks start
at multiples of it), so a group's grid is taken from columns that carry every update so far.
"""

from __future__ import annotations

import torch

from .gptq_common import GPTQOutput, GPTQSettings, Prepared, one_cpu_thread


def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, settings: GPTQSettings = GPTQSettings()) -> GPTQOutput:
    bs = settings.block_size
    if settings.group_size != -1 and bs % settings.group_size:
        raise ValueError(f"block size {bs} must be a multiple of the group size {settings.group_size}")
    p = Prepared(weight, hessian, settings)
    W, U = p.W, p.U
    Q = torch.zeros_like(W)
    codes = torch.zeros_like(W)
    loss = 0.0
    for i1 in range(0, p.cols, bs):
        i2 = min(i1 + bs, p.cols)
        W1 = W[:, i1:i2].clone()
        E1 = torch.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        with one_cpu_thread(W.device):  # the factorization and the update below use every thread
            for i in range(i2 - i1):
                scale, zero = p.params_for(i1 + i, W1, i)
                w = W1[:, i]
                code, q = p.quantize_column(w, scale, zero)
                err = (w - q) / U1[i, i]
                W1[:, i:] -= err[:, None] * U1[i, i:][None, :]
                E1[:, i] = err
                Q[:, i1 + i], codes[:, i1 + i] = q, code
        loss += float((E1 * E1).sum()) / 2
        W[:, i2:].sub_(E1 @ U[i1:i2, i2:])
    return p.finish(Q, codes, loss)
