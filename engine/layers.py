"""The block-by-block runner shared by GPTQ, AWQ, RTN (and later the importance matrix).

The model is built from config.json on the `meta` device (no memory), then only what is in use is
read from the safetensors files: the embedding while the calibration windows are embedded, then
one decoder block at a time. Peak memory is one block plus the activations of the calibration
windows (kept on the CPU between blocks, moved to the compute device one batch at a time).

Capture runs the real model forward with every decoder block replaced by a recorder, so whatever
the family passes its blocks (rotary cos/sin, causal mask, position ids, per-layer mask types) is
recorded exactly as transformers computes it. Then for each block: materialize it, let the method
quantize its linear layers (running the block as often as it needs, with hooks), run the quantized
block to get the next block's inputs, hand the block to the writer, release it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Generator, Iterable, Protocol

import torch
from safetensors import safe_open
from torch import nn

from .cancel import NEVER, CancelToken
from .events import EtaClock, Event, Progress
from .formats.hf_folder import HFFolder


class _StopForward(Exception):
    """Raised from a hook to end a forward pass once the wanted activations are captured."""


class _Recorder(nn.Module):
    def __init__(self, index: int, runner: "BlockRunner", last: bool):
        super().__init__()
        self.index, self.runner, self.last = index, runner, last

    def forward(self, hidden_states, *args, **kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k not in ("past_key_values", "use_cache")}
        self.runner._kwargs[self.index].append(kwargs)
        if self.index == 0:
            self.runner._hidden.append(hidden_states.to(self.runner.storage))
        if self.last:
            raise _StopForward
        return hidden_states


@dataclass
class BlockStep:
    """One decoder block in the hands of a quantization method."""

    runner: "BlockRunner"
    index: int
    block: nn.Module
    clock: EtaClock
    done_before: int  # layers finished in earlier blocks, for progress
    cancel: CancelToken
    finished: list[str] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"{self.runner.layers_prefix}{self.index}."

    @property
    def has_inputs(self) -> bool:
        return self.runner.n_batches > 0

    def linears(self) -> dict[str, nn.Linear]:
        return {n: m for n, m in self.block.named_modules() if isinstance(m, nn.Linear)}

    def forward(self, hooks: dict[str, Callable] | None = None, stop_after: Iterable[str] = (),
                keep: bool = False, before_batch: Callable[[], None] | None = None) -> list[torch.Tensor] | None:
        return self.runner.forward_block(self.index, self.block, hooks, stop_after, keep, before_batch)

    def layer_done(self, name: str) -> Progress:
        """Mark a layer quantized; the cancel point between layers."""
        self.cancel.check()
        self.finished.append(name)
        n = self.runner.n_blocks
        return self.clock.progress(self.done_before + len(self.finished), f"block {self.index + 1}/{n}: {name}")


class BlockMethod(Protocol):
    def quantize_block(self, step: BlockStep) -> Generator[Event, None, dict]:
        """Quantize the block's linear layers in place (fake-quantized weights, so later layers and
        blocks see quantized outputs); return what the writer needs, keyed by relative layer name."""


class BlockRunner:
    def __init__(self, source: HFFolder, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 batch_size: int = 4, storage: str = "cpu", max_blocks: int | None = None):
        """`max_blocks`: run only the first N blocks (tests and diagnostics)."""
        from transformers import AutoConfig, AutoModelForCausalLM

        self.src, self.device, self.dtype, self.batch_size, self.storage = source, device, dtype, batch_size, storage
        config = AutoConfig.from_pretrained(str(source.path))
        config.use_cache = False
        with torch.device("meta"):
            self.model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        self.model.eval()
        self.inner = self.model.model
        self.blocks = list(self.inner.layers)[:max_blocks]
        self.layers_prefix = "model.layers."
        # Non-persistent buffers (rotary frequencies) are not in the checkpoint: build them for real.
        self.inner.rotary_emb = type(self.inner.rotary_emb)(config=self.model.config).to(device)
        self._hidden: list[torch.Tensor] = []
        self._kwargs: list[list[dict]] = [[] for _ in self.blocks]

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def n_batches(self) -> int:
        return len(self._hidden)

    # -- loading ------------------------------------------------------------------------------
    def _load_into(self, module: nn.Module, prefix: str) -> nn.Module:
        names = [n for n in self.src.shapes if n.startswith(prefix)]
        state = {}
        for file in sorted({self.src.files[n] for n in names}):
            with safe_open(file, framework="pt") as f:
                for n in names:
                    if self.src.files[n] == file:
                        state[n[len(prefix):]] = f.get_tensor(n).to(self.dtype)
        module.load_state_dict(state, assign=True, strict=True)
        return module.requires_grad_(False).to(self.device)

    def load_block(self, i: int) -> nn.Module:
        return self._load_into(self.blocks[i], f"{self.layers_prefix}{i}.")

    def release(self, module: nn.Module) -> None:
        module.to("meta")

    # -- running ------------------------------------------------------------------------------
    @torch.no_grad()
    def capture(self, windows: torch.Tensor, cancel: CancelToken = NEVER) -> Generator[Event, None, None]:
        """Embed the windows [n, seq_len] and record what block 0 receives (and every block's kwargs)."""
        self._hidden, self._kwargs = [], [[] for _ in self.blocks]
        embed = self._load_into(self.inner.embed_tokens, "model.embed_tokens.")
        recorders = nn.ModuleList(_Recorder(i, self, i == self.n_blocks - 1) for i in range(self.n_blocks))
        original, self.inner.layers = self.inner.layers, recorders
        batches = torch.split(windows.long(), self.batch_size)
        try:
            for b, batch in enumerate(batches, 1):
                cancel.check()
                try:
                    self.inner(input_ids=batch.to(self.device), use_cache=False)
                except _StopForward:
                    pass
                yield Progress(b, len(batches), "embedding", f"batch {b}/{len(batches)}")
        finally:
            self.inner.layers = original
            self.release(embed)

    @torch.no_grad()
    def forward_block(self, i: int, block: nn.Module, hooks: dict[str, Callable] | None = None,
                      stop_after: Iterable[str] = (), keep: bool = False,
                      before_batch: Callable[[], None] | None = None) -> list[torch.Tensor] | None:
        """Run every captured batch through `block`; forward hooks by relative module name; end each
        batch as soon as every module in `stop_after` has run (its later layers are not needed);
        return the outputs (on the storage device) when `keep`."""
        modules = dict(block.named_modules())
        handles = [modules[name].register_forward_hook(fn) for name, fn in (hooks or {}).items()]
        wanted, seen = set(stop_after), set()
        for name in wanted:  # registered after `hooks`, so those see the batch before it stops
            def stop(*_, name=name):
                seen.add(name)
                if seen >= wanted:
                    raise _StopForward
            handles.append(modules[name].register_forward_hook(stop))
        outputs = []
        try:
            for b, hidden in enumerate(self._hidden):
                seen.clear()
                if before_batch is not None:
                    before_batch()
                try:
                    out = block(hidden.to(self.device), **self._kwargs[i][b])
                except _StopForward:
                    continue
                out = out[0] if isinstance(out, tuple) else out
                if keep:
                    outputs.append(out.to(self.storage))
        finally:
            for h in handles:
                h.remove()
        return outputs if keep else None

    def run(self, method: BlockMethod, sink: Callable[[int, nn.Module, dict, dict], None],
            cancel: CancelToken = NEVER, stage: str = "quantizing") -> Generator[Event, None, list[dict]]:
        """Quantize every block with `method`; `sink(i, block, layers, stats)` writes each one.
        Returns per-block stats (seconds, block output error when there is calibration data)."""
        per_block = len(self._linear_names(0))
        clock = EtaClock(self.n_blocks * per_block, stage)
        stats = []
        for i in range(self.n_blocks):
            cancel.check()
            t0 = time.monotonic()
            block = self.load_block(i)
            step = BlockStep(self, i, block, clock, i * per_block, cancel)
            reference = step.forward(keep=True) if step.has_inputs else None
            layers = yield from method.quantize_block(step)
            info = {"block": i, "seconds": 0.0, "output_rel_error": None}
            if step.has_inputs:
                outputs = step.forward(keep=True)
                info["output_rel_error"] = _relative_error(outputs, reference)
                self._hidden = outputs
            sink(i, block, layers, info)
            self.release(block)
            info["seconds"] = round(time.monotonic() - t0, 3)
            stats.append(info)
        return stats

    def _linear_names(self, i: int) -> list[str]:
        return [n for n, m in self.blocks[i].named_modules() if isinstance(m, nn.Linear)]

    @torch.no_grad()
    def logits(self) -> list[torch.Tensor]:
        """The model's logits for the current activations (after the last block): final norm, then
        the output layer (the embedding when tied). For checking the runner against the full model."""
        norm = self._load_into(self.inner.norm, "model.norm.")
        name = "lm_head.weight" if "lm_head.weight" in self.src.shapes else "model.embed_tokens.weight"
        weight = self.src.tensor(name).to(self.device, self.dtype)
        try:
            return [torch.nn.functional.linear(norm(h.to(self.device)), weight).to(self.storage) for h in self._hidden]
        finally:
            self.release(norm)


def _relative_error(outputs: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    num = sum(float(((o.float() - r.float()) ** 2).sum()) for o, r in zip(outputs, reference))
    den = sum(float((r.float() ** 2).sum()) for r in reference)
    return num / den if den else 0.0
