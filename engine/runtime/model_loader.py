"""The one loader dispatcher for transformers-side models: a folder in any layout Bitsmith reads
-> (model in eval mode on the device, tokenizer). Chat (runtime.load), evaluation and model-written
calibration (hf_model.load_causal_lm) all come through here, so each format is loaded one way.

Full-precision folders go to transformers (which also joins per-expert checkpoint weights into its
fused experts); GPTQ/AWQ and Bitsmith INT8 to our own modules, since plain transformers would
misread them; bitsandbytes through transformers' integration. The compute dtype follows
engine.checkpoint.compute_dtype unless the caller names one.
"""

from __future__ import annotations

from pathlib import Path

from ..config import ModelFormat
from ..errors import UnsupportedModel


def load_model(path: Path | str, device: str = "cpu", *, fmt: ModelFormat | None = None, dtype=None,
               n_params: int | None = None, kernel: str | None = None):
    """(model, tokenizer). `dtype`: a torch dtype or its name; `n_params` lets a large full-precision
    model compute in bfloat16 on the CPU when float32 would not fit."""
    import torch

    path = Path(path)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if fmt is None:
        from ..catalog import inspect

        fmt = inspect(path).format
    if fmt in (ModelFormat.GPTQ, ModelFormat.AWQ):
        from .quantized_hf import load_quantized_model

        return load_quantized_model(path, device, dtype, kernel)
    if fmt is ModelFormat.INT8:
        from .int8_loader import load_int8_model

        return load_int8_model(path, device, dtype=dtype, kernel=kernel)
    if fmt is ModelFormat.BNB:
        from .bnb_loader import load_bnb_model

        return load_bnb_model(path, device, dtype=dtype)
    if fmt is ModelFormat.HF:
        return _load_full_precision(path, device, dtype, n_params)
    raise UnsupportedModel(f"{path}: {fmt.value if fmt else 'this'} models do not load through transformers")


def _load_full_precision(path: Path, device: str, dtype, n_params: int | None):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..checkpoint import compute_dtype

    # bfloat16 on a GPU: its range holds the activations of every family (Gemma's overflow float16).
    dtype = dtype or compute_dtype(device, n_params, cuda=torch.bfloat16)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    except (OSError, ValueError, KeyError, ImportError, RuntimeError) as exc:
        lines = str(exc).strip().splitlines()
        raise UnsupportedModel(f"{path}: transformers cannot load it ({lines[0] if lines else type(exc).__name__})") from exc
    return model.to(device).eval(), tokenizer
