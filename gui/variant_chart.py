"""The Compare chart: size on disk against perplexity or KL divergence, one labelled point per
evaluated variant, coloured by evaluation speed. Its own module so that pyqtgraph is imported only
when the Compare area is first shown, not at start-up."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from bitsmith.engine.api import VariantPoint

from . import graphs  # noqa: F401 - pyqtgraph's look is set there once (no black background, black axes)
from .figures import metric_value

SPEED_MAP = pg.colormap.get("viridis")


class VariantChart(pg.PlotWidget):
    """Size on disk (MB) against the chosen figure; each evaluated variant is one labelled point."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setLabel("bottom", self.tr("size on disk (MB)"))
        self.showGrid(x=True, y=True, alpha=0.3)
        self.setMinimumHeight(160)
        self.scatter = pg.ScatterPlotItem(size=14, pen=pg.mkPen("k", width=1))
        # Error bars (± one standard error): two perplexities whose bars overlap are not told apart.
        self.error_bars = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0), beam=2.0,
                                          pen=pg.mkPen("#555555", width=1))
        self.addItem(self.error_bars)
        self.addItem(self.scatter)
        self._labels: list[pg.TextItem] = []
        self.plotted: list[VariantPoint] = []

    def show_points(self, points: list[VariantPoint], metric: str, label: str) -> None:
        for item in self._labels:
            self.removeItem(item)
        self._labels = []
        self.setLabel("left", label)
        self.plotted = [p for p in points if p.size_bytes and metric_value(p, metric) is not None]
        speeds = [p.tokens_per_second for p in self.plotted if p.tokens_per_second]
        lo, hi = (min(speeds), max(speeds)) if speeds else (0.0, 1.0)
        spots = []
        for p in self.plotted:
            x, y = p.size_bytes / 1e6, metric_value(p, metric)
            if p.tokens_per_second:  # faster is brighter; grey where the card has no speed
                shade = SPEED_MAP.map((p.tokens_per_second - lo) / (hi - lo) if hi > lo else 0.5, mode="qcolor")
            else:
                shade = pg.mkColor("#999999")
            spots.append({"pos": (x, y), "brush": pg.mkBrush(shade), "data": p.path,
                          "symbol": "s" if p.generation == 0 else "o"})
            text = pg.TextItem(p.label, anchor=(0, 1), color="#333333")
            text.setPos(x, y)
            self.addItem(text)
            self._labels.append(text)
        self.scatter.setData(spots)
        xs = [p.size_bytes / 1e6 for p in self.plotted]
        ys = [metric_value(p, metric) for p in self.plotted]
        errs = [(p.perplexity_stderr or 0.0) if metric == "perplexity" else 0.0 for p in self.plotted]
        if self.plotted:
            x_lo, x_hi = axis_range(xs)
            # The beam is in data units: 2 % of the axis, so it stays a short tick at any zoom (a fixed
            # 2 MB was wider than the gap between two variants of a small model).
            self.error_bars.setData(x=np.array(xs), y=np.array(ys), height=2 * np.array(errs), beam=0.02 * (x_hi - x_lo))
            self.setXRange(x_lo, x_hi, padding=0)
            self.setYRange(*axis_range([y - e for y, e in zip(ys, errs)] + [y + e for y, e in zip(ys, errs)]),
                           padding=0)
        else:
            self.error_bars.setData(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0))


def axis_range(values: list[float], pad: float = 0.15) -> tuple[float, float]:
    """A range that shows every value with room for its label, even a single one: pyqtgraph's
    autorange over one point is empty, and its axis then printed a heap of overlapping ticks."""
    lo, hi = min(values), max(values)
    span = hi - lo
    if span <= 0:
        span = abs(hi) * 0.2 or 1.0  # one value (or several equal ones): 20 % around it
        lo, hi = lo - span / 2, hi + span / 2
    return lo - span * pad, hi + span * pad
