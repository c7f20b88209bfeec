"""Calibration data: token windows from a user's file, Bitsmith's built-in text, or text the source
model writes itself from shipped seed prompts (the default when the user has none)."""

from .build import build_calibration
from .calibration_set import CalibrationSet
from .generated import GenerationSettings
from ..config import CalibrationKind, CalibrationSpec
from .text_file import SourceText, read_text_file

__all__ = ["build_calibration", "CalibrationSet", "CalibrationKind", "CalibrationSpec", "GenerationSettings",
           "SourceText", "read_text_file"]
