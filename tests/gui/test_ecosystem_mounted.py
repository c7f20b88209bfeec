"""The ecosystem pieces are where a user finds them: Serve in the chat pane (sharing the pane's
model and lock), the Hub as a tab of the model browser (built when first opened), Export… beside
the selected model."""

from __future__ import annotations

from bitsmith.gui.browser import ModelBrowser
from bitsmith.gui.chat_pane import ChatPane


def test_serve_sits_in_the_chat_pane_and_follows_its_model(qtbot):
    pane = ChatPane()
    qtbot.addWidget(pane)
    assert not pane.serve.check.isEnabled()  # nothing to serve before a model is loaded

    class Backend:
        kind, device, uses_fallback_template, path = "llama.cpp", "cpu", False, "m.gguf"

        def close(self):
            pass

    pane._loaded("m.gguf", Backend())
    assert pane.serve.check.isEnabled() and pane.serve._lock is pane.backend_lock
    pane.serve.server = object()  # serving: idle unloading must keep the model
    pane.unload()
    assert pane.backend is not None
    pane.serve.server = None
    pane.unload()
    assert pane.backend is None and not pane.serve.check.isEnabled()


def test_hub_tab_is_built_on_first_open_and_export_follows_the_selection(qtbot):
    browser = ModelBrowser()
    qtbot.addWidget(browser)
    assert browser.hub is None and browser.tabs.count() == 2
    browser.tabs.setCurrentIndex(1)
    assert browser.hub is not None and browser.tabs.widget(1) is browser.hub
    assert not browser.export_button.isEnabled()  # nothing selected yet


def test_an_exported_conversation_imports_back_from_the_list(qtbot, tmp_path):
    from bitsmith.engine import api
    from bitsmith.gui.chat_conversations import ConversationList

    store = api.history()
    cid = store.create_conversation("Greeting", "model.gguf", "You are terse.", {"temperature": 0.2})
    store.add_message(cid, "user", "Hello there")
    exported = api.export_conversation(cid, tmp_path / "chat.json", store)
    listing = ConversationList(store)
    qtbot.addWidget(listing)
    new_id = listing.import_file(str(exported))
    assert new_id is not None and new_id != cid and listing.selected_id() == new_id
    assert [m["content"] for m in store.messages(new_id)] == ["Hello there"]
