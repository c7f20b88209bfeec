"""Conversations in SQLite under the standard data directory.

Every write is one transaction, and an answer is stored only once it is complete, so a crash in
the middle of an answer loses that answer and nothing else."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from ..errors import InvalidInput
from ..paths import data_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    model_path TEXT NOT NULL,
    system_prompt TEXT NOT NULL DEFAULT '',
    settings TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    stats TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id);
"""


class HistoryStore:
    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else data_dir() / "history.sqlite3"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _tx(self):
        """`with self._tx() as db:` runs the block as one transaction (rolled back on error)."""
        store = self

        class _Tx:
            def __enter__(self_inner):
                store._db.execute("BEGIN IMMEDIATE")
                return store._db

            def __exit__(self_inner, exc_type, *_):
                store._db.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()

    # --- writing -------------------------------------------------------------------------------
    def create_conversation(self, title: str, model_path: str, system_prompt: str = "", settings: dict | None = None) -> int:
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO conversations (title, model_path, system_prompt, settings, created, updated) VALUES (?,?,?,?,?,?)",
                (title or "New chat", model_path, system_prompt, json.dumps(settings or {}), now, now))
            return int(cur.lastrowid)

    def add_message(self, conversation_id: int, role: str, content: str, stats: dict | None = None) -> int:
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO messages (conversation_id, role, content, stats, created) VALUES (?,?,?,?,?)",
                (conversation_id, role, content, json.dumps(stats) if stats else None, now))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))
            return int(cur.lastrowid)

    def delete_last_answer(self, conversation_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM messages WHERE id = (SELECT MAX(id) FROM messages WHERE conversation_id = ? "
                       "AND role = 'assistant')", (conversation_id,))

    def rename(self, conversation_id: int, title: str) -> None:
        if not title.strip():
            raise InvalidInput("a conversation needs a title")
        with self._tx() as db:
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title.strip(), conversation_id))

    def delete(self, conversation_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # --- reading -------------------------------------------------------------------------------
    def list_conversations(self) -> list[dict]:
        rows = self._db.execute("SELECT * FROM conversations ORDER BY updated DESC, id DESC").fetchall()
        return [self._conv(r) for r in rows]

    def get_conversation(self, conversation_id: int) -> dict:
        row = self._db.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise InvalidInput(f"conversation {conversation_id} does not exist")
        return self._conv(row)

    def messages(self, conversation_id: int) -> list[dict]:
        rows = self._db.execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,))
        return [{"id": r["id"], "role": r["role"], "content": r["content"], "created": r["created"],
                 "stats": json.loads(r["stats"]) if r["stats"] else None} for r in rows]

    @staticmethod
    def _conv(r) -> dict:
        return {"id": r["id"], "title": r["title"], "model_path": r["model_path"], "system_prompt": r["system_prompt"],
                "settings": json.loads(r["settings"]), "created": r["created"], "updated": r["updated"]}

    # --- export --------------------------------------------------------------------------------
    def export_json(self, conversation_id: int) -> dict:
        return {**self.get_conversation(conversation_id), "messages": self.messages(conversation_id)}

    def export_markdown(self, conversation_id: int) -> str:
        conv = self.get_conversation(conversation_id)
        out = [f"# {conv['title']}", "", f"Model: `{conv['model_path']}`", ""]
        if conv["system_prompt"]:
            out += ["**System:**", "", conv["system_prompt"], ""]
        for m in self.messages(conversation_id):
            out += [f"**{'You' if m['role'] == 'user' else 'Assistant'}:**", "", m["content"], ""]
        return "\n".join(out)


def open_store() -> HistoryStore:
    return HistoryStore()


__all__ = ["HistoryStore", "open_store", "closing"]
