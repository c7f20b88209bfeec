"""The bitsandbytes job: a full-precision Hugging Face folder -> a folder in transformers' own
bitsandbytes serialization (LLM.int8, NF4 or FP4), which transformers (and Bitsmith's chat) reload.

Settings from cfg.extra: "threshold" (LLM.int8 outlier threshold, default 6.0), "quant_type"
("nf4" default, or "fp4"; 4-bit only), "double_quant" (4-bit: quantize the scales too, default
False), "compute_dtype" (4-bit matmul dtype, default float32 on the CPU, float16 on a GPU),
"overwrite".

transformers quantizes while it loads, so the load is one stage that cannot stop half-way; cancel
is honoured before it, after it and after saving. The model is saved before it ever runs: with
bitsandbytes 0.50.2 on AVX-512-BF16 CPUs, the first 4-bit forward repacks the weights for the
CPU kernel, and saving after that writes the block scales transposed (the reloaded model is then
wrong). Nothing here runs a forward.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..cancel import NEVER, CancelToken
from ..config import Method, QuantizeConfig
from ..device import resolve_device
from ..errors import InvalidInput, OutOfMemory, UnsupportedModel
from ..events import Done, Job, Log, Progress
from ..architectures import expert_counts
from ..formats.hf_folder import open_hf_folder
from ..fsutil import check_disk, check_output, staged_output
from ..reportcard import report_card_path, tool_versions, write_report_card
from ..runtime.bnb_support import bnb_version, import_bitsandbytes, require_bnb
from ..telemetry import PeakMemory
from .tokenizer_files import copy_tokenizer_files

STAGES = ("quantize", "save", "finish")
SOURCE_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}
METADATA_BYTES = 32 * 1024**2


@dataclass(frozen=True)
class BnbResult:
    out: Path
    method: str
    settings: dict
    size: int
    bits_per_weight: float
    report: Path
    seconds: float


def bnb_settings(cfg: QuantizeConfig, device: str) -> dict:
    """The validated settings of a bitsandbytes conversion, as recorded in the report card."""
    extra = cfg.extra
    if cfg.method is Method.BNB_INT8:
        try:
            threshold = float(extra.get("threshold", 6.0))
        except (TypeError, ValueError):
            raise InvalidInput(f"bnb-int8 threshold must be a number, not {extra.get('threshold')!r}") from None
        if threshold < 0:
            raise InvalidInput(f"bnb-int8 threshold must be 0 or more, not {threshold}")
        return {"bits": 8, "threshold": threshold}
    if cfg.method is Method.BNB_NF4:
        quant_type = str(extra.get("quant_type") or "nf4").lower()
        if quant_type not in ("nf4", "fp4"):
            raise InvalidInput(f"4-bit quant_type must be nf4 or fp4, not {quant_type!r}")
        compute = str(extra.get("compute_dtype") or ("float32" if device == "cpu" else "float16"))
        if compute not in ("float32", "float16", "bfloat16"):
            raise InvalidInput(f"compute_dtype must be float32, float16 or bfloat16, not {compute!r}")
        return {"bits": 4, "quant_type": quant_type, "double_quant": bool(extra.get("double_quant", False)),
                "compute_dtype": compute}
    raise InvalidInput(f"quantize_bnb runs bnb-int8 or bnb-nf4, not {cfg.method.value}")


def quantize_bnb(cfg: QuantizeConfig, cancel: CancelToken = NEVER) -> Job:
    """Yields Log/Progress events, then Done(BnbResult)."""
    t0 = time.monotonic()
    device = resolve_device(cfg.device).torch_device
    settings = bnb_settings(cfg, device)
    require_bnb(device, settings["bits"], f"{cfg.method.value} on {device}")
    src_path = Path(cfg.source)
    if src_path.is_file():
        raise InvalidInput(f"{src_path}: bitsandbytes conversion needs a Hugging Face model folder, not a file",
                           suggestion=f"convert a GGUF to a folder first: bitsmith import-gguf {src_path} OUTDIR")
    src = open_hf_folder(src_path)
    src.family.check("bnb", str(src_path), moe=expert_counts(src.config) is not None)
    if (src.config.get("quantization_config") or {}).get("quant_method"):
        raise UnsupportedModel(f"{src.path / 'config.json'}: the model is already quantized; bitsandbytes needs "
                               "full-precision weights", suggestion="convert the original model")
    out = Path(cfg.out)
    overwrite = bool(cfg.extra.get("overwrite", False))
    check_output(out, src.path, overwrite=overwrite)
    check_disk(out, int(src.n_params * (settings["bits"] + 1) / 8) + METADATA_BYTES)
    yield Log(f"{cfg.method.value}: bitsandbytes {bnb_version()} on {device}, "
              + ", ".join(f"{k}={v}" for k, v in settings.items()))

    with PeakMemory() as rss:
        with staged_output(out, is_dir=True, overwrite=overwrite) as temp:
            cancel.check()
            yield Progress(0, len(STAGES), "quantize", "loading and quantizing with transformers")
            model = _load_quantized(src.path, src.source_dtype, settings, device)
            cancel.check()
            yield Progress(1, len(STAGES), "save", str(out.name))
            model.save_pretrained(str(temp))  # before any forward: see the module docstring
            del model
            copy_tokenizer_files(src.path, temp, skip=("config.json", "generation_config.json"))
            cancel.check()
            size = sum(p.stat().st_size for p in temp.iterdir() if p.is_file())
            bpw = size * 8 / max(src.n_params, 1)
            seconds = time.monotonic() - t0
            write_report_card(temp, _report_card(cfg, src, settings, device, size, bpw, seconds, rss.peak))
            yield Progress(len(STAGES), len(STAGES), "finish", str(out.name))
    yield Done(BnbResult(out, cfg.method.value, settings, size, round(bpw, 3), report_card_path(out), seconds))


def _load_quantized(path: Path, source_dtype: str, settings: dict, device: str):
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    import_bitsandbytes()
    if settings["bits"] == 8:
        qconfig = BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=settings["threshold"])
    else:
        qconfig = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=settings["quant_type"],
                                     bnb_4bit_use_double_quant=settings["double_quant"],
                                     bnb_4bit_compute_dtype=getattr(torch, settings["compute_dtype"]))
    # Layers left in floating point are stored as the source stores them.
    kwargs = {"quantization_config": qconfig, "dtype": getattr(torch, SOURCE_DTYPES.get(source_dtype, "float16"))}
    if device != "cpu":
        kwargs["device_map"] = {"": device}
    try:
        return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except torch.OutOfMemoryError as exc:
        raise OutOfMemory(f"{path}: out of {device} memory while quantizing with bitsandbytes") from exc
    except (OSError, ValueError, KeyError, ImportError, RuntimeError) as exc:
        lines = str(exc).strip().splitlines()
        raise UnsupportedModel(f"{path}: transformers could not quantize it with bitsandbytes "
                               f"({lines[0] if lines else type(exc).__name__})") from exc


def _report_card(cfg, src, settings, device, size, bpw, seconds, peak) -> dict:
    versions = tool_versions()
    versions["bitsandbytes"] = bnb_version()
    try:
        from importlib import metadata

        versions["accelerate"] = metadata.version("accelerate")
    except Exception:  # noqa: BLE001 - a missing figure must never fail a job
        versions["accelerate"] = None
    return {
        "kind": "quantization",
        "source": str(src.path),
        "method": cfg.method.value,
        "format": "bitsandbytes (transformers serialization)",
        "settings": settings,
        "device": device,
        "source_dtype": src.source_dtype,
        "tool_versions": versions,
        "seconds": round(seconds, 2),
        "peak_rss_bytes": peak,
        "size_bytes": size,
        "n_params": src.n_params,
        "bits_per_weight": round(bpw, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
