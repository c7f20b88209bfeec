"""GGUF export of a real model: the bundled SmolLM2-135M-Instruct, imported to an fp16 folder,
exported back, and compared with transformers running that same folder."""

from __future__ import annotations

import pytest

from bitsmith.engine.calibration.resources import builtin_text_path
from tests.engine.gguf_export_helpers import (MIXED_TEXT, export, generates, hf_logits, hf_tokenizer, llama_logits,
                                              load_llama, top1_agreement)

pytestmark = pytest.mark.bundled


@pytest.fixture(scope="module")
def bundled_f16(bundled_hf_dir, tmp_path_factory):
    return export(bundled_hf_dir, tmp_path_factory.mktemp("bundled-export") / "smollm2-f16.gguf", "F16")


def test_f16_next_token_agrees_with_transformers(bundled_hf_dir, bundled_f16):
    tok = hf_tokenizer(bundled_hf_dir)
    ids = tok.encode(builtin_text_path().read_text(encoding="utf-8"), add_special_tokens=False)[:256]
    assert len(ids) == 256
    agreement = top1_agreement(llama_logits(bundled_f16.out, ids), hf_logits(bundled_hf_dir, ids))
    assert agreement >= 0.99, f"top-1 agreement {agreement:.3f}"


def test_tokenizer_and_template_match_hugging_face(bundled_hf_dir, bundled_f16):
    llm = load_llama(bundled_f16.out)
    tok = hf_tokenizer(bundled_hf_dir)
    assert llm.tokenize(MIXED_TEXT.encode(), add_bos=False, special=True) == tok.encode(MIXED_TEXT, add_special_tokens=False)
    meta = llm.metadata
    assert meta["tokenizer.ggml.pre"] == "smollm" and meta["tokenizer.ggml.model"] == "gpt2"
    assert meta["tokenizer.chat_template"] == tok.chat_template and llm.chat_format == "chat_template.default"
    assert meta["tokenizer.ggml.add_bos_token"] == "false"
    assert int(meta["tokenizer.ggml.eos_token_id"]) == tok.eos_token_id
    answer = llm("The capital of France is", max_tokens=4, temperature=0.0)["choices"][0]["text"]
    assert "Paris" in answer


def test_q4_k_m_with_imatrix_reports_its_fallbacks(bundled_hf_dir, tmp_path):
    result = export(bundled_hf_dir, tmp_path / "smollm2-q4km.gguf", "Q4_K_M", samples=4, seq_len=128)
    assert result.imatrix is not None and result.imatrix.exists()
    assert "Paris" in generates(result.out)
    types = result.tensor_types
    # 1536-wide rows (ffn_down) take K-quants; 576-wide rows cannot and fall back to 32-wide blocks
    assert types["blk.0.ffn_down.weight"] in ("Q4_K", "Q6_K")
    assert types["blk.0.attn_q.weight"] == "Q5_0" and types["blk.0.attn_q.weight"] in result.fallbacks.values()
    assert types["token_embd.weight"] == "Q8_0"  # tied output: Q6_K wanted, rows too narrow
    assert "blk.0.ffn_down.weight" not in result.fallbacks
    assert 4.5 < result.bits_per_weight < 7.0
