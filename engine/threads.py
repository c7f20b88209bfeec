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


#: Free cores needed to add a thread, and the shortfall that takes one away. A thread on a core that
#: another program also wants makes every other thread wait for it at each barrier, so a thread is
#: added only for a core that is nearly all free (0.75), and kept until the core is half taken: the
#: gap between the two stops a load near one threshold from switching the count back and forth.
ADD_AT, DROP_BELOW = 0.75, 0.5


def threads_for(free_cores: float, max_threads: int, current: int | None = None) -> int:
    """Threads for `free_cores` cores' worth of idle CPU (cores minus what other programs use): one
    per core that is at least ADD_AT free, at least one and at most `max_threads`. With `current`,
    the count moves only past the thresholds (ADD_AT up, DROP_BELOW down). On a 2-core machine with
    one core taken, llama.cpp decodes ~36 tok/s with 1 thread and ~20 with 2 (~55 either way when
    both cores are free)."""
    import math

    def clamp(n: int) -> int:
        return max(1, min(max_threads, n))

    up = clamp(math.floor(free_cores + 1 - ADD_AT))
    if current is None or up > current:
        return up
    return min(current, clamp(math.floor(free_cores + 1 - DROP_BELOW)))


class ThreadChooser:
    """Picks llama.cpp's thread count from the cores other programs leave free, before each answer
    and again every `recheck_s` seconds while it is written.

    What other programs use is measured as every core's busy time minus this process's own, between
    two marks (telemetry.others_busy_cores), so the choice can be re-checked while this process is
    itself busy generating. `settle()` marks the end of an answer (or the load); `choose()`, at the
    start of the next one, measures the time in between; when the two are too close together (a
    regenerate right away) it measures for `min_window_s` instead. `during()`, called between
    tokens, re-measures once `recheck_s` has passed and returns a new count when the load changed."""

    def __init__(self, max_threads: int | None = None, recheck_s: float = 1.0, min_window_s: float = 0.1):
        self.cores = os.cpu_count() or 1
        self.max_threads = max(1, max_threads or self.cores)
        self.recheck_s = recheck_s
        self.min_window_s = min_window_s
        self._mark = None
        self.last: int | None = None

    def settle(self) -> None:
        from .telemetry import cpu_mark

        self._mark = cpu_mark()

    def _decide(self) -> int:
        from .telemetry import cpu_mark, others_busy_cores

        now = cpu_mark()
        free = self.cores - others_busy_cores(self._mark, now)
        self._mark = now
        self.last = threads_for(free, self.max_threads, self.last)
        return self.last

    def choose(self) -> int:
        import time

        if self._mark is None or time.monotonic() - self._mark.t < self.min_window_s:
            self.settle()
            time.sleep(self.min_window_s)
        return self._decide()

    def during(self) -> int | None:
        """Between two tokens: a new count when `recheck_s` has passed and the load changed, else None."""
        import time

        if self._mark is None or time.monotonic() - self._mark.t < self.recheck_s:
            return None
        before = self.last
        n = self._decide()
        return n if n != before else None
