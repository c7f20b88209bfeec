"""A conversion followed by a quick evaluation: the figures land in the output's report card, and an
evaluation that cannot run costs only the figures, never the converted model."""

from __future__ import annotations

from bitsmith.engine import api
from bitsmith.engine.evaluation.heldout import heldout_text_path
from bitsmith.engine.config import QuantizeConfig
from bitsmith.engine.events import Collected, Log, run_job
from bitsmith.engine.reportcard import read_report_card


def test_the_evaluation_is_saved_in_the_report_card(tiny_llama_dir, tmp_path):
    out = tmp_path / "tiny-Q8_0.gguf"
    job = api.convert(QuantizeConfig(tiny_llama_dir, out, "gguf", gguf_type="Q8_0"), evaluate_on=heldout_text_path())
    result = run_job(job)
    ev = read_report_card(out)["evaluation"]
    assert ev["source"] == str(tiny_llama_dir) and ev["text"] == str(heldout_text_path())
    assert ev["perplexity"] > 1 and 0 <= ev["kl_divergence"] and 0 < ev["top1_agreement"] <= 1
    assert result.out == out


def test_an_evaluation_that_cannot_run_keeps_the_model(tiny_llama_dir, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Too short to fill one window.", encoding="utf-8")
    out = tmp_path / "tiny-Q4_0.gguf"
    events = Collected()
    run_job(api.convert(QuantizeConfig(tiny_llama_dir, out, "gguf", gguf_type="Q4_0"), evaluate_on=short), events)
    warnings = [e.message for e in events.of(Log) if e.level == "warning"]
    assert any(w.startswith("evaluation failed:") and "window" in w for w in warnings), warnings
    assert out.is_file() and "evaluation" not in read_report_card(out)
