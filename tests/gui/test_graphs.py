"""The live graphs' data: ring buffers, a tokens-per-second curve that does not invent spikes and
agrees with the stats line, a y-axis from zero, and plots that cost nothing while idle or hidden."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from bitsmith.gui.graphs import MemoryGraph, RingBuffer, SpeedGraph, y_range


def test_ring_buffer_keeps_the_newest_samples_in_order():
    buf = RingBuffer(capacity=4)
    for i in range(6):
        buf.append(float(i), float(i * 10))
    t, y = buf.arrays()
    assert list(t) == [2, 3, 4, 5] and list(y) == [20, 30, 40, 50] and len(buf) == 4


def test_speed_curve_ignores_bursts_and_measures_steady_pieces(qtbot, app_settings):
    graph = SpeedGraph()
    qtbot.addWidget(graph)
    graph.show()
    clock = [100.0]
    graph.now = lambda: clock[0]
    graph.answer_started()
    for _ in range(10):  # a burst: pieces queued while the GUI thread was busy, delivered at once
        graph.piece()
    assert len(graph.live) == 0
    for _ in range(40):  # then one piece every 50 ms: 20 tokens per second
        clock[0] += 0.05
        graph.piece()
    _t, y = graph.live.arrays()
    assert y[-1] == pytest.approx(20.0, rel=0.01)  # 20 intervals of 50 ms in the 1 s window, up to float rounding
    graph.answer_finished(19.5)
    qtbot.waitUntil(lambda: graph.redraws >= 2, timeout=5000)  # the timer draws from the buffers
    # The answer's level is the figure of its stats line, drawn over the time it was generated.
    t, y = graph._curves["answer average"].getData()
    assert list(y) == [19.5, 19.5] and t[0] == pytest.approx(100.0) and t[1] == pytest.approx(102.0)


def test_answer_levels_and_live_line_break_between_answers(qtbot, app_settings):
    """Problem 8: the average line joined across the idle time between answers."""
    graph = SpeedGraph()
    qtbot.addWidget(graph)
    clock = [0.0]
    graph.now = lambda: clock[0]
    for answer in range(2):
        graph.answer_started()
        for _ in range(20):
            clock[0] += 0.05
            graph.piece()
        graph.answer_finished(20.0 + answer)
        clock[0] += 30.0  # the user reads and types
    _t, y = graph.live.arrays()
    assert sum(math.isnan(v) for v in y) == 1  # one break, between the two answers
    _t, levels = graph.answers.arrays()
    assert sum(math.isnan(v) for v in levels) == 1 and [v for v in levels if not math.isnan(v)] == [20, 20, 21, 21]
    graph.redraw()
    assert graph._curves["answer average"].opts["connect"] == "finite"


def test_y_axis_starts_at_zero_so_small_changes_look_small():
    """Problem 8: autoscale stretched 52-53 tok/s over the whole height."""
    lo, hi = y_range(np.array([52.0, 53.0, float("nan")]), floor=5.0)
    assert lo == 0.0 and hi == pytest.approx(53 * 1.15)
    assert y_range(np.array([]), floor=5.0) == (0.0, 5.0)


def test_an_idle_or_hidden_plot_does_not_redraw(qtbot, app_settings):
    """Problem 15: the idle Chat view kept a core ~15 % busy redrawing unchanged plots."""
    graph = SpeedGraph()
    qtbot.addWidget(graph)
    graph.show()
    qtbot.waitExposed(graph)
    graph.redraw()
    before = graph.redraws
    for _ in range(5):
        graph.redraw()  # what the timer calls; nothing changed
    assert graph.redraws == before
    graph.live.append(1.0, 3.0)
    graph.redraw()
    assert graph.redraws == before + 1
    assert graph._timer.isActive()
    graph.hide()
    assert not graph._timer.isActive()


def test_memory_graph_follows_the_process_doing_the_work(qtbot, app_settings):
    """Problem 6: the conversion's memory graph showed the window's memory, not the child's."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c",
                              "import time; b = bytearray(300 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); "
                              "time.sleep(30)"])
    try:
        graph = MemoryGraph()
        qtbot.addWidget(graph)
        graph.follow(child.pid)
        assert graph.sampler.pid == child.pid != os.getpid()

        def grown():
            graph.sample()
            _t, y = graph.rss.arrays()
            return y[-1] > 300  # MB: the child touched 300 MiB (314 MB) of pages, more than any idle interpreter
        qtbot.waitUntil(grown, timeout=20000)
    finally:
        child.kill()
        child.wait()


def test_compare_chart_with_one_point_has_a_readable_axis(qtbot, app_settings):
    """Problem 8: one point gave pyqtgraph an empty range and a heap of overlapping tick labels;
    the perplexity's error bar is drawn and kept in view (problem 14)."""
    from bitsmith.engine.api import VariantPoint
    from bitsmith.gui.variant_chart import VariantChart, axis_range

    lo, hi = axis_range([22.1])
    assert lo < 22.1 < hi and hi - lo > 1.0  # 20 % around a lone value, plus padding
    chart = VariantChart()
    qtbot.addWidget(chart)
    point = VariantPoint(path="/m/a.gguf", name="a", label="Q8_0", generation=1, size_bytes=int(145e6),
                         bits_per_weight=8.5, perplexity=22.2, perplexity_stderr=1.9)
    chart.show_points([point], "perplexity", "Perplexity")
    (x0, x1), (y0, y1) = chart.getViewBox().viewRange()
    assert x0 < 145 < x1 and y0 < 22.2 - 1.9 and 22.2 + 1.9 < y1
    assert list(chart.error_bars.opts["height"]) == [pytest.approx(3.8)]
