"""bitsandbytes conversions (LLM.int8, NF4, FP4) saved in transformers' serialization and reloaded,
and the one-line errors when bitsandbytes is missing or cannot run on the device."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from bitsmith.engine.config import ModelFormat, QuantizeConfig
from bitsmith.engine.errors import InvalidInput, UnsupportedModel
from bitsmith.engine.events import run_job
from bitsmith.engine.quant.bnb import quantize_bnb
from bitsmith.engine.runtime import bnb_support
from bitsmith.engine.runtime.bnb_loader import load_bnb_model

BNB_OK, BNB_WHY = bnb_support.bnb_status("cpu", 8)
needs_bnb = pytest.mark.skipif(not BNB_OK, reason=f"bitsandbytes cannot run here: {BNB_WHY}")
CASES = [("bnb-int8", {"threshold": 5.0}, "Linear8bitLt"), ("bnb-nf4", {}, "Linear4bit"),
         ("bnb-nf4", {"quant_type": "fp4"}, "Linear4bit")]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny models: threads cost more than they save on a shared 2-core runner.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def bnb_broken(monkeypatch):
    """bitsandbytes reported unusable, as on a machine without its CPU backend or a GPU."""
    why = "bitsandbytes 0.50.2 has no usable 8-bit backend on cpu (RuntimeError: no kernel)"
    monkeypatch.setattr(bnb_support, "bnb_status", lambda device="cpu", bits=8: (False, why))
    return why


def _ids(tok):
    return tok("The quick brown fox jumps over the lazy dog", return_tensors="pt").input_ids


@needs_bnb
@pytest.mark.parametrize("method,extra,layer", CASES, ids=["int8", "nf4", "fp4"])
def test_converts_saves_and_reloads_with_transformers(tiny_llama_dir, tmp_path, method, extra, layer):
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    out = tmp_path / "bnb"
    result = run_job(quantize_bnb(QuantizeConfig(tiny_llama_dir, out, method, device="cpu", extra=extra)))
    qcfg = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qcfg["quant_method"] == "bitsandbytes"
    if method == "bnb-int8":
        assert qcfg["load_in_8bit"] and qcfg["llm_int8_threshold"] == 5.0
    else:
        assert qcfg["load_in_4bit"] and qcfg["bnb_4bit_quant_type"] == extra.get("quant_type", "nf4")
    assert {"tokenizer.json", "chat_template.jinja", "bitsmith-report.json"} <= {p.name for p in out.iterdir()}
    card = json.loads((out / "bitsmith-report.json").read_text())
    assert card["method"] == method and card["settings"] == result.settings
    assert card["tool_versions"]["bitsandbytes"] and card["peak_rss_bytes"] > 0

    from bitsmith.engine.catalog import inspect

    assert inspect(out).format is ModelFormat.BNB
    reloaded = AutoModelForCausalLM.from_pretrained(out)  # plain transformers, no Bitsmith code
    assert type(reloaded.model.layers[0].mlp.down_proj).__name__ == layer
    model, tok = load_bnb_model(out, "cpu")
    ids = _ids(tok)
    # The saved folder computes exactly what an in-memory quantization of the source computes: the
    # job saves before any forward (bitsandbytes 0.50.2 mis-saves 4-bit scales after one on CPU).
    if method == "bnb-int8":
        qconfig = BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=5.0)
    else:
        qconfig = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=extra.get("quant_type", "nf4"),
                                     bnb_4bit_compute_dtype=torch.float32)
    fresh = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, quantization_config=qconfig, dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, fresh(ids).logits, rtol=1e-4, atol=1e-4)
    text = tok.decode(model.generate(ids, max_new_tokens=4, do_sample=False)[0])
    assert text.startswith("The quick brown fox")


@needs_bnb
def test_chat_backend_runs_a_preloaded_bnb_model(tiny_llama_dir, tmp_path):
    from bitsmith.engine.cancel import CancelToken
    from bitsmith.engine.config import SamplingSettings
    from bitsmith.engine.runtime.base import GenerationCounts
    from bitsmith.engine.runtime.hf_backend import TransformersBackend

    out = tmp_path / "nf4"
    run_job(quantize_bnb(QuantizeConfig(tiny_llama_dir, out, "bnb-nf4", device="cpu")))
    backend = TransformersBackend(out, device="cpu", preloaded=load_bnb_model(out, "cpu"))
    counts = GenerationCounts()
    ids = backend.tokenize(backend.render([{"role": "user", "content": "hi"}]))
    list(backend.stream(ids, SamplingSettings(temperature=0.0, max_new_tokens=4), CancelToken(), counts))
    assert counts.completion_tokens >= 1


def test_no_usable_backend_is_a_clear_error(tiny_llama_dir, tmp_path, bnb_broken):
    with pytest.raises(UnsupportedModel) as err:
        run_job(quantize_bnb(QuantizeConfig(tiny_llama_dir, tmp_path / "x", "bnb-int8", device="cpu")))
    message = str(err.value)
    assert "no usable 8-bit backend on cpu" in message
    assert "bitsandbytes needs an NVIDIA GPU or its CPU backend" in message
    assert list(tmp_path.iterdir()) == []


def test_loader_refuses_when_bitsandbytes_cannot_run(tmp_path, bnb_broken):
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {
        "quant_method": "bitsandbytes", "load_in_4bit": True}}))
    with pytest.raises(UnsupportedModel, match="NVIDIA GPU or its CPU backend"):
        load_bnb_model(tmp_path, "cpu")


def test_missing_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # `import bitsandbytes` now fails
    bnb_support.bnb_status.cache_clear()
    try:
        assert bnb_support.bnb_status("cpu", 4) == (False, "bitsandbytes is not installed")
        with pytest.raises(UnsupportedModel, match="bitsandbytes is not installed"):
            bnb_support.require_bnb("cpu", 4, "bnb-nf4 on cpu")
    finally:
        monkeypatch.undo()
        bnb_support.bnb_status.cache_clear()


@pytest.mark.parametrize("method,extra,match", [
    ("bnb-int8", {"threshold": -1}, "0 or more"),
    ("bnb-int8", {"threshold": "x"}, "must be a number"),
    ("bnb-nf4", {"quant_type": "int4"}, "nf4 or fp4"),
])
def test_bad_settings_are_refused(tiny_llama_dir, tmp_path, method, extra, match):
    with pytest.raises(InvalidInput, match=match):
        run_job(quantize_bnb(QuantizeConfig(tiny_llama_dir, tmp_path / "x", method, device="cpu", extra=extra)))

