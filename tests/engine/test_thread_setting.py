"""BITSMITH_THREADS pins the thread count of llama.cpp (chat, evaluation, llama-quantize)."""

from __future__ import annotations

import os

import pytest

from bitsmith.engine.threads import ENV_THREADS, configured_threads, cpu_threads


@pytest.mark.parametrize("raw, expected", [("1", 1), (" 2 ", 2), ("0", None), ("-3", None), ("many", None), ("", None)])
def test_only_a_positive_integer_counts(monkeypatch, raw, expected):
    monkeypatch.setenv(ENV_THREADS, raw)
    assert configured_threads() == expected
    # An explicit request wins; otherwise the setting; otherwise every core.
    assert cpu_threads(3) == 3
    assert cpu_threads(None) == (expected or os.cpu_count() or 1)


@pytest.mark.bundled
def test_llama_cpp_chat_runs_with_the_pinned_count(bundled_gguf, monkeypatch):
    from bitsmith.engine.runtime import load

    monkeypatch.setenv(ENV_THREADS, "1")
    backend = load(bundled_gguf, n_ctx=256)
    try:
        assert backend._chooser is None  # pinned: no per-answer choice
        assert backend.threads == 1
        assert backend.llm.context_params.n_threads == 1
    finally:
        backend.close()
