"""Small helpers of the fault-injection tests: running the real CLI as a process, the methods and
their tiny settings, and what "nothing that looks like a model" means on disk."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bitsmith.engine.fsutil import LOCK_PREFIX, PARTIAL_PREFIX

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class MethodCase:
    """One conversion of the tiny Llama, with the fewest calibration tokens that still run the
    method's whole path (calibration, every block, packing, writing)."""

    label: str
    args: tuple[str, ...]
    out_name: str
    #: Seconds of work after the plan is printed on this machine class (measured, generous); kill
    #: and cancel moments are drawn inside it so that most land during the work.
    work_s: float
    #: Bytes the finished output (with its report card, and for K-quants the intermediate that
    #: exists at the same time) takes on disk, measured; disk-full cases leave less than this free.
    disk_bytes: int

    def config(self, source: Path, out: Path):
        from bitsmith.engine.config import QuantizeConfig

        opts = dict(zip(self.args[::2], self.args[1::2]))
        return QuantizeConfig(source=source, out=out, method=opts["--method"], gguf_type=opts.get("--type", "Q4_K_M"),
                              samples=int(opts.get("--samples", 128)), seq_len=int(opts.get("--seq-len", 512)),
                              calibration="builtin")


METHODS = {
    "gguf-f16": MethodCase("gguf-f16", ("--method", "gguf", "--type", "F16"), "tiny-F16.gguf", 0.8, 265_000),
    "gguf-q4km": MethodCase("gguf-q4km", ("--method", "gguf", "--type", "Q4_K_M", "--samples", "4", "--seq-len", "32"),
                            "tiny-Q4_K_M.gguf", 8.0, 390_000),
    "gptq": MethodCase("gptq", ("--method", "gptq", "--samples", "4", "--seq-len", "32"), "tiny-gptq", 5.0, 280_000),
    "awq": MethodCase("awq", ("--method", "awq", "--samples", "4", "--seq-len", "32"), "tiny-awq", 6.0, 274_000),
    "int8": MethodCase("int8", ("--method", "int8"), "tiny-int8", 4.0, 309_000),
}


def child_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(BITSMITH_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
               HF_HUB_CACHE=str(home / "hf-cache"))
    return env


def start_cli(args: list[str], home: Path, cwd: Path) -> subprocess.Popen:
    """`bitsmith ARGS` as its own process (what a user runs), stderr piped for the progress lines."""
    code = "import sys; from bitsmith.main import main; sys.exit(main())"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=child_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_cli(args: list[str], home: Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = start_cli(args, home, cwd)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 300) -> list[str]:
    """Read stderr until a line starting with `prefix` (or the process ends); returns lines read."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith(prefix):
            break
    return lines


def visible_entries(folder: Path) -> set[str]:
    """What a user (or the catalog) sees in a folder: everything not hidden."""
    return {p.name for p in Path(folder).iterdir() if not p.name.startswith(".")} if Path(folder).exists() else set()


def leftovers(folder: Path) -> set[str]:
    """Bitsmith's own hidden work files: partial outputs and lock files."""
    if not Path(folder).exists():
        return set()
    return {p.name for p in Path(folder).iterdir() if p.name.startswith((PARTIAL_PREFIX, LOCK_PREFIX))}


def job_history(home: Path):
    """The job store a child with BITSMITH_HOME=home writes (engine.paths: HOME/data)."""
    from bitsmith.engine.jobs_history import JobHistory

    return JobHistory(Path(home) / "data" / "jobs.sqlite3")


def output_is_loadable(path: Path) -> bool:
    """The finished output opens in the catalog (headers read and checked against the file)."""
    from bitsmith.engine import api

    info = api.inspect(path)
    return info.parameters > 0


class Drain:
    """Collect a process's stderr lines on a thread, so a chatty child never blocks on a full pipe."""

    def __init__(self, proc: subprocess.Popen):
        import threading

        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._run, args=(proc,), daemon=True)
        self._thread.start()

    def _run(self, proc):
        for line in proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def join(self, timeout: float = 10) -> list[str]:
        self._thread.join(timeout)
        return self.lines


def record(kind: str, **fields) -> None:
    """Append one JSON line to $BITSMITH_RELIABILITY_REPORT (the counts the issue asks for)."""
    import json

    path = os.environ.get("BITSMITH_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, **fields}, default=str) + "\n")
