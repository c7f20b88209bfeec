"""What a conversion will cost before it runs: output size, peak memory, disk, and time.

The GUI's plan page and `bitsmith quantize` both print this. Time estimates scale with this
machine's measured matrix-multiply speed (a ~0.1 s probe, run once per process), so they follow
the hardware; the per-stage constants were fitted to runs on the development machine (see the
benchmarks), and the estimate is meant to be right within a factor of about two.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from math import erfc, sqrt
from pathlib import Path
from typing import Callable

from .config import BUDGET_CANDIDATES, GPTQ_BUDGET_CANDIDATES, GGUFType, Method, QuantizeConfig, WeightOnlySettings
from .fsutil import DISK_MARGIN, disk_shortfall, free_bytes
from .gguf_size import METADATA_BYTES as GGUF_METADATA_BYTES, estimate_bytes
from .methods import METHODS
from .model_shape import ModelShape, default_group_size, model_shape  # noqa: F401 (re-exported)
from .telemetry import available_memory

#: Python, torch, transformers and llama.cpp loaded: what any job costs before its own data.
BASE_PROCESS_BYTES = 700 * 1024**2

#: torch's matmuls on all cores against one core's speed times the cores (2-core machine: 0.9)
PARALLEL_EFFICIENCY = 0.9

# Calibrated against bench/bench_scale.py (bench/SCALE.md: 1B-shape at 4 and 16 layers, 8B at 32):
#: the fraction of the probe's speed a forward pass over calibration windows sustains (1B shape,
#: 4 layers, 2048 tokens: 1.81 TFLOP in 32 CPU s on 2 cores, i.e. ~1.0 x the probe; 0.9 kept)
FORWARD_EFFICIENCY = 0.9
#: the importance matrix's cost in forward passes (statistics per linear input, no logits)
IMATRIX_FORWARDS = 1.0
#: parameters per second read from bf16/fp16 shards and cast to float32 (page cache cold or warm)
READ_CAST_RATE = 200e6
#: parameters per second: the F16 intermediate written, and llama.cpp's K-quant encoding of it
GGUF_F16_RATE = 25e6
LLAMA_QUANTIZE_RATE = 25e6
#: forward passes over the calibration windows that GPTQ and AWQ cost, their statistics and
#: solves apart: GPTQ's capture passes stop before each group and replay the layers quantized
#: before it (about one pass) plus the error figure's sample; AWQ's statistics pass stops before
#: the last layer, then the quantized block's outputs and the fold checks.
BLOCK_FORWARDS = {Method.GPTQ: 1.5, Method.AWQ: 2.5}
#: AWQ rounded by GPTQ: GPTQ's own passes and the fold checks, plus AWQ's statistics pass over its
#: share of the tokens (WeightOnlySettings.awq_search_tokens).
AWQ_GPTQ_FORWARDS = 1.75
#: Element operations per second of the grid searches and GPTQ's per-column work on one core's
#: worth of memory traffic, and the fixed cost of one GPTQ column (a dozen small torch calls).
#: Fitted to bench_scale, 1B shape, 2048 tokens: GPTQ 25 s and AWQ ~40 s per block on 2 cores.
ELEMENTWISE_RATE = 2e9
GPTQ_COLUMN_S = 250e-6
#: AWQ's scale and clip searches run at this share of the machine's matmul speed (small products
#: and rounding in between).
AWQ_SEARCH_EFFICIENCY = 0.3


@functools.lru_cache(maxsize=1)
def machine_gflops() -> float:
    """fp32 matmul speed of this machine with torch's threads when nothing else runs: one core's
    speed in its own CPU time (the fastest of five samples, 0.1 s in all), times the threads, times
    PARALLEL_EFFICIENCY.

    CPU time, not wall time: on a busy machine a wall-clock probe of small matmuls on two threads
    read 2 GFLOP/s instead of 34 (each thread waits for the other, descheduled), which made every
    estimate ten times too long; a core's own speed does not depend on who else runs. The plan is
    therefore for an idle machine; `busy_note()` tells the plan page how far from that it is."""
    import torch

    threads = torch.get_num_threads()
    a = torch.randn(512, 512)
    b = torch.randn(512, 512)
    torch.set_num_threads(1)
    try:
        a @ b
        single = max(_matmul_rate(lambda: a @ b, 2 * 512**3, PROBE_SAMPLE_S) for _ in range(PROBE_SAMPLES))
    finally:
        torch.set_num_threads(threads)
    return single * threads * (PARALLEL_EFFICIENCY if threads > 1 else 1.0)


#: The probe's 0.1 s as five samples, of which the fastest counts: a core can run slow for a moment
#: for reasons outside the process, and one sample then sets every estimate of the session. On the
#: development machine (a virtual one) a single 0.1 s sample read about 76 GFLOP/s in one benchmark
#: child where 13 probes that day read 128-163, and made that AWQ plan 2.4x too long
#: (bench/SCALE.md, session 12).
PROBE_SAMPLES = 5
PROBE_SAMPLE_S = 0.02


def _matmul_rate(step: Callable[[], object], flop: float, seconds: float) -> float:
    """GFLOP/s of `step` repeated for at least `seconds` of this thread's CPU time."""
    n, t0 = 0, time.thread_time()
    while time.thread_time() - t0 < seconds:
        step()
        n += 1
    return n * flop / max(time.thread_time() - t0, 1e-9) / 1e9


@dataclass(frozen=True)
class Plan:
    method: Method
    source: Path
    steps: tuple[str, ...]
    group_size: int | None
    output_bytes: int
    peak_memory_bytes: int
    disk_needed_bytes: int
    disk_free_bytes: int
    memory_available_bytes: int
    seconds: float
    warnings: tuple[str, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)
    source_bytes: int | None = None  # the file or folder the user picked, as it is on disk

    @property
    def fits(self) -> bool:
        return (self.peak_memory_bytes <= self.memory_available_bytes
                and self.disk_needed_bytes + DISK_MARGIN <= self.disk_free_bytes)


def _bits_per_weight(cfg: QuantizeConfig, group: int | None) -> float:
    if cfg.method is Method.GGUF:
        return cfg.gguf_type.nominal_bits
    if cfg.method in (Method.INT8, Method.BNB_INT8):
        return 8.0 + 32 / 4096  # one fp32 scale per row of a typical width
    if cfg.method is Method.BNB_NF4:
        return 4.0 + 32 / 64  # one fp32 absmax per 64 values
    g = group if group and group > 0 else 4096
    return cfg.bits + (16 + cfg.bits) / g  # fp16 scale and a packed zero per group


def _output_bytes(cfg: QuantizeConfig, shape: ModelShape, group: int | None) -> int:
    if cfg.budget and cfg.method is Method.GPTQ and cfg.target_bpw is not None:
        # GPTQ's bits per weight count its quantized layers; the rest stays 16-bit.
        return int(shape.block_linear_params * cfg.target_bpw / 8 + shape.other_params * 2)
    if cfg.budget:  # fitted to the target: the file is at most that
        return cfg.target_bytes if cfg.target_bytes is not None else int(cfg.target_bpw * shape.n_params / 8)
    bits = _bits_per_weight(cfg, group)
    if cfg.method is Method.GGUF and shape.matrices:
        vectors = shape.n_params - sum(n for n, _row, _head in shape.matrices)
        return estimate_bytes(cfg.gguf_type, list(shape.matrices), vectors)
    if cfg.method is Method.GGUF:
        return int(shape.n_params * bits / 8)
    # Weight-only methods keep embeddings, the head and norms at 16 bits.
    return int(shape.block_linear_params * bits / 8 + shape.other_params * 2)


def _calibration_tokens(cfg: QuantizeConfig) -> int:
    return cfg.samples * cfg.seq_len


def _uses_calibration(cfg: QuantizeConfig) -> bool:
    return METHODS[cfg.method].needs_calibration or cfg.use_imatrix


def _estimate(cfg: QuantizeConfig, shape: ModelShape, group: int | None) -> tuple[list[str], int, float, list[str]]:
    """Steps, peak memory, seconds and notes for one conversion."""
    flops = machine_gflops() * 1e9
    steps, notes = [], []
    seconds = 0.0
    peak = BASE_PROCESS_BYTES
    params = shape.n_params
    tokens = _calibration_tokens(cfg)
    largest = max((n for n, _row, _head in shape.matrices), default=shape.largest_block_params)  # values
    if shape.is_gguf:
        steps.append("import the GGUF file as a Hugging Face folder (fp16)")
        seconds += params / 20e6
        peak = max(peak, BASE_PROCESS_BYTES + 6 * shape.largest_block_params + 4 * shape.other_params)
    # one pass of the calibration text (a MoE model's tokens each go through the experts they pick)
    forward_s = 2 * shape.active_params * tokens / (FORWARD_EFFICIENCY * flops)
    if _uses_calibration(cfg) and cfg.calibration == "model":
        written = tokens
        if cfg.method is Method.GGUF:  # only the importance matrix's windows are written
            from .quant.gguf.imatrix_budget import imatrix_windows

            written = imatrix_windows(cfg.samples, cfg.seq_len, params) * cfg.seq_len
        steps.append(f"let the model write {written:,} tokens of calibration text")
        # Generation is memory-bound: a few percent of the matmul peak, batched.
        seconds += 2 * shape.active_params * written / (0.03 * flops)
        peak = max(peak, BASE_PROCESS_BYTES + 4 * params)
    if cfg.method is Method.GGUF:
        if cfg.use_imatrix:
            seconds, peak = _imatrix_cost(cfg, shape, steps, seconds, peak, flops)
        if cfg.budget:
            steps += ["write an F16 intermediate GGUF",
                      f"encode every tensor as {', '.join(c.value for c in BUDGET_CANDIDATES)} with llama.cpp",
                      "measure each encoding's error, weighted by the importance matrix",
                      f"write the best mix that fits {cfg.type_label.removeprefix('mix-')}"]
            seconds += params / 40e6 + len(BUDGET_CANDIDATES) * params / 60e6 + params / 10e6
        elif cfg.gguf_type.is_k_quant:
            steps += ["write an F16 intermediate GGUF", f"quantize to {cfg.gguf_type.value} with llama.cpp"]
            # bench_scale, 1B shape at 4 layers: 70 CPU s for both on 443M parameters (2 cores)
            seconds += params / GGUF_F16_RATE + params / LLAMA_QUANTIZE_RATE
        else:
            steps.append(f"write the GGUF file as {cfg.gguf_type.value}")
            seconds += params / 25e6
        # One tensor at a time: read (bf16), float32, encoded; llama.cpp's quantizer likewise
        # (bench_scale, 1B shape: 1.16 GiB measured at 4 layers, flat with depth).
        peak = max(peak, BASE_PROCESS_BYTES + 6 * largest)
    elif cfg.method in (Method.GPTQ, Method.AWQ, Method.RTN):
        block = shape.largest_block_params * 4
        acts = 2 * tokens * shape.hidden * 4
        if cfg.budget:  # quant/gptq/budget.py: a Fisher pass (forward, backward ~2 forwards, RTN trials)
            steps.append(f"measure each layer's error at {len(GPTQ_BUDGET_CANDIDATES)} bit widths and group sizes "
                         "(one forward and one backward pass of the calibration text)")
            seconds += 3 * forward_s + len(GPTQ_BUDGET_CANDIDATES) * shape.block_linear_params / 20e6
            # That pass keeps every block's inputs (quant/gptq/fisher.py) and one batch's logits.
            peak = max(peak, BASE_PROCESS_BYTES + 3 * block + shape.layers * acts // 2 + 4 * shape.other_params)
            steps.append(f"quantize {shape.layers} blocks one at a time (gptq, each layer's bits and group size "
                         f"chosen to fit {cfg.type_label.removeprefix('mix-')})")
        else:
            steps.append(f"quantize {shape.layers} blocks one at a time ({cfg.method.value}, {cfg.bits}-bit, group {group})")
        if cfg.method is Method.RTN:
            # Measured for SmolLM2-135M, loading and writing included: 5 s warm, 21 s on a cold file cache.
            seconds += params / 20e6
            # One block in float32 and its quantization temporaries, plus the 16-bit embedding and
            # head the writer holds (bench_scale, 1B shape at 4 layers: 1.74 GiB measured with the streaming
            # shard writer, this term and the Hessians below 1.69 GiB).
            peak_rtn = BASE_PROCESS_BYTES + 5 * shape.largest_block_params + 2 * shape.other_params
            if cfg.rtn_measures_errors:
                # One statistics pass holds every layer's float32 input Hessian at once: small
                # beside a dense block, but a MoE block has one per expert layer (Qwen3-MoE shape,
                # 32 experts: 1.2 GiB; bench_scale measured 2.87 GiB where this term was missing).
                peak_rtn += sum(4 * n * n for _rows, n in shape.block_linears)
            peak = max(peak, peak_rtn)
        else:
            # Each block runs forward several times (statistics, the quantized block's outputs,
            # a sample for the error figure): BLOCK_FORWARDS passes, fitted to bench_scale; then
            # its statistics and solves.
            rounding = (cfg.extra or {}).get("awq_rounding", WeightOnlySettings.awq_rounding)
            forwards = BLOCK_FORWARDS[cfg.method]
            if cfg.method is Method.AWQ and rounding == "gptq":
                forwards = AWQ_GPTQ_FORWARDS + min(1.0, WeightOnlySettings.awq_search_tokens / tokens)
            seconds += forwards * forward_s + shape.n_params / READ_CAST_RATE
            # The grid search's candidates per group (kernels/woq_quantize.search_group_params) for
            # a layer of input width n: GPTQ's shrinks per end (5, or 8 with enough tokens per
            # input channel), each end on its own on asymmetric grids; AWQ's rounding 20 factors.
            search = WeightOnlySettings(method=cfg.method, bits=cfg.bits, group_size=group or -1, sym=cfg.sym,
                                        mse_grid=int((cfg.extra or {}).get("mse_grid", WeightOnlySettings.mse_grid)))

            def candidates(n: int, seen: float) -> int:  # seen: the tokens the layer sees (an expert its own)
                if cfg.method is Method.AWQ:
                    return 20
                ends = round(search.mse_grid * search.gptq_max_shrink(int(seen), n)) + 1
                return ends if cfg.sym else ends * ends
            seconds += shape.layers * _block_solve_seconds(cfg.method, shape, tokens, group, flops, rounding,
                                                           candidates)
            # Two phases: embedding the windows (the float32 embedding and block 0's inputs), then
            # one block at a time with its statistics. bench_scale, 1B shape at 4 layers: GPTQ
            # 2.82 / 3.98 / 4.30 GiB and AWQ 2.53 / 2.31 / 2.70 GiB at 8 x 256 (before
            # engine/allocator.py) / 32 x 512 / 128 x 512 tokens; 8B shape, 32 layers, 8 x 256:
            # GPTQ 7.89 GiB (bench/SCALE.md).
            embedding = 4 * max((n for n, _row, head in shape.matrices if not head), default=0)
            peak = max(peak, BASE_PROCESS_BYTES + embedding + acts // 2)
            each = sum(n * n * 4 for n in shape.in_features)  # one Hessian per input width
            widest = 4 * max(shape.in_features, default=0) ** 2
            if cfg.method is Method.GPTQ or rounding == "gptq":
                # The widest layer's solve holds its Hessian three more times (damped copy,
                # reversed copy, Cholesky factor), and the replayed outputs fill their budget.
                peak = max(peak, BASE_PROCESS_BYTES + 3 * block + acts + each + 3 * widest
                           + _replay_bytes(shape, tokens))
            else:
                # No replayed outputs and no factor: the clip search's rescaled copy of the widest
                # Hessian.
                peak = max(peak, BASE_PROCESS_BYTES + 3 * block + acts + each + widest)
        steps.append("write the safetensors folder")
    elif cfg.method is Method.INT8:
        steps.append("quantize every linear layer to int8, one tensor at a time")
        # bench_scale, 1B shape at 4 layers (443M parameters): 7.4 CPU s, reading included. The job
        # is one tensor at a time, mostly on one core, so its idle wall time is about its CPU time.
        seconds += params / 60e6
        # torch without transformers or llama.cpp (about half the base), the largest tensor read in
        # 16-bit and written in 16-bit or int8 (the embedding); the shard writer holds no tensor
        # (1B shape: 0.58 GiB at 4 layers, 0.61 at 32, bench/SCALE.md).
        peak = max(peak, BASE_PROCESS_BYTES // 2 + 4 * largest)
    else:  # bitsandbytes quantizes while transformers loads the whole model
        steps.append("load the model through bitsandbytes and save it")
        seconds += params / 15e6
        peak = max(peak, BASE_PROCESS_BYTES + 2 * params + 4 * shape.largest_block_params)
    if group is not None and cfg.group_size is None:
        notes.append(f"group size {group}: the largest of 128/64/32 that divides every layer's input width "
                     f"({', '.join(map(str, shape.in_features))})")
    return steps, int(peak), seconds, notes


def _replay_bytes(shape: ModelShape, tokens: int) -> int:
    """GPTQ keeps the outputs of a block's layers but the last (engine/layer_replay.py), up to its
    budget: every linear's output width for each token it sees (a routed expert only its share),
    less the last layer's (the hidden width)."""
    from .layer_replay import REPLAY_MAX_BYTES

    if not shape.block_linears:
        return 0
    values = sum(rows * seen for rows, _n, seen in shape.block_linear_tokens(tokens)) - shape.hidden * tokens
    return int(min(REPLAY_MAX_BYTES, 4 * max(values, 0)))


def _block_solve_seconds(method: Method, shape: ModelShape, tokens: int, group: int | None, flops: float,
                         rounding: str, candidates: Callable[[int, float], int]) -> float:
    """One block's GPTQ or AWQ work beyond its forward passes, per weight [rows, n_in]:
    - both: the input Hessian, 2 n_in^2 per token, of which the tiles on and above the diagonal are
      computed (quant/gptq/hessian.py: ~0.6 of it);
    - GPTQ: the column updates (2 n_in^2 per row), the Cholesky factor (n_in^3 / 3), the grid
      search (`candidates(n_in, tokens seen)` grids x ~10 passes over the weight) and a fixed cost per column;
    - AWQ: the scale search (20 alphas x at most 256 rows x n_in^2, twice), then either GPTQ's
      solve on the scaled weights (`awq_rounding` "gptq") or the clipping search (64 pairs of
      shrinks x 2 rows n_in x group).
    A routed expert's Hessian counts only its share of the tokens, and an expert left with fewer
    tokens than its input width is rounded to nearest (its grid search; no solve, no AWQ scales)."""
    seen = shape.block_linear_tokens(tokens) or [(shape.hidden, n, float(tokens)) for n in shape.in_features]
    linears = [(rows, n) for rows, n, _t in seen]
    hessian = sum(1.2 * n * n * t for _rows, n, t in seen)
    # (rows, n, p): the chance the layer is solved. A dense layer always is, however few the
    # tokens; an expert when its tokens reach its input width. A balanced router's counts spread
    # about their mean like a binomial's (standard deviation ~ sqrt(mean)), so at a mean equal to
    # the width about half the experts are solved.
    solved = [(rows, n, 1.0 if t == tokens else 0.5 * erfc((n - t) / sqrt(2 * max(t, 1.0))), t) for rows, n, t in seen]
    solve = sum(p * (2 * n * n * rows + n ** 3 / 3) for rows, n, p, _t in solved)
    gptq_rounding = (sum(10 * (p * candidates(n, t) + 1 - p) * rows * n / ELEMENTWISE_RATE for rows, n, p, t in solved)
                     + sum(p * n * GPTQ_COLUMN_S for _rows, n, p, _t in solved) + solve / (FORWARD_EFFICIENCY * flops))
    if method is Method.GPTQ:
        return hessian / (FORWARD_EFFICIENCY * flops) + gptq_rounding
    g = group if group and group > 0 else 128
    search = sum(p * 20 * 2 * min(rows, 256) * n * n for rows, n, p, _t in solved)  # AWQ scales no under-covered expert
    if rounding == "gptq":  # GPTQ captures the Hessians again, after the scales are folded
        share = min(1.0, WeightOnlySettings.awq_search_tokens / max(tokens, 1))
        return ((1 + share) * hessian / (FORWARD_EFFICIENCY * flops) + search / (AWQ_SEARCH_EFFICIENCY * flops)
                + gptq_rounding)
    search += sum(64 * 2 * rows * n * g for rows, n in linears)
    return hessian / (FORWARD_EFFICIENCY * flops) + search / (AWQ_SEARCH_EFFICIENCY * flops)


def _imatrix_cost(cfg: QuantizeConfig, shape: ModelShape, steps: list[str], seconds: float, peak: float,
                  flops: float) -> tuple[float, float]:
    """The importance matrix streams the blocks (engine/quant/gguf/imatrix.py): one forward over its
    windows (fewer than cfg.samples on large models, imatrix_budget.py) with the weights read and
    cast once; memory is the larger of the embedding and one block in float32, plus the calibration
    activations twice (a block's inputs and outputs)."""
    from .quant.gguf.imatrix_budget import imatrix_windows

    n = imatrix_windows(cfg.samples, cfg.seq_len, shape.n_params)
    tokens = n * cfg.seq_len
    steps.append(f"measure the importance matrix on {n} windows of {cfg.seq_len} tokens"
                 + (f" (of {cfg.samples}: the default budget for this size)" if n < cfg.samples else ""))
    seconds += IMATRIX_FORWARDS * 2 * shape.active_params * tokens / (FORWARD_EFFICIENCY * flops)
    seconds += shape.n_params / READ_CAST_RATE
    outside = max(shape.n_params - shape.layers * shape.largest_block_params, 0)
    peak = max(peak, BASE_PROCESS_BYTES + 4 * max(outside // 2, shape.largest_block_params)
               + 2 * tokens * shape.hidden * 4)
    return seconds, peak


def resolve_group_size(cfg: QuantizeConfig, shape: ModelShape) -> int | None:
    if cfg.method not in (Method.GPTQ, Method.AWQ, Method.RTN):
        return None
    return cfg.group_size if cfg.group_size is not None else default_group_size(shape.in_features)


def plan(cfg: QuantizeConfig, shape: ModelShape | None = None, evaluate_on: Path | None = None) -> Plan:
    """`evaluate_on`: a held-out text the output will be evaluated on afterwards (api.convert's
    `evaluate_on`); its step and time are included."""
    shape = shape or model_shape(cfg.source)
    if getattr(shape, "family", None) is not None:  # a path that cannot take this family: refused now
        shape.family.check_method(cfg.method.value, str(cfg.source), shape.moe)
    group = resolve_group_size(cfg, shape)
    out_bytes = _output_bytes(cfg, shape, group)
    steps, peak, seconds, notes = _estimate(cfg, shape, group)
    busy = busy_note()
    if busy:
        notes.append(busy)
    if evaluate_on is not None:
        # About 4 characters a token; both the source and the output read the text once.
        tokens = max(Path(evaluate_on).stat().st_size // 4, 1)
        steps.append(f"evaluate against the source on {Path(evaluate_on).name} (about {tokens:,} tokens)")
        seconds += 2 * (2 * shape.n_params * tokens) / (FORWARD_EFFICIENCY * machine_gflops() * 1e9) + 10
    disk = out_bytes
    if shape.is_gguf:
        disk += 2 * shape.n_params  # the fp16 import, kept in the cache for the next conversion
    if cfg.method is Method.GGUF and (cfg.gguf_type.is_k_quant or cfg.budget):
        disk += 2 * shape.n_params  # the intermediate, removed at the end
    if cfg.budget and cfg.method is Method.GGUF:
        disk += int(sum(t.nominal_bits for t in BUDGET_CANDIDATES) * shape.n_params / 8)  # the candidates
    if cfg.method is Method.GGUF:
        disk += GGUF_METADATA_BYTES  # the job's own allowance for the header (tokenizer, template)
    if cfg.method in (Method.GPTQ, Method.AWQ, Method.RTN):
        # The per-block resume checkpoint keeps the finished blocks' tensors until the job ends.
        disk += out_bytes
    if cfg.budget and cfg.method is Method.GPTQ:
        notes.append("the GPTQ size budget is new: on the bundled model its mix measured worse than uniform "
                     "4-bit g64 of the same size (bench/QUALITY.md); convert both with --evaluate and compare")
    target = Path(cfg.out)
    free = free_bytes(target if target.is_dir() else target.parent)
    avail = available_memory()
    warnings = []
    if peak > avail:
        warnings.append(f"needs about {peak / 1e9:.1f} GB of memory but only {avail / 1e9:.1f} GB is free")
    shortfall = disk_shortfall(target if target.is_dir() else target.parent, disk, free)
    if shortfall:
        warnings.append(shortfall)
    if cfg.method in (Method.GPTQ, Method.AWQ, Method.RTN) and group not in (-1, None):
        bad = [n for n in shape.in_features if n % group]
        if bad:
            warnings.append(f"group size {group} does not divide the input width {bad[0]}")
    source_bytes, quantized = _source_on_disk(Path(cfg.source))
    if quantized:
        warnings.append(quantized_source_warning(Path(cfg.source).name, quantized, source_bytes, out_bytes))
    return Plan(cfg.method, Path(cfg.source), tuple(steps), group, out_bytes, peak, disk, free, avail, seconds,
                tuple(warnings), tuple(notes), source_bytes)


#: Storage types that hold the weights as they were trained (nothing to lose by converting them).
FULL_PRECISION = {"F32", "F16", "BF16", "float32", "float16", "bfloat16"}


def _source_on_disk(source: Path) -> tuple[int | None, str | None]:
    """(size on disk of what the user picked, a description of its quantization or None)."""
    from .catalog import inspect
    from .config import ModelFormat

    try:
        info = inspect(source)
    except Exception:  # noqa: BLE001 - the plan must not fail on what only adds a warning
        return None, None
    if info.format in (ModelFormat.GPTQ, ModelFormat.AWQ, ModelFormat.BNB, ModelFormat.INT8):
        return info.size_bytes, f"{info.format.value}, {info.bits_per_weight:.2f} bits per weight" \
            if info.bits_per_weight else info.format.value
    if info.format is ModelFormat.GGUF and info.dtype and info.dtype not in FULL_PRECISION:
        bpw = f", {info.bits_per_weight:.2f} bits per weight" if info.bits_per_weight else ""
        return info.size_bytes, f"GGUF {info.dtype}{bpw}"
    return info.size_bytes, None


def quantized_source_warning(name: str, quantized: str, source_bytes: int | None, out_bytes: int) -> str:
    """What a user must know before converting an already quantized model."""
    text = (f"{name} is already quantized ({quantized}): the output keeps its rounding errors and adds its own, "
            "so it cannot be better than this file; convert from the original full-precision model if you have it")
    if source_bytes and out_bytes >= 0.95 * source_bytes:
        from .units import human_bytes

        text += (f"; at about {human_bytes(out_bytes)} the output would not be smaller than the "
                 f"{human_bytes(source_bytes)} you chose")
    return text


def busy_note() -> str | None:
    """A line when other programs keep the cores busy (the time estimates assume they are free)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    cores = os.cpu_count() or 1
    if load <= cores:
        return None
    return (f"other programs are keeping the machine busy (load {load:.1f} on {cores} cores): "
            f"expect up to {load / cores:.0f} times the times shown")


def cpu_threads() -> int:
    return os.cpu_count() or 1
