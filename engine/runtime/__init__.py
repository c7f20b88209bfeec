"""One loader for every model the catalog recognises."""

from __future__ import annotations

from pathlib import Path

from ..catalog import inspect
from ..config import Device, ModelFormat
from ..device import resolve_device
from .base import Backend, GenerationCounts


def load(path: Path | str, device: Device | str = Device.AUTO, *, n_ctx: int | None = None,
         n_threads: int | None = None, n_gpu_layers: int | None = None, dtype: str | None = None) -> Backend:
    """Open a model for chat. GGUF goes to llama.cpp; every other layout to transformers through
    the one loader dispatcher (model_loader.load_model)."""
    info = inspect(path)
    choice = resolve_device(device)
    if info.format is ModelFormat.GGUF:
        from .llamacpp_backend import LlamaCppBackend

        layers = n_gpu_layers if n_gpu_layers is not None else (-1 if choice.torch_device == "cuda" else 0)
        return LlamaCppBackend(Path(info.path), n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=layers)
    from .hf_backend import TransformersBackend
    from .model_loader import load_model

    device_name = choice.torch_device
    return TransformersBackend(Path(info.path), device=device_name,
                               preloaded=load_model(info.path, device_name, fmt=info.format, dtype=dtype))


__all__ = ["load", "Backend", "GenerationCounts"]
