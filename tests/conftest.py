"""Shared fixtures. Every test runs with its own BITSMITH_HOME, so no user settings leak in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("bitsmith-home")
    monkeypatch.setenv("BITSMITH_HOME", str(home))
    # An empty HF cache and no Ollama/LM Studio folders unless a test points them somewhere.
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf-cache"))
    monkeypatch.setenv("OLLAMA_MODELS", str(home / "no-ollama"))
    monkeypatch.setenv("LMSTUDIO_MODELS", str(home / "no-lmstudio"))
    return home


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    from tests.fixtures.tiny_model import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def bundled_gguf() -> Path:
    from bitsmith.engine.paths import bundled_model_path

    return bundled_model_path()


@pytest.fixture(scope="session")
def bundled_hf_dir(bundled_gguf, tmp_path_factory) -> Path:
    """The bundled GGUF imported once per session as a float16 Hugging Face folder (read-only)."""
    from bitsmith.engine.config import ImportConfig
    from bitsmith.engine.events import run_job
    from bitsmith.engine.formats.gguf.import_hf import import_gguf

    out = tmp_path_factory.mktemp("bundled-hf") / "SmolLM2-135M-Instruct-f16"
    result = run_job(import_gguf(ImportConfig(bundled_gguf, out, dtype="float16")))
    return result.out_dir
