"""The size-budget allocator shared by every method that mixes encodings (GGUF per-tensor types,
GPTQ per-layer bits and group sizes): a small knapsack over measured errors.

Each unit (a tensor, or layers that share one setting) has a few options, each with its bytes as
written and its error on the calibration text. Start every unit at its smallest option, then take
upgrades in order of error removed per byte added, on each unit's lower convex hull, while the total
fits. On a convex hull that greedy order is optimal up to the last upgrade that did not fit (the
knapsack's integrality gap: at most one upgrade's gain).
"""

from __future__ import annotations

import heapq
from typing import Protocol, TypeVar

from ..errors import InvalidInput


class Costed(Protocol):
    nbytes: int
    error: float


T = TypeVar("T", bound=Costed)


def allocate(options: dict[str, list[T]], budget: int) -> dict[str, T]:
    """The least total error whose bytes fit `budget` (greedy on each unit's convex hull)."""
    hulls = {name: lower_hull(opts) for name, opts in options.items()}
    chosen = {name: hull[0] for name, hull in hulls.items()}
    used = sum(o.nbytes for o in chosen.values())
    if used > budget:
        raise InvalidInput(f"the smallest encoding of every tensor already needs {used / 1e6:.1f} MB, "
                           f"more than the {max(budget, 0) / 1e6:.1f} MB the target leaves",
                           suggestion="choose a larger size or more bits per weight")
    heap = []
    for name, hull in hulls.items():
        if len(hull) > 1:
            heapq.heappush(heap, (_slope(hull[0], hull[1]), name, 1))
    while heap:
        _, name, step = heapq.heappop(heap)
        current, nxt = hulls[name][step - 1], hulls[name][step]
        extra = nxt.nbytes - current.nbytes
        if used + extra > budget:
            continue  # this upgrade does not fit; cheaper upgrades of other units still may
        chosen[name] = nxt
        used += extra
        if step + 1 < len(hulls[name]):
            heapq.heappush(heap, (_slope(nxt, hulls[name][step + 1]), name, step + 1))
    return chosen


def _slope(a: Costed, b: Costed) -> float:
    """Negative error removed per byte added (a min-heap pops the best upgrade first)."""
    return -(a.error - b.error) / max(b.nbytes - a.nbytes, 1)


def lower_hull(opts: list[T]) -> list[T]:
    """Options by size with every dominated or non-convex one dropped: each step buys less error
    reduction per byte than the one before, so greedy upgrades are optimal for the hull."""
    by_size = sorted(opts, key=lambda o: (o.nbytes, o.error))
    frontier: list[T] = []
    for o in by_size:
        if frontier and o.error >= frontier[-1].error:
            continue  # larger and no better
        frontier.append(o)
    hull: list[T] = []
    for o in frontier:
        while len(hull) >= 2 and _slope(hull[-2], hull[-1]) >= _slope(hull[-1], o):
            hull.pop()
        hull.append(o)
    return hull
