"""The chat engine: both backends stream, stop, measure themselves; history persists."""

from __future__ import annotations

import json
import shutil

import pytest

from bitsmith.engine.cancel import CancelToken
from bitsmith.engine.chat.history import HistoryStore
from bitsmith.engine.chat.session import ChatSession
from bitsmith.engine.config import SamplingSettings
from bitsmith.engine.cli import run
from bitsmith.engine.errors import InvalidInput
from bitsmith.engine.events import Done, Log, TextPiece
from bitsmith.engine.runtime import load

GREEDY = SamplingSettings(temperature=0.0, max_new_tokens=12, repetition_penalty=1.0)


@pytest.fixture(scope="module")
def gguf_backend(bundled_gguf):
    b = load(bundled_gguf, "cpu", n_ctx=1024)
    info = b.describe()
    assert info["backend"] == "llama.cpp" and info["context_length"] == 1024 and info["memory"]["rss"] > 0
    yield b
    b.close()


@pytest.fixture(scope="module")
def hf_backend(tiny_llama_dir):
    return load(tiny_llama_dir, "cpu")


def _collect(job):
    pieces, logs, answer = [], [], None
    for ev in job:
        if isinstance(ev, TextPiece):
            pieces.append(ev.text)
        elif isinstance(ev, Log):
            logs.append(ev.message)
        elif isinstance(ev, Done):
            answer = ev.result
    return pieces, logs, answer


@pytest.mark.parametrize("which", ["gguf_backend", "hf_backend"])
def test_answers_stream_with_consistent_statistics(request, which):
    backend = request.getfixturevalue(which)
    session = ChatSession(backend, "You are terse.", GREEDY)
    pieces, _logs, a = _collect(session.send("What is the capital of France?"))
    assert len(pieces) >= 2 and "".join(pieces).strip() == a.text
    s = a.stats
    assert s.prompt_tokens == len(backend.tokenize(backend.render(session._conversation(session.messages[:1]))))
    assert 1 <= s.completion_tokens <= GREEDY.max_new_tokens
    if a.finish_reason == "length":
        assert s.completion_tokens == GREEDY.max_new_tokens
    assert s.time_to_first_token_s > 0 and s.prompt_tokens_per_s > 0 and s.generation_tokens_per_s > 0
    assert s.total_s >= s.time_to_first_token_s
    assert s.generation_tokens_per_s == pytest.approx(
        (s.completion_tokens - 1) / (s.total_s - s.time_to_first_token_s), rel=0.05)
    assert s.peak_rss_bytes > 50 * 1024**2


def test_the_bundled_import_streams_through_transformers(bundled_hf_dir):
    backend = load(bundled_hf_dir, "cpu")
    info = backend.describe()
    assert info["backend"] == "transformers" and info["device"] == "cpu" and info["chat_template"]
    assert info["context_length"] == 8192 and info["memory"]["rss"] > 100 * 1024**2
    pieces, _logs, a = _collect(ChatSession(backend, settings=GREEDY).send("What is the capital of France?"))
    assert len(pieces) >= 2 and "Paris" in a.text
    assert a.stats.completion_tokens >= 1 and a.stats.generation_tokens_per_s > 0


def test_greedy_answers_are_reproducible(gguf_backend):
    a1 = _collect(ChatSession(gguf_backend, settings=GREEDY).send("Say hello."))[2]
    a2 = _collect(ChatSession(gguf_backend, settings=GREEDY).send("Say hello."))[2]
    assert a1.text == a2.text and a1.text


@pytest.mark.parametrize("which", ["gguf_backend", "hf_backend"])
def test_stop_mid_answer_returns_promptly(request, which):
    backend = request.getfixturevalue(which)
    settings = SamplingSettings(temperature=0.0, max_new_tokens=200, repetition_penalty=1.0)
    session = ChatSession(backend, settings=settings)
    cancel = CancelToken()
    pieces, answer = [], None
    for ev in session.send("Tell me a long story about a dragon.", cancel):
        if isinstance(ev, TextPiece):
            pieces.append(ev.text)
            if len(pieces) == 3:
                cancel.cancel()
        elif isinstance(ev, Done):
            answer = ev.result
    assert answer.finish_reason == "cancelled"
    assert answer.stats.completion_tokens <= 6  # stopped within a token or two of the request
    assert session.messages[-1] == {"role": "assistant", "content": answer.text}


def test_regenerate_replaces_the_last_answer(gguf_backend, tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    session = ChatSession(gguf_backend, settings=SamplingSettings(temperature=1.0, seed=1, max_new_tokens=8), store=store)
    first = _collect(session.send("Pick a random animal."))[2]
    session.settings = SamplingSettings(temperature=1.0, seed=2, max_new_tokens=8)
    second = _collect(session.regenerate())[2]
    assert [m["role"] for m in session.messages] == ["user", "assistant"]
    stored = store.messages(session.conversation_id)
    assert [m["content"] for m in stored] == ["Pick a random animal.", second.text]
    assert first.message_id != second.message_id


def test_history_survives_a_reopen_and_exports(gguf_backend, tmp_path):
    path = tmp_path / "history.sqlite3"
    store = HistoryStore(path)
    session = ChatSession(gguf_backend, "Be brief.", GREEDY, store)
    answer = _collect(session.send("Hello there"))[2]
    store.close()

    reopened = HistoryStore(path)
    convs = reopened.list_conversations()
    assert [c["title"] for c in convs] == ["Hello there"]
    cid = convs[0]["id"]
    msgs = reopened.messages(cid)
    assert [(m["role"], m["content"]) for m in msgs] == [("user", "Hello there"), ("assistant", answer.text)]
    assert msgs[1]["stats"]["completion_tokens"] == answer.stats.completion_tokens
    resumed = ChatSession.resume(gguf_backend, reopened, cid)
    assert resumed.system_prompt == "Be brief." and resumed.settings == GREEDY and len(resumed.messages) == 2

    reopened.rename(cid, "Greetings")
    md = reopened.export_markdown(cid)
    assert md.startswith("# Greetings") and "Be brief." in md and answer.text in md
    data = reopened.export_json(cid)
    assert json.loads(json.dumps(data))["messages"][1]["content"] == answer.text
    reopened.delete(cid)
    assert reopened.list_conversations() == [] and reopened.messages(cid) == []


def test_a_crash_mid_answer_loses_only_that_answer(gguf_backend, tmp_path):
    path = tmp_path / "history.sqlite3"
    store = HistoryStore(path)
    session = ChatSession(gguf_backend, settings=GREEDY, store=store)
    job = session.send("Count to ten.")
    next(ev for ev in job if isinstance(ev, TextPiece))  # the answer is streaming...
    job.close()  # ...and the process goes away
    store.close()
    msgs = HistoryStore(path).messages(session.conversation_id)
    assert [m["role"] for m in msgs] == ["user"]


def test_context_truncation_keeps_the_system_prompt(hf_backend):
    settings = SamplingSettings(temperature=0.0, max_new_tokens=8)
    session = ChatSession(hf_backend, "SYSTEM RULES", settings)
    filler = "word " * 60
    for i in range(8):
        session.messages += [{"role": "user", "content": f"q{i} {filler}"}, {"role": "assistant", "content": f"a{i} {filler}"}]
    session.messages.append({"role": "user", "content": "last question"})
    ids, dropped = session.fit_prompt()
    assert dropped > 0 and dropped % 2 == 0
    assert len(ids) <= hf_backend.context_length - settings.max_new_tokens
    text = hf_backend.tokenizer.decode(ids)
    assert "SYSTEM RULES" in text and "last question" in text and "q0 " not in text
    _pieces, logs, _a = _collect(session._answer(CancelToken()))
    assert any("left out" in m for m in logs)


def test_a_message_too_long_for_the_context_is_refused(hf_backend):
    session = ChatSession(hf_backend, settings=SamplingSettings(max_new_tokens=8))
    session.messages.append({"role": "user", "content": "word " * 2000})
    with pytest.raises(InvalidInput, match="only .* fit in the context"):
        session.fit_prompt()


def test_a_model_without_template_gets_the_fallback_and_says_so(tiny_llama_dir, tmp_path):
    d = shutil.copytree(tiny_llama_dir, tmp_path / "no-template")
    (d / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    backend = load(d, "cpu")
    assert backend.uses_fallback_template
    _p, logs, answer = _collect(ChatSession(backend, settings=GREEDY).send("hi"))
    assert any("no chat template" in m for m in logs) and answer is not None
    assert backend.render([{"role": "user", "content": "hi"}]).endswith("User: hi\nAssistant:")


def test_bad_settings_are_refused():
    with pytest.raises(InvalidInput, match="temperature"):
        SamplingSettings(temperature=-1)
    with pytest.raises(InvalidInput, match="top-p"):
        SamplingSettings(top_p=0)


def test_cli_prompt_json(capsys, tiny_llama_dir):
    assert run(["chat", str(tiny_llama_dir), "--prompt", "hello", "--json", "--temperature", "0",
                "--max-tokens", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stats"]["completion_tokens"] == 5 and out["finish_reason"] == "length"
    assert out["model"]["backend"] == "transformers" and out["conversation_id"] is not None
