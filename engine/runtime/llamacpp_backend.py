"""GGUF models through llama.cpp (llama-cpp-python)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..cancel import CancelToken
from ..config import SamplingSettings
from ..errors import InvalidInput
from ..threads import ThreadChooser, configured_threads, cpu_threads
from .base import FALLBACK_TEMPLATE, Backend, GenerationCounts

DEFAULT_CONTEXT = 4096


class LlamaCppBackend(Backend):
    kind = "llama.cpp"

    def __init__(self, path: Path, *, n_ctx: int | None = None, n_threads: int | None = None,
                 n_gpu_layers: int = 0):
        from jinja2 import TemplateError
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        from .llamacpp_open import open_llama

        self.path = str(path)
        # No fixed count asked for (argument or BITSMITH_THREADS): each answer gets the cores other
        # programs leave free (threads.py).
        n_threads = n_threads or configured_threads()
        self._chooser = ThreadChooser() if not n_threads else None
        try:
            threads = cpu_threads(n_threads)
            # The prompt pass gets the same threads: left unset, llama-cpp-python gives it every core,
            # which on a busy machine makes the first token wait on oversubscribed threads.
            self.llm = open_llama(self.path, n_ctx=n_ctx or DEFAULT_CONTEXT, n_threads=threads,
                                  n_threads_batch=threads, n_gpu_layers=n_gpu_layers, verbose=False)
        except ValueError as exc:  # llama.cpp says only "Failed to load model from file"
            raise InvalidInput(f"{path}: llama.cpp could not load this GGUF file ({exc})") from None
        except TemplateError as exc:  # llama-cpp-python compiles the model's template as it loads
            raise InvalidInput(f"{path}: the model's chat template is not valid Jinja ({exc})",
                               suggestion="use a model with a working chat template") from None
        self.threads = threads  # what the last answer used (shown in the chat's stats)
        if self._chooser is not None:
            self._chooser.settle()
        meta = self.llm.metadata
        self.device = "cuda" if n_gpu_layers else "cpu"
        train_ctx = self.llm._model.n_ctx_train()
        self.context_length = min(self.llm.n_ctx(), train_ctx) if train_ctx > 0 else self.llm.n_ctx()
        self.chat_template = meta.get("tokenizer.chat_template")
        vocab = self.llm._model
        self._bos = vocab.token_get_text(self.llm.token_bos()) if self.llm.token_bos() >= 0 else ""
        self._eos = vocab.token_get_text(self.llm.token_eos()) if self.llm.token_eos() >= 0 else ""
        self._formatter = Jinja2ChatFormatter(self.chat_template or FALLBACK_TEMPLATE, self._eos, self._bos)

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        env = self._formatter._environment
        return env.render(messages=messages, add_generation_prompt=add_generation_prompt,
                          bos_token=self._bos, eos_token=self._eos)

    def tokenize(self, text: str) -> list[int]:
        # Templates that write the BOS text themselves must not get a second one.
        add_bos = not (self._bos and text.startswith(self._bos))
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def stream(self, prompt_ids: list[int], settings: SamplingSettings, cancel: CancelToken,
               counts: GenerationCounts) -> Iterator[str]:
        from llama_cpp import StoppingCriteriaList

        counts.prompt_tokens = len(prompt_ids)
        counts.completion_tokens = 0
        if self._chooser is not None and (n := self._chooser.choose()) != self.threads:
            self.llm._ctx.set_n_threads(n, n)
            self.threads = n

        calls = [0]

        def stop_or_count(_ids, _logits) -> bool:
            # llama-cpp-python calls this once per sampled token and once more after the loop, so
            # it both counts tokens and lets Stop end the answer between two tokens.
            calls[0] += 1
            if self._chooser is not None and (n := self._chooser.during()) is not None:
                self.llm._ctx.set_n_threads(n, n)  # the load changed mid-answer: the next token uses n
                self.threads = n
            return cancel.cancelled

        # No reset: llama-cpp-python keeps the KV cache of the longest common prefix, so a
        # follow-up turn only evaluates the new tokens.
        chunks = self.llm.create_completion(
            prompt_ids, max_tokens=settings.max_new_tokens, temperature=settings.temperature,
            top_p=settings.top_p, top_k=settings.top_k, min_p=0.0, repeat_penalty=settings.repetition_penalty,
            seed=settings.seed, stop=list(settings.stop) + list(self.stop_strings()), stream=True,
            stopping_criteria=StoppingCriteriaList([stop_or_count]),
        )
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                if choice.get("text"):
                    yield choice["text"]
                if choice.get("finish_reason"):
                    counts.finish_reason = "cancelled" if cancel.cancelled else choice["finish_reason"]
        finally:
            if self._chooser is not None:
                self._chooser.settle()  # the next choice measures the load from here on
        counts.completion_tokens = max(calls[0] - 1, 0)

    def close(self) -> None:
        self.llm.close()
