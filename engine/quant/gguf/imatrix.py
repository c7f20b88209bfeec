"""Importance matrix: for every linear layer, how strongly each input channel is driven.

The calibration windows go through the same block runner as GPTQ and AWQ (engine/layers.py): the
embedding, then one decoder block at a time read from the safetensors shards, then the output
layer's input, so memory does not grow with depth. A forward hook on each nn.Linear adds up the
squares (and the values) of its inputs per input channel and counts the rows, the statistics
llama.cpp's imatrix tool gathers. Entries are keyed by the GGUF name of the weight the layer
multiplies ("blk.0.attn_q.weight"), because that is how llama.cpp's quantizer looks them up. The
Q/K rotary permutation reorders output rows only, so the input-channel statistics need no
permutation.

Routed experts (split per expert by the runner's skeleton) map to llama.cpp's merged
`blk.N.ffn_{gate,up,down}_exps.weight`: one row-block of statistics per expert with its own count
(the rows the router sent it), as llama.cpp's collector stores MUL_MAT_ID inputs. The output
layer's entry is gathered (when it is its own tensor) from its input without computing the logits.

Precision: each batch is reduced in float32 by torch (a pairwise sum over a few thousand rows,
relative error ~1e-7); only the running totals across batches are float64 (vectors of one row per
channel: free, and they keep 100k-token sums from drifting). Layers that read the same tensor
(q/k/v, gate/up, an expert's gate/up) share one reduction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generator

import gguf
import numpy as np

from ...cancel import NEVER, CancelToken
from ...errors import InvalidInput, OutOfMemory
from ...events import EtaClock, Event, Log
from ...formats.gguf.arch import require_export_arch
from ...formats.gguf.export_tensors import OUTPUT, gguf_arch_enum
from ...formats.hf_folder import HFFolder

#: Calibration windows run through each block this many at a time (rows per matmul: 4 x seq_len).
BATCH = 4

_EXPERT = re.compile(r"^(?:.*\.)?layers\.(\d+)\..*\.experts\.(\d+)\.(gate|up|down)_proj$")


@dataclass
class ImatrixStats:
    # sum of x² per input channel: [n_in] for a matrix, [n_expert, n_in] for merged experts
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    act_sums: dict[str, np.ndarray] = field(default_factory=dict)  # sum of x per input channel, same shapes
    counts: dict[str, int | np.ndarray] = field(default_factory=dict)  # rows seen (an array per expert for experts)
    n_chunks: int = 0
    chunk_size: int = 0
    datasets: list[str] = field(default_factory=list)

    def means(self) -> dict[str, np.ndarray]:
        """Mean of squared inputs per channel, flat (experts one after another): what
        llama_model_quantize takes as `imatrix`. An expert no token reached gets 1 (no weighting),
        as llama.cpp's own reader fills it."""
        out = {}
        for name, s in self.sums.items():
            c = np.asarray(self.counts[name], dtype=np.float64)
            if s.ndim == 1:
                out[name] = (s / max(float(c), 1.0)).astype(np.float32)
            else:
                m = np.where(c[:, None] > 0, s / np.maximum(c, 1)[:, None], 1.0)
                out[name] = m.astype(np.float32).reshape(-1)
        return out


def gguf_name(module: str, table, tied: bool) -> tuple[str, int | None] | None:
    """(GGUF weight name, expert index or None) of a linear module, or None when llama.cpp keeps
    no entry for it (the tied head is the embedding, looked up and never multiplied)."""
    m = _EXPERT.match(module)
    if m:
        return f"blk.{m.group(1)}.ffn_{m.group(3)}_exps.weight", int(m.group(2))
    name = table.get_name(module + ".weight", try_suffixes=(".weight",))
    if name is None or (name == OUTPUT and tied):
        return None
    return name, None


def linear_gguf_names(module_names: list[str], src: HFFolder, n_layer: int, tied: bool) -> dict[str, str]:
    """HF module name ("model.layers.0.self_attn.q_proj") -> GGUF weight name, for the weights
    llama.cpp multiplies activations with; lm_head counts only when it is its own tensor."""
    table = _name_table(src, n_layer)
    out = {}
    for module in module_names:
        found = gguf_name(module, table, tied)
        if found is not None:
            out[module] = found[0]
    return out


def _name_table(src: HFFolder, n_layer: int):
    return gguf.get_tensor_name_map(gguf_arch_enum(require_export_arch(src.family, str(src.path))), n_layer)


class _Collector:
    """Per-batch float32 reductions added into float64 totals, keyed by GGUF name."""

    def __init__(self, stats: ImatrixStats, n_experts: int):
        self.stats, self.n_experts = stats, n_experts
        self._last = None  # (input tensor, its reductions): q/k/v and gate/up read one tensor

    def _reduce(self, x):
        import torch

        if self._last is not None and self._last[0] is x:
            return self._last[1]
        flat = x.detach().reshape(-1, x.shape[-1]).to(torch.float32)
        red = ((flat * flat).sum(0).double().numpy(), flat.sum(0).double().numpy(), flat.shape[0])
        self._last = (x, red)
        return red

    def hook(self, name: str, expert: int | None):
        def fn(_module, inputs, _output):
            sq, act, rows = self._reduce(inputs[0])
            s = self.stats
            if name not in s.sums:
                shape = (sq.shape[0],) if expert is None else (self.n_experts, sq.shape[0])
                s.sums[name], s.act_sums[name] = np.zeros(shape), np.zeros(shape)
                s.counts[name] = 0 if expert is None else np.zeros(self.n_experts, dtype=np.int64)
            if expert is None:
                s.sums[name] += sq
                s.act_sums[name] += act
                s.counts[name] += rows
            else:
                s.sums[name][expert] += sq
                s.act_sums[name][expert] += act
                s.counts[name][expert] += rows
        return fn

    def forget(self) -> None:
        self._last = None


def check_memory(src: HFFolder, n_tokens: int) -> None:
    """Streamed: the larger of the embedding (read while the windows are embedded; the head is
    never read) and one block, in float32, plus the activations twice (a block's inputs and
    outputs)."""
    from ...telemetry import available_memory

    hidden = int(src.config.get("hidden_size", 0))
    per_block: dict[int, int] = {}
    outside = 0
    for name, shape in src.shapes.items():
        n = int(np.prod(shape))
        m = re.search(r"layers\.(\d+)\.", name)
        if m:
            per_block[int(m.group(1))] = per_block.get(int(m.group(1)), 0) + n
        elif not name.startswith("lm_head"):
            outside += n
    need = 4 * max(outside, max(per_block.values(), default=0)) + 2 * n_tokens * hidden * 4
    free = available_memory()
    if need > free * 0.9:
        raise OutOfMemory(
            f"{src.path}: the importance matrix needs about {need / 1024**3:.1f} GiB (one block in float32 and "
            f"the calibration activations) but only {free / 1024**3:.1f} GiB of memory is free",
            suggestion="use fewer calibration samples, or turn the importance matrix off (--imatrix off)")


def compute_imatrix(src: HFFolder, windows, dataset: str, tied: bool, cancel: CancelToken = NEVER,
                    device: str = "cpu") -> Generator[Event, None, ImatrixStats]:
    """Run `windows` (equal-length token lists or an [n, seq_len] tensor) through the model block by
    block and return the per-weight statistics."""
    import torch

    from ...layers import BlockRunner

    try:
        ids = torch.as_tensor(windows, dtype=torch.long) if not isinstance(windows, torch.Tensor) else windows.long()
    except (ValueError, TypeError):
        ids = torch.empty(0)
    if ids.ndim != 2 or ids.shape[0] == 0:
        raise InvalidInput("the importance matrix needs calibration windows of one length")
    check_memory(src, ids.numel())
    runner = BlockRunner(src, device, torch.float32, batch_size=BATCH)
    n_layer = int(src.config["num_hidden_layers"])
    table = _name_table(src, n_layer)
    stats = ImatrixStats(chunk_size=int(ids.shape[1]), datasets=[dataset], n_chunks=int(ids.shape[0]))
    expected: set[str] = set()
    for event in runner.capture(ids, cancel):
        yield event
    clock = EtaClock(runner.n_blocks + 1, "imatrix")
    yield clock.progress(0, "embedded the calibration windows")
    with torch.inference_mode():
        for i in range(runner.n_blocks):
            cancel.check()
            block = runner.load_block(i)
            prefix = f"{runner.layers_prefix}{i}."
            experts = [m for n, m in block.named_modules() if n.endswith("experts") and isinstance(m, torch.nn.ModuleList)]
            collector = _Collector(stats, len(experts[0]) if experts else 0)
            hooks = {}
            for rel, module in block.named_modules():
                if isinstance(module, torch.nn.Linear):
                    found = gguf_name(prefix + rel, table, tied)
                    if found is not None:
                        hooks[rel] = collector.hook(*found)
                        expected.add(found[0])
            runner._hidden = runner.forward_block(i, block, hooks, keep=True, before_batch=collector.forget)
            collector.forget()
            runner.release(block)
            yield clock.progress(i + 1, f"block {i + 1}/{runner.n_blocks}")
        head = gguf_name(_head_module(src), table, tied) if not tied else None
        if head is not None:
            collector = _Collector(stats, 0)
            runner.head_inputs(lambda x: collector.hook(head[0], None)(None, (x,), None))
            expected.add(head[0])
    yield clock.progress(runner.n_blocks + 1, "output layer")
    missing = sorted(expected - set(stats.sums))
    if missing:
        yield Log(f"no activations reached {len(missing)} weights (e.g. {missing[0]})", "warning")
    partial = [n for n, c in stats.counts.items() if np.ndim(c) and (np.asarray(c) == 0).any()]
    if partial:
        yield Log(f"{len(partial)} expert tensors have experts no calibration token reached (e.g. {partial[0]}); "
                  "those experts are quantized without weighting", "warning")
    return stats


def _head_module(src: HFFolder) -> str:
    return src.module_name("lm_head.weight")[:-len(".weight")] if "lm_head.weight" in src.shapes else "lm_head"
