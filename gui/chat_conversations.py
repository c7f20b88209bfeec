"""The list of saved conversations beside the chat: open, start, rename, delete and export them.

The history store is the store of truth; the list only shows it. Exports are written as Markdown
(.md) or JSON (.json), the extension added when the user typed none, into the folder used last."""

from __future__ import annotations

import json
import re
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (QFileDialog, QGridLayout, QInputDialog, QLabel, QListWidget, QListWidgetItem,
                               QMessageBox, QPushButton, QVBoxLayout, QWidget)

from .icons import icon

MARKDOWN, JSON = "Markdown (*.md)", "JSON (*.json)"


def export_target(path: str, chosen_filter: str) -> Path:
    """The file an export goes to: the name typed, with .md or .json added when it has neither."""
    p = Path(path)
    if p.suffix.lower() in (".md", ".json"):
        return p
    return p.with_name(p.name + (".json" if chosen_filter == JSON else ".md"))


def safe_file_name(title: str) -> str:
    name = re.sub(r"[^\w\- ]+", "", title).strip()[:60]
    return name or "conversation"


class ConversationList(QWidget):
    opened = Signal(int)  # a conversation id the user picked
    new_requested = Signal()
    deleted = Signal(int)

    def __init__(self, store, parent=None):
        super().__init__(parent)
        self.store = store
        self.list = QListWidget()
        self.list.currentItemChanged.connect(self._picked)
        self.new_button = QPushButton(icon("new"), self.tr("New"))
        self.rename_button = QPushButton(icon("rename"), self.tr("Rename…"))
        self.delete_button = QPushButton(icon("delete"), self.tr("Delete…"))
        self.export_button = QPushButton(icon("export"), self.tr("Export…"))
        self.import_button = QPushButton(icon("add-file"), self.tr("Import…"))
        self.import_button.setToolTip(self.tr("Open a conversation exported as Markdown or JSON, with its settings"))
        self.new_button.clicked.connect(self.new_requested)
        self.import_button.clicked.connect(self.import_file)
        self.rename_button.clicked.connect(self.rename)
        self.delete_button.clicked.connect(self.delete)
        self.export_button.clicked.connect(self.export)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel(self.tr("Conversations")))
        layout.addWidget(self.list, 1)
        grid = QGridLayout()
        for i, b in enumerate((self.new_button, self.rename_button, self.delete_button, self.export_button,
                               self.import_button)):
            grid.addWidget(b, i // 2, i % 2)
        layout.addLayout(grid)

    def refresh(self, select: int | None = None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for c in self.store.list_conversations():
            item = QListWidgetItem(c["title"])
            item.setData(Qt.UserRole, c["id"])
            item.setToolTip(self.tr("Model: %1").replace("%1", c["model_path"]))
            self.list.addItem(item)
            if c["id"] == select:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self._update_buttons()

    def clear_selection(self) -> None:
        self.list.blockSignals(True)
        self.list.setCurrentItem(None)
        self.list.clearSelection()
        self.list.blockSignals(False)
        self._update_buttons()

    def selected_id(self) -> int | None:
        item = self.list.currentItem()
        return item.data(Qt.UserRole) if item else None

    def _picked(self, item, _prev=None) -> None:
        self._update_buttons()
        if item is not None:
            self.opened.emit(item.data(Qt.UserRole))

    def _update_buttons(self) -> None:
        has = self.selected_id() is not None
        for b in (self.rename_button, self.delete_button, self.export_button):
            b.setEnabled(has)

    def rename(self) -> None:
        cid = self.selected_id()
        if cid is None:
            return
        title, ok = QInputDialog.getText(self, self.tr("Rename conversation"), self.tr("Title:"),
                                         text=self.list.currentItem().text())
        if ok and title.strip():
            self.store.rename(cid, title.strip())
            self.refresh(select=cid)

    def delete(self) -> None:
        cid = self.selected_id()
        if cid is None:
            return
        title = self.list.currentItem().text()
        if QMessageBox.question(self, self.tr("Delete conversation"),
                                self.tr("Delete the conversation “%1”? This cannot be undone.").replace("%1", title)
                                ) == QMessageBox.Yes:
            self.store.delete(cid)
            self.refresh()
            self.deleted.emit(cid)

    def export(self) -> Path | None:
        cid = self.selected_id()
        if cid is None:
            return None
        settings = QSettings()
        folder = settings.value("chat/export_dir", str(Path.home()), str)
        suggested = str(Path(folder) / (safe_file_name(self.list.currentItem().text()) + ".md"))
        path, chosen = QFileDialog.getSaveFileName(self, self.tr("Export conversation"), suggested,
                                                   f"{MARKDOWN};;{JSON}")
        if not path:
            return None
        target = export_target(path, chosen)
        if target.suffix.lower() == ".json":
            text = json.dumps(self.store.export_json(cid), indent=2, ensure_ascii=False)
        else:
            text = self.store.export_markdown(cid)
        target.write_text(text, encoding="utf-8")
        settings.setValue("chat/export_dir", str(target.parent))
        return target

    def import_file(self, path: str | None = None) -> int | None:
        """A conversation exported earlier (here or by another Bitsmith) joins the list, selected."""
        from bitsmith.engine import api

        from .errors import show_error

        settings = QSettings()
        if path is None:
            folder = settings.value("chat/export_dir", str(Path.home()), str)
            path, _ = QFileDialog.getOpenFileName(self, self.tr("Import conversation"), folder,
                                                  f"{MARKDOWN};;{JSON}")
            if not path:
                return None
        try:
            cid = api.import_conversation(path, self.store)
        except api.EngineError as exc:
            show_error(self, exc)
            return None
        settings.setValue("chat/export_dir", str(Path(path).parent))
        self.refresh(select=cid)
        return cid

