"""The Convert area: every conversion of this session and of earlier ones (from the engine's job
history), what each one is doing or how it ended, its report card, and the button that starts one.
A running GPTQ/AWQ/RTN conversion can be paused (its finished blocks are kept) and resumed."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QLabel, QPlainTextEdit, QProgressBar, QPushButton,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from bitsmith.engine import api
from bitsmith.engine.api import human_seconds

from .conversion_queue import DONE, FAILED, PAUSED, QUEUED, RUNNING, ConversionQueue, QueueEntry, result_path
from .errors import show_error
from .figures import card_summary
from .icons import icon

STATUS_TEXT = {QUEUED: "Queued: starts when the one before it ends", RUNNING: "Running", DONE: "Done",
               FAILED: "Failed", "cancelled": "Cancelled", "interrupted": "Interrupted (the app was closed)",
               PAUSED: "Paused"}
STATUS_ICON = {QUEUED: "queued", RUNNING: "running", DONE: "done", FAILED: "failed", "cancelled": "cancel",
               "interrupted": "failed", PAUSED: "pause"}


class Past:
    """A conversion of an earlier session, as the engine's job history recorded it."""

    def __init__(self, record: dict):
        self.record = record
        self.status = record["status"]
        self.output = Path(record["output"])
        self.title = f"{Path(record['source']).name} → {self.output.name}"
        self.finished = True

    def when(self) -> str:
        ago = time.time() - float(self.record.get("started") or time.time())
        return QCoreApplication.translate("ConvertArea", "%1 ago").replace("%1", human_seconds(ago)) if ago > 60 else ""


def _path_of(row) -> Path | None:
    if isinstance(row, Past):
        return row.output if row.status == DONE and row.output.exists() else None
    return result_path(row) if row.status == DONE else None


class ConvertArea(QWidget):
    new_requested = Signal()
    chat_requested = Signal(str)

    def __init__(self, queue: ConversionQueue, parent=None):
        super().__init__(parent)
        self.queue = queue
        self.new_button = QPushButton(icon("convert"), self.tr("New conversion…"))
        self.new_button.clicked.connect(self.new_requested)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels([self.tr("Conversion"), self.tr("Status"), self.tr("Progress"),
                                              self.tr("Time left")])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        header.setSectionResizeMode(1, QHeaderView.Interactive)
        self.table.setColumnWidth(1, 260)
        self.table.setTextElideMode(Qt.ElideMiddle)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.setSelectionMode(QTableWidget.SingleSelection)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.currentCellChanged.connect(lambda *_: self._show_selected())
        self.log = QPlainTextEdit(readOnly=True)
        self.cancel_button = QPushButton(icon("cancel"), self.tr("Cancel"))
        self.cancel_button.clicked.connect(self._cancel)
        self.cancel_button.setToolTip(self.tr("Stop the conversion for good (what it finished is removed)"))
        self.pause_button = QPushButton(icon("pause"), self.tr("Pause"))
        self.pause_button.clicked.connect(self._pause)
        self.pause_button.setToolTip(self.tr("Stop after the layer in progress, keeping every finished block"))
        self.resume_button = QPushButton(icon("resume"), self.tr("Resume"))
        self.resume_button.clicked.connect(self._resume)
        self.resume_button.setToolTip(self.tr("Continue from the last finished block"))
        self.chat_button = QPushButton(icon("chat"), self.tr("Chat with it"))
        self.chat_button.clicked.connect(self._chat)
        self.folder_button = QPushButton(icon("folder"), self.tr("Show in folder"))
        self.folder_button.clicked.connect(self._folder)
        queue.finished.connect(self._on_finished)
        top = QHBoxLayout()
        intro = QLabel(self.tr("<b>Conversions</b> run one at a time in the background; "
                               "earlier ones stay listed with their report cards."))
        intro.setWordWrap(True)
        top.addWidget(intro, 1)
        top.addWidget(self.new_button)
        actions = QHBoxLayout()
        for b in (self.pause_button, self.resume_button, self.cancel_button, self.chat_button, self.folder_button):
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
        self.rows: list = []  # Past records, then this session's QueueEntry objects, in table order
        self._load_history()
        queue.changed.connect(self._on_changed)
        self._show_selected()

    # --- rows ----------------------------------------------------------------------------------
    def _load_history(self) -> None:
        try:
            records = api.conversion_history()
        except Exception as exc:  # an unreadable history must not stop the window from opening
            self.log.setPlainText(str(exc))
            return
        for record in reversed(records):  # oldest first, as this session's rows follow
            if record.get("kind") not in (None, "convert", "conversion"):
                continue
            self._add_row(Past(record))

    def _add_row(self, row) -> int:
        r = self.table.rowCount()
        self.table.insertRow(r)
        self.table.setItem(r, 0, QTableWidgetItem(row.title))
        self.table.item(r, 0).setToolTip(row.title)
        self.table.setItem(r, 1, QTableWidgetItem())
        bar = QProgressBar()
        self.table.setCellWidget(r, 2, bar)
        self.table.setItem(r, 3, QTableWidgetItem())
        self.rows.append(row)
        self._paint(r, row)
        return r

    def _paint(self, r: int, row) -> None:
        status = self.tr(STATUS_TEXT.get(row.status, row.status))
        if isinstance(row, QueueEntry):
            if row.status == RUNNING and row.stage:
                status += f": {row.stage}"
            if row.status == FAILED:
                status += f": {row.error}"
            if row.status == PAUSED and row.paused_at:
                status += " " + self.tr("(block %1/%2)").replace("%1", str(row.paused_at[0])).replace(
                    "%2", str(row.paused_at[1]))
        elif row.record.get("message") and row.status != DONE:
            status += f": {row.record['message']}"
        item = self.table.item(r, 1)
        item.setText(status)
        item.setIcon(icon(STATUS_ICON.get(row.status, "queued")))
        item.setToolTip(status)
        bar: QProgressBar = self.table.cellWidget(r, 2)
        if row.status == QUEUED:
            bar.setRange(0, 1)
            bar.setValue(0)
            bar.setFormat(self.tr("waiting"))
        elif isinstance(row, QueueEntry) and row.status == RUNNING:
            bar.setRange(0, 100)
            bar.setFormat("%p%")
            bar.setValue(int(row.overall_fraction * 100))
        else:
            bar.setRange(0, 100)
            bar.setValue(100 if row.status == DONE else 0)
            bar.setFormat(self.tr("done") if row.status == DONE else "—")
        left = ""
        if isinstance(row, QueueEntry) and row.eta_s and not row.finished:
            left = human_seconds(row.eta_s)
        elif isinstance(row, Past):
            left = row.when()
        self.table.item(r, 3).setText(left)

    def _on_changed(self, entry: QueueEntry) -> None:
        if entry not in self.rows:
            r = self._add_row(entry)
            if self.table.currentRow() < 0 or entry.status in (QUEUED, RUNNING):
                self.table.selectRow(r)
        r = self.rows.index(entry)
        self._paint(r, entry)
        if self.selected() is entry:
            self._show_selected()

    def _on_finished(self, entry: QueueEntry) -> None:
        if entry.status == FAILED and entry.exception is not None:
            self.error_box = show_error(self, entry.exception, entry.error_details)

    # --- the selected conversion -----------------------------------------------------------------
    def selected(self):
        r = self.table.currentRow()
        return self.rows[r] if 0 <= r < len(self.rows) else None

    def _show_selected(self) -> None:
        e = self.selected()
        if e is None:
            text = self.tr("No conversions yet. Press “New conversion…”.")
        elif isinstance(e, Past):
            rec = e.record
            lines = [self.tr("Source: %1").replace("%1", rec["source"]),
                     self.tr("Output: %1").replace("%1", rec["output"]),
                     self.tr("Status: %1").replace("%1", self.tr(STATUS_TEXT.get(e.status, e.status)))]
            if rec.get("message"):
                lines.append(rec["message"])
            lines += card_summary(api.read_report_card(e.output) if e.output.exists() else None)
            text = "\n".join(lines)
        else:
            text = "\n".join(e.log)
            if e.status == DONE and (p := result_path(e)) is not None:
                text += "\n\n" + "\n".join(card_summary(api.read_report_card(p)))
        self.log.setPlainText(text)
        self.cancel_button.setEnabled(isinstance(e, QueueEntry) and not e.finished)
        self.pause_button.setEnabled(isinstance(e, QueueEntry) and e.status == RUNNING and e.resumable
                                     and not e.pausing)
        self.resume_button.setEnabled(isinstance(e, QueueEntry) and e.status == PAUSED)
        done = e is not None and _path_of(e) is not None
        self.chat_button.setEnabled(done)
        self.folder_button.setEnabled(done)

    def _cancel(self) -> None:
        if isinstance(e := self.selected(), QueueEntry):
            self.queue.cancel(e)

    def _pause(self) -> None:
        if isinstance(e := self.selected(), QueueEntry):
            self.queue.pause(e)
            self._show_selected()

    def _resume(self) -> None:
        if isinstance(e := self.selected(), QueueEntry):
            self.queue.resume(e)

    def _chat(self) -> None:
        if (e := self.selected()) is not None and (p := _path_of(e)) is not None:
            self.chat_requested.emit(str(p))

    def _folder(self) -> None:
        if (e := self.selected()) is not None and (p := _path_of(e)) is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(p if p.is_dir() else p.parent)))
