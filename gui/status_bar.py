"""The status bar: the device in use and this process's resident memory, refreshed every 2 s."""

from __future__ import annotations

import psutil
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QStatusBar

from bitsmith.engine import api
from bitsmith.engine.units import human_bytes


class AppStatusBar(QStatusBar):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._proc = psutil.Process()
        self.device_label = QLabel()
        self.memory_label = QLabel()
        self.addPermanentWidget(self.device_label)
        self.addPermanentWidget(self.memory_label)
        self._device = api.device("auto")
        self._timer = QTimer(self, interval=2000)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.refresh()

    def refresh(self) -> None:
        d = self._device
        if d.free_bytes is not None:
            text = self.tr("GPU: %1 (%2 free)").replace("%1", d.name).replace("%2", human_bytes(d.free_bytes))
        else:
            text = self.tr("CPU: %1").replace("%1", d.name)
        self.device_label.setText(text)
        self.device_label.setToolTip(d.reason)
        self.memory_label.setText(self.tr("Memory: %1").replace("%1", human_bytes(self._proc.memory_info().rss)))
