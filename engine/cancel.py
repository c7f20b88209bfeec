"""Cooperative cancellation shared by every long job."""

from __future__ import annotations

import threading

from .errors import Cancelled, Paused


class CancelToken:
    """Set from any thread; jobs call `check()` at safe points (between layers, windows, tensors).

    `pause()` stops the job the same way, but says why: the job raises Paused (a Cancelled), so a
    resumable job's checkpoint is kept and its record reads "paused", not "cancelled"."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._pause = threading.Event()

    @classmethod
    def from_event(cls, event, pause_event=None) -> "CancelToken":
        """A token over existing event-like flags (multiprocessing.Events across processes)."""
        token = cls()
        token._event = event
        if pause_event is not None:
            token._pause = pause_event
        return token

    def cancel(self) -> None:
        self._event.set()

    def pause(self) -> None:
        self._pause.set()  # before the stop itself, so that no check sees a stop without its reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    @property
    def paused(self) -> bool:
        return self._pause.is_set()

    def check(self) -> None:
        if self._event.is_set():
            if self._pause.is_set():
                raise Paused("paused by the user")
            raise Cancelled("cancelled by the user")


#: For callers that never cancel (scripts, tests).
NEVER = CancelToken()
