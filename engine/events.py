"""Events yielded by long jobs. A job is a generator of these; the last one is `Done`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Generator, Iterable, TypeVar


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    stage: str
    detail: str = ""
    eta_s: float | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


@dataclass(frozen=True)
class Log:
    message: str
    level: str = "info"


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str = ""


@dataclass(frozen=True)
class TextPiece:
    """A piece of generated text, streamed as it decodes."""

    text: str


@dataclass(frozen=True)
class Done:
    result: Any = None


Event = Progress | Log | Metric | TextPiece | Done
Job = Generator[Event, None, None]
T = TypeVar("T")


class EtaClock:
    """Estimates time left from the rate of completed steps since the stage began."""

    def __init__(self, total: int, stage: str, done: int = 0):
        """`done`: steps finished before this clock started (a resumed job), left out of the rate."""
        self.total = total
        self.stage = stage
        self.done = done
        self._t0 = time.monotonic()

    def progress(self, step: int, detail: str = "") -> Progress:
        elapsed = time.monotonic() - self._t0
        eta = elapsed / (step - self.done) * (self.total - step) if step > self.done else None
        return Progress(step, self.total, self.stage, detail, eta)


def relay(job: Iterable[Event]) -> Generator[Event, None, Any]:
    """Pass a sub-job's events on, all but its Done, whose result it returns: inside a job,
    `result = yield from relay(other_job)`."""
    result = None
    for event in job:
        if isinstance(event, Done):
            result = event.result
        else:
            yield event
    return result


def output_of(result: Any) -> Any:
    """Where a conversion's result was written (methods' results name it `out`, imports `out_dir`)."""
    return getattr(result, "out", None) or getattr(result, "out_dir", None)


def run_job(job: Iterable[Event], on_event=None) -> Any:
    """Drive a job to completion synchronously and return the result carried by `Done`."""
    result = None
    for event in job:
        if on_event is not None:
            on_event(event)
        if isinstance(event, Done):
            result = event.result
    return result


@dataclass
class Collected:
    """Every event a job yielded, for tests and the CLI's --json mode."""

    events: list = field(default_factory=list)

    def __call__(self, event) -> None:
        self.events.append(event)

    def of(self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]
