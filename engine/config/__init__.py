"""Every settings type of the engine: enums and frozen configurations, validated on construction.

Settings live here, not in the modules that use them, so that a writer, a runtime or the GUI can
name a setting without importing the code that acts on it (the layers point one way).
"""

from .calibration import CalibrationKind, CalibrationSpec
from .ecosystem import ExportSettings, ExportTarget, HubSettings, LinkMode, ServerSettings
from .evaluation import DEFAULT_CTX, MIN_CTX, EvalSettings
from .jobs import (BUDGET_CANDIDATES, BUDGET_METHODS, IMATRIX_SUFFIX, Device, GGUFType, ImportConfig, Method, ModelFormat,
                   QuantizeConfig, parse_enum)
from .sampling import SamplingSettings
from .weight_only import AWQ_ROUNDINGS, GPTQ_BUDGET_CANDIDATES, WeightOnlySettings

__all__ = ["AWQ_ROUNDINGS", "CalibrationKind", "CalibrationSpec", "DEFAULT_CTX", "MIN_CTX", "EvalSettings", "BUDGET_CANDIDATES", "BUDGET_METHODS",
           "GPTQ_BUDGET_CANDIDATES", "IMATRIX_SUFFIX",
           "Device", "GGUFType", "ImportConfig", "Method", "ModelFormat", "QuantizeConfig", "parse_enum",
           "SamplingSettings", "WeightOnlySettings",
           "ExportSettings", "ExportTarget", "HubSettings", "LinkMode", "ServerSettings"]
