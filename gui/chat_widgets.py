"""Small widgets of the chat pane: the message box, and the box that holds its two graphs."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QWidget


class MessageInput(QPlainTextEdit):
    """Enter sends; Shift+Enter starts a new line."""

    submitted = Signal()

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key_Return, Qt.Key_Enter) and not event.modifiers() & Qt.ShiftModifier:
            self.submitted.emit()
            return
        super().keyPressEvent(event)


class ChatGraphs(QWidget):
    """Tokens per second and memory, made when first shown or used: pyqtgraph is not loaded at start-up."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(140)
        QHBoxLayout(self).setContentsMargins(0, 0, 0, 0)
        self._speed = self._memory = None

    def _make(self) -> None:
        if self._speed is None:
            from .graphs import MemoryGraph, SpeedGraph

            self._speed = SpeedGraph()
            self._memory = MemoryGraph(children=False)  # the model runs in this process
            self.layout().addWidget(self._speed)
            self.layout().addWidget(self._memory)

    @property
    def speed_graph(self):
        self._make()
        return self._speed

    @property
    def memory_graph(self):
        self._make()
        return self._memory

    def showEvent(self, event):
        self._make()
        super().showEvent(event)
