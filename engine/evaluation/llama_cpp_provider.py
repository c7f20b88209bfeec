"""Logits from a GGUF file through llama.cpp (llama-cpp-python), never a torch re-implementation.

One context as wide as the evaluation window, one batch per window (n_batch = n_ubatch = ctx), every
position's logits kept (logits_all), and the context reset between windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import InvalidInput, UnsupportedModel
from ..text_tokens import LlamaCppTokenizer
from ..threads import cpu_threads


class LlamaCppProvider:
    def __init__(self, path: Path, ctx: int, threads: int | None = None):
        from ..runtime.llamacpp_open import open_llama

        self.name = str(path)
        self.ctx = ctx
        threads = cpu_threads(threads)
        try:
            self.llm = open_llama(
                path, n_ctx=ctx, n_batch=ctx, n_ubatch=ctx, logits_all=True, n_threads=threads,
                n_threads_batch=threads, n_gpu_layers=0, seed=0, verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise UnsupportedModel(f"{path}: llama.cpp cannot load it ({str(exc).strip() or type(exc).__name__})") from exc
        self.tokenizer = LlamaCppTokenizer(self.llm)
        self.vocab_size = int(self.llm.n_vocab())
        self.backend = f"llama.cpp ({threads} thread{'s' if threads != 1 else ''})"

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def logits(self, token_ids: Sequence[int]):
        import numpy as np
        import torch

        ids = list(token_ids)
        if len(ids) > self.ctx:
            raise InvalidInput(f"{self.name}: a window of {len(ids)} tokens exceeds the context of {self.ctx}")
        self.llm.reset()  # eval() then drops the previous window's KV cache from position 0
        self.llm.eval(ids)
        # scores is llama-cpp-python's reusable buffer: copy the rows out before the next window.
        return torch.from_numpy(np.array(self.llm.scores[: len(ids)], dtype=np.float32, copy=True))

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.close()
