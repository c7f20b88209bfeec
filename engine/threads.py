"""How many CPU threads a job's numeric work may use, set for the job and restored after it.

torch's thread count is process-wide, so a job that asks for fewer threads sets it on entry and puts
the old value back on exit. On a busy machine fewer threads than cores is often faster: threads
that wait for a core spin at every barrier (seen: 1 thread 25x faster than 2 on a shared 2-core box).
"""

from __future__ import annotations

import contextlib
import os


def cpu_threads(requested: int | None) -> int:
    """`requested`, or every core when None."""
    return max(1, requested) if requested else (os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(requested: int | None):
    """Within the block torch uses `requested` threads; None leaves torch's own choice alone."""
    if not requested:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, requested))
    try:
        yield
    finally:
        torch.set_num_threads(before)
