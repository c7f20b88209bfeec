"""Hostile and odd inputs: a corpus built from bytes at test time (corpus.py) goes through
`inspect` (what chat, convert and the browser call first) and a scan of the folder holding all of
it, in a child process. Each case gives one clear line (a typed EngineError naming the file), no
crash, no hang (the child has a deadline) and bounded memory (its peak grows by less than 256 MiB
for a corpus whose files claim terabytes). Chat templates run sandboxed: one that tries to reach
Python's internals or read a file is refused in one line, and reads nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bitsmith.engine import api
from bitsmith.engine.chat.session import ChatSession
from bitsmith.engine.errors import EngineError

from . import corpus
from .helpers import ROOT, child_env, record

#: Cases the engine may accept: odd but harmless (unknown fields are ignored, sizes are only
#: multiplied into estimates, a long name is a name).
MAY_OPEN = {"cfg-layers-10^15", "cfg-unknown-fields", "cfg-heads-zero", "cfg-heads-negative",
            "cfg-context-a-float", "cfg-context-a-dict", "cfg-architectures-a-number", "long-name",
            "cfg-quantization-bits-a-string"}


def _build(folder, tiny) -> dict[str, object]:
    cases = {}
    for name in corpus.GGUF_CASES:
        cases[f"gguf-{name}"] = corpus.write_gguf_case(folder, name)
    for name in corpus.SAFETENSORS_CASES:
        cases[f"st-{name}"] = corpus.write_safetensors_case(folder, name, tiny)
    for name in corpus.CONFIG_CASES:
        cases[f"cfg-{name}"] = corpus.write_config_case(folder, name, tiny)
    for name in corpus.TOKENIZER_CASES:
        cases[name] = corpus.write_tokenizer_case(folder, name, tiny)
    cases.update(corpus.odd_folder_entries(folder, tiny))
    return cases


def test_the_hostile_corpus_gives_one_line_each_without_crash_hang_or_memory(tiny_llama_dir, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    cases = _build(folder, tiny_llama_dir)
    listing = b"".join(name.encode() + b"\t" + os.fsencode(path) + b"\n" for name, path in cases.items())
    code = f"from tests.reliability.corpus_check import main; main({str(folder)!r})"
    done = subprocess.run([sys.executable, "-c", code], input=listing, capture_output=True, cwd=ROOT,
                          env=child_env(tmp_path / "home"), timeout=240)  # a hang fails here
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    outcomes = report["outcomes"]
    assert set(outcomes) == set(cases)
    for name, outcome in outcomes.items():
        if outcome["ok"]:
            assert name in MAY_OPEN, f"{name} was accepted as a model"
            continue
        assert not outcome["type"].startswith("CRASH"), (name, outcome)
        message = outcome["message"]
        shown = os.fsdecode(os.fsencode(cases[name]))
        # One line, and short beyond the path it names (a claimed 2**256 may print in full).
        assert "\n" not in message and len(message) - len(shown) < 600, (name, message)
        assert shown in message or cases[name].name in message or str(folder) in message, (name, message)
    assert report["scan_error"] is None, report["scan_error"]
    # The scan lists what it found with an error line each, and went on past every bad entry.
    assert str(cases["long-name"]) in report["scanned"] and report["scanned"][str(cases["long-name"])] is None
    assert report["grown_kib"] < 256 * 1024, report["grown_kib"]
    record("corpus", cases=len(cases), refused=sum(not o["ok"] for o in outcomes.values()),
           scanned=len(report["scanned"]), grown_mib=round(report["grown_kib"] / 1024, 1))


HOSTILE_TEMPLATES = {
    "syntax-error": "{% for m in messages %}{{ m.content }",
    "python-internals": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "run-a-command": "{{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }}",
    "read-a-file": "{% include '/etc/hostname' %}",
    "raise": "{{ raise_exception('no') }}",
    "endless-loop": "{% for i in range(10**9) %}x{% endfor %}",
}


@pytest.fixture(scope="module")
def template_models(tiny_llama_dir, tmp_path_factory):
    """The tiny Llama with each hostile template, as a Hugging Face folder and as a GGUF."""
    import shutil

    import gguf

    from bitsmith.engine.formats.gguf.export import export_gguf
    from bitsmith.engine.formats.hf_folder import open_hf_folder

    root = tmp_path_factory.mktemp("templates")
    made = {}
    for name, template in HOSTILE_TEMPLATES.items():
        folder = root / name
        shutil.copytree(tiny_llama_dir, folder)
        (folder / "chat_template.jinja").write_text(template)
        for _ in export_gguf(open_hf_folder(folder), root / f"{name}.gguf", gguf.GGMLQuantizationType.F16):
            pass
        made[name] = (folder, root / f"{name}.gguf")
    return made


@pytest.mark.parametrize("name", list(HOSTILE_TEMPLATES))
def test_a_hostile_chat_template_is_refused_in_one_line_and_runs_nothing(name, template_models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path, options in ((template_models[name][0], {}), (template_models[name][1], {"n_ctx": 256})):
        with pytest.raises(EngineError) as refused:
            backend = api.load_model(path, "cpu", **options)
            try:
                api.run_job(ChatSession(backend).send("hello"))
            finally:
                backend.close()
        text = str(refused.value)
        assert "\n" not in text and str(path) in text and "chat template" in text, text
    assert list(tmp_path.iterdir()) == []  # "touch PWNED" never ran
