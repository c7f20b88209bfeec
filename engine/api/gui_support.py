"""What the desktop window needs from the engine beyond the shared vocabulary, as functions of its
own. The names it re-exports (where Bitsmith keeps its files, the plain-language method table, the
side-by-side answers of Compare, the telemetry the graphs and status bar sample) are listed in
api/__init__.py's table, which imports each from its own engine module only when first used."""

from __future__ import annotations


def conversion_history(limit: int = 100) -> list[dict]:
    """The conversions recorded on this machine (newest first; engine/jobs_history.py): each with
    its source, output, settings, status and times, including those of earlier sessions."""
    from ..jobs_history import JobHistory

    return JobHistory().jobs(limit)


__all__ = ["conversion_history"]
