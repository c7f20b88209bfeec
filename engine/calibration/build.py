"""The calibration job: a source (file, built-in text or model-generated) -> token windows."""

from __future__ import annotations

from pathlib import Path

from ..cancel import NEVER, CancelToken
from ..errors import InvalidInput
from ..events import Done, Job, Log, Progress
from ..text_tokens import load_tokenizer
from .calibration_set import CalibrationSet
from .generated import GenerationSettings, generate_calibration_text
from .resources import builtin_text_path
from ..config import CalibrationKind, CalibrationSpec
from .text_file import SourceText, read_text_file, text_sha256
from .windows import cut_windows

MIN_SEQ_LEN = 8


def build_calibration(spec: CalibrationSpec | str | Path, model_path: Path | str, n: int, seq_len: int,
                      seed: int = 0, cancel: CancelToken = NEVER,
                      generation: GenerationSettings = GenerationSettings()) -> Job:
    """Yields Log/Progress events, then Done(CalibrationSet) holding `n` windows of `seq_len` tokens.

    `model_path` is the source model: its tokenizer cuts the windows, and for "model" calibration it
    also writes the text (a transformers folder is needed for that).
    """
    spec = CalibrationSpec.parse(spec)
    if n < 1 or seq_len < MIN_SEQ_LEN:
        raise InvalidInput(f"calibration needs at least 1 window of at least {MIN_SEQ_LEN} tokens, not {n} of {seq_len}")
    model_path = Path(model_path)
    if spec.kind is CalibrationKind.MODEL:
        if not model_path.is_dir():
            raise InvalidInput(f"{model_path}: model-generated calibration needs a transformers model folder",
                               suggestion="pick a calibration file or the built-in text")
        generated = yield from generate_calibration_text(model_path, n * seq_len, seq_len, seed, cancel, generation)
        source = SourceText(generated.text, text_sha256(generated.text),
                            f"written by {model_path.name} from the seed prompts ({generated.samples} answers)")
    else:
        path = builtin_text_path() if spec.kind is CalibrationKind.BUILTIN else spec.path
        source = read_text_file(path)
        if spec.kind is CalibrationKind.BUILTIN:
            source = SourceText(source.text, source.sha256, "Bitsmith's built-in text")
    cancel.check()
    yield Progress(0, 1, "calibration", "tokenizing")
    tokenizer = load_tokenizer(model_path)
    ids = tokenizer.encode(source.text)
    where = spec.path if spec.kind is CalibrationKind.FILE else source.description
    if len(ids) < seq_len:
        raise InvalidInput(f"{where}: holds {len(ids)} tokens, fewer than one calibration window of {seq_len}",
                           suggestion="use a longer text or shorter windows")
    windows, overlapping = cut_windows(ids, n, seq_len, seed)
    bos = tokenizer.bos_id()
    if bos is not None:
        # Every prompt starts with BOS (chat templates and llama.cpp add it), and some families keep
        # extreme activations there (Gemma's attention sink). Windows cut from the middle of a text
        # never show it, and GPTQ then moves rounding error into exactly that direction: on Gemma 3
        # 270M its error on the BOS row was 2-10x round-to-nearest's, and completions lost their
        # answer. Each window starts with BOS, as llama.cpp's imatrix starts each chunk.
        windows[:, 0] = bos
    if overlapping:
        yield Log(f"{where} holds {len(ids)} tokens, too few for {n} separate windows of {seq_len}; "
                  "the windows overlap", level="warning")
    yield Progress(1, 1, "calibration", f"{n} windows of {seq_len} tokens")
    yield Done(CalibrationSet(windows, source.description, spec.kind.value, source.sha256, len(ids), seed, overlapping))
