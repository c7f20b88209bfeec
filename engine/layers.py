"""The block-by-block runner shared by GPTQ, AWQ, RTN and the importance matrix.

The model is the checkpoint reader's meta-device skeleton (engine/checkpoint.py: no memory, real
rotary buffers, experts split per expert), and its decoder blocks are found in its module tree
(engine/model_structure.py), whatever the family. Only what is in use is read from the safetensors
files, under the module names (renamed from the checkpoint's where a family differs): the base
model's own weights (embedding, final norm) while the windows are embedded, then one decoder block
at a time. Peak memory is one block plus the activations of the calibration
windows (kept on the CPU between blocks, moved to the compute device one batch at a time).

Capture runs the real model forward with every decoder block replaced by a recorder, so whatever
the family passes its blocks (rotary cos/sin, causal mask, position ids, per-layer mask types) is
recorded exactly as transformers computes it. Then for each block: materialize it, let the method
quantize its linear layers (running the block as often as it needs, with hooks), run the quantized
block to get the next block's inputs, hand the block to the writer, release it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Generator, Iterable, Protocol

import torch
from torch import nn

from .cancel import NEVER, CancelToken
from .checkpoint import float_cast, read_state, skeleton
from .errors import InvalidInput
from .events import EtaClock, Event, Progress
from .formats.hf_folder import HFFolder
from .allocator import map_large_buffers
from .layer_replay import LayerReplay, replay_budget
from .model_structure import decoder_blocks, router_like


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


#: Calibration batches the block output error (the report's figure) is measured on.
REFERENCE_BATCHES = 2


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
    #: Outputs of the block's final layers for later passes to replay (engine/layer_replay.py).
    replay: LayerReplay | None = None

    @property
    def prefix(self) -> str:
        return f"{self.runner.layers_prefix}{self.index}."

    @property
    def has_inputs(self) -> bool:
        return self.runner.n_batches > 0

    def linears(self) -> dict[str, nn.Linear]:
        """The block's linears to quantize, in module order (routers stay in high precision)."""
        kept = router_like(self.block)
        return {n: m for n, m in self.block.named_modules() if isinstance(m, nn.Linear) and n not in kept}

    def forward(self, hooks: dict[str, Callable] | None = None, stop_after: Iterable[str] = (),
                keep: bool = False, before_batch: Callable[[], None] | None = None,
                batches: int | None = None, pre_hooks: dict[str, Callable] | None = None,
                stop_before: Iterable[str] = (), record: Iterable[str] = ()) -> list[torch.Tensor] | None:
        """`batches`: only the first N calibration batches (tracing the block's structure).
        `record`: layers whose weights are final and whose inputs no later pass changes; their
        outputs are kept in `self.replay` and later passes (this block's last one included) replay
        them instead of computing them."""
        return self.runner.forward_block(self.index, self.block, hooks, stop_after, keep, before_batch, batches,
                                         pre_hooks, stop_before, self.replay, record)

    def batches_covering(self, tokens: int) -> int:
        """How many of the first calibration batches hold at least `tokens` tokens (all if fewer)."""
        total = 0
        for k, hidden in enumerate(self.runner._hidden, 1):
            total += hidden.shape[0] * hidden.shape[1]
            if total >= tokens:
                return k
        return len(self.runner._hidden)

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
        map_large_buffers()  # activations freed block after block must not fragment the heap
        self.src, self.device, self.dtype, self.batch_size, self.storage = source, device, dtype, batch_size, storage
        self.model = skeleton(source.path, dtype)
        self.layers_prefix, layers = decoder_blocks(self.model)
        parent, _, self._layers_attr = self.layers_prefix[:-1].rpartition(".")
        self.inner = self.model.get_submodule(parent) if parent else self.model
        self._inner_prefix = f"{parent}." if parent else ""
        self.blocks = list(layers)[:max_blocks]
        _buffers_to(self.model, device)  # rotary tables and embedding scales: real, computed at build
        self._hidden: list[torch.Tensor] = []
        self._kwargs: list[list[dict]] = [[] for _ in self.blocks]

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def n_batches(self) -> int:
        return len(self._hidden)

    # -- loading ------------------------------------------------------------------------------
    def _load_into(self, module: nn.Module, prefix: str, exclude: str | tuple[str, ...] | None = None) -> nn.Module:
        """Fill `module` (module names under `prefix`) from the checkpoint, renamed and cast."""
        names = [n for n in self.src.shapes if self.src.module_name(n).startswith(prefix)
                 and not (exclude and self.src.module_name(n).startswith(exclude))]
        state = read_state(self.src.files, lambda n: self.src.module_name(n)[len(prefix):],
                           float_cast(self.dtype), names, device=self.device)
        missing, unexpected = module.load_state_dict(state, assign=True, strict=False)
        if exclude:
            missing = [k for k in missing if not (prefix + k).startswith(exclude)]
        if missing or unexpected:
            raise InvalidInput(f"{self.src.path}: the checkpoint does not match the model under '{prefix}' "
                               f"(first {'missing' if missing else 'unexpected'}: {(missing or unexpected)[0]})")
        return module.requires_grad_(False)  # read onto the device; buffers were moved at build

    def load_block(self, i: int) -> nn.Module:
        return self._load_into(self.blocks[i], f"{self.layers_prefix}{i}.")

    def _load_outside(self) -> nn.Module:
        """The base model's own weights outside the blocks (embedding, final norm)."""
        return self._load_into(self.inner, self._inner_prefix, exclude=self.layers_prefix)

    def release(self, module: nn.Module) -> None:
        """Parameters back to the meta device; buffers stay (rotary tables are not in checkpoints)."""
        for m in module.modules():
            for name, p in m._parameters.items():
                if p is not None and not p.is_meta:
                    m._parameters[name] = nn.Parameter(p.to("meta"), requires_grad=False)

    # -- running ------------------------------------------------------------------------------
    @torch.no_grad()
    def capture(self, windows: torch.Tensor, cancel: CancelToken = NEVER) -> Generator[Event, None, None]:
        """Embed the windows [n, seq_len] and record what block 0 receives (and every block's kwargs)."""
        self._hidden, self._kwargs = [], [[] for _ in self.blocks]
        outside = self._load_outside()
        recorders = nn.ModuleList(_Recorder(i, self, i == self.n_blocks - 1) for i in range(self.n_blocks))
        original = getattr(self.inner, self._layers_attr)
        setattr(self.inner, self._layers_attr, recorders)
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
            setattr(self.inner, self._layers_attr, original)
            self.release(outside)

    @torch.no_grad()
    def forward_block(self, i: int, block: nn.Module, hooks: dict[str, Callable] | None = None,
                      stop_after: Iterable[str] = (), keep: bool = False,
                      before_batch: Callable[[], None] | None = None,
                      batches: int | None = None, pre_hooks: dict[str, Callable] | None = None,
                      stop_before: Iterable[str] = (), replay: LayerReplay | None = None,
                      record: Iterable[str] = ()) -> list[torch.Tensor] | None:
        """Run every captured batch through `block`; forward hooks (and forward pre-hooks) by
        relative module name; end each batch as soon as every module in `stop_after` has run, or
        every module in `stop_before` has been called (before it computes anything): the later
        layers are not needed. Return the outputs (on the storage device) when `keep`."""
        modules = dict(block.named_modules())
        record = list(record) if replay is not None else []
        handles = [modules[name].register_forward_hook(fn) for name, fn in (hooks or {}).items()]
        handles += [modules[name].register_forward_pre_hook(fn) for name, fn in (pre_hooks or {}).items()]
        if record:
            handles += [modules[name].register_forward_hook(fn) for name, fn in replay.recorders(record).items()]
        wanted, seen = set(stop_after) | set(stop_before), set()
        for name in wanted:  # registered after the hooks, so those see the batch before it stops
            def stop(*_, name=name):
                seen.add(name)
                if seen >= wanted:
                    raise _StopForward
            register = modules[name].register_forward_pre_hook if name in stop_before else modules[name].register_forward_hook
            handles.append(register(stop))
        outputs = []
        try:
            with replay.replaying(modules) if replay is not None else contextlib.nullcontext():
                for b, hidden in enumerate(self._hidden[:batches]):
                    seen.clear()
                    if replay is not None:
                        replay.start_batch(b)
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
        if record and batches is None:
            replay.finish(record, len(self._hidden))
        return outputs if keep else None

    @property
    def activations(self) -> list[torch.Tensor]:
        """What the next block receives (once `run` finished a block): what a checkpoint keeps."""
        return self._hidden

    def run(self, method: BlockMethod, sink: Callable[[int, nn.Module, dict, dict], Event | None],
            cancel: CancelToken = NEVER, stage: str = "quantizing", start: int = 0,
            activations: list[torch.Tensor] | None = None) -> Generator[Event, None, list[dict]]:
        """Quantize every block with `method`; `sink(i, block, layers, stats)` writes each one (an
        event it returns is passed on). Returns per-block stats (seconds, block output error when
        there is calibration data). A resumed job starts at block `start`, from the `activations`
        an earlier run kept (the inputs of that block; capture still records the blocks' kwargs)."""
        if activations is not None:
            self._hidden = list(activations)
        per_block = len(self._linear_names(0))
        clock = EtaClock(self.n_blocks * per_block, stage, done=start * per_block)
        stats = []
        for i in range(start, self.n_blocks):
            cancel.check()
            t0 = time.monotonic()
            block = self.load_block(i)
            step = BlockStep(self, i, block, clock, i * per_block, cancel, replay=LayerReplay(replay_budget(self.device)))
            # The block's float output for the error figure: a sample of the batches is enough
            # for a report, and all of them cost a whole extra forward pass of the block.
            reference = step.forward(keep=True, batches=REFERENCE_BATCHES) if step.has_inputs else None
            layers = yield from method.quantize_block(step)
            info = {"block": i, "seconds": 0.0, "output_rel_error": None}
            if step.has_inputs:
                outputs = step.forward(keep=True)
                info["output_rel_error"] = _relative_error(outputs, reference)
                self._hidden = outputs
            step.replay.clear()
            note = sink(i, block, layers, info)
            self.release(block)
            info["seconds"] = round(time.monotonic() - t0, 3)
            stats.append(info)
            if note is not None:
                yield note
        return stats

    def _linear_names(self, i: int) -> list[str]:
        kept = router_like(self.blocks[i])
        return [n for n, m in self.blocks[i].named_modules() if isinstance(m, nn.Linear) and n not in kept]

    @torch.no_grad()
    def logits(self) -> list[torch.Tensor]:
        """The model's logits for the current activations (after the last block), through the
        model's own head: final norm, output layer, and whatever the family applies to logits
        (soft-capping, scaling). For checking the runner against the full model."""
        outside = self._load_outside()
        head = self.model.get_output_embeddings()
        tied = bool(getattr(self.model.config, "tie_word_embeddings", False))
        if not tied:
            self._load_into(head, self.src.module_name("lm_head.weight")[:-len("weight")])
        else:
            self.model.tie_weights()
        original = getattr(self.inner, self._layers_attr)
        out = []
        try:
            for hidden in self._hidden:
                setattr(self.inner, self._layers_attr, nn.ModuleList([_Replay(hidden.to(self.device))]))
                ids = torch.zeros(hidden.shape[:2], dtype=torch.long, device=self.device)
                out.append(self.model(input_ids=ids, use_cache=False).logits.to(self.storage))
        finally:
            setattr(self.inner, self._layers_attr, original)
            self.release(outside)
            self.release(head)
        return out

    @torch.no_grad()
    def head_inputs(self, fn: Callable[[torch.Tensor], None]) -> None:
        """Call `fn` with what the output layer receives for each batch of the current activations
        (after the final norm and whatever the family applies before the head), without computing
        the logits (vocabulary x hidden per token: a sixteenth of an 8B forward). Neither the head
        nor the embedding is read: the hook stops before the head's weights are used, and the
        model is fed embeddings (ignored by the stand-in for the blocks), not token ids."""
        embed = self.model.get_input_embeddings()
        embed_prefix = next(n for n, m in self.model.named_modules() if m is embed) + "."
        outside = self._load_into(self.inner, self._inner_prefix, exclude=(self.layers_prefix, embed_prefix))
        head = self.model.get_output_embeddings()

        def stop(_module, inputs):
            fn(inputs[0])
            raise _StopForward

        handle = head.register_forward_pre_hook(stop)
        original = getattr(self.inner, self._layers_attr)
        try:
            for hidden in self._hidden:
                hidden = hidden.to(self.device)
                setattr(self.inner, self._layers_attr, nn.ModuleList([_Replay(hidden)]))
                try:
                    self.model(inputs_embeds=torch.zeros_like(hidden, dtype=self.dtype), use_cache=False)
                except _StopForward:
                    pass
        finally:
            handle.remove()
            setattr(self.inner, self._layers_attr, original)
            self.release(outside)


class _Replay(nn.Module):
    """Stands in for the blocks: returns the stored activations whatever it is given."""

    def __init__(self, hidden: torch.Tensor):
        super().__init__()
        self.hidden = hidden

    def forward(self, hidden_states, *args, **kwargs):
        return self.hidden


def _buffers_to(model: nn.Module, device: str) -> None:
    for m in model.modules():
        for name, b in m._buffers.items():
            if b is not None and not b.is_meta:
                m._buffers[name] = b.to(device)


def _relative_error(outputs: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    num = sum(float(((o.float() - r.float()) ** 2).sum()) for o, r in zip(outputs, reference))
    den = sum(float((r.float() ** 2).sum()) for r in reference)
    return num / den if den else 0.0
