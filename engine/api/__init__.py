"""The one facade the GUI and the CLI call. Jobs are generators of events taking a cancel token;
everything else returns plain data. The types they exchange (settings, events, errors, units) are
re-exported from `types`; each area's functions may live in a module of this package of its own and
are re-exported here, so callers write `from bitsmith.engine import api` and nothing else."""

from __future__ import annotations

from pathlib import Path

from ..cancel import NEVER, CancelToken
from ..catalog import ModelInfo, Origin
from ..catalog import inspect as _inspect
from ..catalog import scan as _scan
from ..catalog import user_paths
from ..config import Device, ImportConfig, QuantizeConfig
from ..device import DeviceChoice, resolve_device
from ..events import Job
from ..paths import bundled_model_path
from .types import (DEFAULT_CTX, IMATRIX_SUFFIX, CalibrationKind, Cancelled, Collected, Done,  # noqa: F401
                    EngineError, EvalSettings, Event, GGUFType, InvalidInput, Log, Method, Metric, ModelFormat,
                    NotEnoughDisk, OutOfMemory, Progress, SamplingSettings, TextPiece, UnsupportedModel,
                    WeightOnlySettings, human_bytes, human_count, human_seconds, output_of, parse_enum, run_job)
from .types import __all__ as _TYPES
from .chat import Answer, ChatSession, HistoryStore  # noqa: F401
from .describe import (TokenDivergence, Variant, VariantPoint, answer_divergence,  # noqa: F401
                       compare_variants, detail_lines, distribution_lines,
                       family, heldout_text, heldout_text_path, machine_gflops, output_path, read_report_card,
                       report_card_lines, root_of, sources_with_variants, update_report_card, variant_label,
                       variants, verdict)
from .describe import __all__ as _DESCRIBE
from .. import __version__  # noqa: F401


def scan() -> list[ModelInfo]:
    return _scan()


def inspect(path: Path | str) -> ModelInfo:
    return _inspect(path)


def bundled_model() -> Path:
    return bundled_model_path()


def add_model_path(path: Path | str) -> str:
    return user_paths.add(path)


def user_model_paths() -> list[str]:
    return user_paths.load()


def remove_model_path(path: Path | str) -> bool:
    return user_paths.remove(path)


def device(requested: Device | str = Device.AUTO) -> DeviceChoice:
    return resolve_device(requested)


def load_model(path: Path | str, device: Device | str = Device.AUTO, **options):
    """A chat backend for any model the catalog recognises (see engine.runtime.load)."""
    from ..runtime import load

    return load(path, device, **options)


def history():
    """The conversation store in the standard data directory."""
    from ..chat.history import HistoryStore

    return HistoryStore()


def plan(config: QuantizeConfig, evaluate_on: Path | str | None = None):
    """Estimated output size, peak memory, disk and time of a conversion (engine.plan.Plan); with
    `evaluate_on`, of the evaluation that follows it too (as in `convert`)."""
    from ..plan import plan as make_plan

    from ..evaluation.heldout import heldout_text

    return make_plan(config, evaluate_on=heldout_text(evaluate_on) if evaluate_on else None)


def convert(config: QuantizeConfig, cancel: CancelToken = NEVER, *, in_process: bool = False,
            evaluate_on: Path | str | None = None, on_process=None) -> Job:
    """Any conversion from any source the catalog lists (a GGUF source is imported first).

    With `in_process`, the job runs in a child process so that C extensions holding the GIL
    cannot stall the caller's threads (what the GUI uses). With `evaluate_on` (a held-out text),
    the output is then evaluated against the source and the figures saved in its report card."""
    from functools import partial

    from ..convert import convert as job
    from ..convert import convert_then_evaluate

    if evaluate_on is not None:
        from ..evaluation.heldout import heldout_text

        job = partial(convert_then_evaluate, text=heldout_text(evaluate_on))  # checked before any work
    if in_process:
        from ..process_job import run_in_process

        # on_process(pid): the child doing the work, so the GUI can graph its memory
        return run_in_process(job, config, cancel=cancel, on_start=on_process)
    return job(config, cancel)


def import_gguf(config: ImportConfig, cancel: CancelToken = NEVER) -> Job:
    from ..formats.gguf.import_hf import import_gguf as job

    return job(config, cancel)


__all__ = ["scan", "inspect", "bundled_model", "add_model_path", "remove_model_path", "user_model_paths", "device",
           "import_gguf", "plan", "convert", "load_model", "history", "ModelInfo", "Origin", *_TYPES,
           "Answer", "ChatSession", "HistoryStore", *_DESCRIBE, "__version__"]


# --- calibration and evaluation (engine/calibration, engine/evaluation) ---------------------------
from ..calibration import CalibrationSet, CalibrationSpec  # noqa: E402
from ..evaluation import EvalResult, EvalSettings  # noqa: E402


def build_calibration(spec: CalibrationSpec | str | Path, model_path: Path | str, n: int, seq_len: int,
                      seed: int = 0, cancel: CancelToken = NEVER) -> Job:
    """Token windows for calibration from "model" (generated by the source), "builtin" or a file path;
    ends in Done(CalibrationSet)."""
    from ..calibration import build_calibration as job

    return job(spec, model_path, n, seq_len, seed, cancel)


def evaluate(settings: EvalSettings, cancel: CancelToken = NEVER) -> Job:
    """Perplexity (and KL divergence, top-1 agreement against a source) on held-out text; ends in
    Done(EvalResult)."""
    from ..evaluation import evaluate as job

    return job(settings, cancel)


__all__ += ["build_calibration", "evaluate", "CalibrationSet", "CalibrationSpec", "EvalResult", "EvalSettings"]


# --- what the desktop window needs (engine/api/gui_support.py) ------------------------------------
from .gui_support import (METHODS, MethodInfo, ProcessSampler, Sample, SideAnswer, SidePiece,  # noqa: E402
                          TokenRate, config_dir, conversion_history, data_dir, free_cores, gpu_memory_bytes,
                          log_dir, log_file, models_dir, process_memory, recommendation_text, recommended,
                          resources_root, side_by_side)
from .gui_support import __all__ as _GUI  # noqa: E402

__all__ += _GUI


# --- the ecosystem: local server, Hugging Face Hub, exports, conversation files (api/ecosystem.py) --
from .ecosystem import (ExportSettings, ExportTarget, HubSettings, HubUnavailable, LinkMode, ServerSettings,  # noqa: E402
                        export_conversation, export_model, hub_download, hub_files, hub_offline, hub_search,
                        import_conversation, modelfile_text, serve, write_model_card)
from .ecosystem import __all__ as _ECOSYSTEM  # noqa: E402

__all__ += _ECOSYSTEM


# --- pause and resume of long quantizations: their per-block checkpoints (api/resume.py) ------------
from .resume import checkpoint_note, checkpoint_progress, discard_checkpoint, resumable  # noqa: E402,F401
from .resume import __all__ as _RESUME  # noqa: E402

__all__ += _RESUME
