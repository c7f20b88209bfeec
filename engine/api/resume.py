"""Pause and resume of long quantizations, as the window and the CLI see them.

GPTQ, AWQ and RTN keep a checkpoint after each finished block (engine/quant/resume.py); running the
same conversion again continues from it. Pausing is cancelling while keeping that checkpoint; these
functions read or remove it without running anything."""

from __future__ import annotations

__all__ = ["resumable", "checkpoint_progress", "discard_checkpoint", "checkpoint_note"]


def resumable(config) -> bool:
    """Whether a conversion with these settings keeps per-block checkpoints (so it can be paused)."""
    from ..config import Method

    return config.method in (Method.GPTQ, Method.AWQ, Method.RTN)


def checkpoint_progress(config) -> tuple[int, int] | None:
    """(finished blocks, blocks) an interrupted run of this conversion left, or None."""
    from ..convert import planned_output
    from ..quant.resume import progress

    return progress(planned_output(config)) if resumable(config) else None


def discard_checkpoint(config) -> bool:
    """Remove what an interrupted run of this conversion left; True if there was something."""
    from ..convert import planned_output
    from ..quant.resume import discard

    return discard(planned_output(config)) if resumable(config) else False


def checkpoint_note(config) -> str | None:
    """One line for a run that stopped: what is kept and how it continues, or None."""
    done = checkpoint_progress(config)
    if not done:
        return None
    finished, blocks = done
    return (f"{finished}/{blocks} blocks are kept: the same command continues from block "
            f"{min(finished + 1, blocks)} (--restart starts over)")
