"""The best GPTQ that fits a size: per-layer bits and group sizes chosen by measured sensitivity.

The user names a size (`--target-size 80MB`: the whole output folder) or bits per weight
(`--target-bpw 4.5`: the quantized layers as written, codes + scales + zeros + g_idx, the way GPTQ
widths are quoted). Two passes, both streamed block by block through the block runner:

1. Sensitivity (quant/gptq/fisher.py: one forward and one backward pass of the float model over
   the calibration windows, streamed): each linear's diagonal Fisher F of the logits' KL, then for
   each candidate setting (config.GPTQ_BUDGET_CANDIDATES that fit its shape) the RTN rounding error
   dW = RTN(W) - W weighted by it: 0.5 * sum_ij F_ij dW_ij^2, the predicted increase of the mean KL
   per token when that layer alone is rounded. One currency for every layer, whatever lies between
   it and the logits (softmax, SwiGLU, later blocks). RTN rather than GPTQ errors: the cheap
   estimate that ranks layers; GPTQ lowers every layer's error by a broadly similar factor. The
   allocator adds units' predictions (KL is additive to second order for small independent errors).
   The measure it replaces (the error weighted by the inputs' mean square per channel, GPTQ's own
   objective with H's diagonal) chose worse than uniform 4-bit g64 at its size on SmolLM2; this one
   chose RTN mixes 14 % better than uniform RTN, but with GPTQ the mix is still 3 % worse than
   uniform GPTQ (bench/QUALITY.md: GPTQ's errors cancel through input correlations that a diagonal
   measure of RTN errors does not see). Its price: the pass keeps every block's inputs (n_blocks x
   the calibration activations) and reads every block twice.
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
from ...layers import BlockRunner
from ...reportcard import update_report_card
from ..allocate import allocate
from ..weight_only.settings import layout_fits
from .fisher import fisher_diagonal

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
    error: float  # predicted increase of the mean KL per token when this unit alone is rounded (RTN)


@dataclass(frozen=True)
class BudgetChoice:
    settings: dict[str, tuple[int, int]]  # linear (module name) -> (bits, group size)
    linear_bytes: int  # the quantized layers as they will be written
    budget_bytes: int  # what the target left for them
    linear_weights: int
    error: float  # the summed predicted KL increase of the choice (the allocator's objective)

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.linear_bytes / self.linear_weights

    def base(self) -> tuple[int, int]:
        """The setting most weights got: quantization_config's own bits and group size."""
        return Counter(self.settings.values()).most_common(1)[0][0]

    def counts(self) -> dict[str, int]:
        c = Counter(f"{b}-bit g{g}" for b, g in self.settings.values())
        return dict(sorted(c.items(), key=lambda kv: -kv[1]))


def fisher_error(weight: torch.Tensor, fisher: torch.Tensor, bits: int, group: int, sym: bool, rtn) -> float:
    """0.5 * sum_ij F_ij (RTN(W) - W)_ij^2: the second-order increase of the summed KL of the logits
    when this layer alone is rounded (quant/gptq/fisher.py)."""
    w = weight.float()
    d = dequantize(rtn(w, bits, group, sym, min_zero=1), torch.float32) - w
    return 0.5 * float((fisher * d * d).sum().double())


def measure_options(src: HFFolder, windows: torch.Tensor, sym: bool, device: str = "cpu", batch_size: int = 4,
                    candidates=GPTQ_BUDGET_CANDIDATES, cancel: CancelToken = NEVER, draws: int = 1, seed: int = 0,
                    ) -> Generator[Event, None, tuple[dict[str, list[Option]], dict[str, list[str]]]]:
    """Every unit's options and the linears in each unit (keys: the unit's first linear's module
    name). An option's error is the predicted increase of the mean KL per calibration token."""
    rtn = select("rtn_quantize", device).impl
    runner = BlockRunner(src, device, batch_size=batch_size)
    tokens = windows.numel()
    options: dict[str, list[Option]] = {}
    units: dict[str, list[str]] = {}

    def on_block(_i, step, fisher, alias):
        linears = step.linears()
        fallback = _fallback_fisher(fisher, linears)
        members: dict[str, list[str]] = {}
        for name in linears:
            members.setdefault(alias.get(name, name), []).append(name)
        with torch.no_grad():
            for key, names in members.items():
                unit = f"{step.prefix}{key}"
                units[unit] = [f"{step.prefix}{n}" for n in names]
                fishers = [fisher[n] if fisher[n].any() else fallback.get(tuple(fisher[n].shape), fisher[n])
                           for n in names]
                options[unit] = _unit_options([linears[n] for n in names], fishers, candidates, sym, rtn, unit, tokens)

    yield from fisher_diagonal(runner, windows, on_block, draws, seed, cancel)
    units = dict(sorted(units.items(), key=lambda kv: _block_order(kv[0], runner.layers_prefix)))
    return {u: options[u] for u in units}, units


def _block_order(unit: str, prefix: str) -> tuple[int, str]:
    index, _, rest = unit[len(prefix):].partition(".")
    return int(index), rest


def _fallback_fisher(fisher: dict[str, torch.Tensor], linears) -> dict[tuple, torch.Tensor]:
    """Per weight shape, the mean Fisher of the block's reached linears: the weighting of an expert
    no calibration token reached (it still runs at inference, so it must not look free)."""
    by_shape: dict[tuple, list[torch.Tensor]] = {}
    for name, f in fisher.items():
        if f.any():
            by_shape.setdefault(tuple(f.shape), []).append(f)
    return {shape: torch.stack(fs).mean(0) for shape, fs in by_shape.items()}


def _unit_options(layers, fishers, candidates, sym, rtn, unit, tokens) -> list[Option]:
    fits = [(b, g) for b, g in candidates
            if all(layout_fits(m.out_features, m.in_features, b, g) for m in layers)]
    if not fits:
        raise InvalidInput(f"{unit}: no GPTQ setting in the budget's candidates fits its shape "
                           f"{layers[0].out_features} x {layers[0].in_features}")
    opts = []
    for bits, group in fits:
        nbytes = sum(layer_bytes(m.out_features, m.in_features, bits, group, m.bias is not None) for m in layers)
        error = sum(fisher_error(m.weight, f, bits, group, sym, rtn) for m, f in zip(layers, fishers))
        opts.append(Option(bits, group, nbytes, error / tokens))
    return opts


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
    yield Log(f"measuring how much rounding each layer at {len(GPTQ_BUDGET_CANDIDATES)} settings (bits, group "
              "size) moves the logits (diagonal Fisher on the calibration text: one forward, one backward)")
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
        "predicted_kld_increase": choice.error, "sensitivity": "diagonal Fisher of the logits' KL", "mix": choice.counts(),
        "candidates": [list(c) for c in GPTQ_BUDGET_CANDIDATES]}})
    result = dataclasses.replace(result, size=folder_bytes(result.out))
    if cfg.target_bytes is not None and result.size > cfg.target_bytes:
        yield Log(f"the folder is {result.size / 1e6:.2f} MB, over the {cfg.target_bytes / 1e6:.2f} MB target "
                  "(its non-tensor files were larger than allowed for)", "warning")
    yield Done(result)
