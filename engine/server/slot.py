"""One model, one generation at a time. Requests wait their turn in arrival order (an asyncio lock
is fair); the generation itself runs on a worker thread, which hands text pieces to the event loop.

The slot is released by the worker thread when the backend has stopped, not by the request: a
client that disconnects sets the cancel token and leaves at once, and the next request starts as
soon as the backend notices the token (between two tokens)."""

from __future__ import annotations

import asyncio
import threading
from typing import AsyncIterator

from ..cancel import CancelToken
from ..config import SamplingSettings
from ..runtime.base import Backend, GenerationCounts
from .requests import ApiError
from .stops import StopTrimmer

_END = object()


class Generation:
    """One answer: iterate `pieces()`, then read `counts` and `finish_reason`."""

    def __init__(self, slot: "ModelSlot", prompt_ids: list[int], settings: SamplingSettings):
        self.slot, self.prompt_ids, self.settings = slot, prompt_ids, settings
        self.cancel = CancelToken()
        self.counts = GenerationCounts(prompt_tokens=len(prompt_ids))
        self.finish_reason = "stop"

    async def pieces(self) -> AsyncIterator[str]:
        slot = self.slot
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        trimmer = StopTrimmer(self.settings.stop)
        slot.waiting += 1
        try:
            await slot.lock.acquire()  # cancelled here if the client leaves while queued
        finally:
            slot.waiting -= 1
        worker = threading.Thread(target=self._work, args=(loop, queue), name="bitsmith-serve", daemon=True)
        slot.active.add(self.cancel)
        try:
            worker.start()
        except BaseException:
            slot.active.discard(self.cancel)
            slot.lock.release()
            raise
        finished = False
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                text = trimmer.feed(item)
                if trimmer.stopped:
                    self.cancel.cancel()  # the rest of this answer is not wanted; drain until the thread ends
                if text:
                    yield text
            tail = trimmer.flush()
            if tail:
                yield tail
            finished = True
        finally:
            if not finished:
                self.cancel.cancel()  # the client left (or an error): the worker stops and frees the slot
        reason = self.counts.finish_reason or "stop"
        self.finish_reason = "stop" if trimmer.stopped or reason == "cancelled" else reason

    def _work(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        def put(item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed (server shut down): nobody is listening
                pass

        try:
            with self.slot.backend_lock:
                for piece in self.slot.backend.stream(self.prompt_ids, self.settings, self.cancel, self.counts):
                    put(piece)
        except BaseException as exc:  # noqa: BLE001 - handed to the request, which reports it
            put(exc)
        finally:
            self.slot.active.discard(self.cancel)
            put(_END)
            try:
                loop.call_soon_threadsafe(self.slot.lock.release)
            except RuntimeError:
                pass


class ModelSlot:
    def __init__(self, backend: Backend, max_queue: int, backend_lock: threading.Lock | None = None):
        self.backend = backend
        self.max_queue = max_queue
        self.lock = asyncio.Lock()
        #: Held while the backend generates; share it with anything else that uses the same backend
        #: (the chat pane), so the two never run the model at once.
        self.backend_lock = backend_lock or threading.Lock()
        self.waiting = 0
        self.active: set[CancelToken] = set()

    def admit(self) -> None:
        if self.waiting >= self.max_queue:
            raise ApiError(503, f"the server is busy: {self.waiting} requests are already waiting",
                           code="queue_full", kind="server_error")

    def prepare(self, text: str, settings: SamplingSettings, max_tokens_given: bool) -> tuple[list[int], SamplingSettings]:
        """Token ids of a rendered prompt, and the answer length that fits the context."""
        from dataclasses import replace

        ids = self.backend.tokenize(text)
        ctx = self.backend.context_length
        room = ctx - len(ids)
        if room < 1 or (max_tokens_given and settings.max_new_tokens > room):
            asked = settings.max_new_tokens if max_tokens_given else 1
            raise ApiError(400, f"this model's context is {ctx} tokens; the prompt has {len(ids)} and "
                           f"{asked} were asked for the answer", param="messages", code="context_length_exceeded")
        if not max_tokens_given and settings.max_new_tokens > room:
            settings = replace(settings, max_new_tokens=room)
        return ids, settings

    def cancel_all(self) -> None:
        for token in list(self.active):
            token.cancel()
