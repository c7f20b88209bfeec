"""Start the real app on a virtual X display, visit each area, and save screenshots.

    xvfb-run -a -s "-screen 0 1440x900x24" .venv/bin/python tests/e2e/screenshots.py OUTDIR

The screenshots are of the whole X screen (QScreen.grabWindow(0)), so they show what a person
would see, window frame and all, not a widget rendered off-screen.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("BITSMITH_HOME", str(out / "home"))
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from bitsmith.gui.app import configure_logging, create_app
    from bitsmith.engine.config import Method
    from bitsmith.gui.main_window import MainWindow

    configure_logging()
    app = create_app([])
    window = MainWindow()
    window.resize(1400, 850)  # the width the Compare table must fit in
    window.move(20, 20)
    window.show()
    shots = []

    def shoot(name: str) -> None:
        path = out / f"{len(shots):02d}-{name}.png"
        QApplication.primaryScreen().grabWindow(0).save(str(path))
        shots.append(path)
        print(path)

    chat = window.chat_page
    variant = str(out / "home" / "smollm2-Q4_0.gguf")

    def settings():
        return window.wizard.page_settings

    def target(on: bool) -> None:
        settings().size_target.check.setChecked(on)
        if on:
            settings().size_target.value.setValue(5.0)

    def conversion_under_way() -> bool:
        """Some seconds into the conversion: its process has reported progress and memory."""
        entry = window.wizard.page_run.entry
        return entry is not None and (entry.finished or (entry.step > 0 and len(window.wizard.page_run.memory.rss) > 3))

    # (action, wait for the app to be idle before it, or a condition to wait for)
    steps = [
        (lambda: shoot("models"), True),
        (lambda: window.browser.filter_box.setText("q4"), True),
        (lambda: shoot("models-filtered"), True),
        (lambda: window.browser.filter_box.clear(), True),
        (lambda: window.open_wizard(window.browser.selected_model()), True),
        (lambda: shoot("wizard-source"), True),
        (lambda: window.wizard.next(), True),
        (lambda: shoot("wizard-method"), True),
        (lambda: window.wizard.page_method.select(Method.GGUF, "Q4_0"), True),
        (lambda: window.wizard.next(), True),
        (lambda: target(True), True),
        (lambda: shoot("wizard-size-target"), True),
        (lambda: window.wizard.next(), True),
        (lambda: shoot("wizard-plan-size-target"), True),
        (lambda: window.wizard.back(), True),
        (lambda: target(False), True),
        (lambda: settings().advanced.setChecked(True), True),
        # no importance matrix: the screenshots should not wait for a calibration pass
        (lambda: settings().imatrix.setCurrentIndex(settings().imatrix.findData(False)), True),
        (lambda: settings().out.setText(variant), True),
        (lambda: shoot("wizard-settings"), True),
        (lambda: window.wizard.next(), True),
        (lambda: shoot("wizard-plan"), True),
        (lambda: window.wizard.next(), True),
        (lambda: shoot("wizard-run"), conversion_under_way),
        (lambda: window.wizard.hide(), False),  # "You can close this window": the Convert area goes on
        (lambda: shoot("convert-running"), False),
        (lambda: window.wizard.show(), False),
        (lambda: shoot("wizard-result"), True),
        (lambda: window.wizard.close(), True),
        (lambda: shoot("convert"), True),
        (lambda: window.chat_with(window.browser.selected_model()), True),
        (lambda: chat.temperature.setValue(0.0), True),
        (lambda: chat.input.setPlainText("Give me three tips for a good night's sleep."), True),
        (lambda: chat.send(), True),
        (lambda: shoot("chat-answering"), False),
        (lambda: chat.input.setPlainText("Write a haiku about the sea."), True),
        (lambda: chat.send(), True),
        (lambda: shoot("chat"), True),
        (lambda: chat.serve.check.setChecked(True), True),
        (lambda: shoot("chat-serve"), True),
        (lambda: chat.serve.check.setChecked(False), True),
        (lambda: window.evaluate_path(window.browser.model.models()[0].path), True),
        (lambda: window.browser.evaluate_dialog.start(), True),
        (lambda: shoot("evaluate"), True),
        (lambda: window.browser.evaluate_dialog.reject(), True),
        (lambda: window.compare_family(window.browser.model.models()[0]), True),
        (lambda: shoot("compare"), True),
        (lambda: window.compare_page.pick_b.setCurrentIndex(window.compare_page.pick_b.findData(variant)), True),
        (lambda: window.compare_page.prompt.setPlainText("Give me three tips for a good night's sleep."), True),
        (lambda: window.compare_page.max_tokens.setValue(80), True),
        (lambda: window.compare_page.send(), True),
        (lambda: shoot("compare-side-by-side"), True),
        (lambda: window.show_area("models"), True),
        (lambda: window.browser.select_path(variant), True),
        (lambda: shoot("models-variant-details"), True),
        (lambda: window.browser.export_selected(), True),
        (lambda: shoot("export"), True),
        (lambda: window.browser.export_dialog.reject(), True),
        (lambda: window.browser.tabs.setCurrentIndex(1), True),
        (lambda: window.browser.hub.query.setText("smollm2 gguf"), True),
        (lambda: window.browser.hub.search(), True),
        (lambda: shoot("models-hub"), True),
        (lambda: app.quit(), True),
    ]

    def busy() -> bool:
        wizard = getattr(window, "wizard", None)
        planning = wizard is not None and wizard.currentPage() is wizard.page_plan and not wizard.page_plan.isComplete()
        dialog = getattr(window.browser, "evaluate_dialog", None)
        evaluating = dialog is not None and dialog.worker is not None
        return (window.browser.is_scanning() or chat.is_busy() or not window.queue.is_idle() or planning
                or evaluating or ("compare" in window._lazy and window.compare_page.worker is not None))

    def run_next():
        action, wait = steps[0]
        waiting = (not wait()) if callable(wait) else (wait and busy())
        if waiting:
            QTimer.singleShot(200, run_next)
            return
        steps.pop(0)
        action()
        if steps:
            QTimer.singleShot(600, run_next)

    QTimer.singleShot(1500, run_next)
    app.exec()
    return 0 if shots else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots")))
