"""The chat pane on the real bundled model: load, stream, stop, history."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer

from bitsmith.engine import api
from bitsmith.gui.chat_pane import ChatPane


def _pane(qtbot, bundled_gguf):
    pane = ChatPane()
    qtbot.addWidget(pane)
    pane.set_models([api.inspect(bundled_gguf)])
    with qtbot.waitSignal(pane.busy_changed, timeout=60000, check_params_cb=lambda busy: not busy):
        pane.load_selected()
    assert pane.session is not None and "Ready" in pane.model_state.text()
    return pane


def test_answer_streams_into_the_view_and_is_saved(qtbot, app_settings, bundled_gguf):
    pane = _pane(qtbot, bundled_gguf)
    pane.temperature.setValue(0.0)
    pane.max_tokens.setValue(16)
    ticks = []
    timer = QTimer(interval=20)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()
    pieces = []
    pane._on_event = (lambda orig: lambda ev: (pieces.append(ev), orig(ev)))(pane._on_event)
    qtbot.keyClicks(pane.input, "What is the capital of France?")
    with qtbot.waitSignal(pane.answer_finished, timeout=60000) as blocker:
        qtbot.keyClick(pane.input, Qt.Key_Return)  # Enter sends
    timer.stop()
    answer = blocker.args[0]
    assert answer.text and answer.stats.completion_tokens >= 1
    assert pane.view.turns[-1].text == answer.text and pane.view.turns[-1].stats
    assert "tok/s" in pane.view.toPlainText()
    assert pane.input.toPlainText() == ""
    assert ticks  # the event loop kept running while the model answered
    convs = pane.store.list_conversations()
    assert len(convs) == 1 and pane.conversations.list.count() == 1
    assert [m["role"] for m in pane.store.messages(convs[0]["id"])] == ["user", "assistant"]


def test_shift_enter_makes_a_new_line(qtbot, app_settings, bundled_gguf):
    pane = ChatPane()
    qtbot.addWidget(pane)
    qtbot.keyClicks(pane.input, "a")
    qtbot.keyClick(pane.input, Qt.Key_Return, Qt.ShiftModifier)
    qtbot.keyClicks(pane.input, "b")
    assert pane.input.toPlainText() == "a\nb"


def test_stop_ends_the_answer(qtbot, app_settings, bundled_gguf):
    pane = _pane(qtbot, bundled_gguf)
    pane.max_tokens.setValue(400)
    pane.input.setPlainText("Write a long story about a lighthouse keeper.")
    with qtbot.waitSignal(pane.answer_finished, timeout=120000) as blocker:
        pane.send()
        qtbot.waitUntil(lambda: len(pane.view.turns[-1].text) > 10, timeout=60000)
        assert pane.stop_button.isEnabled()
        pane.stop_button.click()
    answer = blocker.args[0]
    assert answer.finish_reason == "cancelled" and answer.stats.completion_tokens < 400
    assert pane.view.turns[-1].note == "stopped"
    qtbot.waitUntil(lambda: pane.send_button.isEnabled(), timeout=10000)
