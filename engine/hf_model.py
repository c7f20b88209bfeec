"""A transformers causal LM for inference (evaluation, model-written calibration): the model half
of the runtime's loader dispatcher (engine.runtime.model_loader), which decides how each format is
loaded and in which dtype (engine.checkpoint.compute_dtype)."""

from __future__ import annotations

from pathlib import Path


def load_causal_lm(folder: Path | str, device: str = "cpu", n_params: int | None = None, fmt=None):
    """The model in eval mode on `device`, whatever layout the folder is in."""
    from .runtime.model_loader import load_model

    return load_model(folder, device, fmt=fmt, n_params=n_params)[0]
