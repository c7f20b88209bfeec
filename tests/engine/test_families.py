"""Every family on every model-side path, each with a tiny random model built here from a config and
the bundled model's tokenizer (tests/fixtures/tiny_families.py): `info`; GPTQ 4-bit, AWQ, RTN and
INT8 against the source (KL divergence, top-1 agreement on held-out text); chat on the outputs.
Mixture-of-experts specifics and refusals are in test_families_moe.py."""

from __future__ import annotations

import pytest
import torch

from bitsmith.engine.architectures import FAMILIES, family_for_model_type
from bitsmith.engine.catalog import inspect
from bitsmith.engine.config import ModelFormat, QuantizeConfig, SamplingSettings
from bitsmith.engine.cancel import CancelToken
from bitsmith.engine.events import run_job
from bitsmith.engine.quant.int8 import quantize_int8
from bitsmith.engine.runtime import load
from bitsmith.engine.runtime.base import GenerationCounts
from bitsmith.engine.runtime.hf_backend import TransformersBackend
from bitsmith.engine.runtime.model_loader import load_model
from tests.fixtures.tiny_families import FAMILY_CONFIGS, build_tiny, families_under_test

from .weight_only_helpers import one_torch_thread, quantize_tiny, text_windows  # noqa: F401

ALL = families_under_test()  # every family with BITSMITH_ALL_FAMILIES=1


def _log_probs(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float().log_softmax(-1)


def _kl_top1(ref, other):
    """Mean KL(source || other) in nats per token, and how often their top tokens agree."""
    kl = (ref.exp() * (ref - other)).sum(-1).mean().item()
    return kl, (ref.argmax(-1) == other.argmax(-1)).float().mean().item()


# info for every family in every run: 1-2 s each, most of it building the tiny model, which the
# F16 test in test_gguf_families.py then reuses.
@pytest.mark.parametrize("family", list(FAMILY_CONFIGS))
def test_info_names_the_family_and_counts_parameters_and_experts(family, tiny):
    folder = tiny(family)
    info = inspect(folder)
    model_type = FAMILY_CONFIGS[family][0]
    assert info.family == family_for_model_type(model_type).name
    model, _ = load_model(folder, "cpu", fmt=ModelFormat.HF)
    # Tied embeddings are one tensor on disk and one parameter in memory: the counts agree exactly.
    assert info.parameters == sum(p.numel() for p in model.parameters())
    experts = [p for n, p in model.named_parameters() if ".experts." in n]
    if not experts:
        assert info.experts is None and info.active_parameters is None
        return
    per_token = FAMILY_CONFIGS[family][1]["num_experts_per_tok"]
    assert (info.experts, info.experts_per_token) == (4, per_token)
    expert_params = sum(p.numel() for p in experts)
    assert info.active_parameters == info.parameters - expert_params + expert_params * per_token // 4


@pytest.fixture(scope="module")
def windows(tiny):
    """Calibration and held-out windows of real text: every tiny family shares the bundled tokenizer."""
    ids = text_windows(tiny("llama"), 10, 64)
    return ids[:6], ids[6:]


def _chat(model, tokenizer, folder) -> GenerationCounts:
    backend = TransformersBackend(folder, device="cpu", preloaded=(model, tokenizer))
    counts = GenerationCounts()
    prompt = backend.tokenize(backend.render([{"role": "user", "content": "Name a colour."}]))
    list(backend.stream(prompt, SamplingSettings(temperature=0.0, max_new_tokens=3, seed=0), CancelToken(), counts))
    return counts


@pytest.mark.parametrize("family", ALL)
def test_gptq_and_awq_beat_rtn_int8_stays_close_and_all_chat(family, tiny, windows, tmp_path):
    src = tiny(family)
    calib, held = windows
    ref = _log_probs(load_model(src, "cpu", fmt=ModelFormat.HF)[0], held)
    gptq = quantize_tiny(src, tmp_path / "gptq", "gptq", calib, bits=4)
    rtn = quantize_tiny(src, tmp_path / "rtn", "rtn", calib, bits=4)  # asymmetric, as AWQ; errors measured
    outputs = {
        "gptq": (gptq.out, ModelFormat.GPTQ),
        "awq": (quantize_tiny(src, tmp_path / "awq", "awq", calib).out, ModelFormat.AWQ),
        "rtn": (rtn.out, ModelFormat.GPTQ),
        "int8": (run_job(quantize_int8(QuantizeConfig(src, tmp_path / "int8", "int8"))).out, ModelFormat.INT8),
    }
    kl, top1 = {}, {}
    for name, (out, fmt) in outputs.items():
        model, tokenizer = load_model(out, "cpu", fmt=fmt)
        kl[name], top1[name] = _kl_top1(ref, _log_probs(model, held))
        if name in ("gptq", "int8"):  # chat on the quantized outputs, through the chat backend
            counts = _chat(model, tokenizer, out)
            assert counts.completion_tokens > 0 and counts.finish_reason in ("length", "stop")
    # GPTQ minimizes each layer's output error on the calibration data, where round-to-nearest on the
    # same 4-bit grid is one candidate: its mean layer error must come out lower.
    assert gptq.summary["mean"] < rtn.summary["mean"], (gptq.summary, rtn.summary)
    # On held-out text the model's KL follows: measured from 0.03x RTN's (Qwen2-MoE) to 0.97x
    # (tied Llama, where every method stays below 0.006 nats); a tenth above RTN would mean GPTQ
    # fitted the wrong inputs (say, tokens the router never sent to an expert).
    assert kl["gptq"] <= 1.1 * kl["rtn"], kl
    # Random weights are far touchier than trained ones (Gemma's soft-capped, widened logits move
    # most): the worst family measured kept 57% of top tokens (Gemma 3, on 256 held-out tokens);
    # 45% is the floor for "still the model".
    assert top1["gptq"] >= 0.45, top1
    # AWQ's scale grid includes alpha = 0 (plain rounding), so on its calibration text it never does
    # worse than RTN; on held-out text it measured from 40x better (Qwen2) to level (Granite, where
    # every method stays below 0.0003 nats). A quarter above RTN would mean a fold broke the function.
    assert kl["awq"] <= 1.25 * kl["rtn"], kl
    # Per-channel int8 moves each weight by at most half a step of max|w|/127 (<0.4% of the row's
    # range); measured KL at most 0.006 and agreement at least 95% on every family.
    assert kl["int8"] < 0.02 and top1["int8"] >= 0.9, (kl, top1)


def test_chat_on_a_family_folder_goes_through_runtime_load(tiny):
    backend = load(tiny("gemma3_text"), "cpu")
    counts = GenerationCounts()
    prompt = backend.tokenize(backend.render([{"role": "user", "content": "Hi"}]))
    list(backend.stream(prompt, SamplingSettings(temperature=0.0, max_new_tokens=3, seed=0), CancelToken(), counts))
    backend.close()
    assert backend.kind == "transformers" and counts.completion_tokens > 0


def test_the_table_lists_every_family_the_issue_names():
    names = {t for f in FAMILIES for t in f.hf_model_types}
    assert {"llama", "mistral", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe", "mixtral", "gemma2", "gemma3_text",
            "phi3", "granite", "olmo2", "smollm3"} <= names
    assert {cfg[0] for cfg in FAMILY_CONFIGS.values()} >= names  # a tiny model for each (all run with BITSMITH_ALL_FAMILIES=1)


def test_tiny_builds_are_deterministic(tiny, tmp_path):
    again = build_tiny("qwen3_moe", tmp_path / "again")
    first = tiny("qwen3_moe")
    assert (again / "model.safetensors").read_bytes() == (first / "model.safetensors").read_bytes()
    assert (again / "config.json").read_text() == (first / "config.json").read_text()


@pytest.mark.parametrize("family", ALL)
def test_bitsandbytes_converts_each_family_or_refuses_it_at_once(family, tiny, windows, tmp_path):
    """bitsandbytes through the engine for every family: LLM.int8 and NF4 saved, reloaded by the
    loader the chat uses, close to the source and chatting; mixture-of-experts refused before work
    (BITSMITH_ALL_FAMILIES=1: 17 passed in 75 s at load ~1.5)."""
    from bitsmith.engine.errors import UnsupportedModel
    from bitsmith.engine.quant.bnb import quantize_bnb
    from bitsmith.engine.runtime import bnb_support

    ok, why = bnb_support.bnb_status("cpu", 8)
    if not ok:
        pytest.skip(f"bitsandbytes cannot run here: {why}")
    src = tiny(family)
    if inspect(src).unavailable.get("bnb"):
        with pytest.raises(UnsupportedModel, match="bitsandbytes"):
            run_job(quantize_bnb(QuantizeConfig(src, tmp_path / "bnb", "bnb-int8", device="cpu")))
        assert not (tmp_path / "bnb").exists()
        return
    _, held = windows
    ref = _log_probs(load_model(src, "cpu", fmt=ModelFormat.HF)[0], held)
    kl, top1 = {}, {}
    for method in ("bnb-int8", "bnb-nf4"):
        out = run_job(quantize_bnb(QuantizeConfig(src, tmp_path / method, method, device="cpu"))).out
        model, tokenizer = load_model(out, "cpu", fmt=ModelFormat.BNB)
        kl[method], top1[method] = _kl_top1(ref, _log_probs(model, held))
        counts = _chat(model, tokenizer, out)
        assert counts.completion_tokens > 0, method
    # LLM.int8 rounds each row to max|w|/127 steps like our INT8 (outlier columns above its
    # threshold stay in float16): the same bound as INT8 above.
    assert kl["bnb-int8"] < 0.02 and top1["bnb-int8"] >= 0.9, (kl, top1)
    # LLM.int8 measured KL at most 0.006 and agreement at least 95 % over all 17 families.
    # NF4 is a 4-bit grid of 64-weight blocks without calibration, so RTN-like: measured top-1 from
    # 0.45 (OLMo 2) and 0.49 (Gemma 3) to 1.0 on 256 held-out tokens of random-weight models; 0.4 is
    # the floor for "still the model" with that spread below the touchiest family.
    assert top1["bnb-nf4"] >= 0.4, (kl, top1)
