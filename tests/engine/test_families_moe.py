"""Mixture-of-experts and refusals: experts split from transformers' fused 3-D parameters compute
the same function, are calibrated with the tokens the router sends them, fall back to RTN (and say
so) when calibration leaves them under-covered, and keep their routers in full precision; models no
path can take, or a path cannot take, are refused at once in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from bitsmith.engine.architectures import family_for_model_type
from bitsmith.engine.catalog import inspect
from bitsmith.engine.checkpoint import fill, float_cast, read_state, skeleton, tensor_files
from bitsmith.engine.config import ModelFormat, QuantizeConfig
from bitsmith.engine.errors import UnsupportedModel
from bitsmith.engine.events import Log, run_job
from bitsmith.engine.model_structure import ExpertList
from bitsmith.engine.plan import plan
from bitsmith.engine.quant.weight_only.job import quantize_weight_only
from bitsmith.engine.runtime.model_loader import load_model
from tests.fixtures.tiny_families import FAMILY_CONFIGS

from .weight_only_helpers import one_torch_thread, text_windows  # noqa: F401

MOE = ["qwen3_moe", "mixtral", "qwen2_moe"]


def _dtypes(folder: Path) -> dict[str, str]:
    out = {}
    for f in folder.glob("*.safetensors"):
        with safe_open(f, framework="pt") as st:
            out.update({k: str(st.get_slice(k).get_dtype()) for k in st.keys()})
    return out


@pytest.mark.parametrize("family", MOE)
def test_split_experts_compute_what_the_fused_ones_do(family, tiny):
    src = tiny(family)
    fused, _ = load_model(src, "cpu", fmt=ModelFormat.HF)
    fam = family_for_model_type(FAMILY_CONFIGS[family][0])
    split = skeleton(src)
    assert any(isinstance(m, ExpertList) for m in split.modules())
    split = fill(split, read_state(tensor_files(src), fam.module_name, float_cast(torch.float32)), src)
    ids = text_windows(src, 2, 32)
    with torch.no_grad():
        a, b = fused(input_ids=ids).logits, split(input_ids=ids).logits
    # Same weights, same float32 ops per token; only the order of the experts' index_add differs,
    # so the logits agree to float32 rounding of values of order 10.
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-5), (a - b).abs().max()


@pytest.mark.parametrize("family", MOE)
def test_experts_calibrate_on_routed_tokens_fall_back_to_rtn_and_routers_stay(family, tiny, tmp_path):
    src = tiny(family)
    top_k = FAMILY_CONFIGS[family][1]["num_experts_per_tok"]
    ids = text_windows(src, 1, 8)  # 8 tokens: every expert sees fewer tokens than its 64 inputs
    logs = []
    result = run_job(quantize_weight_only(QuantizeConfig(src, tmp_path / "gptq", "gptq"), ids),
                     on_event=lambda e: logs.append(e.message) if isinstance(e, Log) else None)
    card = json.loads(result.report.read_text())
    fallback = card["method_details"]["rtn_fallback"]
    fam = family_for_model_type(FAMILY_CONFIGS[family][0])
    for block in range(2):
        gate = {n: c for n, c in fallback.items()
                if n.startswith(f"model.layers.{block}.mlp.experts.") and n.endswith(".gate_proj")}
        # Each of the 8 tokens goes to exactly top_k distinct experts: the gate projections' token
        # counts add up to 8 * top_k, so each expert was fed only what the router sent it.
        assert len(gate) == 4 and sum(gate.values()) == 8 * top_k, gate
    assert any("rounded to nearest instead" in line for line in logs)

    dtypes = _dtypes(result.out)
    expert = fam.checkpoint_name("model.layers.0.mlp.experts.3.down_proj.weight")[:-len(".weight")]
    router = fam.checkpoint_name("model.layers.0.mlp.gate.weight")
    assert f"{expert}.qweight" in dtypes and expert + ".weight" not in dtypes
    assert dtypes[router] == "F32" and router[:-len(".weight")] + ".qweight" not in dtypes
    if family == "qwen2_moe":  # the shared expert is quantized; its 1-output gate is a router
        assert "model.layers.0.mlp.shared_expert.up_proj.qweight" in dtypes
        assert dtypes["model.layers.0.mlp.shared_expert_gate.weight"] == "F32"


def _write_config(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    from safetensors.torch import save_file

    save_file({"x.weight": torch.zeros(2, 2)}, str(folder / "model.safetensors"))
    return folder


def test_a_multimodal_or_non_causal_model_is_refused_in_one_line(tmp_path):
    multimodal = _write_config(tmp_path / "mm", {"model_type": "gemma3", "vision_config": {"hidden_size": 8},
                                                 "text_config": {"hidden_size": 8}})
    with pytest.raises(UnsupportedModel, match="multimodal") as exc:
        inspect(multimodal)
    assert "\n" not in str(exc.value)
    encoder = _write_config(tmp_path / "t5", {"model_type": "t5"})
    with pytest.raises(UnsupportedModel, match="unknown architecture 't5': not a causal language model") as exc:
        inspect(encoder)
    assert "\n" not in str(exc.value)


def _tiny_opt(folder: Path) -> Path:
    """OPT: a causal LM transformers builds and llama.cpp has no architecture for."""
    from transformers import OPTConfig, OPTForCausalLM

    config = OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
                       max_position_embeddings=32, word_embed_proj_dim=16)
    torch.manual_seed(0)
    OPTForCausalLM(config).save_pretrained(folder)
    return folder


def test_a_family_outside_the_table_works_by_design_and_gguf_is_refused_before_any_work(tiny, tmp_path):
    src = tiny("starcoder2")  # no line of Bitsmith code names it; llama.cpp has its architecture
    info = inspect(src)
    assert info.family == "starcoder2" and info.parameters and info.unavailable == {}
    plan(QuantizeConfig(src, tmp_path / "starcoder2.gguf", "gguf"))  # the GGUF writer takes it: planned
    opt = _tiny_opt(tmp_path / "opt")
    with pytest.raises(UnsupportedModel) as exc:
        plan(QuantizeConfig(opt, tmp_path / "never-written.gguf", "gguf"))
    message = str(exc.value)
    assert "opt" in message and "gguf-export" in message and "gptq" in message and "\n" not in message
    assert not (tmp_path / "never-written.gguf").exists()


def test_bitsandbytes_is_refused_for_mixture_of_experts_before_any_work(tiny):
    src = tiny("qwen3_moe")
    with pytest.raises(UnsupportedModel, match="Qwen3-MoE mixture-of-experts models cannot go through bnb") as exc:
        plan(QuantizeConfig(src, src.parent / "never-written-nf4", "bnb-nf4"))
    works = str(exc.value).split("what works for them:")[1]
    assert "gptq" in works and "int8" in works and "bnb" not in works
    plan(QuantizeConfig(tiny("qwen3"), src.parent / "dense-nf4", "bnb-nf4"))  # a dense family is planned


@pytest.mark.parametrize("family", ["gemma3_text", "qwen3_moe"])
def test_evaluation_compares_a_quantized_family_with_its_source(family, tiny, tmp_path):
    from bitsmith.engine.config import EvalSettings
    from bitsmith.engine.evaluation.evaluate import evaluate
    from bitsmith.engine.evaluation.heldout import heldout_text_path

    from .weight_only_helpers import quantize_tiny

    src = tiny(family)
    out = quantize_tiny(src, tmp_path / "rtn", "rtn", None, bits=4).out
    result = run_job(evaluate(EvalSettings(out, heldout_text_path(), source=src, ctx=64, windows=2, threads=1)))
    # 4-bit rounding of a random model changes its predictions but keeps most (see test_families):
    # a KL of exactly zero would mean the source was compared with itself.
    assert result.kl_divergence > 0 and 0.3 <= result.top1_agreement <= 1 and result.perplexity > 1
    assert result.backend.startswith("transformers") and result.source_backend.startswith("transformers")


def test_the_catalog_says_which_paths_a_source_cannot_take(tiny, tmp_path):
    from bitsmith.engine.catalog.describe import detail_lines

    assert set(inspect(tiny("qwen3_moe")).unavailable) == {"bnb"}
    assert inspect(tiny("qwen3")).unavailable == {}
    assert "Not available" not in dict(detail_lines(inspect(tiny("starcoder2"))))  # llama.cpp has starcoder2
    rows = dict(detail_lines(inspect(_tiny_opt(tmp_path / "opt"))))
    assert rows["Family"] == "opt" and rows["Not available"].startswith("gguf-export: llama.cpp has no architecture 'opt'")


def test_the_gguf_refusal_is_what_the_writer_supports():
    """One source of truth: a family is refused GGUF export exactly when the writer would refuse it."""
    from bitsmith.engine.architectures import FAMILIES, family_for_model_type
    from bitsmith.engine.formats.gguf.arch import require_export_arch

    for fam in [*FAMILIES, family_for_model_type("starcoder2"), family_for_model_type("stablelm"),
                family_for_model_type("opt"), family_for_model_type("gpt_bigcode")]:
        refused = fam.refusal("gguf-export")
        try:
            written = require_export_arch(fam, "here")
        except UnsupportedModel as exc:
            assert refused is not None and refused in str(exc), fam.name
        else:
            assert refused is None and written == fam.gguf_export_arch, fam.name
    assert family_for_model_type("starcoder2").gguf_export_arch == "starcoder2"
    assert family_for_model_type("opt").refusal("gguf-export") is not None


def test_experts_fused_on_disk_are_refused_before_any_work(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    from bitsmith.engine.formats.hf_folder import open_hf_folder
    from bitsmith.engine.quant.weight_only.settings import resolve_settings

    src = tiny("qwen3_moe")
    folder = tmp_path / "fused"
    folder.mkdir()
    for f in src.iterdir():
        if f.name != "model.safetensors":
            (folder / f.name).write_bytes(f.read_bytes())
    state = load_file(str(src / "model.safetensors"))
    for layer in range(2):
        base = f"model.layers.{layer}.mlp.experts"
        state[f"{base}.down_proj"] = torch.stack([state.pop(f"{base}.{e}.down_proj.weight") for e in range(4)])
        state[f"{base}.gate_up_proj"] = torch.stack([torch.cat([state.pop(f"{base}.{e}.gate_proj.weight"),
                                                                state.pop(f"{base}.{e}.up_proj.weight")])
                                                     for e in range(4)])
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(UnsupportedModel, match="experts stored fused on disk"):
        resolve_settings(QuantizeConfig(folder, tmp_path / "out", "gptq"), open_hf_folder(folder))
