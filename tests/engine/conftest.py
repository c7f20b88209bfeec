"""Fixtures shared by the engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """family -> its tiny random model folder (tests/fixtures/tiny_families.py), each built on first
    use and shared by every test of the session (the builds are deterministic and never written to);
    each folder is named as a GGUF export needs (tiny_families.folder_name)."""
    from tests.fixtures.tiny_families import build_tiny, folder_name

    root = tmp_path_factory.mktemp("families")
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny(family, root / folder_name(family))
        return built[family]
    return get
