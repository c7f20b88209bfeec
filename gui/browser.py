"""The model browser: the catalog as a sortable, filterable table with a details panel."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QFrame, QGridLayout, QHBoxLayout,
                               QHeaderView, QInputDialog, QLabel, QLineEdit, QMenu, QMessageBox, QPushButton,
                               QScrollArea, QSplitter, QTableView, QTabWidget, QVBoxLayout, QWidget)

from bitsmith.engine import api
from bitsmith.engine.api import ModelInfo, Origin

from .catalog_model import HIDDEN_BY_DEFAULT, INFO_ROLE, CatalogFilter, CatalogModel
from .model_details import ModelDetails
from .icons import icon
from .workers import call_in_worker


class ModelBrowser(QWidget):
    chat_requested = Signal(object)  # ModelInfo
    convert_requested = Signal(object)
    compare_requested = Signal(object)
    models_changed = Signal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.model = CatalogModel(self)
        self.proxy = CatalogFilter(self)
        self.proxy.setSourceModel(self.model)
        self._worker = None

        self.filter_box = QLineEdit(placeholderText=self.tr("Filter models (name, format, type, path)…"))
        self.filter_box.setClearButtonEnabled(True)
        self.filter_box.textChanged.connect(self.proxy.set_needle)
        add_folder = QPushButton(icon("add-folder"), self.tr("Add folder…"))
        add_folder.clicked.connect(self._add_folder)
        add_file = QPushButton(icon("add-file"), self.tr("Add file…"))
        add_file.clicked.connect(self._add_file)
        self.folders_button = QPushButton(icon("folder"), self.tr("Folders…"))
        self.folders_button.setToolTip(self.tr("The folders and files you added; remove one from the list"))
        self.folders_button.clicked.connect(self.manage_folders)
        self.refresh_button = QPushButton(icon("refresh"), self.tr("Refresh"))
        self.refresh_button.clicked.connect(self.refresh)
        top = QHBoxLayout()
        top.addWidget(self.filter_box, 1)
        for b in (add_folder, add_file, self.folders_button, self.refresh_button):
            top.addWidget(b)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(True)
        header.setContextMenuPolicy(Qt.CustomContextMenu)
        header.customContextMenuRequested.connect(self._column_menu)
        self.table.setTextElideMode(Qt.ElideMiddle)
        for col in HIDDEN_BY_DEFAULT:  # in the details panel; right-click the header to show them
            self.table.setColumnHidden(col, True)
        self.table.selectionModel().currentRowChanged.connect(self._on_current)
        self.table.doubleClicked.connect(lambda _i: self._emit_for_selected(self.chat_requested))

        self.details = ModelDetails()
        self.chat_button = QPushButton(icon("chat"), self.tr("Chat"))
        self.chat_button.clicked.connect(lambda: self._emit_for_selected(self.chat_requested))
        self.convert_button = QPushButton(icon("convert"), self.tr("Convert…"))
        self.convert_button.clicked.connect(lambda: self._emit_for_selected(self.convert_requested))
        self.evaluate_button = QPushButton(icon("evaluate"), self.tr("Evaluate…"))
        self.evaluate_button.setToolTip(self.tr("Perplexity on held-out text, and what it lost against its source"))
        self.evaluate_button.clicked.connect(self.evaluate_selected)
        self.compare_button = QPushButton(icon("compare"), self.tr("Compare…"))
        self.compare_button.setToolTip(self.tr("This model's family of variants on one chart"))
        self.compare_button.clicked.connect(lambda: self._emit_for_selected(self.compare_requested))
        self.folder_button = QPushButton(icon("folder"), self.tr("Show in folder"))
        self.folder_button.clicked.connect(self._show_in_folder)
        self.remove_button = QPushButton(icon("remove"), self.tr("Remove from list"))
        self.remove_button.clicked.connect(self._remove_selected)
        self.export_button = QPushButton(icon("export"), self.tr("Export…"))
        self.export_button.setToolTip(self.tr("To Ollama or LM Studio, or a model card saying how it was made "
                                              "and how to load it elsewhere"))
        self.export_button.clicked.connect(self.export_selected)
        actions = QGridLayout()
        for i, b in enumerate((self.chat_button, self.convert_button, self.evaluate_button,
                               self.compare_button, self.export_button, self.folder_button, self.remove_button)):
            actions.addWidget(b, i // 2, i % 2)
        right = QWidget()
        rl = QVBoxLayout(right)
        scroll = QScrollArea()  # long details scroll instead of being clipped
        scroll.setWidget(self.details)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        rl.addWidget(scroll, 1)
        rl.addLayout(actions)

        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([800, 280])  # the table has the most to show
        self.status = QLabel()
        local = QWidget()
        local_layout = QVBoxLayout(local)
        local_layout.addLayout(top)
        local_layout.addWidget(self.splitter, 1)
        local_layout.addWidget(self.status)
        # The Hub tab is built when first opened: start-up makes no network call and pays nothing for it.
        self.hub = None
        self.tabs = QTabWidget()
        self.tabs.addTab(local, self.tr("On this machine"))
        self.tabs.addTab(QWidget(), self.tr("Hugging Face Hub"))
        self.tabs.currentChanged.connect(self._open_hub)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self._update_actions(None)

    def _open_hub(self, index: int) -> None:
        if index != 1 or self.hub is not None:
            return
        from .hub_tab import HubTab

        self.hub = HubTab()
        self.hub.downloaded.connect(lambda _path: self.refresh())  # a download joins the list
        self.tabs.blockSignals(True)
        self.tabs.removeTab(1)
        self.tabs.insertTab(1, self.hub, self.tr("Hugging Face Hub"))
        self.tabs.setCurrentIndex(1)
        self.tabs.blockSignals(False)

    def export_selected(self) -> None:
        m = self.selected_model()
        if m is None:
            return
        from .export_dialog import ExportDialog

        self.export_dialog = ExportDialog(m.path, self)
        self.export_dialog.open()

    # --- scanning ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rescan the catalog off the GUI thread (GGUF headers can take a moment to read)."""
        if self._worker is not None:
            return
        self.status.setText(self.tr("Looking for models…"))
        self.refresh_button.setEnabled(False)
        self._worker = call_in_worker(api.scan, self)
        self._worker.result.connect(self._on_scanned)
        self._worker.errored.connect(lambda exc, _tb: self.status.setText(str(exc)))
        self._worker.finished.connect(self._on_scan_finished)
        self._worker.start()

    def _on_scanned(self, models: list) -> None:
        current = self.selected_model()
        self.model.set_models(models)
        self.fit_columns()
        n_ok = sum(1 for m in models if m.ok)
        text = self.tr("1 model found") if n_ok == 1 else self.tr("%1 models found").replace("%1", str(n_ok))
        if n_ok < len(models):
            text += self.tr("; %1 cannot be used (select one to see why)").replace("%1", str(len(models) - n_ok))
        self.status.setText(text)
        self.select_path(current.path if current else (models[0].path if models else None))
        self.models_changed.emit(models)
        if self._just_added is not None:
            self._check_added(self._just_added, models)

    def _on_scan_finished(self) -> None:
        self._worker = None
        self.refresh_button.setEnabled(True)

    def shutdown(self) -> None:
        if self.hub is not None:
            self.hub.shutdown()  # a download in progress is cancelled; its partial file is kept to resume
        if self._worker is not None:
            self._worker.wait(30000)

    def is_scanning(self) -> bool:
        return self._worker is not None

    # --- selection ---------------------------------------------------------------------------
    def selected_model(self) -> ModelInfo | None:
        index = self.table.currentIndex()
        return index.data(INFO_ROLE) if index.isValid() else None

    def select_path(self, path: str | None) -> None:
        if not path:
            return
        for row in range(self.proxy.rowCount()):
            idx = self.proxy.index(row, 0)
            if idx.data(INFO_ROLE).path == path:
                self.table.setCurrentIndex(idx)
                return

    def _on_current(self, current: QModelIndex, _prev=None) -> None:
        m = current.data(INFO_ROLE) if current.isValid() else None
        self.details.show_model(m, self.model.models())
        self._update_actions(m)

    def _update_actions(self, m: ModelInfo | None) -> None:
        usable = m is not None and m.ok
        self.chat_button.setEnabled(usable)
        self.convert_button.setEnabled(usable)
        self.evaluate_button.setEnabled(usable)
        self.compare_button.setEnabled(usable)
        self.folder_button.setEnabled(m is not None)
        self.export_button.setEnabled(usable)
        self.remove_button.setEnabled(m is not None and m.origin is Origin.USER)

    def _emit_for_selected(self, signal) -> None:
        m = self.selected_model()
        if m is not None and m.ok:
            signal.emit(m)

    def evaluate_selected(self):
        """Open the evaluation dialog for the selected model; its figures refresh the list when saved."""
        from .evaluate_dialog import EvaluateDialog

        m = self.selected_model()
        if m is None or not m.ok:
            return None
        self.evaluate_dialog = EvaluateDialog(m, self.model.models(), self)
        self.evaluate_dialog.evaluated.connect(lambda _p: self.refresh())
        self.evaluate_dialog.show()
        return self.evaluate_dialog

    def fit_columns(self) -> None:
        """Every shown column fits the table's width: short columns to their contents, the name
        column takes what is left (elided in the middle), never less than 160 px."""
        self.table.resizeColumnsToContents()
        shown = [c for c in range(self.model.columnCount()) if not self.table.isColumnHidden(c)]
        others = sum(self.table.columnWidth(c) for c in shown if c != 0)
        room = self.table.viewport().width() - others - 4
        self.table.setColumnWidth(0, max(160, min(room, 340)))

    def resizeEvent(self, event):
        super().resizeEvent(event)
        if self.model.rowCount():
            self.fit_columns()

    def _column_menu(self, pos) -> None:
        menu = QMenu(self)
        for col, name in enumerate(CatalogModel.COLUMNS):
            if col == 0:
                continue
            act = menu.addAction(self.tr(name))
            act.setCheckable(True)
            act.setChecked(not self.table.isColumnHidden(col))
            act.toggled.connect(lambda on, c=col: (self.table.setColumnHidden(c, not on), self.fit_columns()))
        menu.popup(self.table.horizontalHeader().mapToGlobal(pos))
        self.column_menu = menu

    # --- adding and removing -----------------------------------------------------------------
    _just_added: str | None = None

    def add_path(self, path: str) -> None:
        try:
            added = api.add_model_path(path)
        except Exception as exc:  # a typed engine error with a one-line message
            QMessageBox.warning(self, self.tr("Cannot add"), str(exc))
            return
        self._just_added = added
        self.refresh()

    def _check_added(self, added: str, models: list) -> None:
        """A folder or file in which the scan found no model is not kept in the list (it could not be
        seen, so it could not be removed either): say so instead."""
        self._just_added = None
        inside = [m for m in models if m.path == added or m.path.startswith(added.rstrip("/") + "/")]
        if inside:
            self.select_path(inside[0].path)
            return
        api.remove_model_path(added)
        self.status.setText(self.tr("No model found in %1; it was not added").replace("%1", added))
        self.add_box = QMessageBox(QMessageBox.Information, self.tr("No model found"),
                                   self.tr("Bitsmith found no model in %1, so it was not added to the list. "
                                           "Add a folder that holds GGUF files or Hugging Face model folders "
                                           "(config.json with .safetensors weights).").replace("%1", added),
                                   QMessageBox.Ok, self)
        self.add_box.open()

    def manage_folders(self) -> None:
        """Pick one of the added paths to remove from the list (nothing on disk is touched)."""
        paths = api.user_model_paths()
        if not paths:
            QMessageBox.information(self, self.tr("Folders"), self.tr("You have not added any folder or file."))
            return
        listed = {m.path for m in self.model.models()}
        labels = [p if any(x == p or x.startswith(p.rstrip("/") + "/") for x in listed)
                  else self.tr("%1 (no models)").replace("%1", p) for p in paths]
        choice, ok = QInputDialog.getItem(self, self.tr("Remove a folder from the list"),
                                          self.tr("Folders and files you added (files on disk stay):"),
                                          labels, 0, False)
        if ok and choice:
            api.remove_model_path(paths[labels.index(choice)])
            self.refresh()

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Add a folder of models"))
        if folder:
            self.add_path(folder)

    def _add_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Add a model file"), "",
                                              self.tr("GGUF models (*.gguf);;All files (*)"))
        if path:
            self.add_path(path)

    def _remove_selected(self) -> None:
        m = self.selected_model()
        if m is None or m.origin is not Origin.USER:
            return
        # Only the list entry goes; files on disk are never touched here.
        if not api.remove_model_path(m.path):
            parent = next((p for p in api.user_model_paths() if m.path.startswith(p)), None)
            if parent is None or QMessageBox.question(
                self, self.tr("Remove folder from list"),
                self.tr("%1 was found inside the folder %2. Remove that whole folder from the list? "
                        "No files are deleted.").replace("%1", m.name).replace("%2", parent),
            ) != QMessageBox.Yes:
                return
            api.remove_model_path(parent)
        self.refresh()

    def _show_in_folder(self) -> None:
        m = self.selected_model()
        if m is not None:
            p = Path(m.path)
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(p if p.is_dir() else p.parent)))

    # --- drag and drop -----------------------------------------------------------------------
    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.add_path(url.toLocalFile())
        event.acceptProposedAction()

