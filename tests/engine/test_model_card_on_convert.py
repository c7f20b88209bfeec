"""Each output folder gets its model card when the conversion ends, with the evaluation's figures
when one followed; a README.md that Bitsmith did not write is never replaced."""

from __future__ import annotations

from bitsmith.engine import api


def test_an_output_folder_gets_its_model_card(tiny_llama_dir, tmp_path):
    out = tmp_path / "tiny-int8"
    api.run_job(api.convert(api.QuantizeConfig(tiny_llama_dir, out, api.Method.INT8)))
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "int8" in card.lower() and str(tiny_llama_dir.name) in card
    assert "transformers" in card  # how to load it elsewhere


def test_the_card_carries_the_figures_when_evaluated(tiny_llama_dir, tmp_path):
    out = tmp_path / "tiny-int8-measured"
    api.run_job(api.convert(api.QuantizeConfig(tiny_llama_dir, out, api.Method.INT8), evaluate_on="builtin"))
    card = (out / "README.md").read_text(encoding="utf-8")
    figures = api.read_report_card(out)["evaluation"]
    assert f"{figures['perplexity']:.4g}" in card
