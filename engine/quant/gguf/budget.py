"""The best GGUF that fits a size: per-tensor types chosen by measured sensitivity.

The user names a size (`--target-size 3.5GB`) or bits per weight (`--target-bpw 4.8`). llama.cpp
quantizes the F16 intermediate to each candidate file type (with the importance matrix), which gives
every tensor a few encodings, each with its size in bytes. Each encoding's cost is its error on the
calibration text: the squared difference between the dequantized and the F16 weights, weighted per
input channel by the importance matrix (the mean square of the activations that channel meets), so
an error counts as much as the layer's real inputs make it count. A tensor without statistics (the
token embeddings, which are looked up, not multiplied) is weighted by the mean statistic of all.

The choice is the shared knapsack (engine/quant/allocate.py, also used by the GPTQ budget): start
every tensor at its smallest encoding, then take upgrades in order of error removed per byte added,
on each tensor's lower convex hull, while the file fits.
The chosen encodings are copied, byte for byte as llama.cpp wrote them, into one file with the
metadata of the candidate whose size is nearest the target; llama.cpp reads per-tensor types
natively (they are what its own tensor-type overrides produce).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...cancel import NEVER, CancelToken
from ...config import BUDGET_CANDIDATES as CANDIDATES
from ...config import GGUFType
from ...events import EtaClock, Log
from ...fsutil import PARTIAL_PREFIX
from ..allocate import allocate  # the one allocator (engine/quant/allocate.py)
from .llama_quantize import LLAMA_FTYPES, run_llama_quantize



@dataclass(frozen=True)
class Option:
    qtype: int  # GGMLQuantizationType value
    nbytes: int
    error: float
    source: GGUFType  # the candidate file holding this encoding


@dataclass(frozen=True)
class BudgetChoice:
    types: dict[str, str]  # tensor -> GGML type name
    tensor_bytes: int
    error: float
    base: GGUFType  # the candidate whose metadata the output carries


def target_tensor_bytes(target_bpw: float | None, target_bytes: int | None, n_params: int, overhead: int) -> int:
    """Bytes left for tensor data: bpw counts the whole file (as llama.cpp reports it), so the
    metadata's share (`overhead`) comes out of the budget either way."""
    total = target_bytes if target_bytes is not None else int(target_bpw * n_params / 8)
    return total - overhead


def weighted_error(reference: np.ndarray, approx: np.ndarray, channel_weights: np.ndarray) -> float:
    """Σ_rows Σ_j w_j (ref - approx)², reference/approx [rows, cols], w [cols] (float64 sums)."""
    diff = (reference.astype(np.float32) - approx.astype(np.float32)).reshape(-1, reference.shape[-1])
    return float(np.einsum("ij,ij,j->", diff, diff, channel_weights.astype(np.float32), dtype=np.float64))


def candidate_options(f16_path: Path, candidates: dict[GGUFType, Path], means: dict[str, np.ndarray] | None,
                      cancel: CancelToken = NEVER):
    """Every tensor's encodings across the candidate files, each with its weighted error. A job that
    returns (options per tensor, fixed bytes of tensors offered one encoding only)."""
    import gguf
    from gguf.quants import dequantize

    f16 = {t.name: t for t in gguf.GGUFReader(str(f16_path)).tensors}
    readers = {c: {t.name: t for t in gguf.GGUFReader(str(p)).tensors} for c, p in candidates.items()}
    default_w = float(np.mean([v.mean() for v in means.values()])) if means else 1.0
    options: dict[str, list[Option]] = {}
    fixed = 0
    clock = EtaClock(len(f16), "sensitivity")
    for i, (name, ref_tensor) in enumerate(f16.items()):
        cancel.check()
        encodings = {}
        for cand, tensors in readers.items():
            t = tensors[name]
            encodings.setdefault(int(t.tensor_type), (t, cand))
        if len(encodings) == 1 or len(ref_tensor.shape) < 2:
            t, _ = next(iter(encodings.values()))
            fixed += int(t.n_bytes)
            continue
        reference = dequantize(ref_tensor.data, ref_tensor.tensor_type)
        cols = reference.shape[-1]
        w = means.get(name) if means else None
        weights = np.asarray(w, dtype=np.float32) if w is not None and len(w) == cols else np.full(cols, default_w, np.float32)
        options[name] = [Option(qtype, int(t.n_bytes), weighted_error(reference, dequantize(t.data, t.tensor_type), weights), cand)
                         for qtype, (t, cand) in encodings.items()]
        yield clock.progress(i + 1, name)
    return options, fixed


def write_mixed(base: Path, candidates: dict[GGUFType, Path], chosen: dict[str, Option], out: Path) -> None:
    """The base candidate's metadata and tensor order, with each tensor's chosen encoding."""
    import gguf

    reader = gguf.GGUFReader(str(base))
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    sources = {c: {t.name: t for t in gguf.GGUFReader(str(p)).tensors} for c, p in candidates.items()}
    writer = gguf.GGUFWriter(str(out), arch)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    picked = []
    for t in reader.tensors:
        opt = chosen.get(t.name)
        tensor = sources[opt.source][t.name] if opt is not None else t
        picked.append(tensor)
        writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes, tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in picked:
        writer.write_tensor_data(tensor.data)
    writer.close()


def quantize_to_budget(intermediate: Path, temp_out: Path, out: Path, n_params: int, target_bpw: float | None,
                       target_bytes: int | None, means: dict[str, np.ndarray] | None, expected_bytes: int,
                       cancel: CancelToken = NEVER):
    """The whole budget route from an F16 intermediate into `temp_out`; a job returning BudgetChoice."""
    import gguf

    work = out.parent / f"{PARTIAL_PREFIX}{uuid.uuid4().hex[:8]}-budget"  # swept if the process dies
    work.mkdir()
    try:
        candidates: dict[GGUFType, Path] = {}
        for cand in CANDIDATES:
            if cand not in LLAMA_FTYPES:
                continue
            yield Log(f"encoding every tensor as {cand.value} (candidate {len(candidates) + 1} of {len(CANDIDATES)})")
            path = work / f"{cand.value}.gguf"
            yield from run_llama_quantize(intermediate, path, cand, means, expected_bytes, cancel)
            candidates[cand] = path
        yield Log("measuring each tensor's error in each encoding, weighted by the importance matrix")
        options, fixed = yield from candidate_options(intermediate, candidates, means, cancel)
        sizes = {c: p.stat().st_size for c, p in candidates.items()}
        goal = target_bytes if target_bytes is not None else int(target_bpw * n_params / 8)
        base = min(candidates, key=lambda c: abs(sizes[c] - goal))
        base_tensors = sum(int(t.n_bytes) for t in gguf.GGUFReader(str(candidates[base])).tensors)
        overhead = sizes[base] - base_tensors
        budget = target_tensor_bytes(target_bpw, target_bytes, n_params, overhead) - fixed
        chosen = allocate(options, budget)
        yield Log(f"writing the mix: {_summary(chosen)}")
        write_mixed(candidates[base], candidates, chosen, temp_out)
        names = {int(v): v.name for v in gguf.GGMLQuantizationType}
        return BudgetChoice({n: names[o.qtype] for n, o in chosen.items()}, sum(o.nbytes for o in chosen.values()) + fixed,
                            sum(o.error for o in chosen.values()), base)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _summary(chosen: dict[str, Option]) -> str:
    import gguf

    counts: dict[str, int] = {}
    for o in chosen.values():
        name = gguf.GGMLQuantizationType(o.qtype).name
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
