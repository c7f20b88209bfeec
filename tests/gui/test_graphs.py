"""The live graphs' data: ring buffers, and a tokens-per-second curve that does not invent spikes."""

from __future__ import annotations

import pytest

from bitsmith.gui.graphs import RingBuffer, SpeedGraph


def test_ring_buffer_keeps_the_newest_samples_in_order():
    buf = RingBuffer(capacity=4)
    for i in range(6):
        buf.append(float(i), float(i * 10))
    t, y = buf.arrays()
    assert list(t) == [2, 3, 4, 5] and list(y) == [20, 30, 40, 50] and len(buf) == 4


def test_speed_curve_ignores_bursts_and_measures_steady_pieces(qtbot, app_settings):
    graph = SpeedGraph()
    qtbot.addWidget(graph)
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
    assert y[-1] == pytest.approx(20.0, rel=0.01)
    graph.answer_finished(19.5)
    qtbot.waitUntil(lambda: graph.redraws >= 2, timeout=5000)  # the 10 Hz timer draws from the buffers
    assert list(graph._curves["per answer"].getData()[1]) == [19.5]


def test_each_answer_starts_a_new_line_segment(qtbot, app_settings):
    import math

    graph = SpeedGraph()
    qtbot.addWidget(graph)
    clock = [0.0]
    graph.now = lambda: clock[0]
    for _answer in range(2):
        graph.answer_started()
        for _ in range(20):
            clock[0] += 0.05
            graph.piece()
        clock[0] += 30.0  # the user reads and types
    _t, y = graph.live.arrays()
    assert sum(math.isnan(v) for v in y) == 1  # one break, between the two answers
    graph.redraw()
    assert graph._curves["this answer"].opts["connect"] == "finite"
