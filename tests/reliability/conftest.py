"""Fault-injection tests. Each family has a long list of cases (every kill point, cancel moment and
fuzz example the issue asks for) marked `reliability`, run with

    BITSMITH_RELIABILITY=1 bash scripts/test.sh tests/reliability

and a fast sample of each family, unmarked, that every run of the suite (CI included) takes."""

from __future__ import annotations

import os

import pytest

FULL = os.environ.get("BITSMITH_RELIABILITY") == "1"


def pytest_collection_modifyitems(config, items):
    if FULL:
        return
    skip = pytest.mark.skip(reason="long reliability case: run with BITSMITH_RELIABILITY=1")
    for item in items:
        if item.get_closest_marker("reliability") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_gguf_file(tiny_llama_dir, tmp_path_factory):
    """The tiny Llama exported to an F16 GGUF once per session (for chat and GGUF inputs)."""
    import gguf

    from bitsmith.engine.formats.gguf.export import export_gguf
    from bitsmith.engine.formats.hf_folder import open_hf_folder

    out = tmp_path_factory.mktemp("tiny-gguf") / "tiny-F16.gguf"
    for _ in export_gguf(open_hf_folder(tiny_llama_dir), out, gguf.GGMLQuantizationType.F16):
        pass
    return out
