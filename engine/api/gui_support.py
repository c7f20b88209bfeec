"""What the desktop window needs from the engine beyond the shared vocabulary (`types`) and the model
descriptions (`describe`): where Bitsmith keeps its files, the plain-language method table, the
side-by-side answers of Compare, the telemetry the graphs and status bar sample, and the thread
count chat uses. Thin re-exports: each idea lives in one engine module."""

from __future__ import annotations

from ..chat.side_by_side import SideAnswer, SidePiece, side_by_side
from ..methods import METHODS, MethodInfo, recommendation_text, recommended
from ..paths import config_dir, data_dir, log_dir, log_file, models_dir, resources_root
from ..telemetry import ProcessSampler, Sample, TokenRate, free_cores, gpu_memory_bytes, process_memory

__all__ = ["SideAnswer", "SidePiece", "side_by_side", "METHODS", "MethodInfo", "recommendation_text", "recommended",
           "config_dir", "data_dir", "log_dir", "log_file", "models_dir", "resources_root", "ProcessSampler", "Sample", "TokenRate",
           "free_cores", "gpu_memory_bytes", "process_memory"]


def conversion_history(limit: int = 100) -> list[dict]:
    """The conversions recorded on this machine (newest first; engine/jobs_history.py): each with
    its source, output, settings, status and times, including those of earlier sessions."""
    from ..jobs_history import JobHistory

    return JobHistory().jobs(limit)


__all__ += ["conversion_history"]
