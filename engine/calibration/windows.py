"""Cutting a fixed number of fixed-length token windows out of one token stream, from a seed.

When the stream is long enough the windows do not overlap: the stream is split into aligned chunks
after a random shift, and `n` of them are drawn without replacement. When it is too short for that,
window starts are drawn freely and the windows overlap; the caller is told, so it can warn.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def cut_windows(ids: Sequence[int], n: int, seq_len: int, seed: int) -> tuple["torch.Tensor", bool]:  # noqa: F821
    """Returns (windows [n, seq_len] int64, overlapping). `ids` must hold at least `seq_len` tokens."""
    import torch

    stream = np.asarray(ids, dtype=np.int64)
    total = len(stream)
    if total < seq_len:
        raise ValueError(f"{total} tokens cannot fill a window of {seq_len}")
    rng = np.random.default_rng(seed)
    chunks = total // seq_len
    if chunks >= n:
        shift = int(rng.integers(0, total - chunks * seq_len + 1))
        starts = shift + rng.choice(chunks, size=n, replace=False) * seq_len
        overlapping = False
    else:
        starts = rng.integers(0, total - seq_len + 1, size=n)
        overlapping = True
    windows = np.stack([stream[s : s + seq_len] for s in starts])
    return torch.from_numpy(windows), overlapping
