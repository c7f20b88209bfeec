"""Calibration sources: files (plain and JSONL), the built-in text, model-generated text; windows are
reproducible from a seed, bad files fail with one line naming them, and generation honours cancel."""

from __future__ import annotations

import json

import pytest
import torch

from bitsmith.engine.calibration import CalibrationSpec, CalibrationKind, build_calibration, read_text_file
from bitsmith.engine.calibration.resources import builtin_text_path, seed_prompts
from bitsmith.engine.calibration.text_file import text_sha256
from bitsmith.engine.calibration.windows import cut_windows
from bitsmith.engine.cancel import CancelToken
from bitsmith.engine.errors import Cancelled, InvalidInput
from bitsmith.engine.events import Collected, Done, Log, Progress, run_job
from bitsmith.engine.text_tokens import load_tokenizer
from bitsmith.engine.threads import torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One CPU thread for torch: on a shared CPU, threads that wait for a core spin at every barrier,
    and two threads run these small models many times slower than one."""
    with torch_threads(1):
        yield


PROSE = " ".join(f"Sentence number {i} talks about rivers, bread and small engines." for i in range(60))


def build(spec, model, n=4, seq_len=32, seed=0, **kw):
    events = Collected()
    result = run_job(build_calibration(spec, model, n, seq_len, seed, **kw), on_event=events)
    return result, events


def test_builtin_windows_are_reproducible_and_counted(tiny_llama_dir):
    a, _ = build("builtin", tiny_llama_dir, seed=0)
    b, _ = build("builtin", tiny_llama_dir, seed=0)
    c, _ = build("builtin", tiny_llama_dir, seed=1)
    assert a.windows.shape == (4, 32) and a.windows.dtype == torch.int64
    assert torch.equal(a.windows, b.windows) and not torch.equal(a.windows, c.windows)
    text = builtin_text_path().read_text(encoding="utf-8")
    assert a.total_tokens == len(load_tokenizer(tiny_llama_dir).encode(text))
    assert a.sha256 == text_sha256(text) and a.kind == "builtin" and not a.overlapping
    card = a.to_card()
    assert card["samples"] == 4 and card["seq_len"] == 32 and card["sha256"] == a.sha256


def test_windows_do_not_overlap_when_the_text_allows_it():
    ids = list(range(1000))
    windows, overlapping = cut_windows(ids, 10, 64, seed=3)
    starts = sorted(int(w[0]) for w in windows)
    assert not overlapping and all(b - a >= 64 for a, b in zip(starts, starts[1:]))
    assert all(torch.equal(w, torch.arange(int(w[0]), int(w[0]) + 64)) for w in windows)
    _, overlapping = cut_windows(ids, 20, 64, seed=3)  # 15 chunks for 20 windows
    assert overlapping


def test_plain_file_and_its_jsonl_twin_give_the_same_windows(tiny_llama_dir, tmp_path):
    records = [PROSE[:400], PROSE[400:900], PROSE[900:]]
    plain = tmp_path / "plain.txt"
    plain.write_text("\n\n".join(records), encoding="utf-8")
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": r, "id": i}) for i, r in enumerate(records)) + "\n\n")
    a, _ = build(plain, tiny_llama_dir)
    b, _ = build(str(jsonl), tiny_llama_dir)
    assert torch.equal(a.windows, b.windows) and a.sha256 == b.sha256 and a.total_tokens == b.total_tokens
    assert "JSONL, 3 records" in b.source and a.kind == b.kind == "file"
    # Recognised by content too, whatever the file is called.
    renamed = tmp_path / "data.txt"
    renamed.write_text(jsonl.read_text())
    assert read_text_file(renamed).records == 3


def test_crlf_text_reads_as_its_lf_twin(tmp_path):
    lf, crlf = tmp_path / "lf.txt", tmp_path / "crlf.txt"
    lf.write_bytes(b"line one\nline two\n")
    crlf.write_bytes(b"line one\r\nline two\r\n")
    assert read_text_file(crlf).text == read_text_file(lf).text == "line one\nline two\n"
    assert read_text_file(crlf).sha256 == read_text_file(lf).sha256


def test_spec_words_and_paths():
    assert CalibrationSpec.parse("model").kind is CalibrationKind.MODEL
    assert CalibrationSpec.parse(" Builtin ").kind is CalibrationKind.BUILTIN
    spec = CalibrationSpec.parse("some/file.txt")
    assert spec.kind is CalibrationKind.FILE and spec.path.name == "file.txt"


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"  \n\t\n", "is empty"),
    (b"text\x00with a NUL", "binary file"),
    (b"caf\xe9 latin-1", "not UTF-8"),
    (b'{"text": "fine"}\n{"body": "no text field"}\n', "line 2: no 'text' field"),
    (b'{"text": "fine"}\n{not json\n', "line 2: not valid JSON"),
    (b"too short", "fewer than one calibration window"),
])
def test_bad_calibration_files_fail_with_one_line_naming_them(tiny_llama_dir, tmp_path, content, message):
    path = tmp_path / "calib.txt"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message) as err:
        build(path, tiny_llama_dir)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file_and_folder_are_refused(tiny_llama_dir, tmp_path):
    with pytest.raises(InvalidInput, match="no such file"):
        build(tmp_path / "nope.txt", tiny_llama_dir)
    with pytest.raises(InvalidInput, match="is a folder"):
        build(tmp_path, tiny_llama_dir)


def test_short_text_gives_overlapping_windows_with_a_warning(tiny_llama_dir, tmp_path):
    path = tmp_path / "short.txt"
    path.write_text(PROSE[:600])
    result, events = build(path, tiny_llama_dir, n=20, seq_len=64)
    assert result.windows.shape == (20, 64) and result.overlapping
    assert any(e.level == "warning" and "overlap" in e.message for e in events.of(Log))


def test_seed_prompts_are_many_and_varied():
    prompts = seed_prompts()
    assert len(prompts) >= 40 and len(set(prompts)) == len(prompts)
    kinds = {p["kind"] for p in json.loads((builtin_text_path().parent / "seed_prompts.json").read_text())["prompts"]}
    assert {"story", "instruction", "code", "facts", "dialogue"} <= kinds


def test_model_generated_calibration_on_the_tiny_model(tiny_llama_dir):
    a, events = build("model", tiny_llama_dir, n=3, seq_len=24, seed=5)
    assert a.windows.shape == (3, 24) and a.kind == "model" and a.total_tokens >= 3 * 24
    assert "written by" in a.source and len(a.sha256) == 64
    assert events.of(Progress) and isinstance(events.events[-1], Done)
    again, _ = build("model", tiny_llama_dir, n=3, seq_len=24, seed=5)
    other, _ = build("model", tiny_llama_dir, n=3, seq_len=24, seed=6)
    assert torch.equal(a.windows, again.windows) and a.sha256 == again.sha256
    assert a.sha256 != other.sha256


class CancelAfter(CancelToken):
    """Turns cancelled at its n-th look, so the cancel lands between two generated tokens."""

    def __init__(self, n: int):
        super().__init__()
        self.looks = 0
        self.n = n

    @property
    def cancelled(self) -> bool:
        self.looks += 1
        if self.looks >= self.n:
            self.cancel()
        return super().cancelled


def test_model_generated_calibration_honours_cancel(tiny_llama_dir):
    token = CancelAfter(5)  # the generation loop looks once per token
    events = Collected()
    with pytest.raises(Cancelled):
        run_job(build_calibration("model", tiny_llama_dir, 4, 64, 0, token), on_event=events)
    # Stopped a few tokens into the first batch: generation had begun, nothing was returned.
    assert any("generating" in e.message for e in events.of(Log))
    assert token.looks == 5 and not events.of(Done)


def test_model_generated_calibration_needs_a_model_folder(bundled_gguf):
    with pytest.raises(InvalidInput, match="needs a transformers model folder"):
        build("model", bundled_gguf)


def test_gguf_and_its_import_cut_the_same_windows(bundled_gguf, bundled_hf_dir):
    via_llama_cpp, _ = build("builtin", bundled_gguf, n=3, seq_len=64, seed=2)
    via_transformers, _ = build("builtin", bundled_hf_dir, n=3, seq_len=64, seed=2)
    assert torch.equal(via_llama_cpp.windows, via_transformers.windows)


def test_windows_start_with_bos_when_the_tokenizer_adds_one(tiny_llama_dir, tmp_path):
    """Prompts start with BOS, where some families (Gemma) keep extreme activations: calibration
    that never shows BOS lets GPTQ put its rounding error there. A tokenizer that adds BOS gets it at
    each window's start; one that adds none (the tiny model's) keeps its windows as cut."""
    import shutil

    from tokenizers import Tokenizer, processors

    folder = tmp_path / "adds-bos"
    shutil.copytree(tiny_llama_dir, folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    bos = tok.token_to_id("<|im_start|>")  # the tiny tokenizer's bos_token
    tok.post_processor = processors.TemplateProcessing(single="<|im_start|> $A", special_tokens=[("<|im_start|>", bos)])
    tok.save(str(folder / "tokenizer.json"))
    assert load_tokenizer(folder).bos_id() == bos and load_tokenizer(tiny_llama_dir).bos_id() is None
    plain, _ = build("builtin", tiny_llama_dir)
    with_bos, _ = build("builtin", folder)
    assert (with_bos.windows[:, 0] == bos).all() and not (plain.windows[:, 0] == bos).any()
    assert torch.equal(with_bos.windows[:, 1:], plain.windows[:, 1:])  # otherwise the same windows
