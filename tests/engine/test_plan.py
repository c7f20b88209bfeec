"""The plan's estimates against real outputs, and the one GGUF size rule behind plan and disk check."""

from __future__ import annotations

import pytest

from bitsmith.engine import api
from bitsmith.engine.config import GGUFType, QuantizeConfig
from bitsmith.engine.events import run_job
from bitsmith.engine.gguf_size import tensor_bits


def test_k_quant_rows_not_a_multiple_of_256_fall_back_like_llama_cpp():
    assert tensor_bits(GGUFType.Q4_K_M, 1536, is_vector=False, is_head=False) == GGUFType.Q4_K_M.nominal_bits
    assert tensor_bits(GGUFType.Q4_K_M, 576, is_vector=False, is_head=False) == 5.5  # Q5_0
    assert tensor_bits(GGUFType.Q2_K, 576, is_vector=False, is_head=False) == 4.5  # Q4_0
    assert tensor_bits(GGUFType.Q6_K, 576, is_vector=False, is_head=False) == 8.5  # Q8_0
    assert tensor_bits(GGUFType.Q4_0, 576, is_vector=False, is_head=True) == 8.5  # head: Q6_K -> Q8_0
    assert tensor_bits(GGUFType.Q4_0, 576, is_vector=False, is_head=False) == 4.5
    assert tensor_bits(GGUFType.Q4_K_M, 576, is_vector=False, is_head=False, upper=True) == 8.5
    assert tensor_bits(GGUFType.F16, 576, is_vector=True, is_head=False) == 32.0


@pytest.mark.bundled
@pytest.mark.parametrize("kind", ["Q4_K_M"])
def test_planned_gguf_size_is_close_to_the_file_written(bundled_hf_dir, tmp_path, kind):
    cfg = QuantizeConfig(bundled_hf_dir, tmp_path / f"m-{kind}.gguf", "gguf", gguf_type=kind, imatrix=False)
    planned = api.plan(cfg).output_bytes
    result = run_job(api.convert(cfg))
    assert planned == pytest.approx(result.size, rel=0.06)


def test_plan_explains_the_group_size_it_chose(tiny_llama_dir, tmp_path):
    plan = api.plan(QuantizeConfig(tiny_llama_dir, tmp_path / "g", "gptq", calibration="builtin", samples=4,
                                   seq_len=64))
    assert plan.group_size == 64 and any("group size 64" in n for n in plan.notes)
    assert plan.seconds > 0 and plan.peak_memory_bytes > 0 and plan.fits


def test_a_following_evaluation_is_part_of_the_plan(tiny_llama_dir, tmp_path):
    from bitsmith.engine.evaluation.heldout import heldout_text_path

    cfg = QuantizeConfig(tiny_llama_dir, tmp_path / "m.gguf", "gguf", gguf_type="Q8_0")
    alone, evaluated = api.plan(cfg), api.plan(cfg, heldout_text_path())
    assert len(evaluated.steps) == len(alone.steps) + 1 and "evaluate" in evaluated.steps[-1]
    assert evaluated.seconds > alone.seconds and evaluated.output_bytes == alone.output_bytes


def test_the_plans_disk_figure_covers_what_the_job_itself_checks_for(tiny_llama_dir, tmp_path):
    from bitsmith.engine.gguf_size import METADATA_BYTES

    q8 = api.plan(QuantizeConfig(tiny_llama_dir, tmp_path / "m.gguf", "gguf", gguf_type="Q8_0"))
    # The GGUF job's disk check adds its metadata allowance to the file's size; so does the plan.
    assert q8.disk_needed_bytes >= q8.output_bytes + METADATA_BYTES
    gptq = api.plan(QuantizeConfig(tiny_llama_dir, tmp_path / "g", "gptq", calibration="builtin", samples=4,
                                   seq_len=64))
    # GPTQ keeps a per-block resume checkpoint (the finished blocks' tensors) beside the output.
    assert gptq.disk_needed_bytes >= 2 * gptq.output_bytes
