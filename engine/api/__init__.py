"""The one facade the GUI and the CLI call. Jobs are generators of events taking a cancel token;
everything else returns plain data. The types they exchange (settings, events, errors, units) are
re-exported from `types`; each area's functions may live in a module of this package of its own and
are re-exported here, so callers write `from bitsmith.engine import api` and nothing else.

Re-exports are lazy (PEP 562): `api.X` or `from bitsmith.engine.api import X` imports the module
that holds X the first time X is asked for. The window's first paint then costs only what the first
view uses, not the whole engine (catalog readers, evaluation, chat, the server, the Hub client).
`_LAZY` is the one list of the facade's names and where each lives (an engine module, or one of this
package's modules for what the facade defines itself); `tests/engine/test_api_lazy.py` checks that
every name resolves, that each facade module's `__all__` is listed here, and that importing the
facade loads no heavy module. An area adds its functions in a module of this package and lists
them here with one `_lazy(...)` line."""

from __future__ import annotations

import importlib
from pathlib import Path

from .. import __version__  # noqa: F401

#: name -> the module (relative to this package) that defines or re-exports it.
_LAZY: dict[str, str] = {}


def _lazy(module: str, names: str) -> list[str]:
    listed = names.split()
    _LAZY.update(dict.fromkeys(listed, module))
    return listed


# The vocabulary (api/types.py): settings, events, errors, the cancel token, units.
_lazy(".types", """NEVER CancelToken AWQ_ROUNDINGS DEFAULT_CTX IMATRIX_SUFFIX CalibrationKind CalibrationSpec Device EvalSettings
    GGUFType ImportConfig Method ModelFormat QuantizeConfig SamplingSettings WeightOnlySettings parse_enum Cancelled
    EngineError InvalidInput NotEnoughDisk OutOfMemory UnsupportedModel Collected Done Event Job Log Metric Progress
    TextPiece output_of run_job human_bytes human_count human_seconds""")
# Models as the catalog sees them, and the device choice.
_lazy("..catalog", "ModelInfo Origin")
_lazy("..device", "DeviceChoice")
# Chat (api/chat.py).
_lazy(".chat", "Answer ChatSession HistoryStore")
# Models: lineage, the lines a detail view shows, report cards (api/describe.py has the facade's own).
_lazy("..catalog.describe", "detail_lines report_card_lines")
_lazy("..catalog.variants", "VariantPoint family root_of sources_with_variants variant_label")
_lazy("..reportcard", "read_report_card update_report_card")
_lazy(".describe", "variants machine_gflops output_path distribution_lines compare_variants")
# Calibration and evaluation: results, the held-out text, verdicts, Compare's answer divergence.
_lazy("..calibration", "CalibrationSet")
_lazy("..evaluation", "EvalResult")
_lazy("..evaluation.heldout", "heldout_text heldout_text_path")
_lazy("..evaluation.verdict", "Variant verdict")
_lazy("..evaluation.answer_kld", "TokenDivergence answer_divergence")
# What the desktop window needs (api/gui_support.py has the facade's own): where Bitsmith keeps its
# files, the method table, Compare's side-by-side answers, the telemetry graphs sample.
_lazy("..paths", "config_dir data_dir log_dir log_file models_dir resources_root")
_lazy("..methods", "METHODS MethodInfo recommendation_text recommended")
_lazy("..chat.side_by_side", "SideAnswer SidePiece side_by_side")
_lazy("..telemetry", "ProcessSampler Sample TokenRate free_cores gpu_memory_bytes process_memory")
_lazy(".gui_support", "conversion_history")
# Pausing and resuming long conversions (api/resume.py).
_lazy(".resume", "resumable checkpoint_progress discard_checkpoint checkpoint_note")
# The ecosystem: local server, Hugging Face Hub, exports, conversation files (api/ecosystem.py).
_lazy(".ecosystem", """serve ServerSettings ExportSettings ExportTarget HubSettings LinkMode hub_search hub_files
    hub_download hub_offline HubUnavailable export_model modelfile_text write_model_card export_conversation
    import_conversation""")


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# --- the facade's own functions: each imports what it uses when called --------------------------
def scan() -> list:
    """Every model on this machine (ModelInfo list)."""
    from ..catalog import scan as _scan

    return _scan()


def inspect(path: Path | str):
    from ..catalog import inspect as _inspect

    return _inspect(path)


def bundled_model() -> Path:
    from ..paths import bundled_model_path

    return bundled_model_path()


def add_model_path(path: Path | str) -> str:
    from ..catalog import user_paths

    return user_paths.add(path)


def user_model_paths() -> list[str]:
    from ..catalog import user_paths

    return user_paths.load()


def remove_model_path(path: Path | str) -> bool:
    from ..catalog import user_paths

    return user_paths.remove(path)


def device(requested="auto"):
    """The device a job would run on (DeviceChoice) for a requested Device or its name."""
    from ..device import resolve_device

    return resolve_device(requested)


def load_model(path: Path | str, device="auto", **options):
    """A chat backend for any model the catalog recognises (see engine.runtime.load)."""
    from ..runtime import load

    return load(path, device, **options)


def history():
    """The conversation store in the standard data directory."""
    from ..chat.history import HistoryStore

    return HistoryStore()


def plan(config, evaluate_on: Path | str | None = None):
    """Estimated output size, peak memory, disk and time of a conversion (engine.plan.Plan); with
    `evaluate_on`, of the evaluation that follows it too (as in `convert`)."""
    from ..evaluation.heldout import heldout_text
    from ..plan import plan as make_plan

    return make_plan(config, evaluate_on=heldout_text(evaluate_on) if evaluate_on else None)


def convert(config, cancel=None, *, in_process: bool = False, evaluate_on: Path | str | None = None,
            on_process=None):
    """Any conversion from any source the catalog lists (a GGUF source is imported first).

    With `in_process`, the job runs in a child process so that C extensions holding the GIL
    cannot stall the caller's threads (what the GUI uses). With `evaluate_on` (a held-out text),
    the output is then evaluated against the source and the figures saved in its report card."""
    from functools import partial

    from ..cancel import NEVER
    from ..convert import convert as job
    from ..convert import convert_then_evaluate

    cancel = NEVER if cancel is None else cancel
    if evaluate_on is not None:
        from ..evaluation.heldout import heldout_text

        job = partial(convert_then_evaluate, text=heldout_text(evaluate_on))  # checked before any work
    if in_process:
        from ..process_job import run_in_process

        # on_process(pid): the child doing the work, so the GUI can graph its memory
        return run_in_process(job, config, cancel=cancel, on_start=on_process)
    return job(config, cancel)


def import_gguf(config, cancel=None):
    from ..cancel import NEVER
    from ..formats.gguf.import_hf import import_gguf as job

    return job(config, NEVER if cancel is None else cancel)


def build_calibration(spec, model_path: Path | str, n: int, seq_len: int, seed: int = 0, cancel=None):
    """Token windows for calibration from "model" (generated by the source), "builtin" or a file path;
    ends in Done(CalibrationSet)."""
    from ..calibration import build_calibration as job
    from ..cancel import NEVER

    return job(spec, model_path, n, seq_len, seed, NEVER if cancel is None else cancel)


def evaluate(settings, cancel=None):
    """Perplexity (and KL divergence, top-1 agreement against a source) on held-out text; ends in
    Done(EvalResult)."""
    from ..cancel import NEVER
    from ..evaluation import evaluate as job

    return job(settings, NEVER if cancel is None else cancel)


__all__ = ["scan", "inspect", "bundled_model", "add_model_path", "remove_model_path", "user_model_paths", "device",
           "import_gguf", "plan", "convert", "load_model", "history", "build_calibration", "evaluate",
           "__version__", *_LAZY]
