"""What every chat backend offers, whatever runs the model underneath."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator

from ..cancel import CancelToken
from ..config import SamplingSettings

#: Used when a model has no chat template of its own (the session says so).
FALLBACK_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% else %}Assistant: {{ m['content'] }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
FALLBACK_STOPS = ("\nUser:",)


@dataclass
class GenerationCounts:
    """Filled in by `Backend.stream` as it runs."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""  # "stop" (end of turn or stop string), "length", "cancelled"


class Backend(ABC):
    kind: str  # "llama.cpp", "transformers"
    path: str
    device: str
    context_length: int
    chat_template: str | None  # the model's own; None means the fallback is used

    @property
    def uses_fallback_template(self) -> bool:
        return self.chat_template is None

    @abstractmethod
    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The prompt text for a conversation, through the model's chat template."""

    @abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """Token ids of a rendered prompt (special tokens parsed, BOS as the model wants)."""

    @abstractmethod
    def stream(self, prompt_ids: list[int], settings: SamplingSettings, cancel: CancelToken,
               counts: GenerationCounts) -> Iterator[str]:
        """Yield text pieces as they decode; stop promptly when `cancel` is set."""

    def stop_strings(self) -> tuple[str, ...]:
        return FALLBACK_STOPS if self.uses_fallback_template else ()

    def gpu_memory_bytes(self) -> int | None:
        return None

    def memory_bytes(self) -> dict:
        """Resident memory of this process with the model loaded, and GPU memory when on CUDA."""
        from ..telemetry import process_memory

        return {"rss": process_memory(children=False), "gpu": self.gpu_memory_bytes()}

    def describe(self) -> dict:
        return {"backend": self.kind, "path": self.path, "device": self.device,
                "context_length": self.context_length, "chat_template": not self.uses_fallback_template,
                "memory": self.memory_bytes()}

    def close(self) -> None:
        """Release the model's memory."""
