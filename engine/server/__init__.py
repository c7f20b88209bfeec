"""The loaded model on an OpenAI-compatible HTTP endpoint (Starlette routes under uvicorn)."""

from .app import build_app
from .runner import LocalServer

__all__ = ["LocalServer", "build_app"]
