"""`main.py --self-test` from the source tree: the same code the bundle runs (packaging/build.sh
runs it on the built bundle). Headless, offline, and it never writes to the caller's home."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bitsmith.engine.selftest import run_steps

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["locate the bundled model", "load it through llama.cpp", "generate 8 tokens", "build a tiny random Llama",
         "convert it to GGUF Q4_K_M in a child", "load the GGUF through llama.cpp", "generate with it"]


def _self_test(home: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM="offscreen", BITSMITH_HOME=str(home))
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--self-test", *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("self-test")]


@pytest.mark.bundled
def test_self_test_passes_from_source_and_leaves_the_home_alone(tmp_path):
    home = tmp_path / "home"
    run = _self_test(home)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = _lines(run.stdout)
    assert len(lines) == len(STEPS) + 1
    for line, step in zip(lines, STEPS):
        assert line.startswith(f"self-test: ok      {step}"), line
    assert lines[-1].startswith("self-test passed: 7 steps")
    assert not home.exists() or not any(home.iterdir())  # it worked in a throwaway home


def test_a_missing_model_fails_its_chain_and_exits_1(tmp_path):
    run = _self_test(tmp_path / "home", "--model", str(tmp_path / "nowhere.gguf"))
    assert run.returncode == 1
    lines = _lines(run.stdout)
    status = {line[len("self-test: "):].split()[0] for line in lines[:3]}
    assert lines[0].startswith("self-test: failed  locate the bundled model") and "nowhere.gguf" in lines[0]
    assert status == {"failed", "skipped"}
    assert all(line.startswith("self-test: ok") for line in lines[3:-1])  # the other chain still ran
    assert lines[-1].startswith("self-test FAILED: 1 of 7 steps failed (first: locate the bundled model")


def test_a_failed_step_skips_only_the_rest_of_its_chain():
    def boom(state):
        raise ValueError("bad\nthing")

    out = io.StringIO()
    results = run_steps([[("a", boom), ("b", lambda s: "x")], [("c", lambda s: "fine")]], {}, out)
    assert [r.status for r in results] == ["failed", "skipped", "ok"]
    assert results[0].detail == "ValueError: bad thing"  # one line
    assert len(out.getvalue().splitlines()) == 3


def test_a_bundle_finds_its_model_in_its_own_models_folder(tmp_path, monkeypatch):
    from bitsmith.engine.errors import InvalidInput
    from bitsmith.engine.paths import BUNDLED_FILE, bundled_model_path

    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    with pytest.raises(InvalidInput, match="missing from this bundle"):
        bundled_model_path()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / BUNDLED_FILE).write_bytes(b"GGUF")
    assert bundled_model_path() == tmp_path / "models" / BUNDLED_FILE
