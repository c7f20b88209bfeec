"""Exports to the tools people run: Ollama (a Modelfile, and `ollama create` when installed), LM
Studio (the GGUF placed in its models folder), and a model card (README.md) with each."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..cancel import NEVER, CancelToken
from ..config import ExportSettings, ExportTarget, ModelFormat, SamplingSettings
from ..errors import UnsupportedModel
from ..events import Done, Job, Log
from ..paths import data_dir
from . import lmstudio, ollama
from .model_card import model_card_text, model_format, write_model_card
from .modelfile import Modelfile, build_modelfile


@dataclass
class ExportResult:
    target: str
    model: Path
    out_dir: Path
    card: Path
    modelfile: Path | None = None
    placed: Path | None = None
    command: str | None = None  # what the user runs next (ollama create when Ollama is missing)
    created: bool = False
    notes: list[str] = field(default_factory=list)


def _gguf(path: Path, target: str) -> Path:
    fmt = model_format(Path(path))
    if fmt is not ModelFormat.GGUF:
        raise UnsupportedModel(f"{path}: {target} runs GGUF files; this is a {fmt.value} model",
                               suggestion="convert it first: bitsmith quantize MODEL --method gguf")
    return Path(path).resolve()


def export(settings: ExportSettings, sampling: SamplingSettings | None = None, cancel: CancelToken = NEVER) -> Job:
    t = settings.target
    if t is ExportTarget.CARD:
        card = write_model_card(settings.model, settings.out)
        yield Done(ExportResult(t.value, settings.model, card.parent, card))
        return
    gguf = _gguf(settings.model, "Ollama" if t is ExportTarget.OLLAMA else "LM Studio")
    name = settings.name or ollama.ollama_name(gguf.stem)
    cancel.check()
    if t is ExportTarget.OLLAMA:
        out_dir = (settings.out or data_dir() / "exports" / "ollama" / name.replace("/", "-").replace(":", "-")).resolve()
        mf = build_modelfile(gguf, sampling)
        for note in mf.notes:
            yield Log(note, "warning")
        path = ollama.write_modelfile(mf, out_dir)
        card = write_model_card(gguf, out_dir)
        yield Log(f"wrote {path} and {card.name}")
        created, message = ollama.run_create(name, path) if settings.run_tool else (False, "")
        command = None if created else " ".join(ollama.create_command(name, path))
        if message:
            yield Log(message)
        yield Done(ExportResult(t.value, gguf, out_dir, card, modelfile=path, command=command, created=created,
                                notes=mf.notes))
        return
    root = lmstudio.models_root(settings.out)
    yield Log(f"placing {gguf.name} in LM Studio's folder {root}")
    placed, how = lmstudio.place(gguf, root, name, settings.link)
    card = write_model_card(gguf, placed.parent)
    yield Log(f"{placed} ({how})")
    yield Done(ExportResult(t.value, gguf, placed.parent, card, placed=placed, notes=[how]))


__all__ = ["export", "ExportResult", "Modelfile", "build_modelfile", "model_card_text", "write_model_card"]
