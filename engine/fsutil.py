"""Safe outputs: write under a temporary name next to the target, rename when complete.

A cancel, an error or a crash leaves at most a hidden `.bitsmith-partial-*` entry, never something
that looks like a model; leftovers from a crash are swept on the next write to the same folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

from .errors import InvalidInput, NotEnoughDisk

PARTIAL_PREFIX = ".bitsmith-partial-"
#: Room kept free beyond the estimate, so the system is not left with a full disk.
DISK_MARGIN = 256 * 1024**2


def free_bytes(path: Path) -> int:
    probe = Path(path)
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_disk(target: Path, needed: int) -> None:
    free = free_bytes(target.parent)
    if needed + DISK_MARGIN > free:
        raise NotEnoughDisk(
            f"{target.parent} has {_gib(free)} free but the output needs about {_gib(needed)}",
            suggestion="free some space or choose another folder",
        )


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB"


def _owner_alive(entry: Path) -> bool:
    """Partial names carry the writer's process id; a live writer's output is left alone."""
    pid_text = entry.name[len(PARTIAL_PREFIX):].split("-", 1)[0]
    if not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(parent: Path) -> None:
    for stale in parent.glob(PARTIAL_PREFIX + "*"):
        if _owner_alive(stale):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


@contextlib.contextmanager
def staged_output(target: Path, *, is_dir: bool, overwrite: bool = False):
    """Yield a temporary path beside `target`; on clean exit it is renamed to `target`.

    On any exception (including `Cancelled`) the temporary path is removed and the exception
    propagates. An existing target is refused unless `overwrite`, and is then replaced only after
    the new output is complete.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise InvalidInput(f"{target} already exists", suggestion="choose another name or allow overwriting")
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    _sweep(parent)
    temp = parent / f"{PARTIAL_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{target.name}"
    if is_dir:
        temp.mkdir()
    try:
        yield temp
        if target.exists():
            old = parent / f"{PARTIAL_PREFIX}{os.getpid()}-old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            os.replace(temp, target)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(temp) if temp.is_dir() else temp.unlink()
        raise
