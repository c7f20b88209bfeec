"""Wizard pages 5 and 6: the conversion running (progress, ETA, log, memory, Cancel) and its result."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QCoreApplication, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QFormLayout, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton,
                               QVBoxLayout, QWizardPage)

from bitsmith.engine.api import heldout_text_path, human_seconds, read_report_card, report_card_lines

from ..figures import explained

from ..conversion_queue import CANCELLED, DONE, ConversionQueue, QueueEntry, result_path
from ..graphs import MemoryGraph
from .state import WizardState




class RunPage(QWizardPage):
    def __init__(self, state: WizardState, queue: ConversionQueue, parent=None):
        super().__init__(parent)
        self.state, self.queue = state, queue
        self.entry: QueueEntry | None = None
        self.setTitle(self.tr("Converting"))
        self.setSubTitle(self.tr("You can close this window: the conversion goes on in the Convert area."))
        self.overall = QProgressBar()
        self.stage_bar = QProgressBar()
        self.stage_label = QLabel()
        self.eta = QLabel()
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(2000)
        self.memory = MemoryGraph(pid=None)  # empty until the conversion's own process starts
        self.memory.plot.setTitle(self.tr("Memory of the conversion process"))
        self.cancel_button = QPushButton(self.tr("Cancel conversion"))
        self.cancel_button.clicked.connect(lambda: self.entry and self.queue.cancel(self.entry))
        form = QFormLayout()
        form.addRow(self.tr("Overall:"), self.overall)
        form.addRow(self.stage_label, self.stage_bar)
        form.addRow(self.tr("Time left:"), self.eta)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.memory)
        layout.addLayout(row)
        queue.changed.connect(self._on_changed)

    def initializePage(self) -> None:
        if self.entry is None or self.entry.finished:
            plan = self.wizard().page_plan.plan
            title = f"{self.state.source.name} → {Path(self.state.to_config().out).name}"
            self.log.clear()
            evaluate_on = heldout_text_path() if self.state.evaluate else None
            stages = len(plan.steps) if plan else 1  # the plan counts the evaluation when there is one
            self.entry = self.queue.add(self.state.to_config(), title, stages, evaluate_on)
        self._on_changed(self.entry)

    def _on_changed(self, entry: QueueEntry) -> None:
        if entry is not self.entry:
            return
        if entry.pid is not None and (self.memory.sampler is None or self.memory.sampler.pid != entry.pid):
            self.memory.follow(entry.pid)  # the child process doing the work, not this window
        self.overall.setValue(int(entry.overall_fraction * 100))
        self.stage_bar.setValue(int(entry.stage_fraction * 100))
        self.stage_label.setText(f"{entry.stage or self.tr('starting')}:")
        self.stage_bar.setFormat(f"{entry.detail}  %p%" if entry.detail else "%p%")
        self.eta.setText(human_seconds(entry.eta_s) if entry.eta_s is not None else "—")
        shown = self.log.blockCount() if self.log.toPlainText() else 0
        for line in entry.log[shown:]:
            self.log.appendPlainText(line)
        self.cancel_button.setEnabled(not entry.finished)
        self.completeChanged.emit()
        if entry.finished and self.wizard() and self.wizard().currentPage() is self:
            self.wizard().next()

    def isComplete(self) -> bool:
        return self.entry is not None and self.entry.finished



class ResultPage(QWizardPage):
    chat_requested = Signal(str)

    def __init__(self, state: WizardState, parent=None):
        super().__init__(parent)
        self.state = state
        self.setTitle(self.tr("Result"))
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.form = QFormLayout()
        self.chat_button = QPushButton(self.tr("Chat with it"))
        self.folder_button = QPushButton(self.tr("Show in folder"))
        self.chat_button.clicked.connect(self._chat)
        self.folder_button.clicked.connect(self._show_folder)
        row = QHBoxLayout()
        row.addWidget(self.chat_button)
        row.addWidget(self.folder_button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(self.form)
        layout.addLayout(row)
        layout.addStretch(1)
        self.path: Path | None = None

    def initializePage(self) -> None:
        entry: QueueEntry = self.wizard().page_run.entry
        while self.form.rowCount():
            self.form.removeRow(0)
        self.path = result_path(entry) if entry.status == DONE else None
        ok = self.path is not None
        self.chat_button.setEnabled(ok)
        self.folder_button.setEnabled(ok)
        if entry.status == CANCELLED:
            self.summary.setText(self.tr("The conversion was cancelled; nothing was written."))
            return
        if not ok:
            self.summary.setText(self.tr("The conversion failed: %1").replace("%1", entry.error))
            return
        self.summary.setText(self.tr("Done: %1").replace("%1", str(self.path)))
        for label, value, tooltip in report_rows(self.path, self.state.source.size_bytes):
            name, shown = QLabel(label), QLabel(value)
            shown.setWordWrap(True)
            for w in (name, shown):
                w.setToolTip(tooltip)
            self.form.addRow(name, shown)

    def _chat(self) -> None:
        if self.path:
            self.chat_requested.emit(str(self.path))
            self.wizard().accept()

    def _show_folder(self) -> None:
        if self.path:
            folder = self.path if self.path.is_dir() else self.path.parent
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


def report_rows(path: Path, source_bytes: int | None) -> list[tuple[str, str, str]]:
    """The report card's headline figures with baseline, verdict and tooltips, as label/value/tip rows."""
    card = read_report_card(path) or {}
    if not card.get("size_bytes") and path.is_file():
        card = {**card, "size_bytes": path.stat().st_size}
    return [(QCoreApplication.translate("ReportCard", label) + ":", value, tooltip)
            for label, value, tooltip in explained(report_card_lines(card, source_bytes), card)]
