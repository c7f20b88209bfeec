"""The engine's vocabulary, as the GUI and the CLI see it: settings, events, errors, the cancel token
and the units used to show figures. Re-exported here so that nothing above the facade needs to know
which engine module defines them."""

from __future__ import annotations

from ..cancel import NEVER, CancelToken
from ..config import (AWQ_ROUNDINGS, DEFAULT_CTX, IMATRIX_SUFFIX, CalibrationKind, CalibrationSpec, Device, EvalSettings,
                      GGUFType, ImportConfig, Method, ModelFormat, QuantizeConfig, SamplingSettings,
                      WeightOnlySettings, parse_enum)
from ..errors import Cancelled, EngineError, InvalidInput, NotEnoughDisk, OutOfMemory, UnsupportedModel
from ..events import Collected, Done, Event, Job, Log, Metric, Progress, TextPiece, output_of, run_job
from ..units import human_bytes, human_count, human_seconds

__all__ = ["NEVER", "CancelToken", "AWQ_ROUNDINGS", "DEFAULT_CTX", "IMATRIX_SUFFIX", "CalibrationKind", "CalibrationSpec", "Device",
           "EvalSettings", "GGUFType", "ImportConfig", "Method", "ModelFormat", "QuantizeConfig",
           "SamplingSettings", "WeightOnlySettings", "parse_enum", "Cancelled", "EngineError", "InvalidInput",
           "NotEnoughDisk", "OutOfMemory", "UnsupportedModel", "Collected", "Done", "Event", "Job", "Log",
           "Metric", "Progress", "TextPiece", "output_of", "run_job", "human_bytes", "human_count",
           "human_seconds"]
