"""What the user asked calibration to come from: "model" (the default), "builtin", or a file path."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class CalibrationKind(str, Enum):
    MODEL = "model"  # text the source model writes from the shipped seed prompts
    BUILTIN = "builtin"  # the small text shipped with Bitsmith, for fast runs and tests
    FILE = "file"  # a plain-text or JSONL file the user picked


@dataclass(frozen=True)
class CalibrationSpec:
    kind: CalibrationKind
    path: Path | None = None

    @classmethod
    def parse(cls, value: "CalibrationSpec | str | Path") -> "CalibrationSpec":
        """The words "model" and "builtin" name those sources; anything else is a file path."""
        if isinstance(value, CalibrationSpec):
            return value
        if isinstance(value, str) and value.strip().lower() in (CalibrationKind.MODEL.value, CalibrationKind.BUILTIN.value):
            return cls(CalibrationKind(value.strip().lower()))
        return cls(CalibrationKind.FILE, Path(value).expanduser())

    def __str__(self) -> str:
        return str(self.path) if self.kind is CalibrationKind.FILE else self.kind.value
