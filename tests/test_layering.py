"""engine/ and kernels/ never import Qt: parsed from the source, so an import hidden inside a
function or behind a condition is caught too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "gui")


def _imported_modules(source: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module", "__import__"
        ) and node.args and isinstance(node.args[0], ast.Constant):
            names.append(str(node.args[0].value))
    return names


def offenders(package: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for mod in _imported_modules(path.read_text(encoding="utf-8")):
            if mod.split(".")[0] in FORBIDDEN:
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    return bad


def test_engine_and_kernels_never_import_qt():
    assert offenders("engine") == []
    assert offenders("kernels") == []


def test_the_check_catches_a_hidden_import(tmp_path):
    src = "def f():\n    from PySide6.QtCore import QObject\n    import importlib\n    importlib.import_module('pyqtgraph')\n"
    mods = _imported_modules(src)
    assert "PySide6.QtCore" in mods and "pyqtgraph" in mods
