"""Keeping Python's cyclic garbage collector off the window's back. Shared by the start-up code
(gui/app.py) and the views that load a model (chat), so neither has to import the other."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Exempt everything alive now (modules, classes, the window) from the cyclic garbage
    collector. With torch and Qt loaded the process holds ~400k tracked objects, and each full
    collection walked all of them: 250-420 ms during which the window froze (measured with
    bench/bench_gui_stall.py). Objects made later are still collected as usual.

    A model's own objects are not frozen (see `release_model`): frozen objects are never
    collected, so a model that was closed would otherwise stay in memory for good."""
    gc.collect()
    gc.freeze()


def release_model() -> None:
    """After a model is closed: its objects were frozen with everything else once it loaded, and
    frozen objects are never collected, so a closed model's reference cycles (and the memory they
    hold) would stay for good. Unfreeze, collect them, and freeze what is left. This walks the whole
    heap once (a few hundred ms), which is acceptable right after the user switched or closed a model."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
