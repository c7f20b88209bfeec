"""Chat's thread count follows the cores other programs leave free (engine/threads.py), re-checked
before each answer; a fixed count asked for is kept."""

from __future__ import annotations

from collections import namedtuple

import pytest

from bitsmith.engine import telemetry, threads
from bitsmith.engine.threads import ThreadChooser, threads_for

CPU = namedtuple("CPU", "user nice system idle iowait")
OWN = namedtuple("OWN", "user system")


def test_one_thread_per_mostly_free_core():
    assert threads_for(1.9, max_threads=2) == 2  # a quiet machine
    assert threads_for(1.0, max_threads=2) == 1  # one core taken by another program
    assert threads_for(0.1, max_threads=2) == 1  # never zero
    assert threads_for(7.9, max_threads=4) == 4
    assert threads_for(1.6, max_threads=2) == 1  # a core 40 % taken is not worth a thread...


def test_the_count_moves_only_past_the_thresholds():
    # ...but a thread already there stays until its core is half taken (no flapping near 1.6)
    assert threads_for(1.6, max_threads=2, current=2) == 2
    assert threads_for(1.4, max_threads=2, current=2) == 1
    assert threads_for(1.6, max_threads=2, current=1) == 1
    assert threads_for(1.8, max_threads=2, current=1) == 2


def _marks(monkeypatch, cores, own):
    """psutil reads, in turn: every core's times and this process's CPU seconds."""
    cores, own = iter(cores), iter(own)
    monkeypatch.setattr("psutil.cpu_times", lambda percpu: next(cores))
    monkeypatch.setattr("psutil.Process.cpu_times", lambda self: next(own))


def test_a_program_moving_between_cores_counts_once(monkeypatch):
    """One busy program the scheduler moves between two cores shows as two half-busy cores: summed,
    that is one core taken (the old per-core threshold saw both cores as free)."""
    _marks(monkeypatch, [[CPU(0, 0, 0, 0, 0)] * 2, [CPU(5, 0, 0, 5, 0)] * 2], [OWN(0, 0), OWN(0, 0)])
    before, after = telemetry.cpu_mark(), telemetry.cpu_mark()
    assert telemetry.others_busy_cores(before, after) == pytest.approx(1.0)


def test_this_process_own_work_is_not_the_others_load(monkeypatch):
    """While an answer is written both cores are busy, one with this process's own threads: only the
    rest is other programs' load, so the choice can be re-checked mid-answer."""
    _marks(monkeypatch, [[CPU(0, 0, 0, 0, 0)] * 2, [CPU(9, 0, 0, 1, 0)] * 2], [OWN(0, 0), OWN(9, 0)])
    before, after = telemetry.cpu_mark(), telemetry.cpu_mark()
    assert telemetry.others_busy_cores(before, after) == pytest.approx(0.9)  # 18 s busy - 9 s own, over 10 s


def test_the_choice_follows_the_load_before_and_during_answers(monkeypatch):
    # each mark reads this process's CPU seconds, the clock, then every core's times
    cores = iter([[CPU(0, 0, 0, 0, 0)] * 2,
                  [CPU(0, 0, 0, 10, 0)] * 2,  # 10 s of quiet cores before the answer
                  [CPU(10, 0, 0, 10, 0)] * 2])  # then 10 s of both cores busy...
    own = iter([0.0, 0.0, 10.0])  # ...one of them with this process's own threads
    clock = iter([0.0, 10.0, 10.0, 10.5, 20.0, 20.0])
    monkeypatch.setattr("time.monotonic", lambda: next(clock))
    monkeypatch.setattr("psutil.cpu_times", lambda percpu: next(cores))
    monkeypatch.setattr("psutil.Process.cpu_times", lambda self: OWN(next(own), 0.0))
    chooser = ThreadChooser(max_threads=2, recheck_s=1.0)
    chooser.settle()  # the model is loaded
    assert chooser.choose() == 2
    assert chooser.during() is None  # 0.5 s into the answer: too soon to measure again
    assert chooser.during() == 1  # another program took a core mid-answer: down to one thread


@pytest.mark.bundled
def test_llama_cpp_uses_the_chosen_count(bundled_gguf, monkeypatch):
    from bitsmith.engine.chat.session import ChatSession
    from bitsmith.engine.config import SamplingSettings
    from bitsmith.engine.events import run_job
    from bitsmith.engine.runtime import load

    monkeypatch.setattr(threads.ThreadChooser, "choose", lambda self: 1)
    backend = load(bundled_gguf)
    try:
        session = ChatSession(backend, settings=SamplingSettings(max_new_tokens=2, temperature=0.0))
        run_job(session.send("Hi"))
        assert backend.threads == 1
    finally:
        backend.close()
    fixed = load(bundled_gguf, n_threads=2)
    try:
        assert fixed._chooser is None and fixed.threads == 2
    finally:
        fixed.close()
