"""Sampling settings for one answer, validated in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import InvalidInput


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    repetition_penalty: float = 1.1
    max_new_tokens: int = 512
    seed: int | None = None  # None: a fresh seed each answer
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        object.__setattr__(self, "stop", tuple(self.stop))
        if not 0.0 <= self.temperature <= 5.0:
            raise InvalidInput(f"temperature must be between 0 and 5, not {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidInput(f"top-p must be in (0, 1], not {self.top_p}")
        if self.top_k < 0:
            raise InvalidInput(f"top-k must be 0 (off) or more, not {self.top_k}")
        if not 0.5 <= self.repetition_penalty <= 3.0:
            raise InvalidInput(f"repetition penalty must be between 0.5 and 3, not {self.repetition_penalty}")
        if self.max_new_tokens < 1:
            raise InvalidInput(f"max new tokens must be at least 1, not {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SamplingSettings":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})
