"""A conversation with one loaded model: streaming answers, stop, regenerate, context management,
per-answer statistics, and (optionally) persistence in the history store."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..cancel import NEVER, CancelToken
from ..errors import InvalidInput
from ..events import Done, Job, Log, TextPiece
from ..runtime.base import Backend, GenerationCounts
from .history import HistoryStore
from ..config import SamplingSettings
from ..telemetry import PeakMemory
from .stats import AnswerClock, AnswerStats


@dataclass
class Answer:
    text: str
    stats: AnswerStats
    finish_reason: str
    dropped_turns: int = 0  # oldest turns left out so the prompt fits the context
    message_id: int | None = None


@dataclass
class ChatSession:
    backend: Backend
    system_prompt: str = ""
    settings: SamplingSettings = field(default_factory=SamplingSettings)
    store: HistoryStore | None = None
    conversation_id: int | None = None
    messages: list[dict] = field(default_factory=list)  # user/assistant turns, oldest first

    @classmethod
    def resume(cls, backend: Backend, store: HistoryStore, conversation_id: int) -> "ChatSession":
        conv = store.get_conversation(conversation_id)
        turns = [{"role": m["role"], "content": m["content"]} for m in store.messages(conversation_id)]
        return cls(backend, conv["system_prompt"], SamplingSettings.from_dict(conv["settings"]), store,
                   conversation_id, turns)

    # --- the two user actions ------------------------------------------------------------------
    def send(self, text: str, cancel: CancelToken = NEVER) -> Job:
        if not text.strip():
            raise InvalidInput("the message is empty")
        return self._send(text, cancel)

    def _send(self, text: str, cancel: CancelToken) -> Job:
        # The prompt is fitted before the message is kept: one that cannot fit (or that the chat
        # template refuses) is refused whole, and neither the session nor the history keeps it.
        self.messages.append({"role": "user", "content": text})
        try:
            fitted = self.fit_prompt()
        except BaseException:
            self.messages.pop()
            raise
        self._persist_turn("user", text)
        return (yield from self._answer(cancel, fitted))

    def regenerate(self, cancel: CancelToken = NEVER) -> Job:
        """Answer the last user message again, replacing the previous answer."""
        if self.messages and self.messages[-1]["role"] == "assistant":
            self.messages.pop()
            if self.store and self.conversation_id is not None:
                self.store.delete_last_answer(self.conversation_id)
        if not self.messages or self.messages[-1]["role"] != "user":
            raise InvalidInput("there is no message to answer again")
        return self._answer(cancel)

    # --- internals -----------------------------------------------------------------------------
    def _conversation(self, turns: list[dict]) -> list[dict]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return system + turns

    def fit_prompt(self) -> tuple[list[int], int]:
        """Token ids of the prompt and how many of the oldest turns were dropped to fit.

        The system prompt and the latest user message are always kept; older turns go first,
        a user message together with its answer."""
        budget = self.backend.context_length - self.settings.max_new_tokens
        turns = list(self.messages)
        dropped = 0
        while True:
            ids = self.backend.tokenize(self._render(self._conversation(turns)))
            if len(ids) <= budget:
                return ids, dropped
            if len(turns) <= 1:
                raise InvalidInput(
                    f"the message needs {len(ids)} tokens but only {budget} fit in the context "
                    f"({self.backend.context_length} minus {self.settings.max_new_tokens} for the answer)",
                    suggestion="shorten the message or lower the answer length",
                )
            cut = 2 if len(turns) > 2 and turns[1]["role"] == "assistant" else 1
            turns = turns[cut:]
            dropped += cut

    def _render(self, conversation: list[dict]) -> str:
        """The prompt through the model's chat template. Templates run in Jinja's sandbox (no
        attribute tricks, no file access, bounded ranges); a template that fails or tries one of
        those is one line naming the model, never a crash of the chat."""
        from jinja2 import TemplateError

        try:
            return self.backend.render(conversation)
        except (TemplateError, TypeError, ValueError, OverflowError, KeyError, IndexError, RecursionError) as exc:
            detail = str(exc).replace("\n", " ")[:160]
            raise InvalidInput(f"{self.backend.path}: the model's chat template failed ({type(exc).__name__}: {detail})",
                               suggestion="use a model with a working chat template") from None

    def _answer(self, cancel: CancelToken, fitted: tuple[list[int], int] | None = None) -> Job:
        if self.backend.uses_fallback_template:
            yield Log("this model has no chat template; using a plain User/Assistant format", "warning")
        prompt_ids, dropped = fitted or self.fit_prompt()
        if dropped:
            yield Log(f"left out the {dropped} oldest message(s) so the conversation fits the context", "warning")
        counts = GenerationCounts()
        clock = AnswerClock()
        parts: list[str] = []
        with PeakMemory(interval_s=0.05) as mem:
            for piece in self.backend.stream(prompt_ids, self.settings, cancel, counts):
                clock.first_piece()
                parts.append(piece)
                yield TextPiece(piece)
        stats = clock.finish(counts.prompt_tokens, counts.completion_tokens, mem.peak,
                             self.backend.gpu_memory_bytes())
        text = "".join(parts).strip()
        self.messages.append({"role": "assistant", "content": text})
        message_id = self._persist_turn("assistant", text, stats)
        yield Done(Answer(text, stats, counts.finish_reason or "stop", dropped, message_id))

    def _persist_turn(self, role: str, text: str, stats: AnswerStats | None = None) -> int | None:
        if self.store is None:
            return None
        if self.conversation_id is None:
            title = text.strip().splitlines()[0][:60] if role == "user" else "New chat"
            self.conversation_id = self.store.create_conversation(
                title, self.backend.path, self.system_prompt, self.settings.to_dict())
        return self.store.add_message(self.conversation_id, role, text, stats.to_dict() if stats else None)
