"""The result of building calibration data: token windows plus where they came from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CalibrationSet:
    windows: "torch.Tensor"  # noqa: F821 - [n, seq_len] int64 token ids
    source: str  # what the windows were cut from, in words
    kind: str  # "file", "builtin" or "model"
    sha256: str  # of the source text
    total_tokens: int  # tokens the source text holds (the windows were drawn from these)
    seed: int
    overlapping: bool = False  # the text was too short for non-overlapping windows

    @property
    def n(self) -> int:
        return int(self.windows.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.windows.shape[1])

    def to_card(self) -> dict:
        """The report card's `calibration` entry."""
        return {
            "kind": self.kind, "source": self.source, "sha256": self.sha256, "samples": self.n,
            "seq_len": self.seq_len, "seed": self.seed, "total_tokens": self.total_tokens,
            "overlapping": self.overlapping,
        }
