"""The model catalog: what models are on this machine and what each one is, from headers only."""

from .model_info import ModelInfo, Origin
from .scanner import inspect, scan

__all__ = ["ModelInfo", "Origin", "inspect", "scan"]
