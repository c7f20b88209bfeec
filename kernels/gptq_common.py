"""What the GPTQ reference and the blocked kernel share: settings, the inverse-Hessian factor, the
column order, the group grids, and putting the result back in the original column order.

GPTQ quantizes the columns of W [out, in] one at a time and spreads each column's rounding error over
the columns not yet quantized, weighted by the inverse of H = 2/n sum x x^T (the layer inputs'
second moment). With U the upper Cholesky factor of H^-1, column j's error divided by U[j, j],
times U[j, j+1:], is exactly the optimal update of the remaining columns.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch

from .woq_quantize import GroupQuant, quantize_values, search_group_params, sequential_g_idx

#: Tries at factorizing H, each with ten times the dampening of the last.
DAMP_TRIES = 4


class GPTQSettings(NamedTuple):
    bits: int = 4
    group_size: int = 128  # -1: one group per output row
    sym: bool = False
    act_order: bool = False  # desc_act: columns by decreasing H diagonal (input energy)
    static_groups: bool = True  # with act_order: grids from the unmodified weights, g_idx stays sequential
    damp: float = 0.01  # share of the mean diagonal of H added to it
    block_size: int = 128  # columns per lazy batch (blocked kernel)
    min_zero: int = 1  # see woq_quantize: keeps asymmetric zero points GPTQ-v1 safe
    # >1: each group's range ends shrunk by steps of 1/mse_grid down to 1 - mse_max_shrink, each end
    # on its own or both by one factor, the best by H-weighted rounding error
    # (woq_quantize.search_group_params); 0: min/max
    mse_grid: int = 0
    mse_max_shrink: float = 0.2
    mse_independent_ends: bool = True


class GPTQOutput(NamedTuple):
    quant: GroupQuant
    dequantized: torch.Tensor  # [out, in] float32, original column order
    loss: float  # sum over columns of (w - q)^2 / U[j, j]^2 / 2 (GPTQ's own error proxy)
    damp: float  # the dampening that made H factorizable


class Prepared:
    """W and U in quantization order, plus the group grids and bookkeeping for one layer."""

    def __init__(self, weight: torch.Tensor, hessian: torch.Tensor, s: GPTQSettings, factor: str = "inverse"):
        """`factor`: "inverse" gives U, the upper Cholesky factor of H^-1 (the textbook update);
        "cholesky" gives only R, with H = R R^T (R = U^-1), for kernels that update through R."""
        dtype = torch.float64 if hessian.dtype == torch.float64 else torch.float32
        W = weight.to(dtype).clone(memory_format=torch.contiguous_format)
        H = hessian.to(dtype).clone()
        out, cols = W.shape
        self.s, self.cols, self.out = s, cols, out
        dead = torch.diag(H) == 0  # inputs that never fire: nothing to preserve there
        H[dead, dead] = 1
        W[:, dead] = 0
        # What a column's rounding error costs in the layer's output, to weigh the grid search.
        self.importance = torch.diag(H).clone()
        self.size = cols if s.group_size == -1 else s.group_size
        if cols % self.size:
            raise ValueError(f"group size {self.size} does not divide the input width {cols}")
        n_groups = cols // self.size
        self.scales = torch.zeros(n_groups, out, dtype=dtype, device=W.device)
        self.zeros = torch.zeros(n_groups, out, dtype=dtype, device=W.device)
        if s.group_size == -1 or (s.static_groups and s.act_order):
            # Grids fixed up front on the unmodified weights (GPTQ's static groups), every group at
            # once: W [out, in] viewed as [out, groups, size].
            sc, z = self._grid(W.view(out, n_groups, self.size), self.importance.view(n_groups, self.size))
            self.scales.copy_(sc.t())
            self.zeros.copy_(z.t())
            self.fixed = True
        else:
            self.fixed = False
        self.perm = None
        if s.act_order:
            self.perm = torch.argsort(torch.diag(H), descending=True)
            W, H = W[:, self.perm], H[self.perm][:, self.perm]
            self.importance = self.importance[self.perm]
        self.W = W
        if factor == "cholesky":
            self.R, self.damp = _reverse_cholesky(H, s.damp)
            self.U = None
        else:
            self.U, self.damp = _inverse_factor(H, s.damp)

    def params_for(self, j: int, current: torch.Tensor, local: int,
                   transposed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero [out] for quantization-order column j; `current[:, local]` (`current[local]`
        when `transposed`) is column j with every update so far applied (a dynamic group is gridded
        from its columns as they stand)."""
        if self.fixed:
            g = int(self.perm[j]) // self.size if self.perm is not None else j // self.size
            return self.scales[g], self.zeros[g]
        g = j // self.size
        if j % self.size == 0:
            cols = current[local:local + self.size].t() if transposed else current[:, local:local + self.size]
            self.scales[g], self.zeros[g] = self._grid(cols, self.importance[j:j + self.size])
        return self.scales[g], self.zeros[g]

    def _grid(self, w: torch.Tensor, importance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero [out, ...] of groups `w` [out, ..., size]: min/max, or the searched shrink."""
        sc, z = search_group_params(w, self.s.bits, self.s.sym, self.s.min_zero, importance, self.s.mse_grid,
                                    self.s.mse_max_shrink, self.s.mse_independent_ends)
        return sc.to(w.dtype), z.to(w.dtype)

    def quantize_column(self, w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor):
        code = quantize_values(w, scale, zero, self.s.bits)
        return code, scale * (code - zero)

    def finish(self, Q: torch.Tensor, codes: torch.Tensor, loss: float, transposed: bool = False) -> GPTQOutput:
        """`Q` and `codes` [out, in] in quantization order, or [in, out] when `transposed`."""
        if self.perm is not None:
            inv = torch.argsort(self.perm)
            Q, codes = (Q[inv], codes[inv]) if transposed else (Q[:, inv], codes[:, inv])
        if transposed:
            Q, codes = Q.t().contiguous(), codes.t().contiguous()
        if self.perm is not None and not self.fixed:
            # Column c was gridded with the group its quantization-order position fell in.
            g_idx = (torch.argsort(self.perm) // self.size).to(torch.int32)
        else:
            g_idx = sequential_g_idx(self.cols, self.s.group_size, Q.device)
        quant = GroupQuant(codes.to(torch.int32), self.scales.float(), self.zeros.to(torch.int32), g_idx, self.s.bits)
        return GPTQOutput(quant, Q.float(), float(loss), self.damp)


@contextlib.contextmanager
def one_cpu_thread(device: torch.device):
    """The column loop is thousands of small ops: on the CPU, intra-op threads only add
    synchronization (on a busy machine it was 50x slower with 2 threads than with 1)."""
    old = torch.get_num_threads()
    if device.type != "cpu" or old == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _reverse_cholesky(H: torch.Tensor, damp: float) -> tuple[torch.Tensor, float]:
    """Upper triangular R with R R^T = H + damp * mean(diag H) * I, raising damp until it exists.
    With J the reversal permutation, chol(J H J) = L gives H = R R^T for R = J L J."""
    mean_diag = torch.mean(torch.diag(H))
    flipped = H.flip(0, 1)
    diag = flipped.diagonal()
    base = diag.clone()
    for attempt in range(DAMP_TRIES):
        d = damp * 10**attempt
        diag.copy_(base + d * mean_diag)  # in place: no second [n, n] matrix for H + damp * I
        L, info = torch.linalg.cholesky_ex(flipped)
        if int(info) == 0 and bool(torch.isfinite(L.diagonal()).all()) and bool((L.diagonal() > 0).all()):
            return L.flip(0, 1), d
    raise ValueError(f"the layer's Hessian is not positive definite even with dampening {d:g}")


def _inverse_factor(H: torch.Tensor, damp: float) -> tuple[torch.Tensor, float]:
    """Upper Cholesky factor U of (H + damp * mean(diag H) * I)^-1 (U^T U = H^-1), raising damp
    until it exists.

    One factorization and one triangular inverse instead of factorize, invert, factorize again:
    H = R R^T (`_reverse_cholesky`) gives H^-1 = R^-T R^-1, so U = R^-1 = J L^-1 J (the upper
    Cholesky factor is unique, and R^-1 has a positive diagonal). Half the arithmetic, and it runs
    on torch's threads. (The blocked kernel needs only R: see gptq_blocked.)"""
    d = damp
    for _ in range(DAMP_TRIES):
        R, d = _reverse_cholesky(H, d)
        Linv = _lower_inverse(R.flip(0, 1))
        if bool(torch.isfinite(Linv).all()):
            return Linv.flip(0, 1), d
        d *= 10
    raise ValueError(f"the layer's Hessian is not positive definite even with dampening {d:g}")


def _lower_inverse(L: torch.Tensor, leaf: int = 256) -> torch.Tensor:
    """Inverse of a lower triangular matrix by halves, [[A, 0], [B, C]]^-1 = [[A^-1, 0],
    [-C^-1 B A^-1, C^-1]]: about 2n^3/3 multiply-adds, mostly in matrix products, where a triangular
    solve against the identity takes n^3 (torch has no triangular inverse of its own)."""
    n = L.shape[0]
    if n <= leaf:
        return torch.linalg.solve_triangular(L, torch.eye(n, dtype=L.dtype, device=L.device), upper=False)
    h = n // 2
    A_inv, C_inv = _lower_inverse(L[:h, :h], leaf), _lower_inverse(L[h:, h:], leaf)
    out = torch.zeros_like(L)
    out[:h, :h], out[h:, h:] = A_inv, C_inv
    out[h:, :h] = -(C_inv @ L[h:, :h]) @ A_inv
    return out
