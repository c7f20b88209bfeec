"""The command line: listing, inspecting, and one-line errors with exit status 2."""

from __future__ import annotations

import json

from bitsmith.engine.cli import run
from bitsmith.main import main


def test_list_shows_the_bundled_model(capsys):
    assert run(["list"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if "bundled" in l)
    assert "gguf" in line and "llama" in line and "134.5M" in line and "Q4_1" in line


def test_list_json_and_add(capsys, tiny_llama_dir):
    assert run(["list", "--add", str(tiny_llama_dir), "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert {m["origin"] for m in models} == {"bundled", "user"}
    tiny = next(m for m in models if m["origin"] == "user")
    assert tiny["format"] == "hf" and tiny["parameters"] > 0


def test_info_json_has_the_metadata(capsys):
    assert run(["info", "bundled", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"] == "llama" and info["context_length"] == 8192
    assert info["dtype"] == "Q4_1" and info["has_chat_template"] is True


def test_info_human_readable(capsys, tiny_llama_dir):
    assert main(["info", str(tiny_llama_dir)]) == 0
    out = capsys.readouterr().out
    assert "LlamaForCausalLM" in out and "Chat template" in out


def test_errors_are_one_line_on_stderr_with_status_2(capsys, tmp_path):
    assert run(["info", str(tmp_path / "missing.gguf")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "missing.gguf: no such file or folder" in lines[0]


def test_no_arguments_opens_the_window(monkeypatch):
    import bitsmith.gui.app

    opened = []
    monkeypatch.setattr(bitsmith.gui.app, "run_app", lambda argv: opened.append(argv) or 0)
    assert main([]) == 0 and opened == [[]]
    assert main(["--model", "x.gguf"]) == 0 and opened[-1] == ["--model", "x.gguf"]


def test_quantize_then_evaluate_and_compare_the_family(capsys, tiny_llama_dir, tmp_path):
    out = tmp_path / "tiny-Q8_0.gguf"
    assert run(["quantize", str(tiny_llama_dir), "--type", "Q8_0", "--out", str(out), "--evaluate", "builtin",
                "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Perplexity:" in printed and "KL divergence:" in printed
    assert run(["list", "--add", str(tmp_path)]) == 0
    assert run(["list", "--add", str(tiny_llama_dir)]) == 0
    capsys.readouterr()
    assert run(["compare", str(out), "--json"]) == 0
    points = json.loads(capsys.readouterr().out)
    assert [(p["label"], p["path"]) for p in points] == [("source", str(tiny_llama_dir)), ("Q8_0", str(out))]
    assert points[1]["perplexity"] > 1 and points[1]["kl_divergence"] >= 0 and points[0]["perplexity"] is None
    assert run(["compare", str(tiny_llama_dir)]) == 0
    table = capsys.readouterr().out
    assert "Q8_0" in table and "not evaluated" in table


def test_held_out_text_is_checked_before_any_work(capsys, tiny_llama_dir, tmp_path):
    out = tmp_path / "never.gguf"
    assert run(["quantize", str(tiny_llama_dir), "--type", "Q8_0", "--out", str(out),
                "--evaluate", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.txt: no such text file" in err
    assert list(tmp_path.iterdir()) == []


def test_eval_on_the_builtin_sample_and_info_lists_variants(capsys, tiny_llama_dir, tmp_path):
    out = tmp_path / "tiny-Q4_0.gguf"
    assert run(["quantize", str(tiny_llama_dir), "--type", "Q4_0", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert run(["eval", str(out), "--source", str(tiny_llama_dir), "--text", "builtin", "--ctx", "64",
                "--windows", "2", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["windows"] == 2 and figures["text"].endswith("heldout.txt")
    assert run(["list", "--add", str(tmp_path)]) == 0 and run(["list", "--add", str(tiny_llama_dir)]) == 0
    capsys.readouterr()
    assert run(["info", str(tiny_llama_dir)]) == 0
    variants = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("Variants"))
    assert "tiny-Q4_0 (Q4_0)" in variants


def test_no_library_progress_bars_among_our_progress_lines(capsys, tiny_llama_dir):
    assert run(["eval", str(tiny_llama_dir), "--text", "builtin", "--ctx", "64", "--windows", "1"]) == 0
    err = capsys.readouterr().err
    assert "Loading weights" not in err and "it/s]" not in err
