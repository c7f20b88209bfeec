"""The GGUF export job: Hugging Face folder -> one GGUF file of the requested type.

Stages: "imatrix" (K-quants, when on: calibration windows through the model), "convert" (the
folder written as GGUF by Bitsmith, in the final type or as an F16 intermediate), "quantize"
(K-quants: llama.cpp's quantizer reads the intermediate). The output is written under a staged
temporary name and renamed at the end; the intermediate is removed whatever happens. A report
card and, when used, the importance matrix in llama.cpp's format are written beside the file.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from math import prod
from pathlib import Path

from gguf import GGMLQuantizationType as QT

from ...cancel import NEVER, CancelToken
from ...config import BUDGET_CANDIDATES, GGUFType, Method, QuantizeConfig
from ...errors import InvalidInput
from ...events import Done, Job, Log, relay
from ...formats.gguf.arch import require_export_arch
from ...formats.gguf.export import export_gguf
from ...formats.hf_folder import HFFolder, open_hf_folder
from ...fsutil import PARTIAL_PREFIX, check_disk, check_output, staged_output
from ...gguf_size import METADATA_BYTES, estimate_bytes, is_head_tensor
from ...reportcard import tool_versions, write_report_card
from .census import census
from .imatrix import ImatrixStats, compute_imatrix
from .imatrix_budget import imatrix_windows
from .imatrix_file import imatrix_path_for, save_imatrix
from .llama_quantize import run_llama_quantize
from ...telemetry import PeakMemory



@dataclass(frozen=True)
class GGUFResult:
    out: Path
    size: int
    gguf_type: str
    tensor_types: dict[str, str]  # GGUF tensor name -> type, read back from the file
    type_counts: dict[str, int]
    fallbacks: dict[str, str]  # K-quant files: matrices that got a non-K type
    bits_per_weight: float
    imatrix: Path | None
    report: Path
    seconds: float


@dataclass(frozen=True)
class _Route:
    by_llama_cpp: bool  # K-quants, or a legacy type with an explicitly requested imatrix
    imatrix: bool
    intermediate: QT | None


def uses_imatrix(cfg: QuantizeConfig) -> bool:
    """Whether this GGUF export computes an importance matrix. K-quants follow cfg.use_imatrix (on by
    default at 5 bits and fewer). Legacy types are written by our kernels, which take none, unless
    one is asked for explicitly: then llama.cpp's quantizer writes them, using it."""
    t = cfg.gguf_type
    if t.by_llama_cpp or cfg.budget:
        return cfg.use_imatrix
    return cfg.imatrix is True and t not in (GGUFType.F32, GGUFType.F16, GGUFType.BF16)


def _route(cfg: QuantizeConfig, src: HFFolder) -> _Route:
    use_imatrix = uses_imatrix(cfg)
    by_llama = cfg.gguf_type.by_llama_cpp or use_imatrix or cfg.budget
    intermediate = (QT.BF16 if src.source_dtype == "BF16" else QT.F16) if by_llama else None
    return _Route(by_llama, use_imatrix, intermediate)


def output_path(cfg: QuantizeConfig) -> Path:
    """cfg.out, or a file named after the model and type when cfg.out is an existing folder.
    `cfg.extra["name"]`: the model's name when cfg.source is a stand-in (a GGUF's cached import)."""
    out = Path(cfg.out)
    if out.is_dir():
        return out / f"{cfg.extra.get('name') or model_stem(cfg.source)}-{cfg.type_label}.gguf"
    return out


def model_stem(path: Path) -> str:
    """A model's short name: a folder's name, or a file's name up to its first dot
    (SmolLM2-135M-Instruct.Q4_1.gguf -> SmolLM2-135M-Instruct)."""
    path = Path(path)
    return path.name.split(".")[0] if path.is_file() else path.name


def estimated_bytes(src: HFFolder, gguf_type: GGUFType) -> int:
    """An upper estimate of the file's size, for the disk check (engine.gguf_size has the rule)."""
    tied = "lm_head.weight" not in src.shapes
    matrices = [(prod(s), s[-1], is_head_tensor(name, tied)) for name, s in src.shapes.items() if len(s) >= 2]
    vectors = sum(prod(s) for s in src.shapes.values() if len(s) < 2)
    return estimate_bytes(gguf_type, matrices, vectors, upper=True, metadata_bytes=METADATA_BYTES)


def quantize_gguf(cfg: QuantizeConfig, cancel: CancelToken = NEVER) -> Job:
    """Yields Progress/Log events, then Done(GGUFResult)."""
    t0 = time.monotonic()
    if cfg.method is not Method.GGUF:
        raise InvalidInput(f"quantize_gguf runs the gguf method, not {cfg.method.value}")
    src = open_hf_folder(cfg.source)
    require_export_arch(src.family, str(src.path))  # a family llama.cpp cannot take: refused before any work
    out = output_path(cfg)
    overwrite = bool(cfg.extra.get("overwrite", False))
    check_output(out, src.path, overwrite=overwrite)
    route = _route(cfg, src)
    need = estimated_bytes(src, cfg.gguf_type)
    if route.intermediate is not None:
        need += estimated_bytes(src, GGUFType.F16)
    if cfg.budget:  # every candidate encoding lies on disk while the types are chosen
        need += sum(estimated_bytes(src, c) for c in BUDGET_CANDIDATES)
    check_disk(out, need)
    tied = bool(src.config.get("tie_word_embeddings", False))
    if cfg.imatrix is True and not route.imatrix:
        yield Log(f"an importance matrix does not apply to {cfg.gguf_type.value}; writing without one", "warning")

    with PeakMemory() as rss:
        stats, calib = None, None
        if route.imatrix:
            stats, calib = yield from _imatrix(cfg, src, tied, cancel)
        budget = None
        with staged_output(out, is_dir=False, overwrite=overwrite) as temp:
            if cfg.budget:
                budget = yield from _via_budget(cfg, src, route.intermediate, temp, stats, out, cancel)
            elif route.by_llama_cpp:
                yield from _via_llama_cpp(cfg, src, route.intermediate, temp, stats, calib, out, cancel)
            else:
                yield from export_gguf(src, temp, QT[cfg.gguf_type.value], cancel, name=cfg.extra.get("name"))
            found = census(temp)
        imatrix_file = None
        if stats is not None:
            imatrix_file = imatrix_path_for(out)
            with staged_output(imatrix_file, is_dir=False, overwrite=True) as temp:
                save_imatrix(stats, temp)
    size = out.stat().st_size
    seconds = time.monotonic() - t0
    bpw = size * 8 / max(found.n_params, 1)
    fallbacks = found.k_quant_fallbacks() if cfg.gguf_type.is_k_quant and not cfg.budget else {}
    if fallbacks:
        kinds = ", ".join(sorted(set(fallbacks.values())))
        yield Log(f"{len(fallbacks)} matrices could not take K-quants (rows not a multiple of 256 values) "
                  f"or were kept wider by llama.cpp: {kinds}")
    card = _report_card(cfg, src, route, calib, stats, imatrix_file, found, size, bpw, seconds, rss.peak)
    if budget is not None:
        card["budget"] = {"target_bpw": cfg.target_bpw, "target_bytes": cfg.target_bytes, "metadata_from": budget.base.value,
                          "weighted_error": budget.error, "candidates": [c.value for c in BUDGET_CANDIDATES]}
        yield Log(f"{size / 1e6:.1f} MB, {bpw:.2f} bits per weight (target: "
                  f"{cfg.target_bpw if cfg.target_bpw is not None else cfg.target_bytes / 1e6:g}"
                  f"{' bits per weight' if cfg.target_bpw is not None else ' MB'})")
    report = write_report_card(out, card)
    yield Done(GGUFResult(out, size, cfg.type_label, found.tensor_types, found.counts, fallbacks, bpw,
                          imatrix_file, report, seconds))


def _imatrix(cfg: QuantizeConfig, src: HFFolder, tied: bool, cancel: CancelToken):
    """The importance matrix from the same calibration windows GPTQ and AWQ get (a file, the built-in
    text, or text the model writes), built by the one calibration system."""
    from ...calibration import build_calibration

    n = imatrix_windows(cfg.samples, cfg.seq_len, src.n_params)
    if n < cfg.samples:
        yield Log(f"importance matrix: {n} of the default {cfg.samples} calibration windows for a model of "
                  f"{src.n_params / 1e9:.1f}B parameters (about one forward pass of {n * cfg.seq_len:,} tokens); "
                  "give --samples to choose")
    calib = yield from relay(build_calibration(cfg.calibration, src.path, n, cfg.seq_len, cfg.seed, cancel))
    yield Log(f"importance matrix from {calib.n} windows of {calib.seq_len} tokens ({calib.source})")
    stats: ImatrixStats = yield from compute_imatrix(src, calib.windows, calib.source, tied, cancel)
    return stats, calib


def _via_llama_cpp(cfg, src, intermediate_type: QT, temp: Path, stats, calib, out: Path, cancel: CancelToken):
    """Write the intermediate, let llama.cpp quantize it into `temp`, and always remove it."""
    # The hidden partial prefix makes fsutil sweep the intermediate if the process dies.
    intermediate = out.parent / f"{PARTIAL_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{intermediate_type.name}-{out.name}"
    extra = {}
    if stats is not None:
        # The keys llama-quantize records, so the output says which importance matrix shaped it.
        extra = {"quantize.imatrix.file": imatrix_path_for(out).name, "quantize.imatrix.dataset": calib.source,
                 "quantize.imatrix.entries_count": len(stats.sums), "quantize.imatrix.chunks_count": stats.n_chunks}
    try:
        yield from export_gguf(src, intermediate, intermediate_type, cancel, extra_kv=extra, name=cfg.extra.get("name"))
        expected = estimated_bytes(src, cfg.gguf_type)
        means = stats.means() if stats is not None else None
        yield from run_llama_quantize(intermediate, temp, cfg.gguf_type, means, expected, cancel)
    finally:
        intermediate.unlink(missing_ok=True)


def _via_budget(cfg, src, intermediate_type: QT, temp: Path, stats, out: Path, cancel: CancelToken):
    """The F16 intermediate, every candidate encoding, the per-tensor choice, the mixed file."""
    from .budget import quantize_to_budget

    intermediate = out.parent / f"{PARTIAL_PREFIX}{uuid.uuid4().hex[:8]}-{intermediate_type.name}-{out.name}"
    try:
        yield from export_gguf(src, intermediate, intermediate_type, cancel, name=cfg.extra.get("name"))
        n_params = sum(prod(s) for s in src.shapes.values())
        means = stats.means() if stats is not None else None
        return (yield from quantize_to_budget(intermediate, temp, out, n_params, cfg.target_bpw, cfg.target_bytes,
                                              means, estimated_bytes(src, GGUFType.Q8_0), cancel))
    finally:
        intermediate.unlink(missing_ok=True)


def _report_card(cfg, src, route, calib, stats, imatrix_file, found, size, bpw, seconds, peak) -> dict:
    imatrix = {"used": route.imatrix}
    if stats is not None:
        imatrix.update({
            "file": imatrix_file.name, "entries": len(stats.sums), "windows": stats.n_chunks,
            "window_tokens": stats.chunk_size, "calibration_source": calib.source,
            "calibration_sha256": calib.sha256, "seed": cfg.seed,
        })
    return {
        "kind": "quantization",
        "source": str(src.path),
        "method": Method.GGUF.value,
        "type": cfg.type_label,
        "quantizer": "llama.cpp (llama_model_quantize)" if route.by_llama_cpp else "bitsmith kernels",
        "intermediate": route.intermediate.name if route.intermediate is not None else None,
        "settings": {"imatrix": cfg.imatrix, "calibration": cfg.calibration, "samples": cfg.samples,
                     "seq_len": cfg.seq_len, "seed": cfg.seed},
        "imatrix": imatrix,
        "tool_versions": tool_versions(),
        "seconds": round(seconds, 2),
        "peak_rss_bytes": peak,
        "size_bytes": size,
        "n_params": found.n_params,
        "bits_per_weight": round(bpw, 3),
        "tensor_type_counts": found.counts,
        "tensor_types": found.tensor_types,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
