"""Bitsmith start-up: parse arguments, then open the window or run a command headless."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    from bitsmith.engine.allocator import huge_pages_for_large_tensors

    huge_pages_for_large_tensors()  # before anything imports torch
    multiprocessing.freeze_support()  # a frozen bundle re-enters here for conversion processes
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--self-test":
        return _self_test(argv[1:])
    if not argv or argv[0] in ("--model", "gui") or argv[0].startswith("-platform"):
        from bitsmith.gui.app import run_app

        return run_app(argv[1:] if argv and argv[0] == "gui" else argv)
    from bitsmith.engine.cli import run

    return run(argv)


def _self_test(args: list[str]) -> int:
    """`--self-test [--model FILE.gguf]`: headless and offline; never imports Qt."""
    import argparse

    from bitsmith.engine.selftest import self_test

    parser = argparse.ArgumentParser(prog="bitsmith --self-test", description="Check this installation.")
    parser.add_argument("--model", help="a GGUF file to use instead of the bundled model")
    return self_test(sys.stdout, parser.parse_args(args).model)


if __name__ == "__main__":
    sys.exit(main())
