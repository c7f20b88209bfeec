"""The main window on the real catalog: three areas, the bundled model listed, filtering."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt

from bitsmith.engine.catalog import Origin
from bitsmith.gui.catalog_model import INFO_ROLE
from bitsmith.gui.main_window import MainWindow


def _open(qtbot, **kw):
    w = MainWindow(**kw)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: not w.browser.is_scanning(), timeout=30000)
    return w


def _rows(w):
    proxy = w.browser.proxy
    return [proxy.index(r, 0).data(INFO_ROLE) for r in range(proxy.rowCount())]


def test_browser_lists_the_bundled_model_and_selects_it(qtbot, app_settings):
    w = _open(qtbot)
    rows = _rows(w)
    assert rows[0].origin is Origin.BUNDLED
    assert w.browser.selected_model().origin is Origin.BUNDLED
    # the details panel shows the real metadata
    texts = [w.browser.details._form.itemAt(i).widget().text()
             for i in range(w.browser.details._form.count()) if w.browser.details._form.itemAt(i).widget()]
    assert "Q4_1" in texts and "8,192" in texts
    assert w.browser.chat_button.isEnabled() and not w.browser.remove_button.isEnabled()
    assert "1 model" in w.browser.status.text()


def test_filter_and_sort(qtbot, app_settings, tiny_llama_dir):
    from bitsmith.engine import api

    api.add_model_path(tiny_llama_dir)
    w = _open(qtbot)
    assert len(_rows(w)) == 2
    qtbot.keyClicks(w.browser.filter_box, "gguf")
    assert [m.origin for m in _rows(w)] == [Origin.BUNDLED]
    w.browser.filter_box.clear()
    qtbot.keyClicks(w.browser.filter_box, "tiny llama")
    assert [m.origin for m in _rows(w)] == [Origin.USER]
    w.browser.filter_box.clear()
    w.browser.table.sortByColumn(3, Qt.AscendingOrder)  # parameters: the tiny model first
    assert _rows(w)[0].origin is Origin.USER


def test_areas_switch_with_sidebar_and_shortcuts(qtbot, app_settings):
    w = _open(qtbot)
    w.show_area("chat")
    assert w.current_area() == "chat"
    w.browser.chat_requested.emit(w.browser.selected_model())
    assert w.current_area() == "chat"
    w.sidebar.setCurrentRow(1)
    assert w.current_area() == "convert"


def test_window_state_is_remembered(qtbot, app_settings, tiny_llama_dir):
    from bitsmith.engine import api

    api.add_model_path(tiny_llama_dir)
    w = _open(qtbot)
    w.browser.select_path(str(tiny_llama_dir))
    w.show_area("chat")
    w.resize(790, 560)
    w.close()
    assert QSettings().value("browser/last_model") == str(tiny_llama_dir)
    w2 = _open(qtbot)
    assert w2.current_area() == "chat"
    assert w2.browser.selected_model().path == str(tiny_llama_dir)
    assert w2.width() == 790


def test_a_finished_conversion_joins_the_model_list(qtbot, app_settings, tiny_llama_dir, tmp_path):
    from bitsmith.engine import api
    from bitsmith.engine.config import QuantizeConfig

    api.add_model_path(tiny_llama_dir)
    w = _open(qtbot)
    out = tmp_path / "elsewhere" / "tiny-Q8_0.gguf"
    out.parent.mkdir()
    with qtbot.waitSignal(w.queue.finished, timeout=120000):
        w.queue.add(QuantizeConfig(tiny_llama_dir, out, "gguf", gguf_type="Q8_0"), "tiny → Q8_0")
    qtbot.waitUntil(lambda: not w.browser.is_scanning() and str(out) in {m.path for m in _rows(w)}, timeout=30000)
    assert str(out) in api.user_model_paths()
    assert w.chat_page.model_picker.findData(str(out)) >= 0
