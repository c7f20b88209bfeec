"""The details panel of the model browser: every field the catalog knows about the selected model,
its report card's figures with their baseline, verdict and explanations, long paths wrapped."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtWidgets import QFormLayout, QLabel, QMenu, QWidget

from bitsmith.engine.api import ModelInfo, detail_lines, family

from .figures import explained


def breakable(text: str) -> str:
    """Long words (paths, hyphenated names, big numbers) may wrap at / - _ , instead of being clipped:
    a zero-width space after each of those characters in words of 16 characters or more."""
    words = []
    for word in text.split(" "):
        if len(word) >= 16:
            for ch in "/\\-_,":
                word = word.replace(ch, ch + "\u200b")
        words.append(word)
    return " ".join(words)


class ValueLabel(QLabel):
    """A detail's value: wraps long paths (see `breakable`), and copies the value as it really is
    (without the invisible break points) from its context menu or Ctrl+C."""

    def __init__(self, value: str, parent=None):
        super().__init__(breakable(value), parent)
        self.value = value
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.setContextMenuPolicy(Qt.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)

    def _menu(self, pos) -> None:
        menu = QMenu(self)
        menu.addAction(self.tr("Copy"), lambda: QGuiApplication.clipboard().setText(self.value))
        menu.popup(self.mapToGlobal(pos))
        self.menu = menu

    def keyPressEvent(self, event):
        if event.matches(QKeySequence.Copy):
            selected = self.selectedText().replace("\u200b", "")
            QGuiApplication.clipboard().setText(selected or self.value)
            return
        super().keyPressEvent(event)


class ModelDetails(QWidget):
    """Every field the catalog knows about the selected model."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._form = QFormLayout(self)
        self._form.setLabelAlignment(Qt.AlignRight)
        self._form.setRowWrapPolicy(QFormLayout.WrapLongRows)  # a long value goes under its label
        self._form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.show_model(None)

    def show_model(self, m: ModelInfo | None, models: list[ModelInfo] | None = None) -> None:
        while self._form.rowCount():
            self._form.removeRow(0)
        if m is None:
            self._form.addRow(QLabel(self.tr("Select a model to see what it is and what it needs.")))
            return
        children = [(p.label, p.name) for p in family(m, models or []) if p.generation == 1]
        self.badge = None
        for key, value, tooltip in explained(detail_lines(m, children), m.report_card):
            if key == "Not available" and m.unavailable:
                # A badge where the user picks the source: one line per path its family cannot take.
                value = "\n".join(f"{path}: {why}" for path, why in m.unavailable.items())
            label = ValueLabel(str(value))
            label.setToolTip(tooltip or str(value))
            name = QLabel(key + ":")
            name.setToolTip(tooltip)
            if key == "Not available":
                self.badge = label
                for widget in (name, label):
                    widget.setStyleSheet("color: #b26a00; font-weight: bold;")
            self._form.addRow(name, label)
