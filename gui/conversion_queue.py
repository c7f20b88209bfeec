"""Conversions queued by the user, run one at a time in the background.

The queue is the store of truth for every conversion's state; views listen to its signals.

Pause stops a running GPTQ/AWQ/RTN conversion and keeps its per-block checkpoint (the engine keeps
one after each finished block); Resume queues the same entry again, and the job continues from that
checkpoint. Cancel stops it for good and removes the checkpoint. Quitting the app pauses the
running conversion, so its finished blocks are not lost."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from bitsmith.engine import api
from bitsmith.engine.api import Log, Progress, QuantizeConfig

from .workers import JobWorker

QUEUED, RUNNING, DONE, FAILED, CANCELLED, PAUSED = "queued", "running", "done", "failed", "cancelled", "paused"
_ids = itertools.count(1)


@dataclass
class QueueEntry:
    cfg: QuantizeConfig
    title: str
    expected_stages: int = 1
    evaluate_on: Path | None = None  # held-out text to evaluate the output on, when asked for
    id: int = field(default_factory=lambda: next(_ids))
    status: str = QUEUED
    stage: str = ""
    detail: str = ""
    step: int = 0
    total: int = 0
    eta_s: float | None = None
    stages_seen: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    result: object = None
    error: str = ""
    error_details: str = ""
    exception: BaseException | None = None
    started: float | None = None
    ended: float | None = None
    pid: int | None = None  # the child process doing the work, while it runs
    paused_at: tuple[int, int] | None = None  # (finished blocks, blocks) the checkpoint holds, when paused
    pausing: bool = False  # a stop was asked for as a pause: the checkpoint is kept
    _overall: float = 0.0

    @property
    def stage_fraction(self) -> float:
        return self.step / self.total if self.total else 0.0

    @property
    def overall_fraction(self) -> float:
        """Stages completed plus the current stage's share, over the stages the plan announced.
        A stage name seen again (a job may return to "loading") is not a new stage, and the figure
        never goes backwards."""
        if self.status == DONE:
            return 1.0
        if not self.stages_seen:
            return 0.0
        n = max(self.expected_stages, len(self.stages_seen))
        index = self.stages_seen.index(self.stage) if self.stage in self.stages_seen else len(self.stages_seen) - 1
        self._overall = max(self._overall, min((index + self.stage_fraction) / n, 1.0))
        return self._overall

    @property
    def finished(self) -> bool:
        """Ended for good (a paused conversion is not: it can be resumed)."""
        return self.status in (DONE, FAILED, CANCELLED)

    @property
    def resumable(self) -> bool:
        """A method that keeps per-block checkpoints, so that it can be paused."""
        return api.resumable(self.cfg)


def result_path(entry: QueueEntry) -> Path | None:
    """Where a finished conversion wrote its output."""
    r = entry.result
    p = getattr(r, "out", None) or getattr(r, "out_dir", None)
    return Path(p) if p else None


class ConversionQueue(QObject):
    changed = Signal(object)  # QueueEntry: any change worth redrawing
    event = Signal(object, object)  # QueueEntry, engine event
    finished = Signal(object)  # QueueEntry, once it is done, failed or cancelled
    idle = Signal()  # nothing running or waiting any more

    def __init__(self, parent=None):
        super().__init__(parent)
        self.entries: list[QueueEntry] = []
        self._worker: JobWorker | None = None
        self._current: QueueEntry | None = None

    def add(self, cfg: QuantizeConfig, title: str, expected_stages: int = 1,
            evaluate_on: Path | None = None) -> QueueEntry:
        entry = QueueEntry(cfg, title, expected_stages, evaluate_on)
        self.entries.append(entry)
        self.changed.emit(entry)
        self._start_next()
        return entry

    def cancel(self, entry: QueueEntry) -> None:
        """Stop it for good: a queued or paused entry at once, a running one at its next check; any
        checkpoint it left is removed."""
        if entry.status in (QUEUED, PAUSED):
            if entry.status == PAUSED:
                api.discard_checkpoint(entry.cfg)
                entry.log.append("cancelled; its checkpoint was removed")
            entry.status = CANCELLED
            self.changed.emit(entry)
            self.finished.emit(entry)
        elif entry is self._current and self._worker is not None:
            entry.pausing = False
            entry.log.append("cancelling…")
            self._worker.cancel()

    def pause(self, entry: QueueEntry) -> None:
        """Stop the running entry after the layer in progress, keeping its checkpoint."""
        if entry is self._current and self._worker is not None and entry.resumable:
            entry.pausing = True
            entry.log.append("pausing…")
            self._worker.pause()

    def resume(self, entry: QueueEntry) -> None:
        """Queue a paused entry again; its job continues from the checkpoint."""
        if entry.status != PAUSED:
            return
        entry.status, entry.pausing, entry.paused_at = QUEUED, False, None
        entry.stage, entry.detail, entry.step, entry.total, entry.eta_s = "", "", 0, 0, None
        entry.log.append("resuming…")
        self.changed.emit(entry)
        self._start_next()

    def running(self) -> QueueEntry | None:
        return self._current

    def is_idle(self) -> bool:
        return self._current is None and not any(e.status == QUEUED for e in self.entries)

    def _start_next(self) -> None:
        if self._current is not None:
            return
        entry = next((e for e in self.entries if e.status == QUEUED), None)
        if entry is None:
            return
        self._current = entry
        entry.status, entry.started = RUNNING, time.monotonic()
        worker = JobWorker(lambda token, e=entry: api.convert(e.cfg, token, in_process=True, evaluate_on=e.evaluate_on,
                                                              on_process=lambda pid: setattr(e, "pid", pid)),
                           self)
        worker.event.connect(lambda ev, e=entry: self._on_event(e, ev))
        worker.result.connect(lambda res, e=entry: self._end(e, DONE, result=res))
        worker.errored.connect(lambda exc, tb, e=entry: self._end(e, FAILED, error=str(exc), details=tb, exc=exc))
        worker.cancelled.connect(lambda e=entry: self._end(e, PAUSED if e.pausing else CANCELLED))
        worker.finished.connect(self._on_worker_finished)
        self._worker = worker
        self.changed.emit(entry)
        worker.start()

    def _on_event(self, entry: QueueEntry, ev) -> None:
        if isinstance(ev, Progress):
            if ev.stage not in entry.stages_seen:
                entry.stages_seen.append(ev.stage)
            entry.stage, entry.detail, entry.step, entry.total, entry.eta_s = ev.stage, ev.detail, ev.step, ev.total, ev.eta_s
        elif isinstance(ev, Log):
            entry.log.append(ev.message if ev.level == "info" else f"{ev.level}: {ev.message}")
        self.event.emit(entry, ev)
        self.changed.emit(entry)

    def _end(self, entry: QueueEntry, status: str, result=None, error: str = "", details: str = "",
             exc: BaseException | None = None) -> None:
        entry.status, entry.result, entry.error, entry.error_details = status, result, error, details
        entry.exception = exc
        entry.ended = time.monotonic()
        entry.pid = None
        if status == PAUSED:
            entry.paused_at = api.checkpoint_progress(entry.cfg)
            done, blocks = entry.paused_at or (0, 0)
            entry.log.append(f"paused after block {done}/{blocks}; Resume continues from block {done + 1}" if done
                             else "paused before the first block was finished; Resume starts at block 1")
        else:
            if status == CANCELLED:
                api.discard_checkpoint(entry.cfg)  # Pause is the way to keep one
            entry.log.append({DONE: "finished", FAILED: f"failed: {error}", CANCELLED: "cancelled"}[status])
        # The view repaints now: the thread's own `finished` signal is a separate event that can come
        # a moment later, and until then the row would still say "Running" under a new status.
        self.changed.emit(entry)

    def _on_worker_finished(self) -> None:
        entry, self._current, self._worker = self._current, None, None
        if entry is not None:
            self.changed.emit(entry)
            if entry.finished:  # a paused entry has not ended: it can be resumed
                self.finished.emit(entry)
        self._start_next()
        if self.is_idle():
            self.idle.emit()

    def cancel_all(self) -> None:
        """Cancel what waits and stop what runs (pausing it where it can be resumed, so quitting
        loses no finished block); `idle` is emitted once the running one has stopped."""
        for e in self.entries:
            if e.status == QUEUED:
                self.cancel(e)
        if self._current is not None:
            if self._current.resumable:
                self.pause(self._current)
            else:
                self.cancel(self._current)
        elif self.is_idle():
            self.idle.emit()

    def shutdown(self) -> None:
        """At exit, once the window has already waited for `idle`: nothing should be left running."""
        for e in self.entries:
            if e.status == QUEUED:
                e.status = CANCELLED
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait(60000)
