"""Jobs run in a child process keep the generator-of-events contract."""

from __future__ import annotations

import os

import pytest

from bitsmith.engine.cancel import CancelToken
from bitsmith.engine.errors import Cancelled, EngineError, InvalidInput, Paused
from bitsmith.engine.events import Collected, Done, Log, Progress, run_job
from bitsmith.engine.process_job import run_in_process
from tests.fixtures import jobs


def test_events_and_result_cross_the_process_boundary():
    seen = Collected()
    result = run_job(run_in_process(jobs.counting, 3), seen)
    assert [p.step for p in seen.of(Progress)] == [1, 2, 3]
    assert result["n"] == 3 and result["pid"] != os.getpid()
    assert seen.of(Log)[0].message == f"pid {result['pid']}"
    assert isinstance(seen.events[-1], Done)


def test_typed_errors_come_back_typed_with_their_message():
    with pytest.raises(InvalidInput) as e:
        run_job(run_in_process(jobs.failing))
    assert str(e.value) == "x.gguf: truncated GGUF file (download it again)"
    assert "Traceback" in e.value.remote_traceback


def test_cancel_reaches_the_child_which_cleans_up(tmp_path):
    marker = tmp_path / "marker"
    token = CancelToken()
    with pytest.raises(Cancelled):
        for ev in run_in_process(jobs.endless, str(marker), cancel=token):
            if ev.step == 3:
                token.cancel()
    assert marker.read_text() == "cleaned up"


def test_a_pause_reaches_the_child_as_a_pause_not_a_cancel(tmp_path):
    # The child's job sees its own token: the reason must cross with the stop, or a paused
    # conversion would be recorded (and cleaned up) as a cancelled one.
    marker = tmp_path / "marker"
    token = CancelToken()
    with pytest.raises(Paused, match="paused by the user"):
        for ev in run_in_process(jobs.endless, str(marker), cancel=token):
            if ev.step == 3:
                token.pause()
    assert marker.read_text() == "cleaned up"


def test_a_plain_cancel_is_not_a_pause():
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled) as e:
        token.check()
    assert not isinstance(e.value, Paused) and not token.paused


def test_a_child_that_dies_is_an_error_not_a_hang():
    with pytest.raises(EngineError, match="ended unexpectedly \\(exit code 3\\)"):
        run_job(run_in_process(jobs.crashing))
