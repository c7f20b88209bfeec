"""The benchmark suite's pure pieces: table formatting, machine facts, RESULTS.md assembly.
No benchmark runs here and nothing is timed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def common():
    return _load("common")


@pytest.fixture(scope="module")
def run_all():
    return _load("run_all")


def test_md_table_aligns_and_escapes(common):
    text = common.md_table(["a", "b"], [["x|y", 1.5], [None, "z\nw"]], ["l", "r"])
    assert text.splitlines() == ["| a | b |", "|---|---:|", "| x\\|y | 1.5 |", "| - | z w |"]


def test_md_table_refuses_ragged_rows(common):
    with pytest.raises(ValueError):
        common.md_table(["a", "b"], [["only one"]])


def test_number_helpers(common):
    assert common.fmt(None) == "-" and common.fmt(float("nan")) == "-" and common.fmt(2.0, ".1f") == "2.0"
    assert common.ratio(3.0, 2.0) == "1.50" and common.ratio(1.0, 0) == "-" and common.ratio(None, 1) == "-"
    assert common.pm(1.0, 0.25, ".2f") == "1.00 ± 0.25" and common.pm(1.0, None, ".1f") == "1.0"
    assert common.mib(2**20) == "1.0" and common.mib(None) == "-"


def test_machine_info_and_versions(common):
    info = common.machine_info()
    assert info["cores"] and info["python"] and info["cpu"]
    v = common.versions(["pytest", "surely-not-a-package-xyz"])
    assert v["pytest"] and v["surely-not-a-package-xyz"] is None and "bitsmith commit" in v


def test_peak_rss_is_positive(common):
    assert (common.peak_rss_bytes() or 1) > 0


def test_quick_mode_is_a_subset_of_the_full_run(run_all):
    quick, full = run_all.MODES["quick"], run_all.MODES["full"]
    assert set(quick["gguf_runs"]) <= set(full["gguf_runs"])
    assert quick["eval_windows"] < full["eval_windows"]
    assert run_all.sections(quick)[0] == "prepare"


def test_cuda_section_is_kept_by_a_cpu_run_and_replaced_by_a_cuda_run(run_all, tmp_path):
    path = tmp_path / "RESULTS.md"
    run_all.write_results(path, "cpu body 1", cuda=False)
    assert "cpu body 1" in path.read_text() and "Not run" in path.read_text()
    run_all.write_results(path, "gpu body", cuda=True)
    assert "cpu body 1" in path.read_text() and "gpu body" in path.read_text() and "Not run" not in path.read_text()
    run_all.write_results(path, "cpu body 2", cuda=False)
    text = path.read_text()
    assert "cpu body 2" in text and "cpu body 1" not in text and "gpu body" in text


def test_missing_shared_data_stops_with_one_line(run_all, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(run_all, "WIKITEXT", tmp_path / "absent.txt")
    assert run_all.main(["--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_suite_runs_the_other_issues_benchmarks(run_all):
    for mode in ("quick", "full", "tiny"):
        names = run_all.sections(run_all.MODES[mode])
        assert "calibration" in names and "gui-stall" in names and names[0] == "prepare"
    assert run_all.MODES["full"]["gen_calib_windows"] == 128 and run_all.MODES["full"]["gui_gptq"]
    assert not run_all.MODES["quick"]["gui_gptq"]


def _fake_results():
    row = {"perplexity": 20.0, "perplexity_se": 1.0, "kl": None, "kl_se": None, "top1": None, "top1_se": None,
           "eval_tok_s": 500.0, "eval_s": 1.0, "backend": "transformers (float32, 1 thread)"}
    return {
        "prepare": {"bundled": "/x/Smol.Q4_1.gguf", "bundled_bytes": 2**20, "import_s": 1.0, "f16_export_s": 1.0,
                    "f16_bytes": 2**21, "tokens_in_text": 1000, "windows_available": 3, "windows": 1, "ctx": 512,
                    "hf_bytes": 2**21, "f16_bpw": 16.1},
        "gguf": {"rows": [{"type": "Q8_0", "imatrix": False, "size": 100, "bpw": 8.5, "job_s": 4.0, "perplexity": 21.0,
                           "perplexity_se": 1.0, "kl": 0.01, "kl_se": 0.001, "top1": 0.9, "plan_seconds": 2.0,
                           "plan_bytes": 110, "plan_peak_bytes": 2**20, "peak_rss": 2**21}], "windows": 1, "ctx": 512},
        "wo-convert-rtn": {"job_s": 5.0, "size": 50, "peak_rss_job": 2**21, "plan_seconds": 10.0, "plan_bytes": 50,
                           "plan_peak_bytes": 2**22},
        "wo-eval": {"rows": {"fp16": row, "rtn": {**row, "kl": 0.3, "kl_se": 0.02, "top1": 0.7},
                             "bundled-gguf": {**row, "eval_tok_s": 1000.0, "kl": 0.1, "kl_se": 0.01, "top1": 0.8,
                                              "top1_se": 0.02, "backend": "llama.cpp (1 thread)"}},
                    "windows": 1, "ctx": 512},
        "calibration": {"windows": 4, "seq_len": 512, "seconds": 40.0, "total_tokens": 2100, "tok_s": 52.5,
                        "source": "written by smol", "extrapolated_seconds_for": {"windows": 128, "seconds": 1280.0}},
        "gui-stall": {"goal_ms": 50, "gptq": False, "activities": [
            {"activity": "GGUF Q8_0 conversion", "status": "done", "ticks": 900, "max_ms": 12.5, "p99_ms": 3.0},
            {"activity": "chat answer", "status": "done", "ticks": 800, "max_ms": 75.0, "p99_ms": 4.0}]},
    }


def test_render_shows_evaluation_gui_and_plan(run_all, common):
    meta = {"command": "x", "mode": "quick", "device": "cpu", "threads": 1, "started": "now", "wall_s": 60.0,
            "load_start": [0.1, 0.1, 0.1], "load_end": None, "machine": common.machine_info(),
            "versions": {"python": "3"}, "gpu": {}, "settings": run_all.MODES["quick"]}
    text = run_all.render(meta, _fake_results())
    assert "## 4. Evaluation and model-generated calibration" in text
    assert "| bundled Q4_1 GGUF | llama.cpp (1 thread) | 1000 |" in text and "0.1000 ± 0.0100" in text
    assert "4 window(s) of 512 tokens in 40.0 s" in text
    assert "## 5. GUI responsiveness" in text and "| chat answer | done | 800 | 75.0 | 4.0 | **no** |" in text
    assert "## 6. plan() against measured" in text
    assert "| GGUF Q8_0 | 2.0 | 4.0 | 0.50 | 1 | 2 | 0.50 |" in text
    assert "| RTN 4-bit g64 (floor) | 10.0 | 5.0 | 2.00 |" in text
    assert "GUI: longest event-loop stall 75 ms (chat answer" in text


def test_render_reports_a_failed_new_section(run_all, common):
    meta = {"command": "x", "mode": "quick", "device": "cpu", "threads": 1, "started": "now", "wall_s": 60.0,
            "load_start": None, "load_end": None, "machine": common.machine_info(), "versions": {},
            "gpu": {}, "settings": run_all.MODES["quick"]}
    results = _fake_results()
    results["gui-stall"] = {"error": "boom", "log": "gui-stall.log"}
    text = run_all.render(meta, results)
    assert "## 5. GUI responsiveness" in text and "Failed: boom" in text and "## Failures" in text
