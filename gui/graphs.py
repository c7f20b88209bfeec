"""Live plots fed from numpy ring buffers and redrawn by a GUI-thread timer.

Producers only append to buffers (from GUI-thread slots); the timer calls `setData` on existing
curves, so nothing is deleted and re-added, and nothing is drawn from a worker thread. A plot that
is hidden, or whose buffers have not changed, costs nothing: its timers stop while it is hidden and
a redraw happens only when a buffer changed (an idle window must not keep a core busy)."""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

from bitsmith.engine.api import ProcessSampler, TokenRate, gpu_memory_bytes

pg.setConfigOptions(antialias=True, background=None, foreground="k")


class RingBuffer:
    """Fixed-size (t, y) history; the oldest samples fall off. `version` counts appends, so a
    plot can tell whether anything changed since it last drew."""

    def __init__(self, capacity: int = 3000):
        self._t = np.zeros(capacity)
        self._y = np.zeros(capacity)
        self._n = 0
        self._cap = capacity
        self.version = 0

    def append(self, t: float, y: float) -> None:
        i = self._n % self._cap
        self._t[i], self._y[i] = t, y
        self._n += 1
        self.version += 1

    def clear(self) -> None:
        self._n = 0
        self.version += 1

    def __len__(self) -> int:
        return min(self._n, self._cap)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._n <= self._cap:
            return self._t[: self._n].copy(), self._y[: self._n].copy()
        i = self._n % self._cap
        return np.roll(self._t, -i), np.roll(self._y, -i)


def y_range(values: np.ndarray, floor: float) -> tuple[float, float]:
    """From zero to a little above the largest finite value (at least `floor`). Starting at zero keeps
    a small change small: an autoscaled axis from 52 to 53 tok/s made one token look like a crash."""
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 0.0
    return 0.0, max(top * 1.15, floor)


class LivePlot(QWidget):
    """One plot with named curves, each backed by a RingBuffer, redrawn at up to `hz`."""

    def __init__(self, title: str, y_label: str, parent=None, hz: float = 10.0, window_s: float | None = 120.0,
                 y_floor: float = 1.0):
        super().__init__(parent)
        self.plot = pg.PlotWidget(title=title)
        self.plot.setLabel("left", y_label)
        self.plot.setLabel("bottom", self.tr("seconds"))
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMinimumHeight(140)
        self.plot.addLegend(offset=(-4, 4), labelTextSize="8pt")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self.buffers: dict[str, RingBuffer] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._drawn: dict[str, int] = {}
        self._t0 = time.monotonic()
        self._window = window_s
        self._y_floor = y_floor
        self.redraws = 0
        self._timer = QTimer(self, interval=int(1000 / hz))
        self._timer.timeout.connect(self.redraw)
        self._timers = [self._timer]

    def add_curve(self, name: str, color: str, symbol: str | None = None, width: int = 2) -> RingBuffer:
        buf = RingBuffer()
        # connect="finite": a NaN sample breaks the line (no line across the pause between answers).
        item = self.plot.plot([], [], pen=pg.mkPen(color, width=width), name=name, symbol=symbol,
                              symbolBrush=color if symbol else None, symbolSize=6, connect="finite")
        item.setClipToView(True)
        item.setDownsampling(auto=True, method="peak")
        self.buffers[name] = buf
        self._curves[name] = item
        return buf

    def now(self) -> float:
        return time.monotonic() - self._t0

    def is_dirty(self) -> bool:
        return any(self._drawn.get(n) != b.version for n, b in self.buffers.items())

    def redraw(self) -> None:
        if not self.is_dirty():
            return
        shown = []
        for name, buf in self.buffers.items():
            t, y = buf.arrays()
            if self._window is not None and len(t):
                keep = t >= t[-1] - self._window
                t, y = t[keep], y[keep]
            self._curves[name].setData(t, y)
            self._drawn[name] = buf.version
            shown.append(y)
        self.plot.setYRange(*y_range(np.concatenate(shown) if shown else np.zeros(0), self._y_floor), padding=0)
        self.redraws += 1

    # Timers run only while the plot is on screen.
    def showEvent(self, event):
        for t in self._timers:
            t.start()
        self.redraw()
        super().showEvent(event)

    def hideEvent(self, event):
        for t in self._timers:
            t.stop()
        super().hideEvent(event)


class MemoryGraph(LivePlot):
    """Resident memory of the process doing the work and its children (by default this one; a
    conversion's child process once `follow(pid)` is called), and GPU memory when torch uses CUDA."""

    def __init__(self, parent=None, interval_ms: int = 1000, children: bool = True, pid: int | None = -1):
        super().__init__(self.tr("Memory"), self.tr("MB"), parent, hz=4.0, y_floor=100.0)
        # children=False where the work runs in this process (chat): listing children reads every
        # process's /proc entry, the largest share of an idle window's CPU. pid=None: nothing is
        # sampled until follow() names the process (a conversion that has not started yet).
        self._children = children
        self.sampler = ProcessSampler(children=children) if pid == -1 else (
            ProcessSampler(pid, children=True) if pid is not None else None)
        self.rss = self.add_curve(self.tr("resident"), "#1f77b4")
        self.gpu = None
        self._last = (0.0, math.nan)
        self._sampler_timer = QTimer(self, interval=interval_ms)
        self._sampler_timer.timeout.connect(self.sample)
        self._timers.append(self._sampler_timer)
        self.sample()

    def follow(self, pid: int | None) -> None:
        """Graph the process `pid` (and its children) from now on; None: this process."""
        if self.sampler is not None and pid == self.sampler.pid:
            return
        self.sampler = ProcessSampler(pid, children=True)
        if len(self.rss):
            self.rss.append(self.now(), math.nan)  # a new process: no line joining the two
        self._last = (0.0, math.nan)

    #: While memory holds still, a new point (and so a repaint) only every this many seconds: an
    #: idle window repainting its graph every second cost ~3 % of a core.
    STEADY_S = 5.0
    STEADY_MB = 1.0

    def sample(self) -> None:
        if self.sampler is None:
            return
        t = self.now()
        s = self.sampler.sample()
        if s.processes:
            mb = s.rss_bytes / 1e6
            last_t, last_mb = self._last
            if math.isnan(last_mb) or abs(mb - last_mb) >= self.STEADY_MB or t - last_t >= self.STEADY_S:
                self.rss.append(t, mb)
                self._last = (t, mb)
        if (gpu := gpu_memory_bytes()) is not None:
            if self.gpu is None:
                self.gpu = self.add_curve(self.tr("GPU"), "#d62728")
            self.gpu.append(t, gpu / 1e6)


class SpeedGraph(LivePlot):
    """Tokens per second during the current answer (from piece timestamps), and each answer's
    generation speed as the stats line gives it, drawn as a level over the time it was generated.
    Between answers both lines break: nothing is generated while the user reads."""

    def __init__(self, parent=None):
        super().__init__(self.tr("Tokens per second"), self.tr("tok/s"), parent, window_s=None, y_floor=5.0)
        self.live = self.add_curve(self.tr("this answer"), "#2ca02c")
        self.answers = self.add_curve(self.tr("answer average"), "#ff7f0e", width=3)
        self.rate = TokenRate()
        self._start: float | None = None

    def answer_started(self) -> None:
        self.rate.reset()
        self._start = None
        if len(self.live):
            self.live.append(self.now(), math.nan)

    def piece(self) -> None:
        t = self.now()
        if self._start is None:
            self._start = t
        self.rate.add(t)
        # Pieces queued while the GUI thread was busy arrive together; a rate over a span that short
        # would be a spike the model never produced, so TokenRate waits for a quarter second of arrivals.
        if (r := self.rate.rate()) is not None:
            self.live.append(t, r)

    def answer_finished(self, tokens_per_s: float) -> None:
        """`tokens_per_s`: the answer's generation speed from its stats, the figure the stats line shows."""
        end = self.now()
        start = self._start if self._start is not None else end
        if len(self.answers):
            self.answers.append(start, math.nan)
        self.answers.append(start, tokens_per_s)
        self.answers.append(end, tokens_per_s)
