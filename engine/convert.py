"""A conversion from any source the catalog lists: a GGUF source is first imported as a Hugging Face
folder (kept in the cache, so the next conversion of the same file starts at once), then the
method's own job runs on that folder."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

from .cancel import NEVER, CancelToken
from .config import ImportConfig, QuantizeConfig
from .events import Done, Job, Log, output_of, relay
from .paths import cache_dir


def import_cache_folder(gguf: Path) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "imports" / f"{gguf.stem}-{key}"


def ensure_hf_source(source: Path, cancel: CancelToken = NEVER) -> Job:
    """Yields the import's events when one is needed; Done(path of a Hugging Face folder)."""
    source = Path(source)
    if source.is_dir():
        yield Done(source)
        return
    target = import_cache_folder(source)
    if (target / "config.json").is_file():
        yield Log(f"using the earlier import of {source.name} in {target}")
        yield Done(target)
        return
    from .formats.gguf.import_hf import import_gguf

    yield Log(f"importing {source.name} as a Hugging Face folder first")
    yield from relay(import_gguf(ImportConfig(source, target, "float16"), cancel))
    yield Done(target)


def planned_output(cfg: QuantizeConfig) -> Path:
    """The path the conversion will write (a GGUF into a folder is named after the model)."""
    from .config import Method

    if cfg.method is not Method.GGUF:
        return Path(cfg.out)
    from .quant.gguf.job import model_stem, output_path

    return output_path(dataclasses.replace(cfg, extra={**cfg.extra, "name": cfg.extra.get("name") or model_stem(cfg.source)}))


def convert(cfg: QuantizeConfig, cancel: CancelToken = NEVER) -> Job:
    """The whole conversion; its Done carries the method job's result, with lineage recorded.

    It is recorded in the job history (engine.jobs_history), holds a lock on its output so a second
    job to the same path is refused, turns a disk that fills up at any moment into NotEnoughDisk,
    and removes an output it created when it then fails (for instance on its report card)."""
    from .fsutil import disk_full_as_error, output_lock
    from .jobs_history import recorded_job

    out = planned_output(cfg)
    settings = {"method": cfg.method.value, "gguf_type": cfg.gguf_type.value if cfg.gguf_type else None}
    with output_lock(out), recorded_job("convert", cfg.source, out, settings):
        existed = {p: p.exists() for p in _output_paths(out)}
        try:
            with disk_full_as_error(out):
                result = yield from _convert(cfg, cancel)
        except BaseException:
            for path, was_there in existed.items():
                if not was_there:
                    _remove_quietly(path)
            raise
    yield Done(result)


def _output_paths(out: Path) -> list[Path]:
    from .config import IMATRIX_SUFFIX
    from .reportcard import report_card_path

    paths = [out, report_card_path(out)]
    if out.suffix == ".gguf":
        paths.append(out.with_name(out.name[: -len(".gguf")] + IMATRIX_SUFFIX))
    return paths


def _remove_quietly(path: Path) -> None:
    import shutil

    try:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    except OSError:
        pass


def _convert(cfg: QuantizeConfig, cancel: CancelToken) -> Job:
    from .catalog.tokenizer_files import check_tokenizer_files
    from .quant import quantize
    from .reportcard import update_report_card

    if Path(cfg.source).is_dir():
        check_tokenizer_files(cfg.source)  # a corrupt tokenizer file is named before any work

    started = time.monotonic()
    hf_source = yield from relay(ensure_hf_source(cfg.source, cancel))
    import_s = time.monotonic() - started
    job_cfg = dataclasses.replace(cfg, source=hf_source)
    if Path(hf_source) != Path(cfg.source):  # outputs are named after the file the user picked
        from .quant.gguf.job import model_stem

        job_cfg = dataclasses.replace(job_cfg, extra={**cfg.extra, "name": model_stem(cfg.source)})
    result = yield from relay(quantize(job_cfg, cancel))
    out = output_of(result)
    if out is not None and Path(out).is_dir():
        _model_card(Path(out))
    if out is not None and Path(cfg.source) != Path(hf_source):
        # Lineage: the user picked the GGUF, so that is what the variant came from; and the time the
        # user waited includes the import (a reused import costs about nothing).
        # Sizes are compared with the file the user chose, never with Bitsmith's internal fp16 copy.
        card = update_report_card(Path(out), {"source": str(cfg.source), "imported_via": str(hf_source),
                                              "source_size_bytes": Path(cfg.source).stat().st_size})
        if card.get("seconds") is not None:
            update_report_card(Path(out), {"seconds": round(card["seconds"] + import_s, 2),
                                           "import_seconds": round(import_s, 2)})
    return result


def _model_card(out: Path) -> None:
    """Each output folder carries a README.md saying how it was made and how to load it elsewhere
    (GGUF files get theirs when exported: they often share a folder with other models)."""
    from .errors import EngineError
    from .export import write_model_card

    try:
        write_model_card(out)
    except (EngineError, OSError):
        pass  # a card is documentation: never the reason a finished conversion fails


def convert_then_evaluate(cfg: QuantizeConfig, cancel: CancelToken = NEVER, *, text: Path,
                          windows: int | None = None, ctx: int | None = None) -> Job:
    """The conversion, then a quick evaluation of its output against the source on held-out `text`,
    saved in the output's report card (what the wizard's result page shows).

    The output is complete before evaluation starts, so a failed or cancelled evaluation only costs
    the figures: it is logged, and the conversion still ends in Done with its result."""
    from .errors import Cancelled, EngineError
    from .evaluation import EvalSettings, evaluate
    from .config import DEFAULT_CTX

    result = yield from relay(convert(cfg, cancel))
    out = output_of(result)
    if out is not None:
        settings = EvalSettings(Path(out), Path(text), source=cfg.source, ctx=ctx or DEFAULT_CTX, windows=windows,
                                device=cfg.device, save=True)
        try:
            yield from relay(evaluate(settings, cancel))
        except Cancelled:
            yield Log("evaluation cancelled; the converted model is kept, without figures", "warning")
        except EngineError as exc:
            yield Log(f"evaluation failed: {exc}; the converted model is kept, without figures", "warning")
        if Path(out).is_dir():
            _model_card(Path(out))  # again, now with the figures
    yield Done(result)
