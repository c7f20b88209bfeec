"""A GPTQ conversion killed with SIGKILL (the real `bitsmith quantize` in its own process) resumes
when the same command runs again, and finishes with the same bytes as an uninterrupted run.

The kill moment is chosen by the job's own progress, never by sleeping: the child is the real CLI
with one addition, a hold at a chosen block's checkpoint (it prints HELD and waits to be killed).
Two moments: just after block 2's checkpoint is complete, and inside block 2's save, after its
files are written but before its manifest is (the previous checkpoint must then be the one used).
The random kill moments of every method are in tests/reliability/test_kill.py."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from bitsmith.engine.quant import resume
from tests.reliability.helpers import child_env, leftovers, run_cli, wait_for_line

from .resume_helpers import LAYERS, build_deep_tiny, model_bytes

ARGS = ("--method", "gptq", "--samples", "4", "--seq-len", "32")
HOLD_AT = 2

#: The real CLI, holding at block BITSMITH_TEST_HOLD_AT's checkpoint (test-only code, run with -c).
HELD_CLI = """
import json, os, sys, time
from bitsmith.engine.quant import resume

hold_at, where = int(os.environ["BITSMITH_TEST_HOLD_AT"]), os.environ["BITSMITH_TEST_HOLD_WHERE"]
real_save, real_write = resume.BlockCheckpoint.save, resume._write_bytes

def hold():
    print("HELD", file=sys.stderr, flush=True)
    time.sleep(600)  # until the test kills this process

def save(self, index, *args, **kw):
    real_save(self, index, *args, **kw)
    if where == "after" and index + 1 == hold_at:
        hold()

def write_bytes(path, data):
    if where == "inside" and path.name == resume.MANIFEST and json.loads(data)["done"] == hold_at:
        hold()
    real_write(path, data)

resume.BlockCheckpoint.save, resume._write_bytes = save, write_bytes
from bitsmith.main import main
sys.exit(main())
"""


@pytest.fixture(scope="module")
def deep_tiny(tiny_llama_dir, tmp_path_factory):
    return build_deep_tiny(tmp_path_factory.mktemp("deep") / "deep-tiny", tiny_llama_dir)


@pytest.fixture(scope="module")
def reference(deep_tiny, tmp_path_factory):
    """The same command, never interrupted."""
    folder = tmp_path_factory.mktemp("reference")
    out = folder / "tiny-gptq"
    done = run_cli(["quantize", str(deep_tiny), *ARGS, "--out", str(out)], folder / "home", folder)
    assert done.returncode == 0, done.stderr
    return model_bytes(out)


@pytest.mark.parametrize("where,kept", [("after", HOLD_AT), ("inside", HOLD_AT - 1)])
def test_a_killed_gptq_run_resumes_at_its_last_checkpoint_with_identical_output(where, kept, deep_tiny, reference,
                                                                                  tmp_path):
    home, outdir = tmp_path / "home", tmp_path / "out"
    outdir.mkdir()
    out = outdir / "tiny-gptq"
    args = ["quantize", str(deep_tiny), *ARGS, "--out", str(out)]
    env = {**child_env(home), "BITSMITH_TEST_HOLD_AT": str(HOLD_AT), "BITSMITH_TEST_HOLD_WHERE": where}
    proc = subprocess.Popen([sys.executable, "-c", HELD_CLI, *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = wait_for_line(proc, "HELD")
        assert seen and seen[-1] == "HELD", "\n".join(seen)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    assert resume.progress(out) == (kept, LAYERS)  # inside a save: the one before it still holds

    again = run_cli(args, home, tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"resuming at block {kept + 1}/{LAYERS}" in again.stderr, again.stderr
    assert f"block {kept}/{LAYERS} done" not in again.stderr, "a finished block is not quantized again"
    assert model_bytes(out) == reference
    assert not resume.resume_folder(out).exists() and leftovers(outdir) == set()
