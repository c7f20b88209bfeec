"""The job history's own rules: how a job that never ended is told apart from a running one, and
that a history which cannot be written never stops the work it records."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bitsmith.engine.errors import Cancelled, InvalidInput, Paused
from bitsmith.engine.jobs_history import SCHEMA, JobHistory, recorded_job


def test_a_job_whose_process_is_gone_reads_interrupted_and_a_live_one_running(tmp_path):
    history = JobHistory(tmp_path / "jobs.sqlite3")
    code = f"from bitsmith.engine.jobs_history import JobHistory; JobHistory({str(tmp_path / 'jobs.sqlite3')!r}).start('convert', 's', 'o')"
    subprocess.run([sys.executable, "-c", code], check=True)  # the process ends without finishing its job
    live = history.start("convert", "s2", "o2")
    jobs = {j["id"]: j for j in history.jobs()}
    assert jobs[live]["status"] == "running"
    [gone] = [j for j in jobs.values() if j["id"] != live]
    assert gone["status"] == "interrupted" and gone["ended"] is not None


def test_a_reused_process_id_does_not_keep_a_dead_job_running(tmp_path):
    import sqlite3

    history = JobHistory(tmp_path / "jobs.sqlite3")
    job = history.start("convert", "s", "o")
    with sqlite3.connect(history.path) as db:  # as if this pid had belonged to an earlier process
        db.execute("UPDATE jobs SET pid_started = pid_started - 3600 WHERE id = ?", (job,))
    assert history.get(job)["status"] == "interrupted"


@pytest.mark.parametrize("raised,status", [(None, "done"), (Cancelled("stop"), "cancelled"), (Paused("stop"), "paused"),
                                           (InvalidInput("x.gguf: bad"), "failed"), (ZeroDivisionError("boom"), "failed")])
def test_each_ending_is_recorded(raised, status, tmp_path):
    history = JobHistory(tmp_path / "jobs.sqlite3")
    try:
        with recorded_job("convert", "s", "o", history=history):
            if raised is not None:
                raise raised
    except BaseException as exc:
        assert exc is raised
    [job] = history.jobs()
    assert job["status"] == status
    if isinstance(raised, ZeroDivisionError):
        assert job["message"] == "ZeroDivisionError: boom"


def test_an_unwritable_history_does_not_stop_the_work(tmp_path, monkeypatch):
    import sqlite3

    import bitsmith.engine.jobs_history as jobs_history

    def refuse(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(jobs_history.JobHistory, "start", refuse)
    ran = []
    with recorded_job("convert", "s", "o", history=JobHistory(tmp_path / "jobs.sqlite3")) as job_id:
        ran.append(job_id)
    assert ran == [None]


def test_a_store_written_before_paused_existed_takes_paused_and_keeps_its_rows(tmp_path):
    import sqlite3

    path = tmp_path / "jobs.sqlite3"
    old_schema = SCHEMA.replace("'cancelled', 'paused', 'interrupted'", "'cancelled', 'interrupted'")
    assert "'paused'" not in old_schema
    with sqlite3.connect(path) as db:
        db.executescript(old_schema)
        db.execute("INSERT INTO jobs (kind, source, output, pid, status, started, ended) "
                   "VALUES ('convert', 's', 'o', 1, 'done', 1.0, 2.0)")
    history = JobHistory(path)  # migrates
    job = history.start("convert", "s2", "o2")
    history.finish(job, "paused", "paused by the user")
    jobs = {j["source"]: j for j in history.jobs()}
    assert jobs["s"]["status"] == "done" and jobs["s"]["ended"] == 2.0
    assert jobs["s2"]["status"] == "paused"
    JobHistory(path)  # a second open finds the new CHECK and changes nothing
    assert len(history.jobs()) == 2
