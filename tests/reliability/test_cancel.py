"""Cancel anywhere: each method cancelled at random moments of its run (20 each with
BITSMITH_RELIABILITY=1, one each in the fast sample), in the caller's process and in the child
process the window uses. The worker stops (a generous hang guard, never a timing assertion: the
measured latency goes to the report), the job history says "cancelled", and nothing is left,
neither the output nor a hidden partial file. In the window, the event loop keeps running while a
cancel is pending."""

from __future__ import annotations

import random
import threading
import time

import pytest

from bitsmith.engine import api
from bitsmith.engine.cancel import CancelToken
from bitsmith.engine.errors import Cancelled

from .conftest import FULL
from .helpers import METHODS, job_history, leftovers, output_is_loadable, record, visible_entries

PER_METHOD = 20
HANG_GUARD_S = 120  # far beyond any cancel; reaching it means the job ignored the cancel
_reference: dict[str, float] = {}


def _reference_seconds(method: str, tiny, folder) -> float:
    """How long an uncancelled run of `method` takes here (once per session), so that cancel
    moments are drawn across the whole run whatever the machine's speed."""
    if method not in _reference:
        started = time.monotonic()
        api.run_job(api.convert(METHODS[method].config(tiny, folder / "reference" / METHODS[method].out_name)))
        _reference[method] = time.monotonic() - started
    return _reference[method]


def _run_and_cancel(cfg, delay_s: float, in_process: bool) -> tuple[str, float | None]:
    """Run the conversion on a worker thread, cancel after `delay_s`; returns how it ended and the
    seconds from the cancel to the worker's end."""
    token = CancelToken()
    ended: dict = {}

    def worker():
        try:
            api.run_job(api.convert(cfg, token, in_process=in_process))
            ended["how"] = "done"
        except Cancelled:
            ended["how"] = "cancelled"
        except BaseException as exc:  # reported by the assertion below
            ended["how"] = f"error: {type(exc).__name__}: {exc}"
        ended["at"] = time.monotonic()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    thread.join(delay_s)
    cancelled_at = time.monotonic()
    token.cancel()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), "the job did not stop after a cancel"
    if ended["how"] == "done" and ended["at"] <= cancelled_at:
        return "done", None
    return ended["how"], max(ended["at"] - cancelled_at, 0.0)


def _params():
    for method in METHODS:
        for seed in range(PER_METHOD):
            marks = () if seed == 0 else (pytest.mark.reliability,)
            yield pytest.param(method, seed, marks=marks, id=f"{method}-{seed}")


@pytest.mark.parametrize("method,seed", list(_params()))
def test_a_cancel_at_a_random_moment_stops_the_job_and_leaves_nothing(method, seed, tiny_llama_dir, tmp_path,
                                                                      tmp_path_factory, _isolated_home):
    reference = _reference_seconds(method, tiny_llama_dir, tmp_path_factory.mktemp("ref"))
    # Drawn over the first 60% of a reference run: later runs are warmer (faster) than the first.
    delay = random.Random(f"cancel-{method}-{seed}").uniform(0.0, 0.6 * reference)
    out_folder = tmp_path / "out"
    out = out_folder / METHODS[method].out_name
    how, latency = _run_and_cancel(METHODS[method].config(tiny_llama_dir, out), delay, in_process=False)
    record("cancel", method=method, seed=seed, delay_s=round(delay, 3), reference_s=round(reference, 2), how=how,
           latency_s=None if latency is None else round(latency, 3))
    assert how in ("cancelled", "done"), how
    status = job_history(_isolated_home).jobs()[0]["status"]
    if how == "cancelled":
        assert status == "cancelled"
        assert visible_entries(out_folder) == set() and leftovers(out_folder) == set()
    else:  # it finished in the moment between the cancel and its last check: a whole output
        assert status == "done" and output_is_loadable(out)


@pytest.mark.parametrize("method", [pytest.param(m, marks=() if m == "gguf-q4km" else (pytest.mark.reliability,))
                                    for m in METHODS])
def test_the_window_stays_responsive_while_a_child_process_job_is_cancelled(method, qtbot, qapp, tiny_llama_dir,
                                                                             tmp_path, _isolated_home):
    """The window's path: the queue runs the job in a child process; Cancel is pressed once the
    job reports progress. The queue ends it as cancelled, the GUI thread handled timer events all
    along, and the child removed its partial output."""
    from PySide6.QtCore import QTimer

    from bitsmith.gui.app import create_app
    from bitsmith.gui.conversion_queue import ConversionQueue

    create_app([])
    queue = ConversionQueue()
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    out_folder = tmp_path / "out"
    entry = queue.add(METHODS[method].config(tiny_llama_dir, out_folder / METHODS[method].out_name), method)
    qtbot.waitUntil(lambda: entry.step > 0 or entry.finished, timeout=HANG_GUARD_S * 1000)
    pressed = time.monotonic()
    with qtbot.waitSignal(queue.finished, timeout=HANG_GUARD_S * 1000):
        queue.cancel(entry)
    latency = time.monotonic() - pressed
    timer.stop()
    during = [t for t in ticks if t >= pressed]
    gaps = [b - a for a, b in zip(during, during[1:])]
    record("cancel-gui", method=method, status=entry.status, latency_s=round(latency, 3),
           ticks=len(during), longest_gap_s=round(max(gaps, default=0.0), 3))
    if entry.status == "done":  # finished before the cancel reached the child
        return
    assert entry.status == "cancelled", entry.error
    # A 20 ms timer can only have fired if the cancel was pending for longer than a few periods
    # (it often ends within one); then it must have, or the GUI thread was blocked.
    if latency > 0.1:
        assert during, "the GUI thread handled no timer event while the cancel was pending"
    assert visible_entries(out_folder) == set() and leftovers(out_folder) == set()
