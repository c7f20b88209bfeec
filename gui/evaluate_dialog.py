"""Evaluate a model: perplexity on held-out text and, against its source, KL divergence and top-1
agreement. The engine does the work in a worker; the figures go into the model's report card, where
the browser's details panel and the Compare view read them."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QLabel,
                               QProgressBar, QPushButton, QSpinBox, QVBoxLayout)

from bitsmith.engine import api
from bitsmith.engine.api import DEFAULT_CTX, Log, ModelInfo, Progress, heldout_text_path, report_card_lines

from .errors import show_error
from .figures import explained
from .workers import JobWorker

BUILTIN, FILE = "builtin", "file"


class EvaluateDialog(QDialog):
    evaluated = Signal(str)  # the model's path, once its report card holds new figures

    def __init__(self, model: ModelInfo, models: list[ModelInfo], parent=None):
        super().__init__(parent)
        self.model = model
        self.worker: JobWorker | None = None
        self.text_file: str | None = None
        self.setWindowTitle(self.tr("Evaluate %1").replace("%1", model.name))

        self.text_choice = QComboBox()
        self.text_choice.addItem(self.tr("Built-in sample (about 1,500 tokens, a quick check)"), BUILTIN)
        self.text_choice.addItem(self.tr("A text file I choose…"), FILE)
        self.text_choice.activated.connect(self._text_chosen)
        self.reference = QComboBox()
        self.reference.addItem(self.tr("None (perplexity only)"), None)
        for m in models:
            if m.ok and m.path != model.path:
                self.reference.addItem(m.name, m.path)
        if model.source:  # compare with what it was made from, by default
            if self.reference.findData(model.source) < 0:
                self.reference.addItem(model.source, model.source)
            self.reference.setCurrentIndex(self.reference.findData(model.source))
        self.windows = QSpinBox(minimum=0, maximum=100000, value=0)
        self.windows.setSpecialValueText(self.tr("all"))
        self.windows.setToolTip(self.tr("Evaluate only the first N windows for a quick estimate"))
        self.ctx = QSpinBox(minimum=16, maximum=32768, value=DEFAULT_CTX, singleStep=128)

        form = QFormLayout()
        form.addRow(self.tr("Held-out text:"), self.text_choice)
        form.addRow(self.tr("Compare with:"), self.reference)
        form.addRow(self.tr("Windows:"), self.windows)
        form.addRow(self.tr("Window length (tokens):"), self.ctx)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel(self.tr("Figures are saved in the model's report card."))
        self.status.setWordWrap(True)
        self.results = QFormLayout()
        self.run_button = QPushButton(self.tr("Evaluate"))
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.buttons.addButton(self.run_button, QDialogButtonBox.ActionRole)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(self.results)
        layout.addWidget(self.buttons)
        self.resize(560, 320)

    # --- choices -------------------------------------------------------------------------------
    def _text_chosen(self, _index: int) -> None:
        if self.text_choice.currentData() != FILE:
            return
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Held-out text"), "",
                                              self.tr("Text (*.txt *.jsonl *.md);;All files (*)"))
        if path:
            self.set_text_file(path)
        else:
            self.text_choice.setCurrentIndex(0)

    def set_text_file(self, path: str) -> None:
        self.text_file = path
        self.text_choice.setItemText(1, path)
        self.text_choice.setCurrentIndex(1)

    def settings(self):
        text = self.text_file if self.text_choice.currentData() == FILE and self.text_file else heldout_text_path()
        return api.EvalSettings(model=self.model.path, text=text, source=self.reference.currentData(),
                                ctx=self.ctx.value(), windows=self.windows.value() or None, save=True)

    # --- running -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.worker is not None:
            return
        try:
            settings = self.settings()
        except Exception as exc:  # invalid settings are explained before anything runs
            self.error_box = show_error(self, exc, "")
            return
        self.run_button.setEnabled(False)
        self.status.setText(self.tr("Loading…"))
        self.progress.setRange(0, 0)
        self.worker = JobWorker(lambda token: api.evaluate(settings, token), self)
        self.worker.event.connect(self._on_event)
        self.worker.result.connect(self._on_result)
        self.worker.errored.connect(self._on_error)
        self.worker.cancelled.connect(lambda: self.status.setText(self.tr("Cancelled; nothing was saved.")))
        self.worker.finished.connect(self._on_finished)
        self.worker.start()

    def _on_event(self, ev) -> None:
        if isinstance(ev, Progress) and ev.total:
            self.progress.setRange(0, ev.total)
            self.progress.setValue(ev.step)
            self.status.setText(ev.detail or ev.stage)
        elif isinstance(ev, Log):
            self.status.setText(ev.message)

    def _on_result(self, result) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.status.setText(self.tr("Done: %1 tokens evaluated in %2 s")
                            .replace("%1", f"{result.tokens_evaluated:,}").replace("%2", f"{result.seconds:.0f}"))
        card = {"evaluation": result.to_card()}
        for label, value, tooltip in explained(report_card_lines(card), card):
            name, shown = QLabel(label + ":"), QLabel(value)
            shown.setWordWrap(True)
            for w in (name, shown):
                w.setToolTip(tooltip)
            self.results.addRow(name, shown)
        self.evaluated.emit(self.model.path)

    def _on_error(self, exc, tb) -> None:
        self.progress.setRange(0, 1)
        self.status.setText(str(exc))
        self.error_box = show_error(self, exc, tb)

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)

    def reject(self) -> None:
        """Close cancels a running evaluation first (it stops between windows)."""
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(60000)
        super().reject()
