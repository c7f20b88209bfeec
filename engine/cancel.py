"""Cooperative cancellation shared by every long job."""

from __future__ import annotations

import threading

from .errors import Cancelled


class CancelToken:
    """Set from any thread; jobs call `check()` at safe points (between layers, windows, tensors)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    @classmethod
    def from_event(cls, event) -> "CancelToken":
        """A token over an existing event-like flag (a multiprocessing.Event across processes)."""
        token = cls()
        token._event = event
        return token

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


#: For callers that never cancel (scripts, tests).
NEVER = CancelToken()
