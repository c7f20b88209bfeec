"""Exports: the Modelfile for the bundled model checked against Ollama's documented syntax and
rendered the way Ollama would, `ollama create` when it is installed, LM Studio's folder, model cards."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from bitsmith.engine.cli import run
from bitsmith.engine.config import ExportSettings, SamplingSettings
from bitsmith.engine.errors import InvalidInput, UnsupportedModel
from bitsmith.engine.events import run_job
from bitsmith.engine.export import build_modelfile, export
from bitsmith.engine.export.template_probe import go_template, probe, render_jinja
from bitsmith.engine.reportcard import write_report_card
from bitsmith.engine.runtime.llamacpp_backend import LlamaCppBackend
from tests.engine.test_export_ollama_syntax import parse_go, parse_modelfile, render_go
from tests.fixtures.tiny_gguf import write_tiny_gguf

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Name a colour.\nOne word."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}],
]


@pytest.fixture(scope="module")
def bundled_modelfile(bundled_gguf):
    return build_modelfile(bundled_gguf, SamplingSettings(temperature=0.2, max_new_tokens=64, seed=7, stop=("END",)))


@pytest.mark.bundled
def test_the_bundled_models_modelfile_follows_ollamas_syntax(bundled_modelfile, bundled_gguf):
    commands = parse_modelfile(bundled_modelfile.text())
    by_name: dict[str, list[str]] = {}
    for name, arg in commands:
        by_name.setdefault(name, []).append(arg)
    assert by_name["from"] == [str(Path(bundled_gguf).resolve())]
    assert by_name["stop"] == ["<|im_end|>", "END"]  # the model's end of turn, then the user's stop string
    assert by_name["temperature"] == ["0.2"] and by_name["num_predict"] == ["64"] and by_name["seed"] == ["7"]
    assert by_name["num_ctx"] == ["4096"]  # Bitsmith's chat context, under the model's 8192
    parse_go(by_name["template"][0])


@pytest.mark.bundled
def test_ollama_would_send_the_model_what_bitsmiths_chat_sends_it(bundled_modelfile, bundled_gguf):
    template = dict(parse_modelfile(bundled_modelfile.text()))["template"]
    backend = LlamaCppBackend(bundled_gguf, n_ctx=256, n_threads=1)  # Bitsmith's chat renders through it
    try:
        for messages in CONVERSATIONS:
            assert render_go(template, messages) == backend.render(messages), messages
    finally:
        backend.close()


LLAMA3_LIKE = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
               "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
               "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
NO_SYSTEM = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
             "{% endif %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}")
POSITIONAL = ("{% for m in messages %}{% if loop.index0 == 2 %}[third]{% endif %}{{ m['role'] }}: {{ m['content'] }}\n"
              "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}")


def test_other_templates_translate_or_say_why_not():
    pieces = probe(LLAMA3_LIKE, bos="<|begin_of_text|>", eos="<|eot_id|>", strip_bos=True)
    template = go_template(pieces)
    for messages in CONVERSATIONS:
        want = render_jinja(LLAMA3_LIKE, messages, True, "<|begin_of_text|>", "<|eot_id|>")
        # Ollama adds BOS itself for this model, so the template must not write it a second time.
        assert render_go(template, messages) == want.removeprefix("<|begin_of_text|>")
    with pytest.raises(UnsupportedModel, match="System role not supported"):
        probe(NO_SYSTEM)
    with pytest.raises(UnsupportedModel, match="depends on more than the order of roles"):
        probe(POSITIONAL)


def test_a_template_that_cannot_be_translated_is_left_to_ollama(tmp_path):
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf", chat_template=NO_SYSTEM)
    mf = build_modelfile(gguf)
    assert mf.template is None and "TEMPLATE" not in mf.text() and "System role not supported" in mf.notes[0]
    parse_modelfile(mf.text())


def test_ollama_create_runs_when_ollama_is_installed(tmp_path, monkeypatch):
    gguf = write_tiny_gguf(tmp_path / "My Model.gguf", chat_template=LLAMA3_LIKE)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ollama"
    # A stand-in that records what it was asked and the Modelfile it was given.
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat "$4" > {tmp_path}/seen\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = run_job(export(ExportSettings(gguf, "ollama", out=tmp_path / "out")))
    assert result.created and result.command is None
    assert (tmp_path / "args").read_text().split() == ["create", "my-model", "-f", str(tmp_path / "out" / "Modelfile")]
    assert (tmp_path / "seen").read_text() == (tmp_path / "out" / "Modelfile").read_text()
    assert (tmp_path / "out" / "README.md").is_file()


def test_without_ollama_the_modelfile_and_the_command_are_given(tmp_path, monkeypatch, capsys):
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf", chat_template=LLAMA3_LIKE)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert run(["export", str(gguf), "--to", "ollama", "--out", str(tmp_path / "o"), "--name", "tiny:q4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["created"] is False and out["command"] == f"ollama create tiny:q4 -f {tmp_path / 'o' / 'Modelfile'}"
    parse_modelfile((tmp_path / "o" / "Modelfile").read_text())


def test_lm_studio_finds_the_model_in_its_folder(tmp_path):
    from bitsmith.engine.catalog.sources import lmstudio

    gguf = write_tiny_gguf(tmp_path / "tiny.Q4_0.gguf", chat_template=LLAMA3_LIKE)
    result = run_job(export(ExportSettings(gguf, "lmstudio")))  # LMSTUDIO_MODELS points into the test's home
    root = Path(os.environ["LMSTUDIO_MODELS"])
    assert result.placed == root / "bitsmith" / "tiny.q4_0" / "tiny.Q4_0.gguf"
    assert os.path.samefile(result.placed, gguf)  # a hard link: same disk here, so no second copy
    assert (result.placed.parent / "README.md").is_file()
    assert [c.path for c in lmstudio()] == [result.placed]  # the catalog's LM Studio walk sees it
    again = run_job(export(ExportSettings(gguf, "lmstudio")))
    assert again.notes == ["already there"]
    (tmp_path / "other").mkdir()
    other = write_tiny_gguf(tmp_path / "other" / "tiny.Q4_0.gguf", name="other")
    with pytest.raises(InvalidInput, match="already exists and is another file"):
        run_job(export(ExportSettings(other, "lmstudio")))
    copied = run_job(export(ExportSettings(other, "lmstudio", name="copied", link="copy")))
    assert not os.path.samefile(copied.placed, other) and copied.placed.read_bytes() == other.read_bytes()


def test_the_model_card_says_source_method_settings_calibration_quality_and_how_to_load(tmp_path):
    gguf = write_tiny_gguf(tmp_path / "out.Q4_K_M.gguf")
    write_report_card(gguf, {
        "kind": "quantization", "source": "/models/src", "method": "gguf", "type": "Q4_K_M",
        "quantizer": "llama.cpp (llama_model_quantize)", "settings": {"imatrix": True, "samples": 64},
        "imatrix": {"file": "out.imatrix", "windows": 64, "window_tokens": 512, "calibration_source": "builtin"},
        "size_bytes": 1234, "bits_per_weight": 4.85, "seconds": 12.5, "created": "2026-12-01T05:00:00+0000",
        "evaluation": {"perplexity": 12.34, "kl_divergence": 0.0456, "top1_agreement": 0.912, "tokens_evaluated": 4096,
                       "ctx": 512, "text": "builtin"}})
    result = run_job(export(ExportSettings(gguf, "card")))
    text = result.card.read_text()
    assert result.card == tmp_path / "out.Q4_K_M.gguf.README.md"  # a GGUF may share its folder: named after it
    for expected in ("from `/models/src` with gguf", "| type | Q4_K_M |", "| imatrix | True |",
                     "out.imatrix (64 windows of 512 tokens from builtin)", "| perplexity | 12.34 |",
                     "| KL divergence against the source | 0.0456 |", "| top-1 agreement with the source | 91.20% |",
                     "llama-cli -m out.Q4_K_M.gguf", 'gguf_file="out.Q4_K_M.gguf"', "vllm serve ./out.Q4_K_M.gguf"):
        assert expected in text, expected
    foreign = tmp_path / "elsewhere"
    foreign.mkdir()
    (foreign / "README.md").write_text("my own notes")
    with pytest.raises(InvalidInput, match="was not written by Bitsmith"):
        run_job(export(ExportSettings(gguf, "card", out=foreign)))
    assert (foreign / "README.md").read_text() == "my own notes"


def test_ollama_and_lm_studio_need_a_gguf(tiny_llama_dir, capsys):
    assert run(["export", str(tiny_llama_dir), "--to", "ollama"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bitsmith: error:") and "runs GGUF files; this is a hf model" in err and err.count("\n") == 1
