"""The GPTQ / AWQ / RTN job: Hugging Face folder + calibration windows -> a GPTQ or AWQ folder.

Everything that can be refused is refused before any work: the method and settings, the output
path, every layer's shape against the group size and packing, the disk space, the memory for the
activations. The folder is written under a staged name and renamed at the end, so a cancel or an
error leaves no output folder. A report card goes inside the folder.

After each block a checkpoint is saved beside the output (engine/quant/resume.py): the same job run
again after a crash, a kill or a cancel continues from the last finished block and writes the same
bytes as an uninterrupted run; `cfg.restart` starts over. Success removes the checkpoint.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...cancel import NEVER, CancelToken
from ...config import Method, QuantizeConfig
from ...device import resolve_device
from ...errors import Cancelled, InvalidInput, NotEnoughDisk, OutOfMemory
from ...events import Done, Job, Log
from ...formats import awq_layout, gptq_layout
from ...formats.hf_folder import HFFolder, open_hf_folder
from ...formats.quantized_folder import QuantizedFolderWriter, folder_bytes, plan_sizes
from ...fsutil import check_disk, check_output, staged_output
from ...layers import BlockRunner
from ...reportcard import tool_versions, write_report_card
from ...telemetry import PeakMemory
from ...config import WeightOnlySettings
from ..resume import BlockCheckpoint, source_identity, windows_digest
from .settings import resolve_settings

METHODS = (Method.GPTQ, Method.AWQ, Method.RTN)
#: Activations held at once: block inputs, the float reference outputs and the quantized outputs.
ACTIVATION_COPIES = 3
#: What a method records across blocks for the report card; a resumed job restores it.
METHOD_STATE = ("damps", "alphas", "skipped", "rtn_fallback")


@dataclass(frozen=True)
class WeightOnlyResult:
    out: Path
    method: str
    layout: str  # "gptq" or "awq"
    bits: int
    group_size: int
    size: int
    seconds: float
    peak_rss: int
    layer_errors: dict[str, float | None]  # layer -> ||(Wq - W) X||^2 / ||W X||^2 on the calibration data
    block_errors: list[float | None]  # per block: relative squared error of its output
    report: Path
    summary: dict = field(default_factory=dict)  # mean / median / worst of the layer errors


def quantize_gptq(cfg: QuantizeConfig, windows, cancel: CancelToken = NEVER) -> Job:
    return quantize_weight_only(_with_method(cfg, Method.GPTQ), windows, cancel)


def quantize_awq(cfg: QuantizeConfig, windows, cancel: CancelToken = NEVER) -> Job:
    return quantize_weight_only(_with_method(cfg, Method.AWQ), windows, cancel)


def quantize_rtn(cfg: QuantizeConfig, windows=None, cancel: CancelToken = NEVER) -> Job:
    return quantize_weight_only(_with_method(cfg, Method.RTN), windows, cancel)


def quantize_with_calibration(cfg: QuantizeConfig, cancel: CancelToken = NEVER, calibrate_rtn: bool = False) -> Job:
    """Calibration windows from cfg.calibration ("builtin", "model" or a file, through the calibration
    service), then the job: what engine.quant.quantize(cfg) runs for gptq/awq/rtn. RTN calibrates only
    when asked (to report its layer errors). Settings and shapes are checked before calibrating."""
    from ...calibration import build_calibration

    src = open_hf_folder(cfg.source)
    resolve_settings(cfg, src)
    if cfg.budget:  # a target too small for every layer's smallest setting is refused now
        from ..gptq.budget import check_target

        check_target(cfg, src)
    windows = None
    if cfg.method is not Method.RTN or calibrate_rtn:
        for event in build_calibration(cfg.calibration, cfg.source, cfg.samples, cfg.seq_len, cfg.seed, cancel):
            if isinstance(event, Done):
                windows = event.result
            else:
                yield event
    if cfg.budget:  # per-layer settings chosen to fit a size first (quant/gptq/budget.py)
        from ..gptq.budget import quantize_gptq_to_budget

        yield from quantize_gptq_to_budget(cfg, as_windows(windows), quantize_weight_only, cancel)
        return
    yield from quantize_weight_only(cfg, windows, cancel)


def _with_method(cfg: QuantizeConfig, method: Method) -> QuantizeConfig:
    if cfg.method is not method:
        raise InvalidInput(f"this job runs {method.value}, but the settings say {cfg.method.value}")
    return cfg


def as_windows(windows) -> torch.Tensor | None:
    """A CalibrationSet, a [n, seq_len] tensor or a list of equal-length id lists -> LongTensor."""
    if windows is None:
        return None
    if hasattr(windows, "windows"):
        windows = windows.windows
    if not isinstance(windows, torch.Tensor):
        lengths = {len(w) for w in windows}
        if len(lengths) != 1:
            raise InvalidInput(f"calibration windows must all have the same length, not {sorted(lengths)}")
        windows = torch.tensor(windows, dtype=torch.long)
    if windows.ndim != 2 or windows.shape[0] == 0:
        raise InvalidInput(f"calibration windows must be a [n, seq_len] tensor, not {tuple(windows.shape)}")
    return windows.long()


def quantize_weight_only(cfg: QuantizeConfig, windows, cancel: CancelToken = NEVER) -> Job:
    """Yields Log/Progress events, then Done(WeightOnlyResult)."""
    t0 = time.monotonic()
    if cfg.method not in METHODS:
        raise InvalidInput(f"quantize_weight_only runs gptq, awq or rtn, not {cfg.method.value}")
    src = open_hf_folder(cfg.source)
    src.family.check_method(cfg.method.value, str(src.path))
    out, overwrite = Path(cfg.out), bool(cfg.extra.get("overwrite", False))
    check_output(out, src.path, overwrite=overwrite)
    settings, note = resolve_settings(cfg, src)
    ids = as_windows(windows)
    if ids is None and cfg.method is not Method.RTN:
        raise InvalidInput(f"{cfg.method.value} needs calibration windows")
    layout = "awq" if cfg.method is Method.AWQ else "gptq"
    device = resolve_device(cfg.device)
    if ids is not None:
        _check_memory(src, ids, device.torch_device)
    method = _method(settings, device.torch_device)
    batch_size = int(cfg.extra.get("batch_size", 4))
    runner = BlockRunner(src, device.torch_device, batch_size=batch_size)
    n = runner.n_blocks
    checkpoint = BlockCheckpoint(out, _checkpoint_key(src, settings, layout, ids, device.torch_device, batch_size,
                                                      method, runner.dtype), n)
    point, lines = checkpoint.open(restart=cfg.restart)
    for message, level in lines:
        yield Log(message, level)
    sizes = plan_sizes(src, layout, settings.group_size, settings.bits, settings.layer_setting)
    check_disk(out, sum(size for _, size in sizes) + _checkpoint_bytes(src, sizes, ids) - checkpoint.bytes_on_disk())
    if note:
        yield Log(note)
    yield Log(f"{cfg.method.value}: {settings.bits}-bit, group size {settings.group_size}, "
              f"{'symmetric' if settings.sym else 'asymmetric'} on {device.reason}")
    state = {"layer_errors": {}, "block_errors": [], "method": {}, "seconds": 0.0}
    if point is not None:
        state.update(point.state)
        for attr, value in state["method"].items():
            setattr(method, attr, value)
    layer_errors: dict[str, float | None] = state["layer_errors"]
    block_errors: list[float | None] = state["block_errors"]
    start = point.done if point is not None else 0
    try:
        with PeakMemory() as rss, staged_output(out, is_dir=True, overwrite=overwrite) as temp:
            writer = QuantizedFolderWriter(src, temp, layout, settings.group_size, settings.bits, settings.layer_setting)
            if point is not None:
                yield Log(f"resuming at block {min(start + 1, n)}/{n}: {start} blocks were finished by an earlier "
                          f"run (checkpoint in {checkpoint.folder})")
                for i in range(start):  # the finished blocks' tensors, in order: the same bytes, the same shards
                    cancel.check()
                    writer.add_block(i, checkpoint.block_tensors(i))
            if ids is not None and start < n:
                yield Log(f"calibration: {ids.shape[0]} windows of {ids.shape[1]} tokens")
                yield from runner.capture(ids, cancel)  # every block's kwargs; block 0's inputs

            def sink(i, block, layers, info):
                prefix = f"{runner.layers_prefix}{i}."
                tensors = writer.block_tensors(block, layers, prefix)
                layer_errors.update({f"{prefix}{name}": r.rel_error for name, r in layers.items()})
                block_errors.append(info["output_rel_error"])
                state["method"] = {a: getattr(method, a) for a in METHOD_STATE if hasattr(method, a)}
                keep = runner.activations if runner.n_batches and i + 1 < n else None
                checkpoint.save(i, tensors, keep, {**state, "seconds": state["seconds"] + time.monotonic() - t0})
                writer.add_block(i, tensors)
                return Log(f"block {i + 1}/{n} done; checkpoint saved")

            yield from runner.run(method, sink, cancel, stage=cfg.method.value, start=start,
                                  activations=point.activations if point is not None else None)
            qconfig = (awq_layout.quantization_config(settings) if layout == "awq"
                       else gptq_layout.quantization_config(settings, cfg.method.value, src.checkpoint_name))
            writer.finish(qconfig)
            seconds = state["seconds"] + time.monotonic() - t0  # earlier runs' time included
            resumed = {"at_block": start + 1, "seconds_before": round(state["seconds"], 2)} if point else None
            card = _card(cfg, src, settings, note, windows, ids, method, layer_errors, block_errors, seconds, rss,
                         temp, device, resumed)
            report = write_report_card(temp, card)
    except Cancelled as exc:
        kept = checkpoint.kept_note()
        if kept:
            raise type(exc)(f"{exc}; {kept}") from None  # Paused stays Paused
        raise
    except NotEnoughDisk:  # the checkpoint takes room on that very disk: given back with the output
        checkpoint.discard()
        raise
    except Exception:
        kept = checkpoint.kept_note()
        if kept:  # a retry (after freeing memory or disk) need not start over
            yield Log(kept, "warning")
        raise
    checkpoint.discard()
    size = folder_bytes(out)
    summary = _summary(layer_errors)
    fallback = getattr(method, "rtn_fallback", {})
    if fallback:
        yield Log(f"{cfg.method.value}: {len(fallback)} expert layers saw fewer calibration tokens than their "
                  f"input width (least: {min(fallback.values())}) and were rounded to nearest instead; "
                  "more or longer calibration windows cover more experts")
    if summary.get("mean") is not None:  # RTN without calibration data measures no errors
        yield Log(f"layer output error (relative): mean {summary['mean']:.3g}, "
                  f"worst {summary['max']:.3g} ({summary.get('worst', '-')})")
    yield Done(WeightOnlyResult(out, cfg.method.value, layout, settings.bits, settings.group_size, size,
                                round(time.monotonic() - t0, 2), rss.peak, layer_errors, block_errors,
                                out / report.name, summary))


def _checkpoint_key(src: HFFolder, settings: WeightOnlySettings, layout: str, ids, device: str, batch_size: int,
                    method, dtype) -> dict:
    """Everything a finished block's bytes depend on: a checkpoint made under another key is discarded."""
    from ...reportcard import tool_versions

    versions = tool_versions()
    return {"source": source_identity(src.path, set(src.files.values())),
            "settings": {**settings.to_card(), "layout": layout, "device": device, "batch_size": batch_size,
                         "dtype": str(dtype), "kernel": getattr(method, "kernel_name", None)},
            "windows": windows_digest(ids),
            "versions": {k: versions.get(k) for k in ("bitsmith", "torch", "transformers", "safetensors")}}


def _checkpoint_bytes(src: HFFolder, sizes: list[tuple[str, int]], ids) -> int:
    """Disk a checkpoint takes at its largest: every block's output tensors again, and two copies of
    the activations (the new ones are written before the old ones are removed)."""
    block_of = src.structure.block_of
    blocks = sum(size for name, size in sizes if block_of(name) is not None)
    acts = 0 if ids is None else ids.numel() * int(src.config.get("hidden_size", 0)) * 4
    return blocks + 2 * acts


def _method(settings: WeightOnlySettings, device: str):
    if settings.method is Method.GPTQ:
        from ..gptq.layer import GPTQMethod

        return GPTQMethod(settings, device)
    if settings.method is Method.AWQ:
        from ..awq.layer import AWQMethod

        return AWQMethod(settings, device)
    from .rtn import RTNMethod

    return RTNMethod(settings, device)


def _check_memory(src: HFFolder, ids: torch.Tensor, device: str) -> None:
    from ...telemetry import available_memory

    hidden = int(src.config.get("hidden_size", 0))
    need = ids.numel() * hidden * 4 * ACTIVATION_COPIES
    free = available_memory()
    if need > free * 0.8:
        raise OutOfMemory(f"{ids.shape[0]} calibration windows of {ids.shape[1]} tokens need about "
                          f"{need / 1024**3:.1f} GiB of activations; {free / 1024**3:.1f} GiB is free",
                          suggestion="use fewer samples or shorter windows")


def _summary(errors: dict[str, float | None]) -> dict:
    known = {k: v for k, v in errors.items() if v is not None and v == v}  # v == v: not NaN
    if not known:
        return {}
    worst = max(known, key=known.get)
    vals = list(known.values())
    return {"mean": statistics.fmean(vals), "median": statistics.median(vals), "max": known[worst], "worst": worst}


def _card(cfg, src, settings, note, windows, ids, method, layer_errors, block_errors, seconds, rss, temp, device,
          resumed) -> dict:
    calibration = None
    if hasattr(windows, "to_card"):
        calibration = windows.to_card()
    elif ids is not None:
        calibration = {"samples": int(ids.shape[0]), "seq_len": int(ids.shape[1]), "source": cfg.calibration}
    extra = {}
    if settings.method is Method.GPTQ:
        extra = {"kernel": method.kernel_name, "damp_used": method.damps}
    elif settings.method is Method.AWQ:
        extra = {"alphas": method.alphas, "groups_not_scaled": method.skipped}
        if method.damps:  # rounded by GPTQ
            extra["damp_used"] = method.damps
    if getattr(method, "rtn_fallback", None):
        # MoE experts calibration left under-covered: layer -> tokens the router sent it.
        extra["rtn_fallback"] = method.rtn_fallback
    return {
        "kind": "quantization", "source": str(src.path), "method": cfg.method.value,
        "format": "awq" if settings.method is Method.AWQ else "gptq",
        "settings": {**settings.to_card(), "group_size_note": note}, "calibration": calibration,
        "device": device.torch_device, "method_details": extra, "tool_versions": tool_versions(),
        "seconds": round(seconds, 2), "peak_rss_bytes": rss.peak, "size_bytes": folder_bytes(temp),
        "source_size_bytes": folder_bytes(src.path), "layer_errors": layer_errors, "error_summary": _summary(layer_errors),
        "block_output_errors": block_errors,
        # A resumed run: the block it started at and the seconds earlier runs spent (in `seconds`).
        "resumed": resumed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
