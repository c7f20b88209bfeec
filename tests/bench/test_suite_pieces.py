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
