"""The status bar: the device in use and the memory and CPU of Bitsmith's processes (the window and
any conversion it runs), refreshed every 3 s through the engine's telemetry."""

from __future__ import annotations

import math

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QStatusBar

from bitsmith.engine import api
from bitsmith.engine.api import ProcessSampler, human_bytes

from .workers import call_in_worker

#: The device check imports torch (seconds); it waits until the window is up and runs off the GUI thread.
DEVICE_CHECK_DELAY_MS = 1500


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
        self._device = None
        self._device_worker = None
        QTimer.singleShot(DEVICE_CHECK_DELAY_MS, self._check_device)
        self._timer = QTimer(self, interval=3000)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.refresh()

    def _check_device(self) -> None:
        self._device_worker = call_in_worker(lambda: api.device("auto"), self)
        self._device_worker.result.connect(self._device_known)
        self._device_worker.finished.connect(lambda: setattr(self, "_device_worker", None))
        self._device_worker.start()

    def _device_known(self, device) -> None:
        from .heap import settle_heap

        settle_heap()  # torch has just been imported: keep its objects out of later full collections
        self._device = device
        self.refresh()

    def shutdown(self) -> None:
        if self._device_worker is not None:
            self._device_worker.wait(60000)

    def refresh(self) -> None:
        d = self._device
        if d is None:
            self.device_label.setText(self.tr("Checking for a GPU…"))
        else:
            if d.free_bytes is not None:
                text = self.tr("GPU: %1 (%2 free)").replace("%1", d.name).replace("%2", human_bytes(d.free_bytes))
            else:
                text = self.tr("CPU: %1").replace("%1", d.name)
            self.device_label.setText(text)
            self.device_label.setToolTip(d.reason)
        s = self.sampler.sample()
        cpu = "" if math.isnan(s.cpu_percent) else self.tr(" · CPU %1 %").replace("%1", f"{s.cpu_percent:.0f}")
        self.memory_label.setText(self.tr("Memory: %1").replace("%1", human_bytes(s.rss_bytes)) + cpu)
