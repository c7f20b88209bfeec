"""Telling the user a long job ended while they looked elsewhere: a desktop notification (through
the system tray where the desktop has one), the taskbar entry asking for attention, and a status
bar message that is always shown."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from .icons import icon

#: Conversions shorter than this end while the user is still watching: no notification.
NOTIFY_AFTER_S = 20.0


class Notifier(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.tray: QSystemTrayIcon | None = None
        self.sent: list[tuple[str, str]] = []  # (title, message), newest last

    def notify(self, title: str, message: str) -> None:
        self.sent.append((title, message))
        self.window.statusBar().showMessage(f"{title}: {message}", 15000)
        QApplication.alert(self.window)  # flashes the taskbar entry when the window is in the background
        if QSystemTrayIcon.isSystemTrayAvailable() and QSystemTrayIcon.supportsMessages():
            if self.tray is None:
                self.tray = QSystemTrayIcon(icon("convert"), self)
            self.tray.show()
            self.tray.showMessage(title, message, QSystemTrayIcon.Information, 10000)

    def conversion_finished(self, entry) -> None:
        took = (entry.ended or 0) - (entry.started or 0)
        if entry.status == "cancelled" or took < NOTIFY_AFTER_S:
            return
        if entry.status == "done":
            self.notify(self.tr("Conversion finished"), entry.title)
        else:
            self.notify(self.tr("Conversion failed"), f"{entry.title}: {entry.error}")
