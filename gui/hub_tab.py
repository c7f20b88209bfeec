"""The Hub tab of the model browser: search the Hugging Face Hub, see a repository's files with
size, format, quantization and whether each fits this machine, and download (progress, cancel,
resume) into the shared Hugging Face cache. Offline, one line says so and the rest of the app is
untouched. Every call runs on a worker thread."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QProgressBar,
                               QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from bitsmith.engine import api
from bitsmith.engine.api import EngineError, HubSettings, Progress, human_bytes, human_count

from .errors import show_error
from .workers import JobWorker, call_in_worker


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.setSelectionBehavior(QAbstractItemView.SelectRows)
    t.setEditTriggers(QAbstractItemView.NoEditTriggers)
    t.verticalHeader().setVisible(False)
    t.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
    return t


class HubTab(QWidget):
    #: The snapshot folder of a finished download (the browser refreshes its list).
    downloaded = Signal(object)

    def __init__(self, settings: HubSettings = HubSettings(), parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.worker: JobWorker | None = None
        self.listing = None
        self.query = QLineEdit()
        self.query.setPlaceholderText(self.tr("Search models on the Hugging Face Hub"))
        self.search_button = QPushButton(self.tr("Search"))
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.models = _table([self.tr("Repository"), self.tr("Downloads"), self.tr("Library")])
        self.files = _table([self.tr("File"), self.tr("Size"), self.tr("Format"), self.tr("Quantization"),
                             self.tr("Fits this machine?")])
        self.files.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.download_button = QPushButton(self.tr("Download"))
        self.cancel_button = QPushButton(self.tr("Cancel"))
        self.progress = QProgressBar()
        self.progress.setVisible(False)

        top = QHBoxLayout()
        top.addWidget(self.query, 1)
        top.addWidget(self.search_button)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.models)
        split.addWidget(self.files)
        bottom = QHBoxLayout()
        bottom.addWidget(self.progress, 1)
        bottom.addWidget(self.download_button)
        bottom.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(split, 1)
        layout.addLayout(bottom)

        self.query.returnPressed.connect(self.search)
        self.search_button.clicked.connect(self.search)
        self.models.itemSelectionChanged.connect(self._repo_chosen)
        self.files.itemSelectionChanged.connect(self._update_buttons)
        self.download_button.clicked.connect(self.download)
        self.cancel_button.clicked.connect(self.cancel)
        if api.hub_offline():
            self.status.setText(self.tr("The Hugging Face Hub is off (offline mode); local models still work."))
        self._update_buttons()

    # --- actions --------------------------------------------------------------------------------
    def search(self) -> None:
        text = self.query.text().strip()
        if not text or self._busy():
            return
        self.status.setText(self.tr("Searching…"))
        self._run(call_in_worker(lambda: api.hub_search(text, 30, self.settings), self), self._show_models)

    def _repo_chosen(self) -> None:
        rows = self.models.selectionModel().selectedRows()
        if not rows or self._busy():
            return
        repo = self.models.item(rows[0].row(), 0).text()
        self.status.setText(self.tr("Listing the files of %1…").replace("%1", repo))
        self._run(call_in_worker(lambda: api.hub_files(repo, self.settings), self), self._show_files)

    def download(self) -> None:
        if self.listing is None or self._busy():
            return
        names = [self.files.item(r.row(), 0).text() for r in self.files.selectionModel().selectedRows()]
        repo = self.listing.repo
        worker = JobWorker(lambda token: api.hub_download(repo, names or None, self.settings, token), self)
        worker.event.connect(self._progress)
        worker.cancelled.connect(lambda: self.status.setText(
            self.tr("Download stopped; it continues from there next time.")))
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.status.setText(self.tr("Downloading from %1…").replace("%1", repo))
        self._run(worker, self._downloaded)

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    # --- results ----------------------------------------------------------------------------------
    def _show_models(self, models) -> None:
        self.models.setRowCount(0)
        self.files.setRowCount(0)
        self.listing = None
        for m in models:
            row = self.models.rowCount()
            self.models.insertRow(row)
            for col, text in enumerate((m.repo, human_count(m.downloads), m.library or "")):
                self.models.setItem(row, col, QTableWidgetItem(text))
        self.status.setText(self.tr("%n model(s) found", "", len(models)))

    def _show_files(self, listing) -> None:
        self.listing = listing
        self.files.setRowCount(0)
        for f in listing.files:
            row = self.files.rowCount()
            self.files.insertRow(row)
            fit = f.fit or (listing.folder_fit if f.format == "safetensors" else None)
            cells = (f.name, human_bytes(f.size), f.format, f.quant or "",
                     f"{fit.label} (~{human_bytes(fit.needed_bytes)})" if fit else "")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 4 and fit is not None:
                    item.setToolTip(self.tr("%1 free of %2").replace("%1", human_bytes(fit.available_bytes))
                                    .replace("%2", human_bytes(fit.total_bytes)))
                self.files.setItem(row, col, item)
        notes = "; ".join(listing.notes)
        self.status.setText(f"{listing.repo}: {len(listing.files)} files, {human_bytes(listing.total_bytes)}"
                            + (f" ({notes})" if notes else ""))

    def _progress(self, ev) -> None:
        if isinstance(ev, Progress):
            if ev.stage == "download" and ev.total:
                self.progress.setRange(0, 1000)
                self.progress.setValue(int(1000 * ev.fraction))
                self.progress.setFormat(f"{human_bytes(ev.step)} / {human_bytes(ev.total)}")
            elif ev.stage == "verify":
                self.progress.setFormat(self.tr("verifying %1").replace("%1", ev.detail))

    def _downloaded(self, result) -> None:
        self.status.setText(self.tr("Downloaded into %1").replace("%1", str(result.folder)))
        self.downloaded.emit(Path(result.folder))

    # --- plumbing ---------------------------------------------------------------------------------
    def _busy(self) -> bool:
        return self.worker is not None and self.worker.is_running()

    def _run(self, worker: JobWorker, on_result) -> None:
        self.worker = worker
        worker.result.connect(on_result)
        worker.errored.connect(self._failed)
        worker.finished.connect(self._finished)
        self._update_buttons()
        worker.start()

    def _failed(self, exc, details: str) -> None:
        if isinstance(exc, EngineError):  # offline, unreachable, no such repository, checksum: one line here
            self.status.setText(str(exc))
        else:
            self.status.setText(self.tr("The Hub request failed."))
            show_error(self, exc, details)

    def _finished(self) -> None:
        self.progress.setVisible(False)
        self._update_buttons()

    def _update_buttons(self) -> None:
        busy = self._busy()
        self.search_button.setEnabled(not busy)
        self.download_button.setEnabled(not busy and self.listing is not None)
        self.cancel_button.setEnabled(busy)

    def shutdown(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(10000)
