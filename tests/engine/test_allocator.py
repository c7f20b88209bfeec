"""engine/allocator.py: with the mmap threshold fixed, a large buffer freed under a live small one
goes back to the system instead of staying in the heap (the pattern that grew streamed jobs with
depth); large tensors fill in huge pages when the entry point asked for them. Run in child
processes: both settings are per process and cannot be undone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHILD = r"""
import os, sys
import torch
from bitsmith.engine.allocator import map_large_buffers
if sys.argv[1] == "on":
    assert map_large_buffers()
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * page
n = 16 * 1024**2 // 4
a = torch.ones(n); del a          # glibc raises its threshold to 16 MiB on this free
b = torch.ones(n)                 # ... so this one may come from the heap
pin = torch.ones(1024)            # a small live allocation above it
before = rss()
del b
print(before - rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_large_buffers_leave_the_process():
    released = {mode: int(subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                                         check=True).stdout.split()[-1]) for mode in ("off", "on")}
    # 16 MiB freed: with the threshold fixed the whole buffer is unmapped (>= 15 MiB of pages back);
    # glibc's default kept it in the heap under the live small buffer.
    assert released["on"] >= 15 * 1024**2, released
    assert released["off"] < released["on"], released


THP_CHILD = r"""
import os, resource, sys
from bitsmith.engine.allocator import huge_pages_for_large_tensors
if sys.argv[1] == "on":
    huge_pages_for_large_tensors()
else:
    os.environ["THP_MEM_ALLOC_ENABLE"] = "0"
import torch
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
t = torch.ones(64 * 1024**2 // 4)  # 64 MiB: always a fresh mapping, filled on first touch
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _thp_mode() -> str:
    try:
        text = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        return "absent"
    return text.split("[", 1)[1].split("]", 1)[0] if "[" in text else "absent"


@pytest.mark.skipif(_thp_mode() not in ("always", "madvise"), reason="the kernel offers no transparent huge pages")
def test_large_tensors_fill_in_huge_pages():
    faults = {mode: int(subprocess.run([sys.executable, "-c", THP_CHILD, mode], capture_output=True, text=True,
                                       check=True).stdout.split()[-1]) for mode in ("off", "on")}
    # 64 MiB in 4 KiB pages is 16,384 faults; in 2 MiB pages, 32 (plus the edges). A tenth leaves
    # room for a kernel that falls back to small pages where no huge page is free at the moment.
    assert faults["off"] >= 16_000, faults
    assert faults["on"] < faults["off"] / 10, faults


def test_the_entry_point_asks_for_huge_pages_before_torch_loads():
    code = ("import os, sys\nfrom bitsmith import main\ntry:\n    main.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('THP_MEM_ALLOC_ENABLE'))")
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    value = out.stdout.split()[-1]
    assert value == ("1" if sys.platform.startswith("linux") else "None"), out.stdout
