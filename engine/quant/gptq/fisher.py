"""The diagonal Fisher of every block linear's weights, streamed block by block.

Why: a size budget must compare the damage of rounding a q_proj with that of rounding a down_proj
in one currency. The currency users see is the KL divergence of the final logits from the source's.
For a small weight change dW that is, to second order, 0.5 * sum_ij F_ij dW_ij^2, F being the
Fisher of the model's own output distribution (the Hessian of the KL at dW = 0; its first order
vanishes there). Its diagonal is E[g^2], g the gradient of log p(y) for y drawn from the model
itself at every position of real calibration text. With one draw per position for the whole window,
g = sum over positions of each position's score, and the cross terms between positions have zero
mean (each score has mean zero under its own draw), so the squared gradient of a window is an
unbiased estimate of the window's summed diagonal. Each window (and each draw) must be squared on
its own: squaring a batch's summed gradient would mix windows. Measured on the bundled model
(bench/QUALITY.md): RTN mixes chosen with it beat uniform 4-bit g64 at its size, the input-weighted
error it replaces did not.

Streaming: one forward through the blocks keeps every block's inputs (n_blocks x the calibration
activations: the price of this measure); the head gives the gradient at the last block's output
for the drawn tokens; then the blocks are read again in reverse, each rerun with gradients from
its kept inputs and its output's gradient pushed back to its input. A linear's per-window weight
gradient is delta^T x from its input x and output gradient delta, caught by hooks (the weights
themselves never need gradients). Peak memory: one block, the kept inputs, one batch's logits.
"""

from __future__ import annotations

from typing import Generator

import torch
from torch import nn

from ...cancel import NEVER, CancelToken
from ...events import EtaClock, Event
from ...layers import BlockRunner, BlockStep, _Replay
from .hessian import SharedInputs


def head_gradients(runner: BlockRunner, generator: torch.Generator, draws: int,
                   labels: list[torch.Tensor] | None = None) -> list[list[torch.Tensor]]:
    """For each batch of the runner's current activations (the last block's outputs) and each
    draw: d/dh of sum log p(y), y drawn from the model at every position (or `labels[draw]`,
    [windows, seq_len], for checking against the full model). Through the model's own head (final
    norm, output layer, whatever the family applies to logits)."""
    outside = runner._load_outside()
    head = runner.model.get_output_embeddings()
    if getattr(runner.model.config, "tie_word_embeddings", False):
        runner.model.tie_weights()
    else:
        runner._load_into(head, runner.src.module_name("lm_head.weight")[:-len("weight")])
    original = getattr(runner.inner, runner._layers_attr)
    grads, start = [], 0
    try:
        for hidden in runner.activations:
            h = hidden.to(runner.device).float().requires_grad_(True)
            setattr(runner.inner, runner._layers_attr, nn.ModuleList([_Replay(h)]))
            ids = torch.zeros(h.shape[:2], dtype=torch.long, device=runner.device)
            with torch.enable_grad():
                logp = torch.log_softmax(runner.model(input_ids=ids, use_cache=False).logits.float(), -1)
                per_draw = []
                for d in range(draws):
                    if labels is not None:
                        y = labels[d][start:start + h.shape[0]].to(runner.device)
                    else:
                        probs = logp.detach().exp().reshape(-1, logp.shape[-1]).cpu()
                        y = torch.multinomial(probs, 1, generator=generator).reshape(h.shape[:2]).to(runner.device)
                    loss = logp.gather(-1, y.unsqueeze(-1)).sum()
                    (g,) = torch.autograd.grad(loss, h, retain_graph=d + 1 < draws)
                    per_draw.append(g.to(runner.storage))
            grads.append(per_draw)
            start += h.shape[0]
    finally:
        setattr(runner.inner, runner._layers_attr, original)
        runner.release(outside)
        runner.release(head)
    return grads


class _PerWindowSquares:
    """Hooks on a block's linears: each window's weight gradient delta^T x, squared and summed; and
    which linears read the very same tensor (q/k/v, gate/up: `alias` maps each to the first)."""

    def __init__(self, linears: dict[str, nn.Linear]):
        self.sums = {n: torch.zeros_like(m.weight, dtype=torch.float32) for n, m in linears.items()}
        self.shared = SharedInputs()
        self.alias = self.shared.alias
        self.handles = [m.register_forward_hook(self._hook(n)) for n, m in linears.items()]

    def new_batch(self) -> None:
        self.shared.new_batch()

    def _hook(self, name: str):
        def forward(_module, inputs, output):
            self.shared.first_reader(name, inputs[0])
            x = inputs[0].detach().float()

            def backward(delta):
                for s in range(x.shape[0]):  # one window at a time: its gradient, then its square
                    g = delta[s].float().reshape(-1, delta.shape[-1]).T @ x[s].reshape(-1, x.shape[-1])
                    self.sums[name] += g * g
            output.register_hook(backward)
        return forward

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def fisher_diagonal(runner: BlockRunner, windows: torch.Tensor, on_block, draws: int = 1, seed: int = 0,
                    cancel: CancelToken = NEVER, labels: list[torch.Tensor] | None = None,
                    ) -> Generator[Event, None, None]:
    """Calls `on_block(i, step, fisher, alias)` for every block, last first, while the block is
    loaded: `fisher` maps each linear (relative name) to its weights' diagonal Fisher summed over
    every calibration token (averaged over `draws` draws of the tokens); `alias` maps a linear that
    reads the same input as an earlier one to that one."""
    yield from runner.capture(windows, cancel)
    clock = EtaClock(2 * runner.n_blocks, "sensitivity")
    kept: list[list[torch.Tensor]] = []
    for i in range(runner.n_blocks):  # forward: keep what every block reads
        cancel.check()
        block = runner.load_block(i)
        kept.append(runner.activations)
        runner._hidden = BlockStep(runner, i, block, clock, 0, cancel).forward(keep=True)
        runner.release(block)
        yield clock.progress(i + 1, f"forward, block {i + 1}/{runner.n_blocks}")
    grads = head_gradients(runner, torch.Generator().manual_seed(seed), draws, labels)
    for i in reversed(range(runner.n_blocks)):  # backward, one block at a time
        cancel.check()
        block = runner.load_block(i)
        step = BlockStep(runner, i, block, clock, 0, cancel)
        squares = _PerWindowSquares(step.linears())
        try:
            for b, hidden in enumerate(kept[i]):
                squares.new_batch()
                x = hidden.to(runner.device).float().requires_grad_(True)
                with torch.enable_grad():
                    out = block(x, **runner._kwargs[i][b])
                    out = out[0] if isinstance(out, tuple) else out
                    for d in range(draws):
                        (gx,) = torch.autograd.grad(out, x, grads[b][d].to(runner.device), retain_graph=d + 1 < draws)
                        grads[b][d] = gx.to(runner.storage)
        finally:
            squares.remove()
        kept[i] = []
        on_block(i, step, {n: s / draws for n, s in squares.sums.items()}, squares.alias)
        runner.release(block)
        yield clock.progress(2 * runner.n_blocks - i, f"backward, block {i + 1}/{runner.n_blocks}")
