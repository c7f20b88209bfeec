"""Metadata of one model from its headers: config.json, safetensors headers, GGUF key-values.
Never loads weights."""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path

from ..architectures import CONVERSION_PATHS, PATHS, expert_counts, family_for_config, family_for_gguf_arch
from ..config import ModelFormat
from ..errors import InvalidInput, UnsupportedModel
from ..formats.gguf.header import MAGIC as GGUF_MAGIC, read_gguf_header
from ..reportcard import read_report_card
from . import estimate
from .model_info import ModelInfo, Origin
from .safetensors_header import DTYPE_BYTES, read_header

PICKLE_PATTERNS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt")
# Tensors that describe how a quantized weight is stored rather than being weights themselves.
QUANT_AUX_SUFFIXES = (".qzeros", ".scales", ".g_idx", ".SCB", ".weight_format", ".absmax",
                      ".quant_map", ".nested_absmax", ".nested_quant_map", ".weight_scale",
                      ".quant_state.bitsandbytes__nf4", ".quant_state.bitsandbytes__fp4")
QUANT_METHOD_FORMATS = {"gptq": ModelFormat.GPTQ, "awq": ModelFormat.AWQ,
                        "bitsandbytes": ModelFormat.BNB, "bitsmith-int8": ModelFormat.INT8}


def inspect_path(path: Path, origin: Origin, name: str | None = None) -> ModelInfo:
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file or folder")
    if path.is_dir():
        return inspect_hf_folder(path, origin, name)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == GGUF_MAGIC:
        return inspect_gguf(path, origin, name)
    if path.name == "config.json":
        return inspect_hf_folder(path.parent, origin, name)
    if path.suffix in (".bin", ".pt", ".pth", ".ckpt"):
        raise InvalidInput(f"{path}: pickle checkpoint; Bitsmith does not load pickle files unless you allow it")
    raise InvalidInput(f"{path}: not a model (neither a GGUF file nor a Hugging Face folder)")


# --- Hugging Face folders -------------------------------------------------------------------

def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except ValueError as exc:
        raise InvalidInput(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a JSON object")
    return data


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(_read_json(index).get("weight_map", {}).values()))
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise InvalidInput(f"{folder / missing[0]}: shard listed in {index.name} is missing")
        return [folder / n for n in names]
    return sorted(folder.glob("*.safetensors"))


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    tok_cfg = folder / "tokenizer_config.json"
    if tok_cfg.is_file():
        try:
            return bool(_read_json(tok_cfg).get("chat_template"))
        except InvalidInput:
            return False
    return False


def _folder_size(folder: Path) -> int:
    total = 0
    for entry in folder.iterdir():
        if entry.is_file():  # follows the HF cache's symlinks to blobs
            total += entry.stat().st_size
    return total


def inspect_hf_folder(folder: Path, origin: Origin, name: str | None = None) -> ModelInfo:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise InvalidInput(f"{folder}: no config.json, so not a Hugging Face model folder")
    config = _read_json(config_path)
    text_cfg = config.get("text_config") or config
    model_type = config.get("model_type")
    arch = (config.get("architectures") or [model_type or "?"])[0]
    family = family_for_config(config, where=str(config_path))  # one line naming what is refused

    qcfg = config.get("quantization_config") or {}
    quant_method = qcfg.get("quant_method")
    fmt = QUANT_METHOD_FORMATS.get(quant_method, ModelFormat.HF)
    files = _weight_files(folder)
    if not files:
        pickles = [p for pat in PICKLE_PATTERNS for p in folder.glob(pat)]
        if pickles:
            raise InvalidInput(
                f"{pickles[0]}: pickle checkpoint only (no safetensors); Bitsmith does not load pickle "
                "files unless you allow it"
            )
        raise InvalidInput(f"{folder}: no weights (*.safetensors) in the folder")

    params, weight_bytes, dtype_counts, expert_params = 0, 0, {}, 0
    bits = qcfg.get("bits") or (4 if qcfg.get("load_in_4bit") else 8 if qcfg.get("load_in_8bit") else None)
    for f in files:
        tensors, _ = read_header(f)
        for t in tensors:
            weight_bytes += t.nbytes
            if t.name.endswith(QUANT_AUX_SUFFIXES):
                continue
            n = t.numel
            if t.name.endswith(".qweight") and bits:
                n = n * 32 // bits
            elif fmt is ModelFormat.BNB and t.dtype == "U8" and qcfg.get("load_in_4bit"):
                n *= 2
            params += n
            expert_params += n if ".experts." in t.name else 0
            dtype_counts[t.dtype] = dtype_counts.get(t.dtype, 0) + n

    layers = text_cfg.get("num_hidden_layers")
    hidden = text_cfg.get("hidden_size")
    heads = text_cfg.get("num_attention_heads") or 1
    kv_ratio = (text_cfg.get("num_key_value_heads") or heads) / heads
    context = text_cfg.get("max_position_embeddings")
    if fmt is ModelFormat.HF:
        dtype = config.get("torch_dtype") or config.get("dtype") or max(dtype_counts, key=dtype_counts.get)
    elif fmt is ModelFormat.BNB:
        dtype = "bnb-" + (qcfg.get("bnb_4bit_quant_type", "nf4") if qcfg.get("load_in_4bit") else "int8")
    else:
        dtype = f"{fmt.value}-{bits}bit" if bits else fmt.value
    card = read_report_card(folder)
    experts = expert_counts(config)
    info = ModelInfo(
        family=family.name,
        experts=experts[0] if experts else None,
        experts_per_token=experts[1] if experts else None,
        active_parameters=params - expert_params + expert_params * experts[1] // experts[0] if experts else None,
        unavailable={p: r for p in PATHS if p not in ("info", "gguf-import")
                     and (r := family.refusal(p, moe=experts is not None)) is not None},
        name=name or folder.name,
        path=str(folder),
        origin=origin,
        format=fmt,
        architecture=arch,
        parameters=params,
        dtype=str(dtype),
        bits_per_weight=round(weight_bytes * 8 / params, 3) if params else None,
        size_bytes=_folder_size(folder),
        context_length=context,
        has_chat_template=_has_chat_template(folder),
        layers=layers,
        hidden_size=hidden,
        report_card=card,
        source=(card or {}).get("source"),
    )
    kv = estimate.kv_cache_bytes(layers, hidden, kv_ratio, context)
    info.ram_to_chat_bytes = estimate.ram_to_chat(weight_bytes, kv)
    info.ram_to_quantize_bytes = estimate.ram_to_quantize(params, layers)
    return info


# --- GGUF files -----------------------------------------------------------------------------

def _gguf_field(header, key: str, default=None):
    value = header.fields.get(key)
    return default if value is None else value


def gguf_file_type_name(header) -> str | None:
    import gguf

    ft = _gguf_field(header, "general.file_type")
    if not isinstance(ft, int):
        return None if ft is None else f"type {ft}"
    try:
        return gguf.LlamaFileType(ft).name.removeprefix("MOSTLY_").replace("ALL_", "")
    except ValueError:
        return f"type {ft}"


def inspect_gguf(path: Path, origin: Origin, name: str | None = None) -> ModelInfo:
    """The header's part is kept per version of the file (absolute path, size, modification time):
    the header walk is fast (it skips the vocabulary: formats/gguf/header.py), but every scan, chat
    load and plan inspects the same unchanged files again. The
    report card beside the file is read each time."""
    st = path.stat()
    info = copy.deepcopy(_gguf_header_info(str(path), os.path.abspath(path), st.st_size, st.st_mtime_ns))
    card = read_report_card(path)
    info.name, info.path, info.origin = name or path.stem, str(path), origin
    info.report_card, info.source = card, (card or {}).get("source")
    return info


@functools.lru_cache(maxsize=32)
def _gguf_header_info(given: str, abs_path: str, size: int, mtime_ns: int) -> ModelInfo:
    """What the GGUF header says of the file named `given` (the path as the caller spelt it, for its
    error lines; the rest is the cache key). A file that fails raises, and a failure is never kept."""
    path = Path(given)
    header = read_gguf_header(path)  # checked, bounded, without the vocabulary
    arch = _gguf_field(header, "general.architecture", "unknown")
    params = sum(int(t.n_elements) for t in header.tensors)
    weight_bytes = sum(int(t.n_bytes) for t in header.tensors)
    layers = _gguf_field(header, f"{arch}.block_count")
    hidden = _gguf_field(header, f"{arch}.embedding_length")
    heads = _gguf_field(header, f"{arch}.attention.head_count") or 1
    kv_heads = _gguf_field(header, f"{arch}.attention.head_count_kv") or heads
    context = _gguf_field(header, f"{arch}.context_length")
    if isinstance(heads, list):  # per-layer head counts in some architectures
        heads, kv_heads = max(heads), max(kv_heads) if isinstance(kv_heads, list) else kv_heads
    n_exp, n_used = _gguf_field(header, f"{arch}.expert_count"), _gguf_field(header, f"{arch}.expert_used_count")
    moe = bool(n_exp and n_used and int(n_exp) > 1)
    try:  # every conversion imports a GGUF first: its family's refusals, or the import's own
        fam = family_for_gguf_arch(str(arch), where=path.name)
        family = fam.name
        unavailable = {p: r for p in CONVERSION_PATHS if (r := fam.refusal(p, moe=moe)) is not None}
    except UnsupportedModel as exc:
        family = str(arch)
        why = str(exc).split(": ", 1)[-1]  # without the file name the details already show
        unavailable = {p: f"a GGUF is imported first: {why}" for p in CONVERSION_PATHS}
    expert_params = sum(int(t.n_elements) for t in header.tensors if "_exps" in t.name) if moe else 0
    info = ModelInfo(
        family=family,
        unavailable=unavailable,
        experts=int(n_exp) if moe else None,
        experts_per_token=int(n_used) if moe else None,
        active_parameters=params - expert_params + expert_params * int(n_used) // int(n_exp) if moe else None,
        # The file's own name: variants of one model share `general.name`, and the file is what the
        # user made, moved and sees in a file manager.
        name=path.stem,  # name, path, origin and the card are the caller's: inspect_gguf
        path=str(path),
        origin=Origin.USER,
        format=ModelFormat.GGUF,
        architecture=arch,
        parameters=params,
        dtype=gguf_file_type_name(header),
        bits_per_weight=round(weight_bytes * 8 / params, 3) if params else None,
        size_bytes=os.path.getsize(path),
        context_length=context,
        has_chat_template=bool(_gguf_field(header, "tokenizer.chat_template")),
        layers=layers,
        hidden_size=hidden,
    )
    kv = estimate.kv_cache_bytes(layers, hidden, kv_heads / heads, context)
    info.ram_to_chat_bytes = estimate.ram_to_chat(weight_bytes, kv)
    info.ram_to_quantize_bytes = estimate.ram_to_quantize(params, layers)
    return info
