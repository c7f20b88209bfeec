"""Small helpers shared by the benchmarks: where things are, the machine and versions a result was
taken on, peak memory of this process, and markdown tables. No torch, no Qt: importing this is cheap."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WIKITEXT = DATA / "wikitext-2-raw-test.txt"
CALIBRATION = DATA / "calibration-groups-merged.txt"
OUT = ROOT / "bench" / "out"

#: Distributions whose versions a result depends on (reported as "not installed" when absent).
PACKAGES = ("torch", "transformers", "llama-cpp-python", "gguf", "bitsandbytes", "PySide6", "numpy",
            "safetensors", "psutil")


def machine_info() -> dict:
    """CPU model, cores, RAM, OS; no GPU query here (that needs torch, see gpu_info)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    ram = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
            ram = kib * 1024
    except (OSError, StopIteration, ValueError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_bytes": ram, "os": f"{platform.system()} {platform.release()}",
            "libc": " ".join(platform.libc_ver()).strip() or None, "machine": platform.machine(),
            "python": platform.python_version()}


def gpu_info() -> dict:
    """What torch says about CUDA here (imports torch)."""
    import torch

    info = {"torch_cuda": torch.version.cuda, "available": bool(torch.cuda.is_available())}
    if info["available"]:
        props = torch.cuda.get_device_properties(0)
        info.update(name=props.name, memory_bytes=int(props.total_memory), count=torch.cuda.device_count(),
                    capability=f"{props.major}.{props.minor}")
    return info


def versions(packages: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        out[name] = None
        for dist in (name, f"{name}-Essentials", f"{name}_Essentials"):  # PySide6 may come as its Essentials wheel
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    out["bitsmith commit"] = git_commit()
    return out


def git_commit(root: Path = ROOT) -> str | None:
    """The checked-out commit, with "+dirty" when tracked files differ from it."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("+dirty" if dirty else "")) if sha else None


def loadavg() -> tuple[float, float, float] | None:
    try:
        return tuple(round(x, 2) for x in os.getloadavg())
    except OSError:
        return None


def peak_rss_bytes() -> int | None:
    """This process's own high-water mark of resident memory (VmHWM). Unlike ru_maxrss, which Linux
    carries across fork and exec, it belongs to the current address space, so a child started with
    subprocess reports only its own peak."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except (ImportError, OSError):
        return None


def fmt(value, spec: str = ".3f", missing: str = "-") -> str:
    """A number for a table cell: `missing` for None/NaN, else formatted with `spec`."""
    if value is None:
        return missing
    if isinstance(value, float) and value != value:  # NaN
        return missing
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def pm(value, err, spec: str = ".3f") -> str:
    """"value ± err" (err omitted when unknown)."""
    if value is None:
        return "-"
    return f"{format(value, spec)} ± {format(err, spec)}" if err is not None else format(value, spec)


def ratio(a, b, spec: str = ".2f") -> str:
    if a is None or b is None or b == 0:
        return "-"
    return format(a / b, spec)


def mib(n, spec: str = ".1f") -> str:
    return "-" if n is None else format(n / 2**20, spec)


def md_table(headers: Sequence[str], rows: Iterable[Sequence], align: Sequence[str] | None = None) -> str:
    """A markdown table; cells are str()-ed and pipes escaped. align: one of "l", "r" per column."""
    headers = [str(h) for h in headers]
    align = list(align or ["l"] * len(headers))
    if len(align) != len(headers):
        raise ValueError("one alignment per column")
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for row in rows:
        row = list(row)
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, the table {len(headers)} columns: {row}")
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    text = "-" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")
