"""The Bitsmith INT8 job: a full-precision Hugging Face folder -> weight-only int8, per output
channel, symmetric (layout in engine.formats.bitsmith_int8 and docs/formats.md).

Tensors stream from the source safetensors one at a time (memory-mapped); no model is loaded. The
model's structure (which tensors are Linear weights) comes from the checkpoint reader's meta-device
skeleton (HFFolder.structure). Output shards are written as they fill; the folder appears under its name only when
complete, with its report card inside.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from math import prod
from pathlib import Path

from bitsmith.kernels.int8_ops import quantize_per_channel

from ..cancel import NEVER, CancelToken
from ..config import Method, QuantizeConfig
from ..errors import InvalidInput, UnsupportedModel
from ..events import Done, EtaClock, Job, Log
from ..formats.bitsmith_int8 import QUANT_METHOD, quantization_config, scale_name
from ..formats.hf_folder import HFFolder, open_hf_folder
from ..formats.safetensors_shards import MAX_SHARD_BYTES, ShardWriter, plan_shards
from ..fsutil import check_disk, check_output, staged_output
from ..reportcard import report_card_path, tool_versions, write_report_card
from ..telemetry import PeakMemory
from .tokenizer_files import copy_tokenizer_files

DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
#: Largest output shard (a module constant so tests can force several shards).
SHARD_BYTES = MAX_SHARD_BYTES
#: Room for the tokenizer, config and report card on top of the tensors.
METADATA_BYTES = 32 * 1024**2


@dataclass(frozen=True)
class Int8Result:
    out: Path
    size: int
    quantized: int  # Linear weights converted
    kept: int  # tensors copied unchanged
    modules_not_converted: list[str]
    bits_per_weight: float
    report: Path
    seconds: float


@dataclass(frozen=True)
class _Plan:
    order: list[str]  # source tensor names, in file order
    quantize: set[str]  # the "<m>.weight" names to convert
    not_converted: list[str]
    sizes: list[tuple[str, int]]  # output tensor name -> bytes, in writing order


def quantize_int8(cfg: QuantizeConfig, cancel: CancelToken = NEVER) -> Job:
    """Yields Log/Progress events, then Done(Int8Result). Cancel is checked between tensors."""
    t0 = time.monotonic()
    if cfg.method is not Method.INT8:
        raise InvalidInput(f"quantize_int8 runs the int8 method, not {cfg.method.value}")
    src = _open_source(Path(cfg.source))
    out = Path(cfg.out)
    overwrite = bool(cfg.extra.get("overwrite", False))
    check_output(out, src.path, overwrite=overwrite)
    plan = _plan(src)
    check_disk(out, sum(size for _, size in plan.sizes) + METADATA_BYTES)
    yield Log(f"int8: {len(plan.quantize)} Linear weights to convert, {len(plan.order) - len(plan.quantize)} "
              f"tensors kept as they are ({', '.join(plan.not_converted)} not converted)")

    with PeakMemory() as rss:
        with staged_output(out, is_dir=True, overwrite=overwrite) as temp:
            writer = ShardWriter(temp, plan_shards(plan.sizes, SHARD_BYTES))
            clock = EtaClock(len(plan.order), "int8")
            for i, name in enumerate(plan.order):
                cancel.check()
                tensor = src.tensor(name)
                if name in plan.quantize:
                    try:
                        q, scale = quantize_per_channel(tensor)
                    except ValueError as exc:
                        raise InvalidInput(f"{src.files[name]}: tensor {name}: {exc}") from None
                    writer.add(name, q)
                    writer.add(scale_name(name), scale)
                else:
                    writer.add(name, tensor)
                del tensor
                yield clock.progress(i + 1, name)
            writer.finish()
            config = {**src.config, "quantization_config": quantization_config(plan.not_converted)}
            (temp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
            copy_tokenizer_files(src.path, temp, skip=("config.json",))
            cancel.check()
            size = _folder_bytes(temp)
            n_params = src.n_params
            bpw = size * 8 / max(n_params, 1)
            seconds = time.monotonic() - t0
            card = _report_card(cfg, src, plan, size, n_params, bpw, seconds, rss.peak)
            write_report_card(temp, card)
    yield Done(Int8Result(out, size, len(plan.quantize), len(plan.order) - len(plan.quantize), plan.not_converted,
                          round(bpw, 3), report_card_path(out), seconds))


def _open_source(path: Path) -> HFFolder:
    if path.is_file():
        raise InvalidInput(f"{path}: INT8 conversion needs a Hugging Face model folder, not a file",
                           suggestion=f"convert a GGUF to a folder first: bitsmith import-gguf {path} OUTDIR")
    src = open_hf_folder(path)
    src.family.check("int8", str(path))
    method = (src.config.get("quantization_config") or {}).get("quant_method")
    if method:
        raise UnsupportedModel(f"{path / 'config.json'}: the model is already quantized ({method}); "
                               "INT8 needs full-precision weights", suggestion="convert the original model")
    return src


def _plan(src: HFFolder) -> _Plan:
    # The linears come from the model's module tree (engine.model_structure): every block linear and
    # per-expert weight; embeddings, the output layer and routers stay as they are.
    quantize, kept = set(src.structure.quantizable), list(src.structure.kept)
    if not quantize:
        raise UnsupportedModel(f"{src.path}: no Linear weights found to convert")
    order = list(src.shapes)  # the source's own order keeps layers together in the shards
    sizes: list[tuple[str, int]] = []
    for name in order:
        shape = src.shapes[name]
        if name in quantize:
            sizes += [(name, prod(shape)), (scale_name(name), shape[0] * 4)]
        else:
            sizes.append((name, prod(shape) * DTYPE_BYTES.get(src.dtypes[name], 4)))
    return _Plan(order, quantize, kept, sizes)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def _report_card(cfg, src: HFFolder, plan: _Plan, size, n_params, bpw, seconds, peak) -> dict:
    return {
        "kind": "quantization",
        "source": str(src.path),
        "method": Method.INT8.value,
        "format": QUANT_METHOD,
        "settings": {"bits": 8, "scheme": "per-channel-symmetric", "rounding": "half-to-even",
                     "scale_dtype": "float32", "activations": "not quantized in the file"},
        "quantized_tensors": len(plan.quantize),
        "modules_not_converted": plan.not_converted,
        "source_dtype": src.source_dtype,
        "tool_versions": tool_versions(),
        "seconds": round(seconds, 2),
        "peak_rss_bytes": peak,
        "size_bytes": size,
        "n_params": n_params,
        "bits_per_weight": round(bpw, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
