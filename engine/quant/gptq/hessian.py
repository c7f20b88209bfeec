"""Second moments of layer inputs, gathered by forward hooks while a block runs.

For each hooked layer: H = 2/n sum x x^T over every input row x (GPTQ's Hessian of the layer-wise
squared error), plus the mean |x| per channel (AWQ's activation statistic). Layers fed the very same
tensor (q/k/v after the input norm, gate/up after the post-attention norm) share one accumulator, so
the product is computed once.
"""

from __future__ import annotations

from typing import Callable

import torch


#: Column tiles of the Hessian's products: only tiles on or above the diagonal are computed (H is
#: symmetric), which for an 8192-wide input is 36 of 64 tiles. Narrower inputs take one product.
H_TILE = 1024


class InputStats:
    def __init__(self, n_channels: int, device):
        self._H = torch.zeros(n_channels, n_channels, dtype=torch.float32, device=device)
        self._mirrored = True
        self.abs_sum = torch.zeros(n_channels, dtype=torch.float64, device=device)
        self.n = 0

    @property
    def H(self) -> torch.Tensor:
        """2/n sum x x^T, symmetric (the tiles below the diagonal copied from those above)."""
        if not self._mirrored:
            t, n = H_TILE, self._H.shape[0]
            for i in range(0, n, t):
                for j in range(i + t, n, t):
                    self._H[j:j + t, i:i + t].copy_(self._H[i:i + t, j:j + t].t())
            self._mirrored = True
        return self._H

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()
        m = x.shape[0]
        self.abs_sum += x.abs().sum(0).double()
        # Running mean so H stays O(1) in magnitude however many rows arrive; in-place products
        # (no scaled copy of x, no temporary [in, in] matrix).
        H, t, n = self._H, H_TILE, self._H.shape[0]
        H.mul_(self.n / (self.n + m))
        self.n += m
        alpha = 2.0 / self.n
        if n <= t:
            H.addmm_(x.t(), x, alpha=alpha)
            return
        for i in range(0, n, t):
            H[i:i + t, i:].addmm_(x[:, i:i + t].t(), x[:, i:], alpha=alpha)
        self._mirrored = False

    @property
    def abs_mean(self) -> torch.Tensor:
        return (self.abs_sum / max(self.n, 1)).float()


class SharedInputs:
    """Which hooked layers read the very same tensor as one hooked before them (q/k/v after the
    input norm, gate/up after the post-attention norm): `alias` maps each to that first one."""

    def __init__(self):
        self.alias: dict[str, str] = {}
        # id(input) -> (first layer fed it, the tensor): holding the tensor keeps its id unique
        # until new_batch() (called before each batch) lets go.
        self._seen: dict[int, tuple[str, torch.Tensor]] = {}

    def new_batch(self) -> None:
        self._seen.clear()

    def first_reader(self, name: str, x: torch.Tensor) -> str:
        first = self._seen.setdefault(id(x), (name, x))[0]
        if first != name:
            self.alias.setdefault(name, first)
        return first


class StatsCollector:
    """Hooks for `names` (relative module names); `stats[name]` after the forward pass.

    `shared_input` (a traced block's `shared_input`): layers known to read the very tensor another
    one reads; `pre_hooks()` then hooks only the first reader, so a pass can stop before any of
    them computes (`stop_before()`)."""

    def __init__(self, modules: dict[str, torch.nn.Linear], shared_input: dict[str, str] | None = None):
        self.modules = modules
        self.stats: dict[str, InputStats] = {}
        self.shared = SharedInputs()
        self._alias = self.shared.alias
        for name, first in (shared_input or {}).items():
            if name in modules and first in modules:
                self._alias[name] = first

    def hooks(self) -> dict[str, Callable]:
        return {name: self._hook(name) for name in self.modules}

    def stop_before(self) -> list[str]:
        """The layers whose inputs the statistics need: once each was called, the pass can end."""
        return [n for n in self.modules if n not in self._alias]

    def pre_hooks(self) -> dict[str, Callable]:
        """Forward pre-hooks on `stop_before()` (the others share their inputs)."""
        def pre(name):
            hook = self._hook(name)
            return lambda module, args: hook(module, args, None)
        return {name: pre(name) for name in self.stop_before()}

    def new_batch(self) -> None:
        self.shared.new_batch()

    def _hook(self, name: str):
        def hook(module, inputs, _output):
            x = inputs[0]
            if self.shared.first_reader(name, x) != name or name in self._alias:
                return
            if name not in self.stats:
                self.stats[name] = InputStats(x.shape[-1], x.device)
            self.stats[name].add(x)
        return hook

    def get(self, name: str) -> InputStats:
        return self.stats[self._alias.get(name, name)]

    def rows(self, name: str) -> int:
        """Input rows the layer saw (0 for an expert the router never picked)."""
        found = self.stats.get(self._alias.get(name, name))
        return found.n if found is not None else 0


#: Output rows the layer error is measured on (evenly spaced): the exact figure costs out x in^2
#: multiply-adds per layer, more than the whole block's forward pass at 1B widths (down_proj:
#: 2048 x 8192^2), while the rows' errors are alike in distribution and the figure is a report.
ERROR_ROWS = 256


def relative_output_error(weight: torch.Tensor, approx: torch.Tensor, H: torch.Tensor,
                          max_rows: int = ERROR_ROWS) -> float:
    """||(approx - W) X||^2 / ||W X||^2 over the inputs summarized by H (any positive multiple),
    on at most `max_rows` evenly spaced output rows (all of them in a layer that narrow)."""
    step = max(1, -(-weight.shape[0] // max_rows))
    W = weight[::step].float()
    D = approx[::step].float() - W
    both = torch.cat([W, D]) @ H
    den = float((both[:len(W)] * W).sum())
    return float((both[len(W):] * D).sum()) / den if den > 0 else 0.0
