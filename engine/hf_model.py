"""Loading a transformers causal language model for inference, with one-line errors.

On the CPU the weights are computed in float32 (half precision is slow or unsupported there) unless
that would not fit in memory, in which case bfloat16 halves it; on CUDA they keep a 16-bit dtype.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UnsupportedModel

#: Share of the available RAM float32 weights may take before we fall back to bfloat16.
FLOAT32_RAM_SHARE = 0.5


def inference_dtype(n_params: int | None, device: str):
    import torch

    if device != "cpu":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        import psutil

        available = psutil.virtual_memory().available
    except Exception:  # noqa: BLE001 - a guess is enough here; float32 is the safe default
        return torch.float32
    if n_params and n_params * 4 > FLOAT32_RAM_SHARE * available:
        return torch.bfloat16
    return torch.float32


def load_causal_lm(folder: Path | str, device: str = "cpu", n_params: int | None = None, fmt=None):
    """The model in eval mode on `device`, whatever layout the folder is in: the one place that
    decides how each format is loaded (GPTQ/AWQ and Bitsmith INT8 through our own modules, since
    plain transformers would misread them; bitsandbytes through transformers)."""
    from transformers import AutoModelForCausalLM

    from .config import ModelFormat

    folder = Path(folder)
    if fmt is None:
        from .catalog import inspect

        fmt = inspect(folder).format
    if fmt in (ModelFormat.GPTQ, ModelFormat.AWQ):
        from .runtime.quantized_hf import load_quantized_model

        return load_quantized_model(folder, device)[0].eval()
    if fmt is ModelFormat.INT8:
        from .runtime.int8_loader import load_int8_model

        return load_int8_model(folder, device)[0].eval()
    if fmt is ModelFormat.BNB:
        from .runtime.bnb_loader import load_bnb_model

        return load_bnb_model(folder, device)[0].eval()
    dtype = inference_dtype(n_params, device)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype)
    except (OSError, ValueError, KeyError, ImportError, RuntimeError) as exc:
        lines = str(exc).strip().splitlines()
        raise UnsupportedModel(f"{folder}: transformers cannot load it ({lines[0] if lines else type(exc).__name__})") from exc
    return model.to(device).eval()
