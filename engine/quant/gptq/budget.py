"""The best GPTQ that fits a size: per-layer bits and group sizes chosen by measured sensitivity.

The user names a size (`--target-size 80MB`: the whole output folder) or bits per weight
(`--target-bpw 4.5`: the quantized layers as written, codes + scales + zeros + g_idx, the way GPTQ
widths are quoted). Two passes, both streamed block by block through the block runner:

1. Sensitivity (one forward pass of the float model over the calibration windows): for each linear
   its inputs' mean square per channel, h_j = mean(x_j^2), then for each candidate setting
   (config.GPTQ_BUDGET_CANDIDATES that fit its shape) the rounding error dW = RTN(W) - W weighted
   by it: sum_ij dW_ij^2 h_j. That is GPTQ's own objective tr(dW H dW^T) with H's diagonal only:
   rounding errors of different columns are nearly uncorrelated, so the off-diagonal terms of H
   average out (and the diagonal costs O(out x in) per candidate where the full H costs
   O(out x in^2), which on an 8B model would be ten GPTQ passes). RTN rather than GPTQ errors: the
   cheap estimate that ranks layers; GPTQ lowers every layer's error by a broadly similar factor.
   Known weakness (bench/QUALITY.md): on SmolLM2 the choice is worse than uniform 4-bit g64 at the
   same size; raw errors of different layers are not one currency. `gain_batches` > 0 weighs each
   unit by its measured gain (the block rerun with the unit rounded at a 4-bit probe: the change of
   the block's output over the unit's own weighted error); measured with RTN mixes it was worse
   still, so it is off by default and kept for the next attempt.
2. The real GPTQ pass (quant/weight_only/job.py) with each layer's chosen setting.

The choice is the shared knapsack (engine/quant/allocate.py, the GGUF budget's too) over units:
linears that read the very same tensor (q/k/v, gate/up) share one setting, because loaders that
fuse them (vLLM's qkv_proj, gate_up_proj) need one. The setting most weights got becomes the base
`bits`/`group_size` of quantization_config; the others go in GPTQModel's per-module "dynamic" map
(formats/gptq_layout.py), which our runtime, GPTQModel and vLLM read.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Generator

import torch

from bitsmith.kernels.registry import select
from bitsmith.kernels.woq_quantize import dequantize

from ...cancel import NEVER, CancelToken
from ...config import GPTQ_BUDGET_CANDIDATES, Method, QuantizeConfig
from ...device import resolve_device
from ...errors import InvalidInput
from ...events import Done, EtaClock, Event, Job, Log, relay
from ...formats.gptq_layout import layer_bytes
from ...formats.hf_folder import HFFolder, open_hf_folder
from ...formats.quantized_folder import COPIED, folder_bytes, plan_sizes
from ...layers import BlockRunner, BlockStep
from ...reportcard import update_report_card
from ..allocate import allocate
from ..weight_only.settings import layout_fits

#: Bytes kept back from a target size for what is not tensor data: each tensor's entry in the
#: safetensors header (measured: about 100 bytes with a long name), each quantized linear's lines in
#: the report card (its error, dampening and setting, about 175 bytes) and in config.json's
#: "dynamic" map (about 80), and the report card's and model card's fixed parts (about 5 KB).
OVERHEAD_PER_TENSOR = 128
OVERHEAD_PER_LINEAR = 300
OVERHEAD_FIXED = 8 * 1024


@dataclass(frozen=True)
class Option:
    """One setting of one unit (linears sharing an input): its bytes as written and its error."""

    bits: int
    group_size: int
    nbytes: int
    error: float  # the weighted RTN error times the unit's gain (what the allocator minimizes)
    rtn_error: float = 0.0  # the weighted RTN error alone: sum_ij dW_ij^2 h_j over the unit's linears


@dataclass(frozen=True)
class BudgetChoice:
    settings: dict[str, tuple[int, int]]  # linear (module name) -> (bits, group size)
    linear_bytes: int  # the quantized layers as they will be written
    budget_bytes: int  # what the target left for them
    linear_weights: int
    error: float  # the summed weighted RTN error of the choice (the allocator's objective)

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.linear_bytes / self.linear_weights

    def base(self) -> tuple[int, int]:
        """The setting most weights got: quantization_config's own bits and group size."""
        return Counter(self.settings.values()).most_common(1)[0][0]

    def counts(self) -> dict[str, int]:
        c = Counter(f"{b}-bit g{g}" for b, g in self.settings.values())
        return dict(sorted(c.items(), key=lambda kv: -kv[1]))


class _DiagonalStats:
    """Mean of x^2 per input channel of each hooked linear; linears fed the very same tensor share
    one accumulator (and so form one allocation unit)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.rows: dict[str, int] = {}
        self.alias: dict[str, str] = {}
        self._seen: dict[int, tuple[str, torch.Tensor]] = {}  # holding the tensor keeps its id unique

    def new_batch(self) -> None:
        self._seen.clear()

    def hook(self, name: str):
        def fn(_module, inputs, _output):
            x = inputs[0]
            first = self._seen.get(id(x), (None, None))[0]
            if first is not None and first != name:
                self.alias.setdefault(name, first)
                return
            self._seen[id(x)] = (name, x)
            x = x.reshape(-1, x.shape[-1]).float()
            sq = (x * x).sum(0).double()
            self.sums[name] = self.sums[name] + sq if name in self.sums else sq
            self.rows[name] = self.rows.get(name, 0) + x.shape[0]
        return fn

    def unit(self, name: str) -> str:
        return self.alias.get(name, name)

    def mean_square(self, name: str) -> torch.Tensor | None:
        key = self.unit(name)
        return (self.sums[key] / self.rows[key]).float() if self.rows.get(key) else None


def weighted_rtn_error(weight: torch.Tensor, h: torch.Tensor, bits: int, group: int, sym: bool, rtn) -> float:
    """sum_ij (RTN(W) - W)_ij^2 h_j: the GPTQ objective with the inputs' second moment's diagonal."""
    w = weight.float()
    d = dequantize(rtn(w, bits, group, sym, min_zero=1), torch.float32) - w
    return float((d * d).sum(0).double() @ h.double())


def measure_options(src: HFFolder, windows: torch.Tensor, sym: bool, device: str = "cpu", batch_size: int = 4,
                    candidates=GPTQ_BUDGET_CANDIDATES, cancel: CancelToken = NEVER, gain_batches: int = 0,
                    ) -> Generator[Event, None, tuple[dict[str, list[Option]], dict[str, list[str]]]]:
    """One streamed pass of the float model: every unit's options and the linears in each unit
    (keys: the unit's first linear's module name). `gain_batches`: calibration batches the block is
    rerun on to measure each unit's gain (0: every gain 1)."""
    rtn = select("rtn_quantize", device).impl
    runner = BlockRunner(src, device, batch_size=batch_size)
    yield from runner.capture(windows, cancel)
    clock = EtaClock(runner.n_blocks, "sensitivity")
    options: dict[str, list[Option]] = {}
    units: dict[str, list[str]] = {}
    for i in range(runner.n_blocks):
        cancel.check()
        block = runner.load_block(i)
        step = BlockStep(runner, i, block, clock, 0, cancel)
        linears = step.linears()
        stats = _DiagonalStats()
        outputs = step.forward(hooks={n: stats.hook(n) for n in linears}, keep=True, before_batch=stats.new_batch)
        members: dict[str, list[str]] = {}
        for name in linears:
            members.setdefault(stats.unit(name), []).append(name)
        fallback = _fallback_weights(stats, linears)
        with torch.no_grad():
            for key, names in members.items():
                unit = f"{step.prefix}{key}"
                units[unit] = [f"{step.prefix}{n}" for n in names]
                opts = _unit_options(linears, names, stats, fallback, candidates, sym, rtn, unit)
                gain = _gain(step, linears, names, outputs, opts, sym, rtn, gain_batches) if gain_batches else 1.0
                options[unit] = [dataclasses.replace(o, error=o.rtn_error * gain) for o in opts]
        runner._hidden = outputs  # the next block reads the float model's outputs (as the imatrix does)
        runner.release(block)
        yield clock.progress(i + 1, f"block {i + 1}/{runner.n_blocks}")
    return options, units


def _fallback_weights(stats: _DiagonalStats, linears) -> dict[int, torch.Tensor]:
    """Per input width, the mean statistic of the block's measured linears: the weighting of an
    expert no calibration token reached (it still runs at inference, so it must not look free)."""
    by_width: dict[int, list[torch.Tensor]] = {}
    for name, layer in linears.items():
        h = stats.mean_square(name)
        if h is not None:
            by_width.setdefault(layer.in_features, []).append(h)
    return {w: torch.stack(hs).mean(0) for w, hs in by_width.items()}


def _unit_options(linears, names, stats, fallback, candidates, sym, rtn, unit) -> list[Option]:
    layers = [linears[n] for n in names]
    fits = [(b, g) for b, g in candidates
            if all(layout_fits(m.out_features, m.in_features, b, g) for m in layers)]
    if not fits:
        raise InvalidInput(f"{unit}: no GPTQ setting in the budget's candidates fits its shape "
                           f"{layers[0].out_features} x {layers[0].in_features}")
    opts = []
    for bits, group in fits:
        nbytes, error = 0, 0.0
        for name, m in zip(names, layers):
            h = stats.mean_square(name)
            if h is None:
                h = fallback.get(m.in_features, torch.ones(m.in_features))
            nbytes += layer_bytes(m.out_features, m.in_features, bits, group, m.bias is not None)
            error += weighted_rtn_error(m.weight, h, bits, group, sym, rtn)
        opts.append(Option(bits, group, nbytes, error, error))
    return opts


def _gain(step: BlockStep, linears, names, reference, opts: list[Option], sym: bool, rtn, batches: int) -> float:
    """How strongly the unit's output error reaches the block's output (the residual stream every
    later block reads): the block rerun on the first `batches` calibration batches with the unit
    rounded at a 4-bit probe setting, ||dY||^2 per token over the unit's own sum dW^2 h at that
    setting. q/k go through the softmax, gate/up through SwiGLU and down_proj, o/down add straight
    to the stream: measured per unit rather than assumed, so errors of different layers are counted
    in one currency."""
    probe = min(opts, key=lambda o: (abs(o.bits - 4), -o.group_size))
    saved = {n: linears[n].weight.detach().clone() for n in names}
    try:
        for n in names:
            w = linears[n].weight
            w.copy_(dequantize(rtn(w.float(), probe.bits, probe.group_size, sym, min_zero=1), w.dtype))
        changed = step.forward(keep=True, batches=batches)
    finally:
        for n, w in saved.items():
            linears[n].weight.copy_(w)
    tokens = sum(o.shape[0] * o.shape[1] for o in changed)
    moved = sum(float(((c.float() - r.float()) ** 2).sum()) for c, r in zip(changed, reference))
    return (moved / tokens) / probe.rtn_error if probe.rtn_error > 0 and tokens else 1.0


def linear_budget(cfg: QuantizeConfig, src: HFFolder, n_linears: int, linear_weights: int) -> int:
    """Bytes the target leaves for the quantized layers. A bits-per-weight target counts those
    layers alone; a size counts the whole folder, so the tensors kept in 16 bits (embeddings, norms,
    the head), the copied tokenizer files and the overhead above come out of it."""
    if cfg.target_bpw is not None:
        return int(cfg.target_bpw * linear_weights / 8)
    linears = {n[:-len(".weight")] for n in src.structure.quantizable}
    tensors = plan_sizes(src, "gptq", 128, 4)
    kept = sum(n for name, n in tensors if name.rsplit(".", 1)[0] not in linears)
    copied = sum((src.path / f).stat().st_size for f in (*COPIED, "config.json") if (src.path / f).is_file())
    overhead = OVERHEAD_FIXED + OVERHEAD_PER_TENSOR * len(tensors) + OVERHEAD_PER_LINEAR * n_linears
    return cfg.target_bytes - kept - copied - overhead


def check_target(cfg: QuantizeConfig, src: HFFolder) -> tuple[int, int]:
    """(bytes the target leaves for the quantized layers, their weight count), refused at once when
    even the smallest setting of every layer would not fit: before any calibration work."""
    shapes = {n: tuple(int(d) for d in src.shapes[n]) for n in src.structure.quantizable}
    weights = sum(o * i for o, i in shapes.values())
    budget = linear_budget(cfg, src, len(shapes), weights)
    smallest = 0
    for name, (o, i) in shapes.items():
        sizes = [layer_bytes(o, i, b, g, False) for b, g in GPTQ_BUDGET_CANDIDATES if layout_fits(o, i, b, g)]
        if not sizes:
            raise InvalidInput(f"{name}: no GPTQ setting in the budget's candidates fits its shape {o} x {i}")
        smallest += min(sizes) + (2 * o if f"{name[:-len('.weight')]}.bias" in src.shapes else 0)
    if smallest > budget:
        raise InvalidInput(f"the target is too small: even the smallest setting of every layer needs "
                           f"{smallest / 1e6:.3f} MB for the quantized layers ({8 * smallest / weights:.2f} bits "
                           f"per weight), and the target leaves {max(budget, 0) / 1e6:.3f} MB for them",
                           suggestion="choose a larger size or more bits per weight")
    return budget, weights


def choose(options: dict[str, list[Option]], units: dict[str, list[str]], budget: int,
           linear_weights: int) -> BudgetChoice:
    chosen = allocate(options, budget)
    settings = {layer: (o.bits, o.group_size) for unit, o in chosen.items() for layer in units[unit]}
    return BudgetChoice(settings, sum(o.nbytes for o in chosen.values()), budget, linear_weights,
                        sum(o.error for o in chosen.values()))


def quantize_gptq_to_budget(cfg: QuantizeConfig, ids: torch.Tensor | None, run: Callable[..., Job],
                            cancel: CancelToken = NEVER) -> Job:
    """Sensitivity pass, allocation, then `run` (the weight-only job, quant/weight_only/job.py,
    which calls this: passed in rather than imported, so the modules do not import each other)
    with per-layer settings; ends in Done with its result (the report card gains a "budget" section)."""
    if cfg.method is not Method.GPTQ:
        raise InvalidInput(f"the per-layer size budget runs gptq, not {cfg.method.value}")
    src = open_hf_folder(cfg.source)
    if ids is None:
        raise InvalidInput("a size-budget GPTQ needs calibration windows")
    budget, linear_weights = check_target(cfg, src)
    yield Log(f"measuring each layer's error at {len(GPTQ_BUDGET_CANDIDATES)} settings (bits, group size), "
              "weighted by its inputs on the calibration text")
    device = resolve_device(cfg.device).torch_device
    options, units = yield from measure_options(src, ids, cfg.sym, device, int(cfg.extra.get("batch_size", 4)),
                                                cancel=cancel)
    choice = choose(options, units, budget, linear_weights)
    base = choice.base()
    overrides = tuple(sorted((n, b, g) for n, (b, g) in choice.settings.items() if (b, g) != base))
    yield Log(f"chosen: {', '.join(f'{n} {k}' for k, n in choice.counts().items())} "
              f"({choice.bits_per_weight:.2f} bits per weight in the quantized layers)")
    run_cfg = dataclasses.replace(cfg, bits=base[0], group_size=base[1], target_bpw=None, target_bytes=None,
                                  extra={**cfg.extra, "layer_overrides": overrides})
    result = yield from relay(run(run_cfg, ids, cancel))
    update_report_card(result.out, {"budget": {
        "target_bpw": cfg.target_bpw, "target_bytes": cfg.target_bytes, "linear_budget_bytes": choice.budget_bytes,
        "linear_bytes": choice.linear_bytes, "linear_bits_per_weight": round(choice.bits_per_weight, 4),
        "weighted_rtn_error": choice.error, "mix": choice.counts(),
        "candidates": [list(c) for c in GPTQ_BUDGET_CANDIDATES]}})
    result = dataclasses.replace(result, size=folder_bytes(result.out))
    if cfg.target_bytes is not None and result.size > cfg.target_bytes:
        yield Log(f"the folder is {result.size / 1e6:.2f} MB, over the {cfg.target_bytes / 1e6:.2f} MB target "
                  "(its non-tensor files were larger than allowed for)", "warning")
    yield Done(result)
