"""Outputs of a block's already-quantized linears, kept per calibration batch so that later passes
over the same block replay them instead of computing them again.

GPTQ's true-sequential order runs a block once per group of layers (q/k/v, o, gate/up, down), each
pass from the block's input up to the group, and once more at the end for the block's output. In
the pass after a group was quantized its layers compute with their final weights on inputs that no
later pass changes (everything upstream of them is final too), so every later pass would compute
the very same tensors: they are recorded once and replayed. That removes about one of the two
block forwards the passes cost. Which layers may be replayed is the caller's knowledge (the group
order); this class records within a byte budget and replays in call order (a routed expert may be
called once per batch or not at all: its calls are kept as they came).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable

import torch
from torch import nn

#: The most memory the recorded outputs may take: at the default calibration (65k tokens) a 1B
#: model's q/k/v/o/gate/up outputs are 5.6 GB, so the budget keeps what fits and recomputes the rest.
REPLAY_MAX_BYTES = 2 * 1024**3


def replay_budget(device: str) -> int:
    """REPLAY_MAX_BYTES, or a quarter of the memory free on `device` when that is less."""
    from . import telemetry

    free = None
    if str(device).startswith("cuda") and torch.cuda.is_available():
        free = torch.cuda.mem_get_info()[0]
    elif not str(device).startswith("cuda"):
        free = telemetry.available_memory()
    return REPLAY_MAX_BYTES if free is None else min(REPLAY_MAX_BYTES, free // 4)


class LayerReplay:
    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self.used = 0
        self.ready: set[str] = set()  # layers recorded for every batch: replayable
        self._outputs: dict[str, list[list[torch.Tensor]]] = {}  # name -> batch -> calls
        self._over: set[str] = set()
        self._batch = 0
        self._next: dict[str, int] = {}

    def start_batch(self, b: int) -> None:
        self._batch = b
        self._next.clear()

    def recorders(self, names: Iterable[str]) -> dict[str, Callable]:
        """Forward hooks that record each layer's outputs, batch by batch (call `finish` after)."""
        def hook(name):
            def record(_module, _inputs, output):
                if name in self._over:
                    return
                size = output.numel() * output.element_size()
                if self.used + size > self.budget:  # does not fit: this layer stays computed
                    self._over.add(name)
                    self._drop(name)
                    return
                per_batch = self._outputs.setdefault(name, [])
                while len(per_batch) <= self._batch:
                    per_batch.append([])
                per_batch[self._batch].append(output)
                self.used += size
            return record
        return {n: hook(n) for n in names}

    def finish(self, names: Iterable[str], n_batches: int) -> None:
        """After a pass that ran all `n_batches`: the recorded layers become replayable."""
        for n in names:
            if n in self._over or n not in self._outputs:
                continue
            while len(self._outputs[n]) < n_batches:  # batches that never reached it (experts)
                self._outputs[n].append([])
            self.ready.add(n)

    @contextmanager
    def replaying(self, modules: dict[str, nn.Module]):
        """Within: every ready layer returns its recorded output instead of computing."""
        swapped = []
        for name in self.ready:
            module = modules.get(name)
            if module is None:
                continue
            def forward(*_args, name=name, **_kwargs):
                i = self._next.get(name, 0)
                self._next[name] = i + 1
                return self._outputs[name][self._batch][i]
            module.forward = forward  # an instance attribute: hooks still run around it
            swapped.append(module)
        try:
            yield
        finally:
            for module in swapped:
                del module.forward

    def _drop(self, name: str) -> None:
        for calls in self._outputs.pop(name, []):
            self.used -= sum(t.numel() * t.element_size() for t in calls)

    def clear(self) -> None:
        self._outputs.clear()
        self.ready.clear()
        self._over.clear()
        self.used = 0
