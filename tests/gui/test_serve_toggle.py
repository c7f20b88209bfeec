"""The chat pane's Serve switch: on, the loaded model answers on 127.0.0.1; off, nothing listens."""

from __future__ import annotations

import threading

import httpx2 as httpx
import pytest

from bitsmith.engine.config import ServerSettings
from bitsmith.gui.serve_toggle import ServeToggle
from tests.engine.test_server_queue import ScriptedBackend


def test_the_switch_serves_the_loaded_model_and_stops(qtbot):
    lock = threading.Lock()
    toggle = ServeToggle(ScriptedBackend(), lock, ServerSettings(port=0))
    qtbot.addWidget(toggle)
    assert toggle.check.isEnabled() and toggle.address.text() == "off" and not toggle.copy.isVisibleTo(toggle)
    with qtbot.waitSignal(toggle.serving_changed, timeout=10000) as on:
        toggle.check.setChecked(True)
    serving, url = on.args
    assert serving and url.startswith("http://127.0.0.1:") and toggle.address.text() == url
    r = httpx.post(f"{url}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert r.json()["choices"][0]["message"]["content"] == "w0 w1 "
    assert toggle.server.slot.backend_lock is lock  # the chat pane's lock: never two generations at once
    with qtbot.waitSignal(toggle.serving_changed, timeout=10000):
        toggle.check.setChecked(False)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models", timeout=5)
    toggle.set_backend(None)
    assert not toggle.check.isEnabled() and toggle.address.text() == "no model loaded"


def test_a_port_in_use_turns_the_switch_back_off(qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr("bitsmith.gui.serve_toggle.show_error", lambda parent, exc, *a: shown.append(str(exc)))
    first = ServeToggle(ScriptedBackend(), settings=ServerSettings(port=0))
    qtbot.addWidget(first)
    first.check.setChecked(True)
    second = ServeToggle(ScriptedBackend(), settings=ServerSettings(port=first.server.port))
    qtbot.addWidget(second)
    second.check.setChecked(True)
    assert not second.check.isChecked() and second.server is None
    assert shown and "is in use" in shown[0]
    first.shutdown()
