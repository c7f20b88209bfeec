"""A "Serve" switch for the chat pane: the loaded model on an OpenAI-compatible endpoint on this
machine (127.0.0.1), with its address to copy. The server shares the chat pane's backend and its
generation lock, so the pane and a client never run the model at once."""

from __future__ import annotations

import threading

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QWidget

from bitsmith.engine import api
from bitsmith.engine.api import ServerSettings

from .errors import show_error


class ServeToggle(QWidget):
    #: (serving, address): emitted when the server starts or stops.
    serving_changed = Signal(bool, str)

    def __init__(self, backend=None, backend_lock: threading.Lock | None = None,
                 settings: ServerSettings = ServerSettings(), parent: QWidget | None = None):
        super().__init__(parent)
        self._backend, self._lock, self._settings = backend, backend_lock, settings
        self.server = None
        self.check = QCheckBox(self.tr("Serve"))
        self.check.setToolTip(self.tr("Answer OpenAI-compatible requests (editors, agents, scripts) with this "
                                      "model on this machine only"))
        self.address = QLabel()
        self.address.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.copy = QPushButton(self.tr("Copy"))
        self.copy.setToolTip(self.tr("Copy the base URL for an OpenAI client"))
        self.copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.url))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.check, self.address, self.copy):
            layout.addWidget(w)
        layout.addStretch(1)
        self.check.toggled.connect(self._toggled)
        self._show()

    @property
    def url(self) -> str:
        return self.server.url if self.server else ""

    def set_backend(self, backend, backend_lock: threading.Lock | None = None) -> None:
        """The chat pane loaded another model (or none): a running server stops, as it served the old one."""
        if self.server is not None:
            self.check.setChecked(False)
        self._backend, self._lock = backend, backend_lock
        self._show()

    def _toggled(self, on: bool) -> None:
        if on and self.server is None:
            try:
                self.server = api.serve(self._backend, self._settings, self._lock).start()
            except Exception as exc:  # noqa: BLE001 - shown as a dialog, the switch goes back off
                self.check.blockSignals(True)
                self.check.setChecked(False)
                self.check.blockSignals(False)
                show_error(self, exc)
                return
            self.serving_changed.emit(True, self.url)
        elif not on and self.server is not None:
            self.server.stop()  # an answer in progress is cancelled first, so this returns promptly
            self.server = None
            self.serving_changed.emit(False, "")
        self._show()

    def _show(self) -> None:
        self.check.setEnabled(self._backend is not None)
        serving = self.server is not None
        self.address.setText(self.url if serving else (self.tr("off") if self._backend else self.tr("no model loaded")))
        self.copy.setVisible(serving)

    def shutdown(self) -> None:
        """Stop serving (call when the window closes)."""
        if self.server is not None:
            self.server.stop()
            self.server = None
