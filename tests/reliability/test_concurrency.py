"""Concurrency: the GUI (threads of the test process) and several CLI processes writing the same
chat history and job history at once, and two conversions aiming at the same output."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading

import pytest

from bitsmith.engine import api
from bitsmith.engine.chat.history import HistoryStore
from bitsmith.engine.errors import InvalidInput
from bitsmith.engine.jobs_history import JobHistory

from .helpers import METHODS, ROOT, child_env, leftovers, output_is_loadable, record, start_cli
from .writers import chat_writer, job_writer

PROCESSES = 4  # CLI processes, besides the test's own threads standing for the GUI
THREADS = 2
TURNS = 40


def _spawn(call: str, home) -> subprocess.Popen:
    code = f"from tests.reliability.writers import *; {call}"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=child_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True)


def _integrity(db) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def test_gui_and_cli_processes_share_the_chat_history_without_losing_a_message(tmp_path):
    db = tmp_path / "history.sqlite3"
    gui_store = HistoryStore(db)  # the window's one connection, shared by its threads
    shared = gui_store.create_conversation("shared", "model.gguf")
    procs = [_spawn(f"chat_writer({str(db)!r}, 'cli{i}', {TURNS}, {shared})", tmp_path / "home")
             for i in range(PROCESSES)]

    def gui_thread(name: str):  # what the chat pane does through one HistoryStore
        own = gui_store.create_conversation(f"writer {name}", "model.gguf")
        for i in range(TURNS):
            gui_store.add_message(own, "user", f"{name} question {i}")
            gui_store.add_message(own, "assistant", f"{name} answer {i}", {"tokens": i})
            gui_store.add_message(shared, "user", f"{name} shared {i}")
            gui_store.messages(shared)

    threads = [threading.Thread(target=gui_thread, args=(f"gui{i}",)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err

    writers = [f"cli{i}" for i in range(PROCESSES)] + [f"gui{i}" for i in range(THREADS)]
    reader = HistoryStore(db)
    by_title = {c["title"]: c["id"] for c in reader.list_conversations()}
    for name in writers:
        got = [m["content"] for m in reader.messages(by_title[f"writer {name}"])]
        want = [text for i in range(TURNS) for text in (f"{name} question {i}", f"{name} answer {i}")]
        assert got == want  # every message, in its writer's order
    shared_texts = [m["content"] for m in reader.messages(shared)]
    assert len(shared_texts) == len(writers) * TURNS
    for name in writers:
        assert [t for t in shared_texts if t.startswith(name + " ")] == [f"{name} shared {i}" for i in range(TURNS)]
    assert _integrity(db) == "ok"
    record("concurrency-chat", writers=len(writers), messages=len(writers) * TURNS * 3)
    gui_store.close()
    reader.close()


def test_several_processes_record_jobs_at_once(tmp_path):
    db = tmp_path / "jobs.sqlite3"
    JobHistory(db)
    procs = [_spawn(f"job_writer({str(db)!r}, 'cli{i}', 30)", tmp_path / "home") for i in range(PROCESSES)]
    job_writer(str(db), "gui", 30)
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    jobs = JobHistory(db).jobs(limit=1000)
    assert len(jobs) == (PROCESSES + 1) * 30
    assert all(j["status"] in ("done", "failed", "cancelled") for j in jobs)  # none left "running"
    assert _integrity(db) == "ok"
    record("concurrency-jobs", writers=PROCESSES + 1, jobs=len(jobs))


def test_a_second_job_to_the_same_output_is_refused_while_the_first_runs(tiny_llama_dir, tmp_path):
    case = METHODS["gguf-f16"]
    out = tmp_path / "out" / case.out_name
    holder = _spawn(f"hold_lock({str(out)!r})", tmp_path / "home")  # the first job, in another process
    assert holder.stdout.readline().strip() == "locked"
    try:
        with pytest.raises(InvalidInput, match="is being written by another Bitsmith job") as refused:
            api.run_job(api.convert(case.config(tiny_llama_dir, out)))
        assert f"(process {holder.pid})" in str(refused.value)
        assert not out.exists()
    finally:
        holder.communicate("", timeout=60)
    # The first job is gone and its lock released: the same conversion now runs.
    api.run_job(api.convert(case.config(tiny_llama_dir, out)))
    assert output_is_loadable(out) and leftovers(out.parent) == set()


@pytest.mark.reliability
@pytest.mark.parametrize("method", ["gguf-f16", "int8"])
def test_two_cli_conversions_race_for_one_output(method, tiny_llama_dir, tmp_path):
    """Two real `bitsmith quantize` processes started together: one writes the output, the other
    is refused in one line (the lock, or the output already existing); the output is intact."""
    case = METHODS[method]
    out = tmp_path / "out" / case.out_name
    args = ["quantize", str(tiny_llama_dir), *case.args, "--out", str(out)]
    procs = [start_cli(args, tmp_path / "home", tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    [refusal] = [err for code, err in results if code == 2]
    line = [l for l in refusal.splitlines() if l.startswith("bitsmith:")]
    assert len(line) == 1 and ("being written by another" in line[0] or "already exists" in line[0]), refusal
    assert output_is_loadable(out) and leftovers(out.parent) == set()
    record("concurrency-race", method=method, refusal=line[0])
