"""Facade functions that connect Bitsmith to other tools: the OpenAI-compatible local server, the
Hugging Face Hub, exports to Ollama and LM Studio with a model card, and conversation files."""

from __future__ import annotations

import threading
from pathlib import Path

from ..cancel import NEVER, CancelToken
from ..config import ExportSettings, ExportTarget, HubSettings, LinkMode, ServerSettings
from ..events import Job


# --- local server (engine/server) ------------------------------------------------------------------
def serve(backend, settings: ServerSettings = ServerSettings(), backend_lock: threading.Lock | None = None):
    """A LocalServer for a loaded backend (see load_model), bound but not started: call `.start()`
    (background thread) or `.serve_forever()`, and `.stop()`. `backend_lock` is held while the
    server generates; pass the one the chat pane uses so both never run the model at once."""
    from ..server import LocalServer

    return LocalServer(backend, settings, backend_lock)


__all__ = ["serve", "ServerSettings", "ExportSettings", "ExportTarget", "HubSettings", "LinkMode"]


# --- Hugging Face Hub (engine/hub) -----------------------------------------------------------------
def hub_search(text: str, limit: int = 20, settings: HubSettings = HubSettings()):
    """Models on the Hub matching `text` (HubModel list); HubUnavailable (one line) when offline."""
    from ..hub import search

    return search(text, limit, settings)


def hub_files(repo: str, settings: HubSettings = HubSettings(), revision: str | None = None):
    """A repository's files with format, quantization and a fit estimate for this machine (RepoFiles)."""
    from ..hub import repo_files

    return repo_files(repo, settings, revision)


def hub_download(repo: str, files: list[str] | None = None, settings: HubSettings = HubSettings(),
                 cancel: CancelToken = NEVER, revision: str | None = None) -> Job:
    """Download into the shared Hugging Face cache: disk check first, progress in bytes, resumable
    after a cancel, each file verified; ends in Done(DownloadResult)."""
    from ..hub import download

    return download(repo, files, settings, cancel, revision)


def hub_offline() -> bool:
    from ..hub import offline

    return offline()


from ..hub.client import HubUnavailable  # noqa: E402

__all__ += ["hub_search", "hub_files", "hub_download", "hub_offline", "HubUnavailable"]


# --- exports (engine/export) -----------------------------------------------------------------------
def export_model(settings: ExportSettings, sampling=None, cancel: CancelToken = NEVER) -> Job:
    """Ollama (Modelfile, `ollama create` when installed), LM Studio (the GGUF in its folder) or the
    model card alone; each writes README.md with it. Ends in Done(ExportResult)."""
    from ..export import export

    return export(settings, sampling, cancel)


def modelfile_text(gguf: Path | str, sampling=None) -> str:
    """The Ollama Modelfile Bitsmith writes for a GGUF (for a preview)."""
    from ..export import build_modelfile

    return build_modelfile(Path(gguf), sampling).text()


def write_model_card(model: Path | str, out_dir: Path | str | None = None) -> Path:
    from ..export import write_model_card as write

    return write(Path(model), Path(out_dir) if out_dir else None)


__all__ += ["export_model", "modelfile_text", "write_model_card"]


# --- conversation files (engine/chat/history.py) -------------------------------------------------
def export_conversation(conversation_id: int, path: Path | str, store=None) -> Path:
    """Write a conversation, settings included, as Markdown (.md) or JSON (.json, or any other name)."""
    import json

    from ..chat.history import HistoryStore
    from ..fsutil import replace_text

    store = store or HistoryStore()
    path = Path(path)
    text = (store.export_markdown(conversation_id) if path.suffix.lower() in (".md", ".markdown")
            else json.dumps(store.export_json(conversation_id), indent=2, ensure_ascii=False) + "\n")
    return replace_text(path, text, "the conversation")


def import_conversation(path: Path | str, store=None) -> int:
    """A new conversation from a .json or .md export; returns its id."""
    from ..chat.history import HistoryStore
    from ..errors import InvalidInput

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read the conversation ({getattr(exc, 'strerror', None) or exc})") from None
    return (store or HistoryStore()).import_conversation(text)


__all__ += ["export_conversation", "import_conversation"]
