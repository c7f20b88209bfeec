"""A durable record of every conversion, in SQLite beside the chat history.

A job is written as "running" (with its process id and that process's start time) before any
work, and as "done", "failed", "cancelled" or "paused" (stopped to be resumed: its checkpoint is
kept) when it ends. A job killed outright (SIGKILL, power
loss) never gets its end written: the next read finds it "running" with its process gone and
records it as "interrupted". WAL and a busy timeout let the GUI and several CLI processes write at
once; each call opens its own short connection, so the store is safe in threads and child processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path

from .paths import data_dir
from .telemetry import process_started

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    output TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    pid INTEGER NOT NULL,
    pid_started REAL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'cancelled', 'paused', 'interrupted')),
    message TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    ended REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status);
"""
#: How long a writer waits for another process's transaction before giving up (ms).
BUSY_TIMEOUT_MS = 30_000
ENDED = ("done", "failed", "cancelled", "paused")


class JobHistory:
    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else data_dir() / "jobs.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)
            _allow_paused(db)

    @contextlib.contextmanager
    def _connect(self):
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            yield db
        finally:
            db.close()

    def start(self, kind: str, source: str, output: str, settings: dict | None = None) -> int:
        pid = os.getpid()
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO jobs (kind, source, output, settings, pid, pid_started, status, started) "
                "VALUES (?,?,?,?,?,?, 'running', ?)",
                (kind, str(source), str(output), json.dumps(settings or {}, default=str), pid,
                 process_started(pid), time.time()))
            return int(cur.lastrowid)

    def finish(self, job_id: int, status: str, message: str = "") -> None:
        if status not in ENDED:
            raise ValueError(f"a job ends as one of {ENDED}, not {status!r}")
        with self._connect() as db:
            db.execute("UPDATE jobs SET status = ?, message = ?, ended = ? WHERE id = ? AND status = 'running'",
                       (status, message.replace("\n", " "), time.time(), job_id))

    def jobs(self, limit: int = 100) -> list[dict]:
        """The latest jobs, newest first; running jobs whose process is gone become "interrupted"."""
        self.mark_interrupted()
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [{**dict(r), "settings": json.loads(r["settings"])} for r in rows]

    def get(self, job_id: int) -> dict | None:
        self.mark_interrupted()
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else {**dict(row), "settings": json.loads(row["settings"])}

    def mark_interrupted(self) -> int:
        """Record every "running" job whose process no longer exists (or is another process that
        reused the id) as interrupted; returns how many."""
        with self._connect() as db:
            running = db.execute("SELECT id, pid, pid_started FROM jobs WHERE status = 'running'").fetchall()
            gone = [r["id"] for r in running if not _same_process_alive(r["pid"], r["pid_started"])]
            for job_id in gone:
                db.execute("UPDATE jobs SET status = 'interrupted', message = ?, ended = ? "
                           "WHERE id = ? AND status = 'running'",
                           ("the process stopped before the job ended", time.time(), job_id))
        return len(gone)


def _allow_paused(db: sqlite3.Connection) -> None:
    """A store written before "paused" existed has a CHECK that refuses it, and SQLite cannot
    change a CHECK in place: copy the rows into a table with the new one, in one transaction."""
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone()
    if row is None or "'paused'" in row["sql"]:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE jobs RENAME TO jobs_before_paused")
        db.execute("DROP INDEX IF EXISTS jobs_by_status")
        for statement in SCHEMA.split(";"):  # executescript would commit half-way
            if statement.strip():
                db.execute(statement)
        db.execute("INSERT INTO jobs SELECT * FROM jobs_before_paused")
        db.execute("DROP TABLE jobs_before_paused")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _same_process_alive(pid: int, started: float | None) -> bool:
    now = process_started(pid)
    if now is None:
        return False
    # create_time is rounded differently by platforms; a reused pid starts seconds or more later.
    return started is None or abs(now - started) < 1.0


@contextlib.contextmanager
def recorded_job(kind: str, source, output, settings: dict | None = None, history: JobHistory | None = None):
    """Record the block as one job: "running" now, then how it ended. A cancel is "cancelled", a
    typed error "failed" with its one line; an untyped crash is "failed" with its type and text."""
    from .errors import Cancelled, Paused

    try:
        store = history or JobHistory()
        job_id = store.start(kind, source, output, settings)
    except (sqlite3.Error, OSError):  # a history that cannot be written never stops the work itself
        store, job_id = None, None
    try:
        yield job_id
    except Paused:
        _finish(store, job_id, "paused", "paused by the user; running it again continues from its checkpoint")
        raise
    except Cancelled:
        _finish(store, job_id, "cancelled", "cancelled by the user")
        raise
    except GeneratorExit:  # the consumer stopped reading the job's events: it was abandoned
        _finish(store, job_id, "cancelled", "stopped by the caller")
        raise
    except BaseException as exc:
        _finish(store, job_id, "failed", f"{type(exc).__name__}: {exc}" if not _typed(exc) else str(exc))
        raise
    _finish(store, job_id, "done")


def _finish(store: JobHistory | None, job_id: int | None, status: str, message: str = "") -> None:
    if store is None:
        return
    try:
        store.finish(job_id, status, message)
    except (sqlite3.Error, OSError):
        pass  # read back later as "interrupted", which is the most that can be said


def _typed(exc: BaseException) -> bool:
    from .errors import EngineError

    return isinstance(exc, EngineError)
