"""The import contract, checked by parsing every source file (so an import hidden inside a function
or behind a condition counts too):

- everything is `bitsmith.*`: no code imports the old top-level names `engine`, `gui`, `kernels`, `main`;
- `engine/` and `kernels/` never import Qt or pyqtgraph; `kernels/` never imports the engine or the GUI;
- the GUI and the CLI reach the engine only through its facade, `bitsmith.engine.api`; nothing below
  the facade imports it (or the CLI, or the self-test that sits beside it);
- settings live in `engine/config`, so the writers (`formats`) never import the quantizers (`quant`)
  and the runtimes never import `chat`;
- process and system figures (memory, CPU) come from one module, `engine/telemetry.py`: nothing else
  imports psutil;
- no import cycles, between the engine's sub-packages or between any two modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("engine", "gui", "kernels")
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph")
OLD_TOP_LEVEL = ("engine", "gui", "kernels", "main")
FACADE = "bitsmith.engine.api"
# The engine's own top: these may use the facade; nothing else in the engine may.
ABOVE_FACADE = ("bitsmith.engine.api", "bitsmith.engine.cli", "bitsmith.engine.selftest")
# Sub-package pairs the issue named as arrows pointing the wrong way (settings now in config).
FORBIDDEN_EDGES = (("bitsmith.engine.formats", "bitsmith.engine.quant"),
                   ("bitsmith.engine.runtime", "bitsmith.engine.chat"))
TELEMETRY = "bitsmith.engine.telemetry"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["bitsmith", *parts])


def source_modules(root: Path = ROOT) -> dict[str, Path]:
    mods = {module_name(p, root): p for part in PARTS for p in sorted((root / part).rglob("*.py"))}
    if (root / "main.py").exists():
        mods["bitsmith.main"] = root / "main.py"
    return mods


def imports_of(name: str, source: str, is_package: bool, known: set[str]) -> list[str]:
    """Absolute names of the modules `source` imports (relative imports resolved); `from P import X`
    counts as importing P.X when X is a module, else P."""
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
            found += subs if len(subs) == len(node.names) else [mod, *subs]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            found.append(str(node.args[0].value))
    return found


def import_graph(root: Path = ROOT) -> dict[str, list[str]]:
    mods = source_modules(root)
    known = set(mods)
    return {name: imports_of(name, path.read_text(encoding="utf-8"), path.name == "__init__.py", known)
            for name, path in mods.items()}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(graph: dict[str, list[str]]) -> list[str]:
    bad = []
    for mod, targets in graph.items():
        for target in targets:
            top = target.split(".")[0]
            if top in OLD_TOP_LEVEL:
                bad.append(f"{mod} imports '{target}': use bitsmith.{target}")
            if top in QT and (_under(mod, "bitsmith.engine") or _under(mod, "bitsmith.kernels")):
                bad.append(f"{mod} imports Qt ({target}): the engine and kernels never do")
            if top == "psutil" and _under(mod, "bitsmith") and mod != TELEMETRY:
                bad.append(f"{mod} imports psutil: process and system figures come from {TELEMETRY}")
            if not _under(target, "bitsmith"):
                continue
            if _under(mod, "bitsmith.kernels") and not _under(target, "bitsmith.kernels"):
                bad.append(f"{mod} imports {target}: kernels know tensors, not the engine or the GUI")
            facade_users = _under(mod, "bitsmith.gui") or _under(mod, "bitsmith.engine.cli")
            if facade_users and _under(target, "bitsmith.engine") and target != "bitsmith.engine" \
                    and not _under(target, FACADE) and not _under(target, "bitsmith.engine.cli"):
                bad.append(f"{mod} imports {target}: the GUI and the CLI use only {FACADE}")
            if _under(mod, "bitsmith.engine") and not any(_under(mod, t) for t in ABOVE_FACADE) \
                    and any(_under(target, t) for t in ABOVE_FACADE):
                bad.append(f"{mod} imports {target}: nothing below the facade imports it")
            if _under(mod, "bitsmith.engine") and _under(target, "bitsmith.gui"):
                bad.append(f"{mod} imports {target}: the engine never imports the GUI")
            for low, high in FORBIDDEN_EDGES:
                if _under(mod, low) and _under(target, high):
                    bad.append(f"{mod} imports {target}: {low} sits below {high}")
    return bad


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def module_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    edges = {m: {t for t in ts if t in graph and t != m} for m, ts in graph.items()}
    return _cycles(edges)


def engine_package_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    def pkg(name: str) -> str | None:
        parts = name.split(".")
        return ".".join(parts[:3]) if parts[:2] == ["bitsmith", "engine"] and len(parts) > 2 else None

    edges: dict[str, set[str]] = {}
    for mod, targets in graph.items():
        a = pkg(mod)
        if a is None:
            continue
        for t in targets:
            b = pkg(t)
            if b is not None and b != a:
                edges.setdefault(a, set()).add(b)
    return _cycles(edges)


def test_the_import_contract_holds():
    graph = import_graph()
    assert len(graph) > 100  # the walk found the sources
    assert violations(graph) == []


def test_no_import_cycles():
    graph = import_graph()
    assert engine_package_cycles(graph) == []
    assert module_cycles(graph) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_contract_fails_when_a_layer_is_crossed(tmp_path):
    root = _tree(tmp_path, {
        "engine/__init__.py": "",
        "engine/api.py": "from .quant import gptq\n",
        "engine/quant/__init__.py": "",
        "engine/quant/gptq.py": "def f():\n    from ..api import x\n",
        "engine/formats/__init__.py": "",
        "engine/formats/writer.py": "from ..quant.gptq import Settings\n",
        "engine/runtime/__init__.py": "import importlib\nimportlib.import_module('pyqtgraph')\n",
        "engine/cli/__init__.py": "from bitsmith.engine.quant import gptq\n",
        "gui/__init__.py": "",
        "gui/view.py": "from bitsmith.engine.api import load\nfrom bitsmith.engine.catalog import scan\n",
        "gui/old.py": "from engine.api import load\n",
        "gui/status.py": "def f():\n    import psutil\n",
        "engine/telemetry.py": "import psutil\n",
        "kernels/__init__.py": "from bitsmith.engine.config import X\n",
    })
    bad = "\n".join(violations(import_graph(root)))
    assert "bitsmith.gui.view imports bitsmith.engine.catalog" in bad
    assert "bitsmith.engine.cli imports bitsmith.engine.quant" in bad
    assert "bitsmith.gui.view imports bitsmith.engine.api:" not in bad  # the facade is allowed
    assert "bitsmith.engine.quant.gptq imports bitsmith.engine.api" in bad  # a lazy import counts
    assert "bitsmith.engine.formats.writer imports bitsmith.engine.quant" in bad
    assert "bitsmith.engine.runtime imports Qt (pyqtgraph)" in bad
    assert "bitsmith.gui.old imports 'engine.api'" in bad
    assert "bitsmith.kernels imports bitsmith.engine.config" in bad
    assert "bitsmith.gui.status imports psutil" in bad
    assert "bitsmith.engine.telemetry imports psutil" not in bad


def test_cycles_are_found(tmp_path):
    root = _tree(tmp_path, {
        "engine/__init__.py": "",
        "engine/a/__init__.py": "from . import one\n",
        "engine/a/one.py": "from ..b import two\n",
        "engine/b/__init__.py": "",
        "engine/b/two.py": "def f():\n    from ..a import one\n",
        "engine/c.py": "from .a import one\n",
    })
    graph = import_graph(root)
    assert engine_package_cycles(graph) == [["bitsmith.engine.a", "bitsmith.engine.b"]]
    assert module_cycles(graph) == [["bitsmith.engine.a.one", "bitsmith.engine.b.two"]]
