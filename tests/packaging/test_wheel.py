"""What `pip install` puts in site-packages: the one `bitsmith` namespace and its metadata, nothing
at the top level named engine, gui, kernels or main (a Hugging Face package is called `kernels`, and
transformers and bitsandbytes import it when present)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _source_copy(dest: Path) -> Path:
    """The files a clean clone has (tracked and new, not ignored), so a stale build/ folder in the
    working tree cannot leak into the wheel."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def test_the_wheel_installs_only_bitsmith(tmp_path):
    # A real build of the project (setup.py + pyproject.toml), offline: the build backend already
    # installed in this environment, no isolation, no dependencies.
    source = _source_copy(tmp_path / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "wheel"), str(source)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "wheel").glob("bitsmith-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"bitsmith"}, sorted(top)
    assert not any(n.startswith(("bitsmith/tests/", "bitsmith/bench/", "bitsmith/scripts/")) for n in names)
    assert not (set(n.rsplit("/", 1)[-1] for n in names if n.count("/") == 1) & {"__init__.py", "setup.py"})
    for must in ("bitsmith/main.py", "bitsmith/engine/api/__init__.py", "bitsmith/gui/main_window.py",
                 "bitsmith/kernels/registry.py", "bitsmith/resources/calibration/builtin.txt",
                 "bitsmith/resources/evaluation/heldout.txt", "bitsmith/resources/icons/bitsmith.svg"):
        assert must in names, must
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "bitsmith = bitsmith.main:main" in entry_points
