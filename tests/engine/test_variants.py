"""Lineage and the Compare view's points, from catalog records and their report cards."""

from __future__ import annotations

import json

import pytest

from bitsmith.engine.catalog import ModelInfo, Origin, inspect
from bitsmith.engine.catalog.variants import family, root_of, sources_with_variants
from bitsmith.engine.config import ModelFormat


def info(path, source=None, size=100, card=None, fmt=ModelFormat.GGUF, dtype="Q4_K_M"):
    return ModelInfo(name=path.rsplit("/", 1)[-1], path=path, origin=Origin.USER, format=fmt, dtype=dtype,
                     size_bytes=size, source=source, report_card=card)


def test_family_follows_lineage_through_an_import():
    gguf = info("/m/bundled.gguf", dtype="Q4_1")
    imported = info("/m/import", source="/m/bundled.gguf", fmt=ModelFormat.HF, dtype="float16",
                    card={"kind": "import", "source": "/m/bundled.gguf"})
    q4 = info("/m/q4.gguf", source="/m/import", size=50, card={
        "method": "gguf", "type": "Q4_K_M", "settings": {"imatrix": True},
        "evaluation": {"perplexity": 31.5, "kl_divergence": 0.05, "top1_agreement": 0.9,
                       "tokens_per_second": 120.0, "stderr": {"perplexity": 0.4}, "source": "/m/import"}})
    gptq = info("/m/gptq", source="/m/import", size=60, fmt=ModelFormat.GPTQ, card={
        "method": "gptq", "settings": {"bits": 4, "group_size": 64, "desc_act": True}})
    unrelated = info("/m/other.gguf")
    models = [unrelated, q4, gptq, imported, gguf]

    assert root_of(q4, models).path == "/m/bundled.gguf"
    assert [m.path for m in sources_with_variants(models)] == ["/m/bundled.gguf"]
    points = family(gguf, models)
    assert [(p.path, p.generation) for p in points] == [
        ("/m/bundled.gguf", 0), ("/m/import", 1), ("/m/q4.gguf", 2), ("/m/gptq", 2)]
    by = {p.path: p for p in points}
    assert by["/m/q4.gguf"].label == "Q4_K_M imatrix"
    assert by["/m/gptq"].label == "gptq 4-bit g64 act-order"
    assert by["/m/q4.gguf"].perplexity == 31.5 and by["/m/q4.gguf"].perplexity_stderr == 0.4
    assert by["/m/q4.gguf"].evaluated and not by["/m/gptq"].evaluated
    assert by["/m/q4.gguf"].reference == "/m/import"


def test_a_lineage_cycle_does_not_hang():
    a = info("/m/a", source="/m/b")
    b = info("/m/b", source="/m/a")
    assert root_of(a, [a, b]).path in ("/m/a", "/m/b")
    assert {p.path for p in family(a, [a, b])} == {"/m/a", "/m/b"}


def test_an_import_records_where_it_came_from(bundled_hf_dir, bundled_gguf):
    card = json.loads((bundled_hf_dir / "bitsmith-report.json").read_text())
    assert card["kind"] == "import" and card["source"] == str(bundled_gguf)
    assert inspect(bundled_hf_dir).source == str(bundled_gguf)


def test_the_bundled_models_card_is_kept_in_the_data_folder(bundled_gguf):
    from bitsmith.engine.paths import data_dir
    from bitsmith.engine.reportcard import read_report_card, report_card_path, update_report_card

    path = report_card_path(bundled_gguf)
    assert data_dir() in path.parents  # never inside the installation
    update_report_card(bundled_gguf, {"evaluation": {"perplexity": 22.0}})
    assert read_report_card(bundled_gguf)["evaluation"]["perplexity"] == 22.0
    assert not bundled_gguf.with_name(bundled_gguf.name + ".report.json").exists()
    assert inspect(bundled_gguf).report_card["evaluation"]["perplexity"] == 22.0


@pytest.mark.bundled
def test_a_conversion_from_a_gguf_names_and_times_it_from_what_the_user_picked(bundled_gguf, tmp_path):
    import gguf

    from bitsmith.engine import api
    from bitsmith.engine.config import QuantizeConfig
    from bitsmith.engine.events import run_job

    result = run_job(api.convert(QuantizeConfig(bundled_gguf, tmp_path, "gguf", gguf_type="Q8_0")))
    assert result.out == tmp_path / "SmolLM2-135M-Instruct-Q8_0.gguf"  # not the cached import's name
    card = json.loads((tmp_path / "SmolLM2-135M-Instruct-Q8_0.gguf.report.json").read_text())
    assert card["source"] == str(bundled_gguf) and "imports" in card["imported_via"]
    assert card["seconds"] > card["import_seconds"] > 0
    name = gguf.GGUFReader(result.out).get_field("general.name")
    assert name.contents() == "SmolLM2-135M-Instruct"
    assert [p.label for p in family(inspect(bundled_gguf), [inspect(result.out)])] == ["source", "Q8_0"]
