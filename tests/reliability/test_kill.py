"""Crash safety: `bitsmith quantize` killed with SIGKILL at random moments of each method's run.

After each kill: nothing that looks like a finished model is in the output folder (only hidden
partial or lock files may remain), the job history says the job was interrupted, and a rerun of
the same command succeeds, sweeping the partial files the killed run left."""

from __future__ import annotations

import random
import signal
import time

import pytest

from .helpers import (METHODS, Drain, job_history, leftovers, output_is_loadable, record, run_cli, start_cli,
                      visible_entries, wait_for_line)

#: 5 kill points for each of five conversions (GGUF by our kernels and through llama.cpp, GPTQ,
#: AWQ, INT8): 25 in all. The first point of two methods is the fast sample every run takes.
POINTS = [(method, seed) for method in METHODS for seed in range(5)]
FAST = {("gguf-f16", 0), ("gptq", 0)}


def _params():
    for method, seed in POINTS:
        marks = () if (method, seed) in FAST else (pytest.mark.reliability,)
        yield pytest.param(method, seed, marks=marks, id=f"{method}-{seed}")


@pytest.mark.parametrize("method,seed", list(_params()))
def test_a_killed_conversion_leaves_no_model_and_a_rerun_succeeds(method, seed, tiny_llama_dir, tmp_path):
    case = METHODS[method]
    rng = random.Random(f"kill-{method}-{seed}")
    home, outdir = tmp_path / "home", tmp_path / "out"
    outdir.mkdir()
    out = outdir / case.out_name
    args = ["quantize", str(tiny_llama_dir), *case.args, "--out", str(out)]

    proc = start_cli(args, home, tmp_path)
    seen = wait_for_line(proc, "Plan:")  # imports done; the plan is printed just before the job starts
    assert seen and seen[-1].startswith("Plan:"), "\n".join(seen)
    drain = Drain(proc)
    delay = rng.uniform(0.0, case.work_s)
    time.sleep(delay)
    ended_first = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    lines = seen + drain.join()
    history = job_history(home).jobs()
    record("kill", method=method, seed=seed, delay_s=round(delay, 2), ended_first=ended_first,
           last_line=lines[-1] if lines else "", job=history[0]["status"] if history else None)

    if ended_first:  # the run beat the kill: then it must have finished properly
        assert proc.returncode == 0, "\n".join(lines)
        assert output_is_loadable(out) and history[0]["status"] == "done"
        return
    # Killed mid-run: the output exists only if it was already complete (renamed into place), and
    # then it opens; nothing else visible is left, whatever the moment.
    assert visible_entries(outdir) - {out.name, out.name + ".report.json"} == set(), lines
    overwrite = out.exists()
    if overwrite:
        assert output_is_loadable(out)
    if history:  # killed after the job began (it may be killed while the plan was still printing)
        if history[0]["status"] == "done":  # killed after the job ended, while the CLI printed or exited
            assert overwrite, "a job recorded as done has its output"
        else:
            assert history[0]["status"] == "interrupted", history[0]
            assert history[0]["message"] == "the process stopped before the job ended"

    again = run_cli(args + (["--overwrite"] if overwrite else []), home, tmp_path)
    assert again.returncode == 0, again.stderr
    assert output_is_loadable(out)
    assert leftovers(outdir) == set(), "the rerun swept the killed run's partial files"
    statuses = [job["status"] for job in job_history(home).jobs()]
    assert statuses[0] == "done" and set(statuses[1:]) <= {"interrupted", "done"}, statuses
