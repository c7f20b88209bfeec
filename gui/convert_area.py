"""The Convert area: every queued, running and finished conversion, and the button that starts one."""

from __future__ import annotations

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QLabel, QPlainTextEdit, QProgressBar, QPushButton,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from .conversion_queue import DONE, FAILED, ConversionQueue, QueueEntry
from .errors import show_error
from .wizard.plan_page import human_seconds
from .wizard.run_pages import result_path

STATUS_TEXT = {"queued": "Waiting", "running": "Running", "done": "Done", "failed": "Failed", "cancelled": "Cancelled"}


class ConvertArea(QWidget):
    new_requested = Signal()
    chat_requested = Signal(str)

    def __init__(self, queue: ConversionQueue, parent=None):
        super().__init__(parent)
        self.queue = queue
        self.new_button = QPushButton(self.tr("New conversion…"))
        self.new_button.clicked.connect(self.new_requested)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels([self.tr("Conversion"), self.tr("Status"), self.tr("Progress"),
                                              self.tr("Time left")])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.setSelectionMode(QTableWidget.SingleSelection)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.currentCellChanged.connect(lambda *_: self._show_selected())
        self.log = QPlainTextEdit(readOnly=True)
        self.cancel_button = QPushButton(self.tr("Cancel"))
        self.cancel_button.clicked.connect(self._cancel)
        self.chat_button = QPushButton(self.tr("Chat with it"))
        self.chat_button.clicked.connect(self._chat)
        self.folder_button = QPushButton(self.tr("Show in folder"))
        self.folder_button.clicked.connect(self._folder)
        queue.finished.connect(self._on_finished)
        top = QHBoxLayout()
        top.addWidget(QLabel(self.tr("<b>Conversions</b> run one at a time in the background.")))
        top.addStretch(1)
        top.addWidget(self.new_button)
        actions = QHBoxLayout()
        for b in (self.cancel_button, self.chat_button, self.folder_button):
            actions.addWidget(b)
        actions.addStretch(1)
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addLayout(actions)
        bl.addWidget(self.log)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.table)
        split.addWidget(bottom)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        self._rows: dict[int, int] = {}
        queue.changed.connect(self._on_changed)
        self._show_selected()

    def _row_for(self, entry: QueueEntry) -> int:
        if entry.id not in self._rows:
            row = self.table.rowCount()
            self.table.insertRow(row)
            self.table.setItem(row, 0, QTableWidgetItem(entry.title))
            self.table.setItem(row, 1, QTableWidgetItem())
            bar = QProgressBar()
            self.table.setCellWidget(row, 2, bar)
            self.table.setItem(row, 3, QTableWidgetItem())
            self._rows[entry.id] = row
            if self.table.currentRow() < 0:
                self.table.selectRow(row)
        return self._rows[entry.id]

    def _on_changed(self, entry: QueueEntry) -> None:
        row = self._row_for(entry)
        status = self.tr(STATUS_TEXT[entry.status])
        if entry.status == "running" and entry.stage:
            status += f": {entry.stage}"
        if entry.status == FAILED:
            status += f": {entry.error}"
        self.table.item(row, 1).setText(status)
        self.table.item(row, 1).setToolTip(entry.error or "")
        self.table.cellWidget(row, 2).setValue(int(entry.overall_fraction * 100))
        self.table.item(row, 3).setText(human_seconds(entry.eta_s) if entry.eta_s and not entry.finished else "")
        if self.selected() is entry:
            self._show_selected()

    def _on_finished(self, entry: QueueEntry) -> None:
        if entry.status == FAILED and entry.exception is not None:
            self.error_box = show_error(self, entry.exception, entry.error_details)

    def selected(self) -> QueueEntry | None:
        row = self.table.currentRow()
        for entry in self.queue.entries:
            if self._rows.get(entry.id) == row:
                return entry
        return None

    def _show_selected(self) -> None:
        e = self.selected()
        self.log.setPlainText("\n".join(e.log) if e else self.tr("No conversions yet. Press “New conversion…”."))
        self.cancel_button.setEnabled(e is not None and not e.finished)
        done = e is not None and e.status == DONE and result_path(e) is not None
        self.chat_button.setEnabled(done)
        self.folder_button.setEnabled(done)

    def _cancel(self) -> None:
        if (e := self.selected()) is not None:
            self.queue.cancel(e)

    def _chat(self) -> None:
        if (e := self.selected()) is not None and (p := result_path(e)) is not None:
            self.chat_requested.emit(str(p))

    def _folder(self) -> None:
        if (e := self.selected()) is not None and (p := result_path(e)) is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(p if p.is_dir() else p.parent)))
