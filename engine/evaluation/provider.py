"""The one thing evaluation needs from a backend: next-token logits for a window of token ids.

A provider tokenizes text with the model's own tokenizer and returns float32 logits [len, vocab]
for one window. One implementation per runtime; GPTQ/AWQ/bitsandbytes/INT8 folders load through
transformers, so they need no provider of their own, only a format entry in `open_provider`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

from ..config import ModelFormat
from ..errors import UnsupportedModel


class LogitsProvider(Protocol):
    name: str  # the model file or folder, for messages
    backend: str  # e.g. "transformers (float32, cpu)" or "llama.cpp"
    vocab_size: int  # width of the logits

    def tokenize(self, text: str) -> list[int]: ...

    def logits(self, token_ids: Sequence[int]) -> "torch.Tensor": ...  # noqa: F821 - float32 [len, vocab]

    def close(self) -> None: ...


#: Formats whose outputs transformers loads itself (given their runtime packages).
TRANSFORMERS_FORMATS = (ModelFormat.HF, ModelFormat.GPTQ, ModelFormat.AWQ, ModelFormat.BNB, ModelFormat.INT8)


def open_provider(path: Path | str, ctx: int, device: str = "cpu", threads: int | None = None,
                  info: "ModelInfo | None" = None) -> LogitsProvider:  # noqa: F821
    """The provider for a model on disk, picked from what the catalog says it is (`info`, when the
    caller has it already: inspecting a GGUF parses its whole vocabulary)."""
    from ..catalog import inspect

    info = info or inspect(path)
    if info.error:
        raise UnsupportedModel(f"{path}: {info.error}")
    if info.format is ModelFormat.GGUF:
        from .llama_cpp_provider import LlamaCppProvider

        return LlamaCppProvider(Path(path), ctx, threads)
    if info.format in TRANSFORMERS_FORMATS:
        from .hf_provider import TransformersProvider

        return TransformersProvider(Path(path), device, info.parameters, info.format)
    kind = info.format.value if info.format else "unknown"
    raise UnsupportedModel(f"{path}: evaluating {kind} models is not supported yet")
