"""Peak resident memory of this process during one job, sampled by a background thread.

The process-wide peak (`reportcard.peak_memory_bytes`) also counts whatever ran before the job;
sampling between start and stop measures the job alone (to within the sampling interval).
"""

from __future__ import annotations

import threading


class RssSampler:
    def __init__(self, interval_s: float = 0.2):
        import psutil

        self._proc = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak = self._proc.memory_info().rss

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
