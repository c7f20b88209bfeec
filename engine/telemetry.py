"""Memory, CPU and speed figures of whatever process does the work, for the views that graph them.

One module holds every psutil call: the status bar, the chat graphs and the conversion graphs all
sample through `ProcessSampler`, so that what they show is measured the same way. A conversion runs
in a child process (engine/process_job.py); its sampler follows that child and its own children,
not the window's process. Nothing here imports Qt: callers decide when to sample.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Sample:
    rss_bytes: int  # resident memory of the process and its descendants
    cpu_percent: float  # of one core (100 = one core busy), since the previous sample; NaN at first
    processes: int  # how many processes were summed (0: the process is gone)


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:  # the root ended between two samples
        return []


class ProcessSampler:
    """Samples one process tree: by default this process and its children.

    psutil reports CPU time as a delta since the previous call on the same Process object, so the
    objects are kept between samples; a child that appears later is picked up on the next sample."""

    def __init__(self, pid: int | None = None, children: bool = True):
        self.pid = os.getpid() if pid is None else int(pid)
        self.children = children
        try:
            self._root: psutil.Process | None = psutil.Process(self.pid)
        except psutil.Error:
            self._root = None
        self._known: dict[int, psutil.Process] = {}
        self._last_t: float | None = None

    def alive(self) -> bool:
        return self._root is not None and self._root.is_running()

    def sample(self) -> Sample:
        if self._root is None:
            return Sample(0, math.nan, 0)
        procs = _tree(self._root) if self.children else [self._root]
        rss, cpu_s, seen = 0, 0.0, {}
        for p in procs:
            p = self._known.get(p.pid, p)  # the object that remembers the previous CPU time
            try:
                with p.oneshot():
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    cpu_s += t.user + t.system
                seen[p.pid] = p
            except psutil.Error:  # ended while being read: it no longer counts
                continue
        now = time.monotonic()
        prev = getattr(self, "_cpu_s", None)
        cpu = math.nan
        if prev is not None and self._last_t is not None and now > self._last_t:
            # A child that ended takes its CPU time with it; never report a negative load.
            cpu = max(0.0, (cpu_s - prev) / (now - self._last_t) * 100.0)
        self._cpu_s, self._last_t, self._known = cpu_s, now, seen
        return Sample(rss, cpu, len(seen))


def process_memory(pid: int | None = None, children: bool = True) -> int:
    """Resident bytes of a process (default: this one) and, with `children`, of its descendants."""
    return ProcessSampler(pid, children).sample().rss_bytes


def gpu_memory_bytes() -> int | None:
    """CUDA memory torch has allocated in this process, or None when torch is not in use with CUDA.
    torch is never imported here for this: only a process that already uses it can have GPU memory."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None
        return int(torch.cuda.memory_allocated())
    except Exception:  # a broken CUDA install: no figure rather than a crash in a timer
        return None


def free_cores(interval: float = 0.2) -> float:
    """How many CPU cores are idle now: the sum over cores of (100 - busy %) / 100, measured over
    `interval` seconds (psutil's per-CPU load)."""
    loads = psutil.cpu_percent(interval=interval, percpu=True)
    return sum(max(0.0, 100.0 - x) for x in loads) / 100.0


@dataclass(frozen=True)
class CpuMark:
    """A point in time, every core's cumulative CPU times and this process's own CPU seconds (all its
    threads), to measure the load until a later mark."""

    t: float
    cores: list
    own_s: float


def cpu_mark() -> CpuMark:
    own = psutil.Process().cpu_times()
    return CpuMark(time.monotonic(), psutil.cpu_times(percpu=True), own.user + own.system)


def _busy_and_total(a, b) -> tuple[float, float]:
    total = sum(b) - sum(a)
    idle = (b.idle - a.idle) + (getattr(b, "iowait", 0.0) - getattr(a, "iowait", 0.0))
    return total - idle, total


def per_cpu_busy(before: CpuMark, after: CpuMark | None = None) -> list[float]:
    """Each core's busy share (0-100 %) between two marks (the second: now)."""
    after = after or cpu_mark()
    out = []
    for a, b in zip(before.cores, after.cores):
        busy, total = _busy_and_total(a, b)
        out.append(100.0 * busy / total if total > 0 else 0.0)
    return out


def others_busy_cores(before: CpuMark, after: CpuMark | None = None) -> float:
    """How many cores' worth of CPU other programs used between two marks: every core's busy time
    minus this process's own, per second. Summed over cores, so a busy program the scheduler moves
    from core to core counts once (a per-core threshold saw it as two half-busy cores)."""
    after = after or cpu_mark()
    pairs = [_busy_and_total(a, b) for a, b in zip(before.cores, after.cores)]
    wall = sum(total for _busy, total in pairs) / max(len(pairs), 1)  # seconds each core was observed
    if wall <= 0:
        return 0.0
    others = sum(busy for busy, _total in pairs) - (after.own_s - before.own_s)
    return max(0.0, others / wall)


class TokenRate:
    """Tokens per second while an answer streams, from the arrival time of each piece.

    `rate(t)` is the rate over the last `window_s` seconds; pieces that arrive in a burst (queued
    while the consumer was busy) cover too short a span to say anything, so a rate needs at least
    `min_span_s` between the first and last piece counted. `average()` is pieces after the first
    over the time since the first: the same definition as the session's generation speed, so the
    graph and the stats line agree."""

    def __init__(self, window_s: float = 1.0, min_span_s: float = 0.25):
        self.window_s, self.min_span_s = window_s, min_span_s
        self.times: list[float] = []

    def reset(self) -> None:
        self.times = []

    def add(self, t: float, n: int = 1) -> None:
        self.times.extend([t] * n)

    def rate(self) -> float | None:
        if len(self.times) < 2:
            return None
        last = self.times[-1]
        recent = [x for x in self.times if x >= last - self.window_s]
        span = recent[-1] - recent[0]
        if len(recent) < 2 or span < self.min_span_s:
            return None
        return (len(recent) - 1) / span

    def average(self) -> float | None:
        if len(self.times) < 2 or self.times[-1] <= self.times[0]:
            return None
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


class PeakMemory:
    """Resident memory of this process, sampled on a background thread while a job or an answer
    runs; `peak` is what it is reported to have needed (the process-wide high-water mark would also
    count whatever ran before), `samples` the (time, bytes) series for graphs.

        with PeakMemory() as mem:
            ...
        mem.peak
    """

    def __init__(self, interval_s: float = 0.2):
        import threading

        self._proc = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bitsmith-memory", daemon=True)
        self.peak = self._proc.memory_info().rss
        self.samples: list[tuple[float, int]] = []

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            rss = self._proc.memory_info().rss
            self.samples.append((time.monotonic(), rss))
            self.peak = max(self.peak, rss)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def available_memory() -> int:
    """Memory the system can give a new job without swapping (psutil's 'available')."""
    return int(psutil.virtual_memory().available)


def system_memory() -> tuple[int, int]:
    """(available, total) bytes of the system's memory."""
    vm = psutil.virtual_memory()
    return int(vm.available), int(vm.total)


def process_peak_memory() -> int | None:
    """This process's peak resident memory so far (its high-water mark), or None where the platform
    does not say."""
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux
    except (ImportError, OSError):
        pass
    try:  # Windows: no resource module; psutil reports the peak working set
        return int(getattr(psutil.Process().memory_info(), "peak_wset", 0)) or None
    except Exception:  # noqa: BLE001 - a missing figure must never fail a job
        return None


def process_started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None when it is gone or hidden: with
    the pid it tells a live owner from a reused pid."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
