"""open_llama: llama.cpp's extra CPU buffer types are off exactly on CPUs with AMX (where they crash
the process), models answer with what this CPU gets, and llama-cpp-python's defaults are restored."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitsmith.engine.runtime import llamacpp_open


@pytest.mark.parametrize("amx", [True, False])
def test_extra_buffers_are_off_on_amx_cpus(monkeypatch, amx):
    import llama_cpp
    import llama_cpp.llama_cpp as low

    seen = []

    class Recorder:  # what llama-cpp-python's constructor would start from, without loading anything
        def __init__(self, model_path, **kwargs):
            seen.append((model_path, kwargs, low.llama_model_default_params().use_extra_bufts))

    monkeypatch.setattr(llamacpp_open, "cpu_has_amx", lambda: amx)
    monkeypatch.setattr(llama_cpp, "Llama", Recorder)
    real = low.llama_model_default_params
    llamacpp_open.open_llama(Path("m.gguf"), n_ctx=64)
    assert seen == [("m.gguf", {"n_ctx": 64}, not amx)]
    assert low.llama_model_default_params is real  # the wrapper is gone after the load
    assert real().use_extra_bufts  # llama.cpp's own default: on


@pytest.fixture(scope="module")
def tiny_moe_gguf(tmp_path_factory):
    from tests.engine.gguf_export_helpers import export
    from tests.fixtures.tiny_families import build_tiny

    root = tmp_path_factory.mktemp("open")
    return export(build_tiny("qwen3_moe", root / "moe"), root / "moe.gguf", "Q8_0").out


def test_models_answer_and_close_on_this_cpu(tiny_moe_gguf, bundled_gguf):
    """On an AMX CPU this crashed (SIGSEGV) in the tiny MoE's first decode and when the bundled
    model was freed, before the extra buffers were turned off there."""
    for path in (tiny_moe_gguf, bundled_gguf):
        llm = llamacpp_open.open_llama(path, n_ctx=64, verbose=False)
        out = llm("The capital of France is", max_tokens=2, temperature=0.0)
        assert out["usage"]["completion_tokens"] >= 1
        llm.close()


def test_amx_is_read_from_the_cpu_flags():
    info = Path("/proc/cpuinfo")
    flags = [ln for ln in info.read_text().splitlines() if ln.startswith("flags")] if info.is_file() else []
    assert llamacpp_open.cpu_has_amx() is bool(flags and "amx_tile" in flags[0].split())
