"""Runs an engine job (a generator of events) on a worker thread and reports through signals.

Signal order for every run: started, then zero or more `event` (progress, log, metric), then
exactly one of `result`, `errored` or `cancelled`, then `finished`. Cancel is cooperative: it sets
the job's CancelToken; the thread is never terminated. Signals are queued to the GUI thread, so
slots may touch widgets; nothing in the worker touches a widget.
"""

from __future__ import annotations

import logging
import traceback
from typing import Callable, Iterable

from PySide6.QtCore import QObject, Qt, QThread, Signal

from bitsmith.engine.api import CancelToken, Cancelled, Done

log = logging.getLogger(__name__)


class _Runner(QObject):
    started = Signal()
    event = Signal(object)
    result = Signal(object)
    errored = Signal(object, str)  # the exception, and its formatted traceback
    cancelled = Signal()
    finished = Signal()

    def __init__(self, make_job: Callable[[CancelToken], Iterable], token: CancelToken):
        super().__init__()
        self._make_job = make_job
        self._token = token

    def run(self) -> None:
        self.started.emit()
        try:
            value = None
            for ev in self._make_job(self._token):
                if isinstance(ev, Done):
                    value = ev.result
                else:
                    self.event.emit(ev)
            # A job that finished with Done delivered a result, even if a cancel came late (a
            # stopped chat answer is a result); jobs that honour cancel raise Cancelled themselves.
            self.result.emit(value)
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:  # reported to the GUI, which decides how to show it
            self.errored.emit(exc, getattr(exc, "remote_traceback", None) or traceback.format_exc())
        finally:
            self.finished.emit()


class JobWorker(QObject):
    """Owns one thread for one job. Keep a reference until `finished`."""

    started = Signal()
    event = Signal(object)
    result = Signal(object)
    errored = Signal(object, str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, make_job: Callable[[CancelToken], Iterable], parent: QObject | None = None):
        super().__init__(parent)
        self.token = CancelToken()
        self._thread = QThread()
        self._runner = _Runner(make_job, self.token)
        self._runner.moveToThread(self._thread)
        self._thread.started.connect(self._runner.run)
        for name in ("started", "event", "result", "errored", "cancelled"):
            getattr(self._runner, name).connect(getattr(self, name))
        # Direct: the thread must stop even while the GUI thread is blocked in wait() (at shutdown);
        # a queued quit would only run after wait() timed out. QThread.quit is thread-safe.
        self._runner.finished.connect(self._thread.quit, Qt.DirectConnection)
        self._thread.finished.connect(self._on_thread_done)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self.token.cancel()

    def pause(self) -> None:
        """Stop like cancel, saying it is to be resumed (the job raises Paused, keeps its checkpoint)."""
        self.token.pause()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, ms: int = 30000) -> bool:
        return self._thread.wait(ms)

    def _on_thread_done(self) -> None:
        self.finished.emit()


def call_in_worker(fn: Callable[[], object], parent: QObject | None = None) -> JobWorker:
    """Run a plain function (a scan, a load) off the GUI thread with the same signals."""

    def job(_token):
        yield Done(fn())

    return JobWorker(job, parent)
