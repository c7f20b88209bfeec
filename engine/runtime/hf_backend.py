"""Hugging Face folders through transformers (full precision, and later our quantized layouts)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

from ..cancel import CancelToken
from ..config import SamplingSettings
from .base import FALLBACK_TEMPLATE, Backend, GenerationCounts


class _PieceStreamer:
    """A transformers streamer that decodes incrementally and hands text pieces to a queue.
    The first `put` carries the prompt, which is skipped."""

    def __init__(self, tokenizer, out):
        self.tokenizer, self.out = tokenizer, out
        self.ids: list[int] = []
        self._printed = 0
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.ids.extend(int(t) for t in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        # Hold back an incomplete UTF-8 sequence until the next token completes it.
        if text.endswith("\ufffd"):
            return
        if len(text) > self._printed:
            self.out.put(text[self._printed:])
            self._printed = len(text)

    def end(self) -> None:
        self.out.put(None)


class TransformersBackend(Backend):
    kind = "transformers"

    def __init__(self, path: Path, *, device: str = "cpu", dtype: str | None = None, preloaded=None):
        """preloaded: a (model, tokenizer) already on `device`, used as is; otherwise the folder is
        loaded through the loader dispatcher (model_loader.load_model)."""
        import torch

        self.path = str(path)
        self.device = device
        if preloaded is None:
            from .model_loader import load_model

            preloaded = load_model(path, device, dtype=dtype)
        self.model, self.tokenizer = preloaded
        cfg = self.model.config
        self.context_length = int(getattr(cfg, "max_position_embeddings", 2048))
        self.chat_template = self.tokenizer.chat_template
        self._torch = torch
        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self._eos_ids = [eos] if isinstance(eos, int) else list(eos or [])

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template or FALLBACK_TEMPLATE, tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )

    def tokenize(self, text: str) -> list[int]:
        # Chat templates write their own special tokens (BOS included) into the text.
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def stream(self, prompt_ids: list[int], settings: SamplingSettings, cancel: CancelToken,
               counts: GenerationCounts) -> Iterator[str]:
        import queue

        from transformers import StoppingCriteria, StoppingCriteriaList

        torch = self._torch
        counts.prompt_tokens = len(prompt_ids)
        pieces: queue.Queue = queue.Queue()
        streamer = _PieceStreamer(self.tokenizer, pieces)

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                return torch.full((input_ids.shape[0],), cancel.cancelled, dtype=torch.bool)

        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        kwargs = dict(
            input_ids=torch.tensor([prompt_ids], device=self.device), max_new_tokens=settings.max_new_tokens,
            do_sample=not settings.greedy, repetition_penalty=settings.repetition_penalty,
            streamer=streamer, stopping_criteria=StoppingCriteriaList([_Cancel()]),
            eos_token_id=self._eos_ids or None, pad_token_id=self.tokenizer.pad_token_id or (self._eos_ids or [0])[0],
            stop_strings=list(settings.stop) + list(self.stop_strings()) or None, tokenizer=self.tokenizer,
        )
        if not settings.greedy:
            kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k or None)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        error: list[BaseException] = []

        def run():
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced in the caller's thread below
                error.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="bitsmith-generate", daemon=True)
        worker.start()
        while (piece := pieces.get()) is not None:
            yield piece
        worker.join()
        if error:
            raise error[0]
        counts.completion_tokens = len(streamer.ids)
        if cancel.cancelled:
            counts.finish_reason = "cancelled"
        elif len(streamer.ids) >= settings.max_new_tokens:
            counts.finish_reason = "length"
        else:
            counts.finish_reason = "stop"

    def gpu_memory_bytes(self) -> int | None:
        if self.device == "cuda":
            return int(self._torch.cuda.max_memory_allocated())
        return None

    def close(self) -> None:
        del self.model
