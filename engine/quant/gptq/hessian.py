"""Second moments of layer inputs, gathered by forward hooks while a block runs.

For each hooked layer: H = 2/n sum x x^T over every input row x (GPTQ's Hessian of the layer-wise
squared error), plus the mean |x| per channel (AWQ's activation statistic). Layers fed the very same
tensor (q/k/v after the input norm, gate/up after the post-attention norm) share one accumulator, so
the product is computed once.
"""

from __future__ import annotations

from typing import Callable

import torch


class InputStats:
    def __init__(self, n_channels: int, device):
        self.H = torch.zeros(n_channels, n_channels, dtype=torch.float32, device=device)
        self.abs_sum = torch.zeros(n_channels, dtype=torch.float64, device=device)
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()
        m = x.shape[0]
        self.abs_sum += x.abs().sum(0).double()
        # Running mean so H stays O(1) in magnitude however many rows arrive; one in-place product
        # (no scaled copy of x, no temporary [in, in] matrix).
        self.H.mul_(self.n / (self.n + m))
        self.n += m
        self.H.addmm_(x.t(), x, alpha=2.0 / self.n)

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
    """Hooks for `names` (relative module names); `stats[name]` after the forward pass."""

    def __init__(self, modules: dict[str, torch.nn.Linear]):
        self.modules = modules
        self.stats: dict[str, InputStats] = {}
        self.shared = SharedInputs()
        self._alias = self.shared.alias

    def hooks(self) -> dict[str, Callable]:
        return {name: self._hook(name) for name in self.modules}

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
