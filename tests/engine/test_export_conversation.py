"""Conversations exported as Markdown and JSON, with their generation settings, and imported back."""

from __future__ import annotations

import json

import pytest

from bitsmith.engine.api import export_conversation, import_conversation
from bitsmith.engine.chat.history import HistoryStore
from bitsmith.engine.errors import InvalidInput

SETTINGS = {"temperature": 0.3, "top_p": 0.9, "top_k": 20, "repetition_penalty": 1.05, "max_new_tokens": 99,
            "seed": 42, "stop": ["<end>"]}


@pytest.fixture()
def store(tmp_path):
    s = HistoryStore(tmp_path / "history.sqlite3")
    yield s
    s.close()


@pytest.fixture()
def conversation(store):
    cid = store.create_conversation("Colours -- a chat", "/models/m.gguf", "Be brief.", SETTINGS)
    store.add_message(cid, "user", "Name a colour.")
    store.add_message(cid, "assistant", "Blue.\n\n```\ncode -- block\n```", {"completion_tokens": 3, "total_s": 0.5})
    return cid


def _same(store, a, b):
    ca, cb = store.get_conversation(a), store.get_conversation(b)
    for key in ("title", "model_path", "system_prompt", "settings"):
        assert ca[key] == cb[key], key
    strip = lambda ms: [(m["role"], m["content"], m["stats"]) for m in ms]  # noqa: E731
    assert strip(store.messages(a)) == strip(store.messages(b))


@pytest.mark.parametrize("suffix", [".json", ".md"])
def test_an_exported_conversation_imports_back_with_its_settings(store, conversation, tmp_path, suffix):
    path = export_conversation(conversation, tmp_path / f"chat{suffix}", store)
    new_id = import_conversation(path, store)
    assert new_id != conversation
    _same(store, conversation, new_id)
    assert store.get_conversation(new_id)["settings"]["seed"] == 42


def test_the_markdown_reads_as_a_conversation(store, conversation, tmp_path):
    text = export_conversation(conversation, tmp_path / "chat.md", store).read_text()
    assert text.startswith("# Colours -- a chat\n\nModel: `/models/m.gguf`\n\nSettings: temperature 0.3,")
    assert "**System:**\n\nBe brief.\n\n**You:**\n\nName a colour.\n\n**Assistant:**\n\nBlue." in text
    comment = text[text.rindex("<!--"):]
    assert "--" not in comment[4:-4]  # an HTML comment may not hold "--": the embedded JSON escapes it


def test_the_json_export_names_its_format(store, conversation):
    data = store.export_json(conversation)
    assert data["format"] == "bitsmith-conversation" and data["version"] == 1
    assert data["settings"] == SETTINGS and len(data["messages"]) == 2


@pytest.mark.parametrize("change,problem", [
    (lambda d: d.update(format="other-app"), "not a Bitsmith conversation export"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d["messages"].append({"role": "tool", "content": "x"}), "message 3"),
    (lambda d: d["settings"].update(temperature=99), "temperature must be between 0 and 5"),
    (lambda d: d.pop("messages"), "no list of messages"),
])
def test_a_bad_export_is_refused_in_one_line_and_nothing_is_written(store, conversation, change, problem):
    data = store.export_json(conversation)
    change(data)
    before = len(store.list_conversations())
    with pytest.raises(InvalidInput, match=problem):
        store.import_conversation(json.dumps(data))
    assert len(store.list_conversations()) == before
    with pytest.raises(InvalidInput, match="not a Bitsmith conversation export"):
        store.import_conversation("just some notes")
