"""Issue 18's window problems: the Qt library check (problem 1), a selection that survives rescans
(2), the plan describing what runs (5), empty folders (9), details and columns at 1200 px (10), the
default output folder (12), explanations and icons (14), and what start-up loads (15)."""

from __future__ import annotations

import subprocess
import sys

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QInputDialog, QScrollArea

from bitsmith.engine import api
from bitsmith.gui import qt_libraries
from bitsmith.gui.main_window import MainWindow


def _open(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 760)
    w.show()
    qtbot.waitUntil(lambda: not w.browser.is_scanning(), timeout=60000)
    return w


def _rescan(qtbot, w):
    w.browser.refresh()
    qtbot.waitUntil(lambda: not w.browser.is_scanning(), timeout=60000)


def test_missing_qt_libraries_are_named_with_the_command_that_installs_them(monkeypatch, capsys):
    """Problem 1: Qt aborted with a core dump on a Debian without its xcb libraries."""
    present = {"xcb-cursor", "GL"}
    find = lambda name: f"lib{name}.so" if name in present else None  # noqa: E731
    line = qt_libraries.problem({"DISPLAY": ":0"}, [], find)
    assert "sudo apt-get install -y libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1" in line
    assert "libxcb-cursor0" not in line and "libgl1 " not in line
    assert qt_libraries.problem({"DISPLAY": ":0"}, [], lambda n: "x") is None
    assert qt_libraries.problem({"QT_QPA_PLATFORM": "offscreen"}, [], find) is None  # no X11: nothing needed
    assert qt_libraries.problem({"WAYLAND_DISPLAY": "wayland-0"}, [], find) is None
    from bitsmith.gui import app

    monkeypatch.setattr(qt_libraries, "problem", lambda **_: "the window needs Qt's X11 system libraries")
    monkeypatch.setenv("DISPLAY", ":99")
    assert app.run_app([]) == 2
    assert capsys.readouterr().err.strip() == "bitsmith: error: the window needs Qt's X11 system libraries"


def test_rescans_keep_the_users_selection_and_the_wizard_starts_from_it(qtbot, app_settings, tiny_llama_dir,
                                                                       bundled_gguf):
    """Problem 2: every rescan jumped back to the last session's model, so the wizard got it too."""
    api.add_model_path(tiny_llama_dir)
    QSettings().setValue("browser/last_model", str(bundled_gguf))
    w = _open(qtbot)
    assert w.browser.selected_model().path == str(bundled_gguf)  # restored once, at start-up
    w.browser.select_path(str(tiny_llama_dir))
    _rescan(qtbot, w)
    _rescan(qtbot, w)
    assert w.browser.selected_model().path == str(tiny_llama_dir)
    wizard = w.open_wizard(w.browser.selected_model())
    assert wizard.page_source.list.currentItem().data(0x0100).path == str(tiny_llama_dir)

    # Problem 12: the output goes to Bitsmith's models folder, not beside the source, and the folder
    # chosen is remembered for the next conversion.
    wizard.next()
    wizard.next()
    out = wizard.page_settings.out.text()
    assert out.startswith(str(api.models_dir())) and api.models_dir().is_dir()
    chosen = tiny_llama_dir.parent / "mine" / "tiny-out.gguf"
    wizard.page_settings.out.setText(str(chosen))
    wizard.page_settings.validatePage()
    assert QSettings().value("convert/output_dir") == str(chosen.parent)
    again = w.open_wizard(w.browser.selected_model())
    again.next()
    again.next()
    assert again.page_settings.out.text().startswith(str(chosen.parent))

    # Problem 14: each technical setting explains itself in one sentence.
    s = again.page_settings
    for widget in (s.bits, s.group_size, s.sym, s.desc_act, s.imatrix, s.calibration, s.samples, s.seq_len):
        assert widget.toolTip().endswith(".") and len(widget.toolTip()) > 30
    assert "importance" in s.imatrix.toolTip().lower() and "64" in s.group_size.toolTip()
    assert "act-order" in s.desc_act.toolTip()


def test_plan_page_shows_what_the_engine_will_run(qtbot, app_settings, tiny_llama_dir):
    """Problem 5: the page promised model-generated calibration that never ran. It shows the engine's
    own plan of the chosen settings, and calibration defaults to the built-in text (minutes on a CPU)."""
    from bitsmith.gui.conversion_queue import ConversionQueue
    from bitsmith.gui.wizard import ConvertWizard

    src = api.inspect(tiny_llama_dir)
    wizard = ConvertWizard(ConversionQueue(), [src], src)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.next()
    wizard.page_method.select(api.Method.GGUF, "Q4_K_M")
    wizard.next()
    assert wizard.page_settings.calibration.currentData() == "builtin" == wizard.state.calibration
    wizard.next()
    qtbot.waitUntil(wizard.page_plan.isComplete, timeout=60000)
    plan = api.plan(wizard.state.to_config(), api.heldout_text_path())
    shown = wizard.page_plan.labels["steps"].text()
    assert shown == "\n".join(f"{i + 1}. {step}" for i, step in enumerate(plan.steps))
    assert "generat" not in shown.lower()  # nothing promises text the model writes when it will not run


def test_an_empty_folder_is_not_kept_and_added_folders_can_be_removed(qtbot, app_settings, tmp_path,
                                                                      tiny_llama_dir, monkeypatch):
    """Problem 9: an empty folder was saved silently and could not be removed."""
    w = _open(qtbot)
    empty = tmp_path / "nothing here"
    empty.mkdir()
    w.browser.add_path(str(empty))
    qtbot.waitUntil(lambda: not w.browser.is_scanning(), timeout=60000)
    assert str(empty) not in api.user_model_paths()
    assert "No model found" in w.browser.status.text() and w.browser.add_box.isVisible()
    w.browser.add_box.close()

    w.browser.add_path(str(tiny_llama_dir))
    qtbot.waitUntil(lambda: not w.browser.is_scanning(), timeout=60000)
    assert str(tiny_llama_dir) in api.user_model_paths()
    assert w.browser.selected_model().path == str(tiny_llama_dir)  # what was just added is shown
    monkeypatch.setattr(QInputDialog, "getItem", lambda _p, _t, _l, items, *_a: (items[0], True))
    w.browser.manage_folders()
    assert api.user_model_paths() == []


def test_details_scroll_and_columns_fit_at_1200_pixels(qtbot, app_settings, tiny_llama_dir):
    """Problem 10: long details were clipped and table columns hidden off the right edge."""
    api.add_model_path(tiny_llama_dir)
    w = _open(qtbot)
    w.browser.select_path(str(tiny_llama_dir))
    qtbot.wait(50)
    table = w.browser.table
    shown = [c for c in range(w.browser.model.columnCount()) if not table.isColumnHidden(c)]
    assert len(shown) >= 7
    assert sum(table.columnWidth(c) for c in shown) <= table.viewport().width() + 1  # +1: the stretched last section
    assert isinstance(w.browser.details.parent().parent(), QScrollArea)
    qtbot.waitUntil(lambda: w.browser.details.width() <= w.browser.details.parent().width(), timeout=5000)  # no clipping
    # Problem 14: column headers and figures explain their terms.
    assert "weight" in w.browser.model.headerData(5, Qt.Horizontal, Qt.ToolTipRole)
    assert all(not w.sidebar.item(i).icon().isNull() for i in range(w.sidebar.count()))


def test_start_up_loads_neither_torch_nor_pyqtgraph(tmp_path):
    """Problem 15 (4.5 s to the first window): torch (the device check) and pyqtgraph (the graphs)
    were imported before the window could show; both now wait until they are needed."""
    code = ("import os, sys; os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
            "from bitsmith.gui.app import create_app\napp = create_app([])\n"
            "from bitsmith.gui.main_window import MainWindow\nw = MainWindow(); w.show(); app.processEvents()\n"
            "print(sorted(m for m in ('torch', 'pyqtgraph', 'transformers') if m in sys.modules))\n"
            "w.close()\n")
    env = {**__import__("os").environ, "BITSMITH_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip().splitlines()[0] == "[]", out.stderr[-2000:]
