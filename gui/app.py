"""Creating the QApplication and the main window."""

from __future__ import annotations

import argparse
import logging
import sys

from bitsmith.engine.api import config_dir

from .heap import settle_heap


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bitsmith", description="Open the Bitsmith window.")
    p.add_argument("--model", help="select this model (a path) instead of the last one used")
    args, _qt_args = p.parse_known_args(argv)
    return args


def configure_logging() -> None:
    """Bitsmith's own messages (and unexpected errors with their tracebacks) go to the log file."""
    from .errors import log_file

    logger = logging.getLogger("bitsmith")
    path = str(log_file())
    if not any(getattr(h, "baseFilename", None) == path for h in logger.handlers):
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def create_app(argv: list[str] | None = None):
    from PySide6.QtCore import QCoreApplication, QSettings
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setOrganizationName("Bitsmith")
    QCoreApplication.setApplicationName("Bitsmith")
    # Settings live beside the engine's own config, so BITSMITH_HOME moves both.
    QSettings.setDefaultFormat(QSettings.IniFormat)
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(config_dir()))
    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    from PySide6.QtGui import QIcon

    from bitsmith.engine.api import resources_root

    app.setWindowIcon(QIcon(str(resources_root() / "icons" / "bitsmith.svg")))
    return app


def no_display_reason(env=None, argv: list[str] | None = None) -> str | None:
    """Why a window cannot open here (Linux without X11 or Wayland), else None. Qt would abort the
    process with a core dump instead of saying so."""
    import os

    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or env.get("QT_QPA_PLATFORM") or "-platform" in (argv or []):
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return "no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set)"


def run_app(argv: list[str]) -> int:
    args = _parse(argv)
    if (reason := no_display_reason(argv=argv)) is not None:
        print(f"bitsmith: error: {reason}; the command line works without one: bitsmith --help", file=sys.stderr)
        return 2
    from .qt_libraries import problem

    if (reason := problem(argv=argv)) is not None:  # Qt would abort with a core dump instead
        print(f"bitsmith: error: {reason}", file=sys.stderr)
        return 2
    configure_logging()
    app = create_app(argv)
    from .errors import install_excepthook

    install_excepthook()
    from .main_window import MainWindow

    # No --model: the last model used, else the bundled one (the catalog lists it first).
    window = MainWindow(initial_model=args.model, scan=False)
    window.show()
    # The catalog scan (GGUF headers: numpy, gguf, the Hub cache) runs on a worker thread, but it
    # shares the interpreter with the GUI thread: started before the first paint, it delayed it.
    after_first_paint(window, lambda: (window.browser.refresh(), settle_heap()))
    return app.exec()


def after_first_paint(widget, fn, fallback_ms: int = 3000) -> None:
    """Call `fn` once, from the event loop, after `widget` has painted for the first time (or after
    `fallback_ms`, should no paint come)."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    class Once(QObject):
        done = False

        def fire(self) -> None:
            if not self.done:
                self.done = True
                widget.removeEventFilter(self)
                fn()

        def eventFilter(self, obj, event):
            if event.type() == QEvent.Paint and not self.done:
                QTimer.singleShot(0, self.fire)  # after this paint has been delivered
            return False

    once = Once(widget)
    widget.installEventFilter(once)
    QTimer.singleShot(fallback_ms, once.fire)
