"""A real small filesystem for a test: a size-limited tmpfs mounted on a temporary folder (root
only), and a filler that leaves an exact number of bytes free, as another program writing would."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """Mount a tmpfs of `size` (e.g. "4m") on `folder`; skip the test with the reason when the
    system does not let this process mount (the injected-error tests cover the same code path)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the injected ENOSPC tests cover this path")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here ({done.stderr.strip()}); the injected ENOSPC tests cover this path")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(disk: Path, leave: int) -> Path:
    """Take all the free space of `disk` but `leave` bytes (to the filesystem's block) with one file."""
    filler = disk / "other-program.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for _ in range(20):  # a job writing at the same time may take space between two calls
            size = os.fstat(fd).st_size + shutil.disk_usage(disk).free - leave
            try:
                os.posix_fallocate(fd, 0, max(size, 1))
                break
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler

