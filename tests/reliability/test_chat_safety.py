"""Chat safety: the app killed while an answer streams loses that answer and nothing else, and a
prompt longer than the context is refused in one line, on both runtimes, leaving the runtime and
the conversation as they were."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys

import pytest

from bitsmith.engine import api
from bitsmith.engine.chat.history import HistoryStore
from bitsmith.engine.chat.session import ChatSession
from bitsmith.engine.config import SamplingSettings
from bitsmith.engine.errors import InvalidInput

from .helpers import ROOT, child_env, record


def test_killing_the_app_mid_answer_loses_only_that_answer(tiny_gguf_file, tmp_path):
    db = tmp_path / "history.sqlite3"
    code = f"from tests.reliability.writers import chat_until_killed; chat_until_killed({str(tiny_gguf_file)!r}, {str(db)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=child_env(tmp_path / "home"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert first.startswith("conversation "), proc.stderr.read()
    conversation = int(first.split()[1])
    assert proc.stdout.readline().strip() == "streaming"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = HistoryStore(db)
    kept = [(m["role"], m["content"]) for m in store.messages(conversation)]
    assert [role for role, _ in kept] == ["user", "assistant", "user", "assistant", "user"]
    assert kept[0][1] == "first question" and kept[2][1] == "second question"
    assert kept[4][1].startswith("third question")  # the question stays; its half answer is gone
    # The conversation goes on where it stopped: the unanswered question is answered again.
    backend = api.load_model(tiny_gguf_file, "cpu", n_ctx=256, n_threads=1)
    try:
        session = ChatSession.resume(backend, store, conversation)
        session.settings = SamplingSettings(max_new_tokens=8, seed=1)
        answer = api.run_job(session.regenerate())
        assert answer.message_id is not None
        assert [m["role"] for m in store.messages(conversation)][-2:] == ["user", "assistant"]
    finally:
        backend.close()
        store.close()
    record("chat-kill", kept=len(kept))


@pytest.fixture(params=["llama.cpp", "transformers"])
def backend(request, tiny_gguf_file, tiny_llama_dir):
    loaded = api.load_model(tiny_gguf_file, "cpu", n_ctx=256, n_threads=1) if request.param == "llama.cpp" else \
        api.load_model(tiny_llama_dir, "cpu")
    yield loaded
    loaded.close()


def test_an_over_long_prompt_is_refused_in_one_line_and_the_chat_goes_on(backend, tmp_path):
    store = HistoryStore(tmp_path / "history.sqlite3")
    session = ChatSession(backend, settings=SamplingSettings(max_new_tokens=16, seed=1), store=store)
    api.run_job(session.send("hello"))
    before = [dict(m) for m in session.messages]
    long_prompt = "word " * (backend.context_length * 4)
    with pytest.raises(InvalidInput) as refused:
        api.run_job(session.send(long_prompt))
    text = str(refused.value)
    assert "\n" not in text and "tokens but only" in text and str(backend.context_length) in text
    # Nothing of the refused message is kept, in the session or in the history.
    assert session.messages == before
    assert [m["content"] for m in store.messages(session.conversation_id)][-1] == before[-1]["content"]
    # The runtime is unharmed: the next message is answered.
    answer = api.run_job(session.send("and now a short one"))
    assert answer.stats.completion_tokens > 0
    record("chat-long-prompt", backend=backend.kind, context=backend.context_length, message=text)
    store.close()
