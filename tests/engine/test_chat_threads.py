"""Chat's thread count follows the cores other programs leave free (engine/threads.py), re-checked
before each answer; a fixed count asked for is kept."""

from __future__ import annotations

import itertools
from collections import namedtuple

import pytest

from bitsmith.engine import threads
from bitsmith.engine.threads import ThreadChooser, threads_for

CPU = namedtuple("CPU", "user nice system idle iowait")


def test_one_thread_per_mostly_idle_core():
    assert threads_for([95.0, 5.0], max_threads=2) == 1  # one core taken by another program
    assert threads_for([5.0, 5.0], max_threads=2) == 2
    assert threads_for([99.0, 99.0], max_threads=2) == 1  # never zero
    assert threads_for([0.0] * 8, max_threads=4) == 4


def test_the_choice_measures_the_load_since_the_last_answer(monkeypatch):
    samples = iter([
        [CPU(0, 0, 0, 0, 0), CPU(0, 0, 0, 0, 0)],
        [CPU(9, 0, 0, 1, 0), CPU(1, 0, 0, 9, 0)],  # core 0: 90 % busy, core 1: 10 %
        [CPU(9, 0, 0, 1, 0), CPU(1, 0, 0, 9, 0)],
        [CPU(10, 0, 0, 10, 0), CPU(2, 0, 0, 18, 0)],  # since then: core 0 10 % busy, core 1 10 %
    ])
    monkeypatch.setattr("psutil.cpu_times", lambda percpu: next(samples))
    # settle, check, measure; settle, check, measure: each mark reads the clock (answers 5 s apart)
    clock = itertools.chain([0.0, 5.0, 5.0, 5.0, 10.0], itertools.repeat(10.0))
    monkeypatch.setattr("time.monotonic", lambda: next(clock))
    chooser = ThreadChooser(max_threads=2)
    chooser.settle()
    assert chooser.choose() == 1
    chooser.settle()
    assert chooser.choose() == 2


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
