"""Bitsmith start-up: parse arguments, then open the window or run a command headless."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # a frozen bundle re-enters here for conversion processes
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("--model", "gui") or argv[0].startswith("-platform"):
        from gui.app import run_app

        return run_app(argv[1:] if argv and argv[0] == "gui" else argv)
    from engine.cli import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
