"""Conversations in SQLite under the standard data directory.

Every write is one transaction, and an answer is stored only once it is complete, so a crash in
the middle of an answer loses that answer and nothing else. The GUI and several CLI processes may
use the same file at once: WAL lets readers go on while one writes, and writers wait for each other
(a busy timeout) rather than fail. Inside one process, threads share the connection under a lock."""

from __future__ import annotations

import json
import sqlite3
import threading
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
#: How long a writer waits for another process's transaction before giving up (ms).
BUSY_TIMEOUT_MS = 30_000


class HistoryStore:
    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else data_dir() / "history.sqlite3"
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=BUSY_TIMEOUT_MS / 1000)
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across an application crash in WAL mode (only a power cut can lose the
        # last commits), and spares one fsync per message.
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # two processes creating the schema at once
            try:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._db.close()

    def _tx(self):
        """`with self._tx() as db:` runs the block as one transaction (rolled back on error)."""
        store = self

        class _Tx:
            def __enter__(self_inner):
                store._lock.acquire()
                try:
                    store._db.execute("BEGIN IMMEDIATE")
                except BaseException:
                    store._lock.release()
                    raise
                return store._db

            def __exit__(self_inner, exc_type, *_):
                try:
                    store._db.execute("ROLLBACK" if exc_type else "COMMIT")
                finally:
                    store._lock.release()

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
        with self._lock:
            rows = self._db.execute("SELECT * FROM conversations ORDER BY updated DESC, id DESC").fetchall()
        return [self._conv(r) for r in rows]

    def get_conversation(self, conversation_id: int) -> dict:
        with self._lock:
            row = self._db.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise InvalidInput(f"conversation {conversation_id} does not exist")
        return self._conv(row)

    def messages(self, conversation_id: int) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id",
                                    (conversation_id,)).fetchall()
        return [{"id": r["id"], "role": r["role"], "content": r["content"], "created": r["created"],
                 "stats": json.loads(r["stats"]) if r["stats"] else None} for r in rows]

    @staticmethod
    def _conv(r) -> dict:
        return {"id": r["id"], "title": r["title"], "model_path": r["model_path"], "system_prompt": r["system_prompt"],
                "settings": json.loads(r["settings"]), "created": r["created"], "updated": r["updated"]}

    # --- export and import ---------------------------------------------------------------------
    def export_json(self, conversation_id: int) -> dict:
        """The conversation with its system prompt, generation settings and answers' statistics; what
        `import_conversation` reads back."""
        return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, **self.get_conversation(conversation_id),
                "messages": self.messages(conversation_id)}

    def export_markdown(self, conversation_id: int) -> str:
        """Readable Markdown, with the JSON export in a closing HTML comment (invisible when rendered)
        so that the file can be imported again without loss."""
        conv = self.get_conversation(conversation_id)
        settings = ", ".join(f"{k} {v}" for k, v in conv["settings"].items() if v not in (None, [], ""))
        out = [f"# {conv['title']}", "", f"Model: `{conv['model_path']}`", ""]
        if settings:
            out += [f"Settings: {settings}", ""]
        if conv["system_prompt"]:
            out += ["**System:**", "", conv["system_prompt"], ""]
        for m in self.messages(conversation_id):
            out += [f"**{'You' if m['role'] == 'user' else 'Assistant'}:**", "", m["content"], ""]
        data = json.dumps(self.export_json(conversation_id), ensure_ascii=False).replace("--", "\\u002d\\u002d")
        out += [f"<!-- {EXPORT_FORMAT} {data} -->", ""]
        return "\n".join(out)

    def import_conversation(self, data: dict | str) -> int:
        """A new conversation from an export (the JSON object, or the text of a .json or .md export),
        settings included. Checked first; written in one transaction."""
        conv = parse_export(data)
        now = time.time()
        with self._tx() as db:
            cid = int(db.execute(
                "INSERT INTO conversations (title, model_path, system_prompt, settings, created, updated) VALUES (?,?,?,?,?,?)",
                (conv["title"], conv["model_path"], conv["system_prompt"], json.dumps(conv["settings"]),
                 conv["created"], now)).lastrowid)
            for m in conv["messages"]:
                db.execute("INSERT INTO messages (conversation_id, role, content, stats, created) VALUES (?,?,?,?,?)",
                           (cid, m["role"], m["content"], json.dumps(m["stats"]) if m.get("stats") else None,
                            m.get("created") or now))
        return cid


EXPORT_FORMAT = "bitsmith-conversation"
EXPORT_VERSION = 1


def parse_export(data: dict | str) -> dict:
    """A conversation export, validated: one InvalidInput naming what is wrong."""
    from ..config import SamplingSettings

    if isinstance(data, str):
        text = data.strip()
        marker = f"<!-- {EXPORT_FORMAT} "
        if not text.startswith("{") and marker in text:  # a Markdown export: its closing comment
            text = text[text.rindex(marker) + len(marker):].rsplit("-->", 1)[0]
        try:
            data = json.loads(text)
        except ValueError:
            raise InvalidInput("not a Bitsmith conversation export (neither its JSON nor its Markdown)") from None
    if not isinstance(data, dict) or data.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
        raise InvalidInput("not a Bitsmith conversation export")
    if int(data.get("version", 1)) > EXPORT_VERSION:
        raise InvalidInput(f"this export is version {data['version']}; this Bitsmith reads up to {EXPORT_VERSION}",
                           suggestion="update Bitsmith")
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise InvalidInput("the export has no list of messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") or not isinstance(m.get("content"), str):
            raise InvalidInput(f"message {i + 1} of the export needs a role (user or assistant) and text content")
    settings = data.get("settings") or {}
    if not isinstance(settings, dict):
        raise InvalidInput("the export's settings are not an object")
    try:
        settings = SamplingSettings.from_dict(settings).to_dict()  # the same validation as the chat pane's
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the export's settings are not valid ({exc})") from None
    return {"title": str(data.get("title") or "Imported chat"), "model_path": str(data.get("model_path") or ""),
            "system_prompt": str(data.get("system_prompt") or ""), "settings": settings,
            "created": float(data.get("created") or time.time()), "messages": messages}


def open_store() -> HistoryStore:
    return HistoryStore()


__all__ = ["HistoryStore", "open_store", "closing", "parse_export", "EXPORT_FORMAT"]
