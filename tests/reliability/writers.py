"""What the concurrent writers of the concurrency tests run, in a process of their own each
(`python -c "from tests.reliability.writers import ...; ..."`) or on a thread of the test."""

from __future__ import annotations

import sys
from pathlib import Path


def chat_writer(db: str, name: str, turns: int, shared_id: int) -> None:
    """One conversation of its own with `turns` question/answer pairs, and one message a turn in
    the conversation every writer shares."""
    from bitsmith.engine.chat.history import HistoryStore

    store = HistoryStore(Path(db))
    own = store.create_conversation(f"writer {name}", "model.gguf")
    for i in range(turns):
        store.add_message(own, "user", f"{name} question {i}")
        store.add_message(own, "assistant", f"{name} answer {i}", {"tokens": i})
        store.add_message(shared_id, "user", f"{name} shared {i}")
        store.list_conversations()  # readers interleave with the writers, as the GUI's list does
    store.close()


def job_writer(db: str, name: str, jobs: int) -> None:
    from bitsmith.engine.jobs_history import JobHistory

    history = JobHistory(Path(db))
    for i in range(jobs):
        job = history.start("convert", f"{name}-src", f"{name}-out-{i}", {"i": i})
        history.jobs(limit=5)
        history.finish(job, ("done", "failed", "cancelled")[i % 3], f"{name} {i}")


def hold_lock(target: str) -> None:
    """Hold the output lock of `target` until stdin closes; print "locked" once it is held."""
    from bitsmith.engine.fsutil import output_lock

    with output_lock(Path(target)):
        print("locked", flush=True)
        sys.stdin.read()


def chat_until_killed(model: str, db: str) -> None:
    """Two complete turns, then a third answer streamed slowly; prints "streaming" once the third
    answer has begun, and is killed by the test somewhere after that."""
    import time

    from bitsmith.engine import api
    from bitsmith.engine.chat.history import HistoryStore
    from bitsmith.engine.chat.session import ChatSession
    from bitsmith.engine.config import SamplingSettings
    from bitsmith.engine.events import TextPiece

    backend = api.load_model(model, "cpu", n_ctx=256, n_threads=1)
    session = ChatSession(backend, settings=SamplingSettings(max_new_tokens=16, seed=1), store=HistoryStore(Path(db)))
    for text in ("first question", "second question"):
        api.run_job(session.send(text))
    print(f"conversation {session.conversation_id}", flush=True)
    session.settings = SamplingSettings(max_new_tokens=200, seed=1, stop=())
    for event in session.send("third question, answered when the app is killed"):
        if isinstance(event, TextPiece):
            print("streaming", flush=True)
            time.sleep(0.05)
