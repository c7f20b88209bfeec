"""The status bar: the device in use and the memory and CPU of Bitsmith's processes (the window and
any conversion it runs), refreshed every 2 s through the engine's telemetry."""

from __future__ import annotations

import math

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QStatusBar

from bitsmith.engine import api
from bitsmith.engine.api import ProcessSampler, human_bytes


class AppStatusBar(QStatusBar):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.sampler = ProcessSampler()  # this process and its children (a running conversion)
        self.device_label = QLabel()
        self.memory_label = QLabel()
        self.memory_label.setToolTip(self.tr("Resident memory and CPU use of Bitsmith and of any conversion it runs "
                                             "(100 % = one core busy)"))
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
        s = self.sampler.sample()
        cpu = "" if math.isnan(s.cpu_percent) else self.tr(" · CPU %1 %").replace("%1", f"{s.cpu_percent:.0f}")
        self.memory_label.setText(self.tr("Memory: %1").replace("%1", human_bytes(s.rss_bytes)) + cpu)
