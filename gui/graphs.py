"""Live plots fed from numpy ring buffers and redrawn by a GUI-thread timer at 10 Hz.

Producers only append to buffers (from GUI-thread slots); the timer calls `setData` on existing
curves, so nothing is deleted and re-added, and nothing is drawn from a worker thread."""

from __future__ import annotations

import time

import numpy as np
import psutil
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

pg.setConfigOptions(antialias=True, background=None, foreground="k")


class RingBuffer:
    """Fixed-size (t, y) history; the oldest samples fall off."""

    def __init__(self, capacity: int = 3000):
        self._t = np.zeros(capacity)
        self._y = np.zeros(capacity)
        self._n = 0
        self._cap = capacity

    def append(self, t: float, y: float) -> None:
        i = self._n % self._cap
        self._t[i], self._y[i] = t, y
        self._n += 1

    def clear(self) -> None:
        self._n = 0

    def __len__(self) -> int:
        return min(self._n, self._cap)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._n <= self._cap:
            return self._t[: self._n].copy(), self._y[: self._n].copy()
        i = self._n % self._cap
        return np.roll(self._t, -i), np.roll(self._y, -i)


class LivePlot(QWidget):
    """One plot with named curves, each backed by a RingBuffer, redrawn at `hz`."""

    def __init__(self, title: str, y_label: str, parent=None, hz: float = 10.0, window_s: float | None = 120.0):
        super().__init__(parent)
        self.plot = pg.PlotWidget(title=title)
        self.plot.setLabel("left", y_label)
        self.plot.setLabel("bottom", self.tr("seconds"))
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMinimumHeight(140)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self.buffers: dict[str, RingBuffer] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._t0 = time.monotonic()
        self._window = window_s
        self.redraws = 0
        self._timer = QTimer(self, interval=int(1000 / hz))
        self._timer.timeout.connect(self.redraw)
        self._timer.start()

    def add_curve(self, name: str, color: str, symbol: str | None = None) -> RingBuffer:
        buf = RingBuffer()
        # connect="finite": a NaN sample breaks the line (no line across the pause between answers).
        item = self.plot.plot([], [], pen=pg.mkPen(color, width=2), name=name, symbol=symbol,
                              symbolBrush=color if symbol else None, symbolSize=6, connect="finite")
        item.setClipToView(True)
        item.setDownsampling(auto=True, method="peak")
        self.buffers[name] = buf
        self._curves[name] = item
        return buf

    def now(self) -> float:
        return time.monotonic() - self._t0

    def redraw(self) -> None:
        for name, buf in self.buffers.items():
            t, y = buf.arrays()
            if self._window is not None and len(t):
                keep = t >= t[-1] - self._window
                t, y = t[keep], y[keep]
            self._curves[name].setData(t, y)
        self.redraws += 1


class MemoryGraph(LivePlot):
    """Resident memory of this process (and GPU memory when torch uses CUDA), sampled at 5 Hz."""

    def __init__(self, parent=None):
        super().__init__(self.tr("Memory"), self.tr("MB"), parent)
        self._proc = psutil.Process()
        self.rss = self.add_curve(self.tr("resident"), "#1f77b4")
        self.gpu = None
        try:
            import torch

            if torch.cuda.is_available():
                self.gpu = self.add_curve(self.tr("GPU"), "#d62728")
        except ImportError:
            pass
        self._sampler = QTimer(self, interval=200)
        self._sampler.timeout.connect(self.sample)
        self._sampler.start()
        self.sample()

    def sample(self) -> None:
        t = self.now()
        self.rss.append(t, self._proc.memory_info().rss / 1e6)
        if self.gpu is not None:
            import torch

            self.gpu.append(t, torch.cuda.memory_allocated() / 1e6)


class SpeedGraph(LivePlot):
    """Tokens per second during the current answer (from piece timestamps), and each answer's
    average generation speed across the conversation."""

    def __init__(self, parent=None):
        super().__init__(self.tr("Tokens per second"), self.tr("tok/s"), parent, window_s=None)
        self.live = self.add_curve(self.tr("this answer"), "#2ca02c")
        self.answers = self.add_curve(self.tr("per answer"), "#ff7f0e", symbol="o")
        self._piece_times: list[float] = []

    def answer_started(self) -> None:
        self._piece_times = []
        if len(self.live):
            self.live.append(self.now(), float("nan"))

    def piece(self) -> None:
        t = self.now()
        self._piece_times.append(t)
        recent = [x for x in self._piece_times if x >= t - 1.0]
        # Pieces queued while the GUI thread was busy arrive together; a rate over a span that short
        # would be a spike the model never produced, so wait for a quarter second of arrivals.
        if len(recent) >= 2 and recent[-1] - recent[0] >= 0.25:
            self.live.append(t, (len(recent) - 1) / (recent[-1] - recent[0]))

    def answer_finished(self, tokens_per_s: float) -> None:
        self.answers.append(self.now(), tokens_per_s)
