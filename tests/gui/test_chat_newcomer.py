"""Issue 18's chat problems, on the real bundled model: no dead end after a restart (problem 3), one
conversation per model and old ones reopened with theirs (4), a cut answer marked and exports that
are .md files in a remembered folder (11), and a model nobody uses given back (15)."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings, Qt

from bitsmith.engine import api
from bitsmith.gui import chat_conversations
from bitsmith.gui.chat_pane import ChatPane


def _shown_pane(qtbot, models):
    pane = ChatPane()
    qtbot.addWidget(pane)
    pane.set_models(models)
    pane.show()  # as after a restart with the Chat area open: nothing was loaded by hand
    return pane


def _idle(qtbot, pane, timeout=90000):
    qtbot.waitUntil(lambda: not pane.is_busy(), timeout=timeout)


def test_no_dead_end_after_a_restart(qtbot, app_settings, bundled_gguf, monkeypatch):
    """Problem 3: the pane shows a model, so that model answers; Enter while it loads is kept."""
    pane = _shown_pane(qtbot, [api.inspect(bundled_gguf)])
    assert pane.send_button.isEnabled()  # a model is chosen: Send works even before it is loaded
    qtbot.waitUntil(lambda: pane.is_busy() or pane.session is not None, timeout=10000)  # loading by itself
    pane.max_tokens.setValue(3)
    pane.temperature.setValue(0.0)
    qtbot.keyClicks(pane.input, "Hello")
    with qtbot.waitSignal(pane.answer_finished, timeout=90000) as blocker:
        qtbot.keyClick(pane.input, Qt.Key_Return)  # Enter, possibly while the model still loads
    assert pane.session is not None and "Ready" in pane.model_state.text()
    assert [t.role for t in pane.view.turns] == ["user", "assistant"] and pane.view.turns[0].text == "Hello"
    # Problem 11: an answer cut by the token limit says so.
    assert blocker.args[0].finish_reason == "length"
    assert "token limit" in pane.view.turns[-1].note and "token limit" in pane.view.toPlainText()
    assert QSettings().value("chat/model") == str(bundled_gguf)

    # A load that fails leaves no dead end either: choosing the model again retries.
    _idle(qtbot, pane)
    pane.unload()
    assert pane.backend is None and pane.session is None
    real = api.load_model
    monkeypatch.setattr(api, "load_model", lambda *a, **k: (_ for _ in ()).throw(OSError("disk was busy")))
    monkeypatch.setattr("bitsmith.gui.chat_pane.show_error", lambda *a: None)
    pane.load_selected()
    _idle(qtbot, pane)
    assert "Could not load" in pane.model_state.text() and pane.send_button.isEnabled()
    monkeypatch.setattr(api, "load_model", real)
    pane.model_picker.activated.emit(0)  # the user picks it again
    qtbot.waitUntil(lambda: pane.session is not None, timeout=90000)


def test_a_conversation_belongs_to_its_model(qtbot, app_settings, bundled_gguf, tmp_path):
    """Problem 4: switching models starts a new conversation, clears stale messages, and reopening
    an old conversation loads its model again."""
    other = tmp_path / "other.gguf"
    os.symlink(bundled_gguf, other)  # a second model (same weights, another path) costs no copy
    first, second = api.inspect(bundled_gguf), api.inspect(other)
    pane = _shown_pane(qtbot, [first, second])
    qtbot.waitUntil(pane.is_busy, timeout=10000)  # the shown model loads by itself...
    pane.choose_model(str(other))  # ...and a model chosen meanwhile ("Chat with it") comes next, not never
    qtbot.waitUntil(lambda: pane.backend is not None and pane.backend.path == str(other), timeout=90000)
    pane.choose_model(str(bundled_gguf))
    qtbot.waitUntil(lambda: pane.backend is not None and pane.backend.path == str(bundled_gguf), timeout=90000)
    _idle(qtbot, pane)
    pane.max_tokens.setValue(2)
    pane.input.setPlainText("First model, please answer")
    with qtbot.waitSignal(pane.answer_finished, timeout=90000):
        pane.send()
    _idle(qtbot, pane)
    first_id = pane.session.conversation_id
    pane.status.setText("this model has no chat template; using a plain User/Assistant format")

    pane.choose_model(str(other))
    qtbot.waitUntil(lambda: pane.backend is not None and pane.backend.path == str(other), timeout=90000)
    assert pane.view.turns == [] and pane.status.text() == ""  # a fresh transcript, no stale message
    assert pane.session.conversation_id is None
    pane.input.setPlainText("Second model, please answer")
    with qtbot.waitSignal(pane.answer_finished, timeout=90000):
        pane.send()
    _idle(qtbot, pane)
    second_id = pane.session.conversation_id
    assert second_id != first_id
    assert [m["content"] for m in pane.store.messages(first_id) if m["role"] == "user"] == ["First model, please answer"]

    pane.open_conversation(first_id)  # as a click in the list does
    qtbot.waitUntil(lambda: pane.backend is not None and pane.backend.path == str(bundled_gguf), timeout=90000)
    assert pane.session.conversation_id == first_id and pane.model_picker.currentData() == str(bundled_gguf)
    assert pane.view.turns[0].text == "First model, please answer"


def test_export_writes_markdown_with_its_extension(qtbot, app_settings, tmp_path, monkeypatch):
    """Problem 11: an export named without an extension became a file with none; the folder is remembered."""
    store = api.history()
    cid = store.create_conversation("Trip: plans / ideas", "/models/x.gguf")
    store.add_message(cid, "user", "Where to?")
    conversations = chat_conversations.ConversationList(store)
    qtbot.addWidget(conversations)
    conversations.refresh(select=cid)
    asked = []

    def save_as(_parent, _title, suggested, _filters):
        asked.append(suggested)
        return str(tmp_path / "my trip"), chat_conversations.MARKDOWN
    monkeypatch.setattr(chat_conversations.QFileDialog, "getSaveFileName", save_as)
    written = conversations.export()
    assert written == tmp_path / "my trip.md" and "Where to?" in written.read_text()
    assert asked[0].endswith("Trip plans  ideas.md")  # a file name made from the title
    conversations.export()
    assert asked[1].startswith(str(tmp_path))  # the folder used last
    assert chat_conversations.export_target("/a/b.json", chat_conversations.MARKDOWN).suffix == ".json"
    assert chat_conversations.export_target("/a/b", chat_conversations.JSON).name == "b.json"
