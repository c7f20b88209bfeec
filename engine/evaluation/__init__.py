"""Evaluating a model against its source on held-out text: perplexity, KL divergence, top-1
agreement, with standard errors, through the runtime that loads it (transformers or llama.cpp)."""

from .evaluate import evaluate
from .provider import LogitsProvider, open_provider
from .result import EvalResult
from ..config import DEFAULT_CTX, EvalSettings

__all__ = ["evaluate", "EvalResult", "EvalSettings", "LogitsProvider", "open_provider", "DEFAULT_CTX"]
