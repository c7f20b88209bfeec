"""GPTQ, column by column: the plain statement of the algorithm, the ground truth for the blocked
kernel. After each column is rounded, its error is pushed onto every remaining column at once."""

from __future__ import annotations

import torch

from .gptq_common import GPTQOutput, GPTQSettings, Prepared, one_cpu_thread


def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, settings: GPTQSettings = GPTQSettings()) -> GPTQOutput:
    p = Prepared(weight, hessian, settings)  # the factorization, on torch's threads
    with one_cpu_thread(weight.device):
        return _quantize(p)


def _quantize(p: Prepared) -> GPTQOutput:
    W, U = p.W, p.U
    Q = torch.zeros_like(W)
    codes = torch.zeros_like(W)
    loss = 0.0
    for j in range(p.cols):
        scale, zero = p.params_for(j, W, j)
        w = W[:, j]
        code, q = p.quantize_column(w, scale, zero)
        d = U[j, j]
        err = (w - q) / d
        loss += float((err * err).sum()) / 2
        W[:, j + 1:] -= err[:, None] * U[j, j + 1:][None, :]
        Q[:, j], codes[:, j] = q, code
    return p.finish(Q, codes, loss)
