"""Keep the C allocator from growing the process with every block a streamed job runs through.

glibc serves allocations below its mmap threshold from the heap, and raises that threshold up to
32 MiB as large blocks are freed, so a job that streams blocks allocates its 8-32 MiB activation
and intermediate tensors from the heap, over and over, and the heap fragments: the streamed
forward of a 1B-shape model at 8 x 256 tokens peaked at 0.96 GiB over 4 blocks but 1.40 GiB over
16 (bench/SCALE.md), though never more than one block was resident. With the threshold fixed at
4 MiB those tensors are mapped and unmapped whole, and the same run peaked at 0.95 GiB over 16
blocks. Fixing the threshold also turns off glibc's dynamic adjustment of it.

Tensors of 2 MiB and more are also asked to use transparent huge pages (torch's
THP_MEM_ALLOC_ENABLE, read once when torch loads, so it is set by the entry point before anything
imports torch): every large tensor is mapped fresh, and filling it page by page was most of a
job's system time. GPTQ of the 1B shape, 4 layers, 8 x 256 tokens: 9.3 million page faults and
37 s of system time without, 1.0 million and 27 s with, the same peak (bench/SCALE.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: mallopt's parameter number for the mmap threshold (malloc.h).
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 4 * 1024**2

_done = False


def map_large_buffers() -> bool:
    """Once per process; True when glibc took the setting (elsewhere there is nothing to set)."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    return _done


def huge_pages_for_large_tensors() -> None:
    """Before torch is imported (it reads the setting when it loads); a value the user set wins."""
    if sys.platform.startswith("linux"):
        os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
