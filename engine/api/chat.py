"""Chat through the facade: a session over a loaded backend, its answers, and the history store."""

from __future__ import annotations

from ..chat.history import HistoryStore
from ..chat.session import Answer, ChatSession

__all__ = ["Answer", "ChatSession", "HistoryStore"]
