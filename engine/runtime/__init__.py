"""One loader for every model the catalog recognises."""

from __future__ import annotations

from pathlib import Path

from ..catalog import inspect
from ..config import Device, ModelFormat
from ..device import resolve_device
from ..errors import UnsupportedModel
from .base import Backend, GenerationCounts


def load(path: Path | str, device: Device | str = Device.AUTO, *, n_ctx: int | None = None,
         n_threads: int | None = None, n_gpu_layers: int | None = None, dtype: str | None = None) -> Backend:
    """Open a model for chat. GGUF goes to llama.cpp; Hugging Face folders to transformers."""
    info = inspect(path)
    choice = resolve_device(device)
    if info.format is ModelFormat.GGUF:
        from .llamacpp_backend import LlamaCppBackend

        layers = n_gpu_layers if n_gpu_layers is not None else (-1 if choice.torch_device == "cuda" else 0)
        return LlamaCppBackend(Path(info.path), n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=layers)
    from .hf_backend import TransformersBackend

    device_name = choice.torch_device
    if info.format is ModelFormat.HF:
        return TransformersBackend(Path(info.path), device=device_name, dtype=dtype)
    if info.format is ModelFormat.INT8:
        # Never through plain transformers: it would load the int8 codes without their scales.
        from .int8_loader import load_int8_model

        return TransformersBackend(Path(info.path), device=device_name,
                                   preloaded=load_int8_model(info.path, device_name, dtype=dtype))
    if info.format in (ModelFormat.GPTQ, ModelFormat.AWQ):
        import torch

        from .quantized_hf import load_quantized_model

        return TransformersBackend(Path(info.path), device=device_name, preloaded=load_quantized_model(
            info.path, device_name, getattr(torch, dtype) if dtype else None))
    if info.format is ModelFormat.BNB:
        from .bnb_loader import load_bnb_model

        return TransformersBackend(Path(info.path), device=device_name,
                                   preloaded=load_bnb_model(info.path, device_name, dtype=dtype))
    raise UnsupportedModel(f"{info.path}: chat with {info.format.value} models is not available yet")


__all__ = ["load", "Backend", "GenerationCounts"]
