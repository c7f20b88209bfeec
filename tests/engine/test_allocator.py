"""engine/allocator.py: with the mmap threshold fixed, a large buffer freed under a live small one
goes back to the system instead of staying in the heap (the pattern that grew streamed jobs with
depth). Run in child processes: the setting is per process and cannot be undone."""

from __future__ import annotations

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
