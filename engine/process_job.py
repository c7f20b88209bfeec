"""Running a job in a child process, with the same generator-of-events contract.

Long conversions call into C extensions that hold the GIL for up to a second at a time (tokenizer
construction, large numpy copies, file writes). In a thread of the GUI's process those calls freeze
the window; in a child process they cannot. Events, the result and errors cross a pipe as the same
dataclasses; cancel crosses as a shared flag that the child's CancelToken reads.
"""

from __future__ import annotations

import multiprocessing
import threading
import traceback
from typing import Callable

from . import errors as engine_errors
from .cancel import NEVER, CancelToken
from .events import Done, Job

POLL_S = 0.05
#: How long a cancelled child gets to clean up its partial output before it is stopped.
CANCEL_GRACE_S = 30.0


def _child(fn: Callable[..., Job], args: tuple, conn, cancel_event, pause_event) -> None:
    token = CancelToken.from_event(cancel_event, pause_event)
    try:
        for event in fn(*args, token):
            conn.send(("event", event))
        conn.send(("end", None))
    except BaseException as exc:  # every failure crosses back; the parent re-raises it
        conn.send(("error", (type(exc).__name__, str(exc), traceback.format_exc())))
    finally:
        conn.close()


def _rebuild(name: str, message: str, remote_tb: str) -> BaseException:
    cls = getattr(engine_errors, name, None)
    if isinstance(cls, type) and issubclass(cls, engine_errors.EngineError):
        exc = cls(message)  # the message already carries the suggestion
    else:
        exc = RuntimeError(f"{name}: {message}")
    exc.remote_traceback = remote_tb
    return exc


def run_in_process(fn: Callable[..., Job], *args, cancel: CancelToken = NEVER,
                   on_start: Callable[[int], None] | None = None) -> Job:
    """Yield the events of `fn(*args, child_token)` run in a fresh (spawned) process. `on_start`
    receives the child's process id once it runs (so a view can graph the memory of the process
    doing the work, not its own)."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    cancel_event, pause_event = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_child, args=(fn, args, sender, cancel_event, pause_event), name="bitsmith-job",
                       daemon=True)
    proc.start()
    sender.close()
    if on_start is not None:
        on_start(proc.pid)
    finished = reported = False
    try:
        while True:
            if cancel.cancelled and not cancel_event.is_set():
                if cancel.paused:
                    pause_event.set()  # first: the child must see why it stops
                cancel_event.set()
            if not receiver.poll(POLL_S):
                continue
            try:
                kind, payload = receiver.recv()
            except EOFError:  # the child closed its end without saying goodbye: it died
                proc.join(5.0)
                raise engine_errors.EngineError(
                    f"the conversion process ended unexpectedly (exit code {proc.exitcode})",
                    suggestion="see the log file; the machine may have run out of memory") from None
            if kind == "event":
                yield payload
                if isinstance(payload, Done):
                    finished = True
            elif kind == "error":
                reported = True
                raise _rebuild(*payload)
            else:
                reported = True
                break
    finally:
        receiver.close()
        if reported:
            # The child has unwound its job (its partial output is already removed) and only has its
            # interpreter to shut down, which takes seconds with torch loaded: a cancel or an error
            # reaches the caller now, and the exit is awaited in the background.
            threading.Thread(target=_reap, args=(proc, cancel_event, 5.0), daemon=True).start()
        else:
            _reap(proc, cancel_event, CANCEL_GRACE_S if not finished else 5.0)


def _reap(proc, cancel_event, grace_s: float) -> None:
    if proc.is_alive():
        cancel_event.set()
        proc.join(grace_s)
    if proc.is_alive():
        proc.terminate()
        proc.join(5.0)
