"""Engine errors become plain-language dialogs; anything unexpected is logged with its traceback in
the standard log folder and shown with that file's path. A cancel is never shown as an error."""

from __future__ import annotations

import logging
import sys

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QMessageBox, QWidget

from bitsmith.engine.api import Cancelled, EngineError
from bitsmith.engine.api import log_file as _engine_log_file

log = logging.getLogger("bitsmith")


def log_file():
    return _engine_log_file()


def _flush() -> None:
    for handler in log.handlers:
        handler.flush()


def describe(exc: BaseException, details: str = "") -> tuple[str, str, str]:
    """(title, message, details) for a dialog. Every error shown is logged with its details (a
    conversion's traceback comes from its child process), and a message that sends the user to
    "the log file" names it."""
    if isinstance(exc, EngineError):
        log.warning("%s: %s%s", exc.title, exc, f"\n{details}" if details else "")
        _flush()
        message = str(exc).replace("see the log file", f"see the log file {log_file()}")
        return exc.title, message, details
    log.error("unexpected error: %s\n%s", exc, details)
    _flush()
    message = (f"Something unexpected went wrong: {type(exc).__name__}: {exc}\n\n"
               f"The details were written to {log_file()}")
    return "Unexpected error", message, details


def show_error(parent: QWidget | None, exc: BaseException, details: str = "") -> QMessageBox | None:
    if isinstance(exc, Cancelled):
        return None
    title, message, details = describe(exc, details)
    box = QMessageBox(QMessageBox.Warning, QCoreApplication.translate("Errors", title), message,
                      QMessageBox.Ok, parent)
    if details:
        box.setDetailedText(details)
    box.setModal(True)
    box.open()
    return box


def install_excepthook() -> None:
    """Exceptions escaping a slot on the GUI thread are shown, not silently printed."""
    import traceback

    def hook(exc_type, exc, tb):
        show_error(None, exc, "".join(traceback.format_exception(exc_type, exc, tb)))

    sys.excepthook = hook
