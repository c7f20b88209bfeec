"""The worker adapter: signal order, results, errors, and cooperative cancel."""

from __future__ import annotations

import threading

from bitsmith.engine.errors import InvalidInput
from bitsmith.engine.events import Done, Log, Progress
from bitsmith.gui.workers import JobWorker, call_in_worker


def _record(worker):
    seen = []
    worker.started.connect(lambda: seen.append("started"))
    worker.event.connect(lambda e: seen.append(type(e).__name__))
    worker.result.connect(lambda r: seen.append(("result", r)))
    worker.errored.connect(lambda exc, tb: seen.append(("errored", type(exc).__name__)))
    worker.cancelled.connect(lambda: seen.append("cancelled"))
    worker.finished.connect(lambda: seen.append("finished"))
    return seen


def test_signals_arrive_in_order_with_the_result(qtbot):
    gui_thread = threading.get_ident()
    ran_in = []

    def job(token):
        ran_in.append(threading.get_ident())
        for i in range(3):
            yield Progress(i + 1, 3, "work")
        yield Log("done")
        yield Done("answer")

    w = JobWorker(job)
    seen = _record(w)
    with qtbot.waitSignal(w.finished, timeout=10000):
        w.start()
    assert seen == ["started", "Progress", "Progress", "Progress", "Log", ("result", "answer"), "finished"]
    assert ran_in and ran_in[0] != gui_thread


def test_errors_are_reported_not_raised(qtbot):
    def job(token):
        yield Progress(1, 2, "work")
        raise InvalidInput("x.gguf: truncated")

    w = JobWorker(job)
    seen = _record(w)
    with qtbot.waitSignal(w.finished, timeout=10000):
        w.start()
    assert seen == ["started", "Progress", ("errored", "InvalidInput"), "finished"]


def test_cancel_is_cooperative_and_not_an_error(qtbot):
    release = threading.Event()

    def job(token):
        i = 0
        while True:  # would run forever without the token
            i += 1
            yield Progress(i, 0, "endless")
            release.wait(0.01)
            token.check()

    w = JobWorker(job)
    seen = _record(w)
    w.start()
    qtbot.waitUntil(lambda: "Progress" in seen, timeout=10000)
    with qtbot.waitSignal(w.finished, timeout=10000):
        w.cancel()
    assert seen[0] == "started" and seen[-2:] == ["cancelled", "finished"]
    assert not any(isinstance(s, tuple) for s in seen)


def test_call_in_worker_runs_a_plain_function(qtbot):
    w = call_in_worker(lambda: 6 * 7)
    with qtbot.waitSignal(w.result, timeout=10000) as blocker:
        w.start()
    assert blocker.args == [42]
    w.wait()
