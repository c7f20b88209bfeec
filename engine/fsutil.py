"""Safe outputs: write under a temporary name next to the target, rename when complete.

A cancel, an error or a crash leaves at most a hidden `.bitsmith-partial-*` entry, never something
that looks like a model; leftovers from a crash are swept on the next write to the same folder.
A full disk, whenever it happens, becomes one NotEnoughDisk line naming the disk and the space the
output needs. Two jobs writing the same output are kept apart by a lock file beside it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path

from .errors import InvalidInput, NotEnoughDisk

try:  # POSIX only; without it two jobs on one output are not kept apart (the rename stays atomic)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

PARTIAL_PREFIX = ".bitsmith-partial-"
LOCK_PREFIX = ".bitsmith-lock-"
#: Room kept free beyond the estimate, so the system is not left with a full disk.
DISK_MARGIN = 256 * 1024**2
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
#: What the disk checks last estimated for each target, so a disk that fills up later in the run
#: can still say how much the output needed.
_needed: dict[str, int] = {}


def free_bytes(path: Path) -> int:
    probe = Path(path)
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def mount_point(path: Path) -> Path:
    """The mount point of the filesystem holding `path` (or its nearest existing parent)."""
    probe = Path(os.path.abspath(path))
    while not probe.exists():
        probe = probe.parent
    while not os.path.ismount(probe) and probe != probe.parent:
        probe = probe.parent
    return probe


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 // 10 else f"{n / 1024**2:.1f} MiB"


def disk_shortfall(folder: Path, needed: int, free: int) -> str | None:
    """None when `needed` plus the margin fits in `free`; otherwise one line saying what is short.

    Two cases, so the words never contradict the numbers: the output itself does not fit, or it
    fits but would leave less than the margin Bitsmith keeps free."""
    if needed + DISK_MARGIN <= free:
        return None
    mount = mount_point(folder)
    where = f"{folder}" if mount == Path(os.path.abspath(folder)) else f"{folder} (disk {mount})"
    if needed > free:
        return f"{where} has {_gib(free)} free but the output needs about {_gib(needed)}"
    return (f"{where} has {_gib(free)} free; the output needs about {_gib(needed)}, which would leave less than "
            f"the {_gib(DISK_MARGIN)} Bitsmith keeps free so the disk does not fill up")


def check_disk(target: Path, needed: int) -> None:
    target = Path(target)
    _needed[os.path.abspath(target)] = int(needed)
    problem = disk_shortfall(target.parent, needed, free_bytes(target.parent))
    if problem:
        raise NotEnoughDisk(problem, suggestion="free some space or choose another folder")


def is_disk_full(exc: BaseException) -> bool:
    """An error that means the disk (or the user's quota) ran out. numpy's `tofile` reports a
    short write without an errno ("884736 requested and 746192 written"), and safetensors' Rust
    writer raises its own SafetensorError carrying "(os error 28)"; both count too."""
    if isinstance(exc, OSError):
        if exc.errno in _DISK_FULL_ERRNOS:
            return True
        text = str(exc)
        return exc.errno is None and "requested and" in text and "written" in text
    if type(exc).__name__ == "SafetensorError":
        return any(f"(os error {code})" in str(exc) for code in _DISK_FULL_ERRNOS)
    return False


def disk_full_error(target: Path, exc: BaseException | None = None) -> NotEnoughDisk:
    """The one line for a disk that filled up while `target` was written (call after cleaning up)."""
    target = Path(target)
    needed = _needed.get(os.path.abspath(target))
    need = f"it needs about {_gib(needed)}" if needed else "its size was not estimated"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:  # FAT32's 4 GiB, or a file size limit
        return NotEnoughDisk(f"the disk {mount_point(target.parent)} does not take files as large as {target} ({need})",
                             suggestion="choose a folder on another disk")
    return NotEnoughDisk(
        f"the disk {mount_point(target.parent)} filled up while writing {target} ({need}; "
        f"{_gib(free_bytes(target.parent))} free after removing the partial output)",
        suggestion="free some space or choose another folder")


@contextlib.contextmanager
def disk_full_as_error(target: Path):
    """Turn a full disk anywhere in the block into NotEnoughDisk naming `target`'s disk."""
    try:
        yield
    except NotEnoughDisk:
        raise
    except Exception as exc:
        # A typed error may wrap one: "cannot write the report card (No space left on device)".
        cause = exc if is_disk_full(exc) else exc.__cause__
        if cause is not None and is_disk_full(cause):
            raise disk_full_error(target, cause) from cause
        raise


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


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def replace_text(path: Path, text: str, what: str) -> Path:
    """Write a small text file (a card, a settings file, an export) under a private temporary name
    beside it and rename it into place, so a reader never sees half of it. Unlike staged_output it
    sweeps nothing: the folder may hold another job's partial output. `what` names the file in the
    one-line error ("the report card")."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise InvalidInput(f"{path}: cannot write {what} ({exc.strerror or exc})") from exc
    return path


def check_output(out: Path, source: Path, *, overwrite: bool) -> None:
    """Refuse, before any work, an output that exists (unless `overwrite`) or that would be written
    into the source folder it is converted from (the job would read its own output)."""
    out, source = Path(out), Path(source)
    if out.exists() and not overwrite:
        raise InvalidInput(f"{out} already exists", suggestion="choose another name or allow overwriting (--overwrite)")
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise InvalidInput(f"{out}: the output must not be written inside the source folder {source}")


@contextlib.contextmanager
def staged_output(target: Path, *, is_dir: bool, overwrite: bool = False):
    """Yield a temporary path beside `target`; on clean exit it is renamed to `target`.

    On any exception (including `Cancelled`) the temporary path is removed and the exception
    propagates; a full disk propagates as NotEnoughDisk. An existing target is refused unless
    `overwrite`, and is then replaced only after the new output is complete.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise InvalidInput(f"{target} already exists", suggestion="choose another name or allow overwriting")
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    _sweep(parent)
    temp = parent / f"{PARTIAL_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{target.name}"
    try:
        if is_dir:
            temp.mkdir()
        yield temp
        if target.exists():
            old = parent / f"{PARTIAL_PREFIX}{os.getpid()}-old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            os.replace(temp, target)
            _remove(old)
        else:
            os.replace(temp, target)
    except Exception as exc:
        _remove(temp)
        if is_disk_full(exc):
            raise disk_full_error(target, exc) from exc
        raise
    except BaseException:
        _remove(temp)
        raise


_held: dict[str, int] = {}  # lock files this process holds, so nested locks of one output pass


@contextlib.contextmanager
def output_lock(target: Path):
    """Hold an exclusive lock on `target` for the block: a second job (in any process) writing the
    same output is refused with one line instead of racing this one. The lock is a hidden file
    beside the target, locked with flock, so a killed job's lock is released by the kernel."""
    target = Path(target)
    lock = target.parent / f"{LOCK_PREFIX}{target.name}"
    key = os.path.abspath(lock)
    if fcntl is None or key in _held:
        _held[key] = _held.get(key, 0) + 1
        try:
            yield
        finally:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(lock, target)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(target, exc) from exc
        raise InvalidInput(f"{target.parent}: cannot write there ({exc.strerror or exc})") from None
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            os.unlink(lock)  # before unlocking: a waiter that opened the old file retries
        os.close(fd)


def _acquire(lock: Path, target: Path) -> int:
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError):
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (process {holder})" if holder.isdigit() else ""
            raise InvalidInput(f"{target} is being written by another Bitsmith job{who}",
                               suggestion="wait for it to finish or choose another output") from None
        try:
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:  # not unlinked by the previous holder meanwhile
            with contextlib.suppress(OSError):  # the pid is only a courtesy; a full disk may refuse it
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)
