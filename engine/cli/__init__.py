"""The `bitsmith` command line. Each sub-command lives in its own `cmd_*.py` module exposing
`register(subparsers)`; this package finds them, so adding a command touches no shared file.

Errors print one line to stderr and exit with status 2; a cancel (Ctrl-C) exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ..api import Cancelled, EngineError, __version__

EXIT_ERROR = 2
EXIT_CANCELLED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bitsmith",
        description="Convert local language models and chat with them offline. "
        "With no command, opens the desktop application.",
    )
    parser.add_argument("--version", action="version", version=f"bitsmith {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def quiet_library_progress_bars() -> None:
    """Bitsmith prints its own progress lines; transformers' and huggingface_hub's tqdm bars ("Loading
    weights") would interleave with them on stderr. The variable reaches child processes too."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already imported (and its switch already read): turn it off
        sys.modules["transformers"].utils.logging.disable_progress_bar()


def run(argv: list[str]) -> int:
    """Run a sub-command (argv without the program name). Returns the exit status."""
    quiet_library_progress_bars()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        return int(args.func(args) or 0)
    except Cancelled as exc:  # its message may say what is kept ("... blocks are kept in ...")
        print(f"bitsmith: {exc}" if str(exc) else "bitsmith: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print("bitsmith: interrupted", file=sys.stderr)
        return EXIT_CANCELLED
    except EngineError as exc:
        print(f"bitsmith: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
