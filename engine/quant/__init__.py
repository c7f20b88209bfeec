"""Quantization methods, one small module each, behind one entry point: `quantize(cfg, cancel)`.

The source must be a Hugging Face folder here; `engine.convert` imports a GGUF source first."""

from __future__ import annotations

from ..cancel import NEVER, CancelToken
from ..config import Method, QuantizeConfig
from ..events import Job


def quantize(cfg: QuantizeConfig, cancel: CancelToken = NEVER) -> Job:
    """The job for cfg.method; every job ends in Done(result) whose result has `.out` and `.size`."""
    if cfg.method is Method.GGUF:
        from .gguf.job import quantize_gguf

        return quantize_gguf(cfg, cancel)
    if cfg.method in (Method.GPTQ, Method.AWQ, Method.RTN):
        from .weight_only.job import quantize_with_calibration

        return quantize_with_calibration(cfg, cancel, calibrate_rtn=cfg.rtn_measures_errors)
    if cfg.method is Method.INT8:
        from .int8 import quantize_int8

        return quantize_int8(cfg, cancel)
    from .bnb import quantize_bnb

    return quantize_bnb(cfg, cancel)


__all__ = ["quantize"]
