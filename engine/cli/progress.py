"""Terminal rendering of job events: a one-line progress bar with ETA on stderr."""

from __future__ import annotations

import sys
import time

from ..api import Done, Log, Metric, Progress


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressPrinter:
    """Call with each event; draws a bar when stderr is a terminal, plain lines otherwise."""

    def __init__(self, stream=None, width: int = 30, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.width = width
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_plain = 0.0
        self._bar_open = False

    def __call__(self, event) -> None:
        if self.quiet:
            return
        if isinstance(event, Progress):
            self._progress(event)
        elif isinstance(event, Log):
            self._line(f"{event.message}" if event.level == "info" else f"{event.level}: {event.message}")
        elif isinstance(event, Metric):
            self._line(f"{event.name}: {event.value:g} {event.unit}".rstrip())
        elif isinstance(event, Done):
            self._close()

    def _progress(self, p: Progress) -> None:
        frac = p.fraction
        if self.tty:
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"\r{p.stage:<14.14} [{bar}] {p.step}/{p.total} ETA {_fmt_eta(p.eta_s)} {p.detail:<24.24}"
            self.stream.write(text)
            self.stream.flush()
            self._bar_open = True
        else:
            now = time.monotonic()
            if p.step == 0:
                return  # "0 of N" says nothing in a log; the first real step is printed
            if now - self._last_plain >= 2.0 or p.step == p.total:
                self._last_plain = now
                self._line(f"{p.stage}: {p.step}/{p.total} ({frac:.0%}) ETA {_fmt_eta(p.eta_s)} {p.detail}".rstrip())

    def _line(self, text: str) -> None:
        self._close()
        print(text, file=self.stream, flush=True)

    def _close(self) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False
