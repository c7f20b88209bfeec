"""The facade's lazy re-exports (PEP 562): every name resolves, each facade module's own __all__ is in
the table of where each name lives, and importing the facade alone loads none of the heavy engine."""

from __future__ import annotations

import importlib
import subprocess
import sys

from bitsmith.engine import api


def test_every_exported_name_resolves():
    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert missing == []
    assert set(api.__all__) <= set(dir(api))


def test_each_facade_module_is_listed_in_the_table():
    """A function added to a facade module's __all__ but not to api._LAZY is not reachable as api.X."""
    from pathlib import Path

    modules = [f".{p.stem}" for p in Path(api.__file__).parent.glob("*.py") if p.stem != "__init__"]
    assert ".types" in modules and ".describe" in modules
    for module in modules:
        listed = set(importlib.import_module(module, api.__name__).__all__)
        assert {name for name, where in api._LAZY.items() if where == module} == listed, module


def test_importing_the_facade_loads_no_heavy_module():
    """The window's first paint pays only for what its first view uses: the facade itself must not
    pull in torch, transformers, llama.cpp, numpy or pyqtgraph."""
    code = ("import sys; import bitsmith.engine.api as api; api.QuantizeConfig; api.ModelInfo; api.human_bytes; "
            "print(sorted(m for m in ('torch', 'transformers', 'llama_cpp', 'numpy', 'pyqtgraph', 'safetensors') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_an_unknown_name_is_an_attribute_error():
    try:
        api.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
