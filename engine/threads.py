"""How many CPU threads a job's numeric work may use, set for the job and restored after it.

torch's thread count is process-wide, so a job that asks for fewer threads sets it on entry and puts
the old value back on exit. On a busy machine fewer threads than cores is often faster: threads
that wait for a core spin at every barrier (seen: 1 thread 25x faster than 2 on a shared 2-core box).
"""

from __future__ import annotations

import contextlib
import os


ENV_THREADS = "BITSMITH_THREADS"


def configured_threads() -> int | None:
    """A fixed thread count for llama.cpp and the quantizers from the environment (BITSMITH_THREADS),
    or None. It lets a user pin the count on a shared machine and lets the test suite run the whole
    app with 1 or 2 threads; a value that is not a positive integer is ignored."""
    raw = os.environ.get(ENV_THREADS, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def cpu_threads(requested: int | None) -> int:
    """`requested`, else BITSMITH_THREADS, else every core."""
    if requested:
        return max(1, requested)
    return configured_threads() or os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(requested: int | None):
    """Within the block torch uses `requested` threads; None leaves torch's own choice alone."""
    if not requested:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, requested))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def threads_for(per_cpu_busy: list[float], max_threads: int, busy_threshold: float = 50.0) -> int:
    """One thread per core that other programs leave mostly idle (busy under `busy_threshold` %),
    at least one and at most `max_threads`. A thread placed on a busy core makes every other thread
    wait for it at each barrier: on a 2-core machine with one core taken, llama.cpp decodes ~36 tok/s
    with 1 thread and ~20 with 2 (~55 either way when both cores are free)."""
    free = sum(1 for busy in per_cpu_busy if busy < busy_threshold)
    return max(1, min(max_threads, free))


class ThreadChooser:
    """Picks the thread count for each chat answer from the cores free at that moment.

    `settle()` marks the end of an answer (or the load); `choose()`, at the start of the next one,
    measures each core's load over the time in between, while this process was idle, so what it
    sees is the other programs' load. When the two calls are too close together (a regenerate right
    away) it measures for `min_window_s` instead."""

    def __init__(self, max_threads: int | None = None, busy_threshold: float = 50.0, min_window_s: float = 0.1):
        self.max_threads = max(1, max_threads or os.cpu_count() or 1)
        self.busy_threshold = busy_threshold
        self.min_window_s = min_window_s
        self._mark: tuple[float, list] | None = None
        self.last = self.max_threads

    def settle(self) -> None:
        from .telemetry import cpu_mark

        self._mark = cpu_mark()

    def choose(self) -> int:
        import time

        from .telemetry import per_cpu_busy

        if self._mark is None or time.monotonic() - self._mark[0] < self.min_window_s:
            self.settle()
            time.sleep(self.min_window_s)
        busy = per_cpu_busy(self._mark)
        self.last = threads_for(busy, self.max_threads, self.busy_threshold)
        return self.last
