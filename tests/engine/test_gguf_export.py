"""GGUF export of tiny random models: layouts and hyperparameters checked against transformers'
own logits, the tokenizer against the Hugging Face tokenizer, and every file type through llama.cpp."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

from bitsmith.engine.formats.gguf.export_tensors import permute_rope, tensor_type
from bitsmith.engine.formats.gguf.export_vocab import pre_tokenizer_name
from bitsmith.engine.errors import UnsupportedModel
from tests.engine.gguf_export_helpers import (MIXED_TEXT, export, generates, hf_logits, hf_tokenizer, llama_logits,
                                              load_llama, token_ids, top1_agreement)

QT = gguf.GGMLQuantizationType


@pytest.fixture(scope="module")
def variants(tiny_llama_dir, tmp_path_factory):
    from tests.fixtures.tiny_variants import build_spm_llama, build_variant

    root = tmp_path_factory.mktemp("variants")
    built = {"llama": tiny_llama_dir}
    for kind in ("llama-tied", "llama3-rope", "qwen2"):
        built[kind] = build_variant(tiny_llama_dir, root / kind, kind)
    built["llama-spm"] = build_spm_llama(root / "llama-spm")
    return built


@pytest.mark.parametrize("kind", ["llama", "llama-tied", "llama3-rope", "qwen2", "llama-spm"])
def test_f16_logits_agree_with_transformers(variants, tmp_path, kind):
    src = variants[kind]
    result = export(src, tmp_path / "m.gguf", "F16")
    ids = token_ids(src, 256)
    ours, reference = llama_logits(result.out, ids), hf_logits(src, ids)
    agreement = top1_agreement(ours, reference)
    assert agreement >= 0.99, f"{kind}: top-1 agreement {agreement:.3f}"
    # Random tiny models barely use attention, so top-1 alone would let a wrong rotary layout
    # through; fp16 rounding moves logits by ~0.3% of their size, a wrong layout by ~3%.
    error = np.abs(ours - reference).max() / np.abs(reference).mean()
    assert error < 0.01, f"{kind}: largest logit error {error:.4f} of the mean logit"

    reader = gguf.GGUFReader(result.out)
    arch = reader.get_field("general.architecture").contents()
    assert arch == ("qwen2" if kind == "qwen2" else "llama")
    assert reader.get_field(f"{arch}.attention.head_count_kv").contents() == 2
    assert reader.get_field(f"{arch}.rope.dimension_count").contents() == 16
    assert reader.get_field("general.file_type").contents() == gguf.LlamaFileType.MOSTLY_F16
    assert reader.get_field("general.quantization_version").contents() == gguf.GGML_QUANT_VERSION
    names = {t.name for t in reader.tensors}
    assert ("output.weight" in names) == (kind in ("llama", "llama3-rope", "llama-spm"))
    assert ("rope_freqs.weight" in names) == (kind == "llama3-rope")
    if kind == "qwen2":
        assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"} <= names


def test_tokenizer_and_chat_template_round_trip(tiny_llama_dir, tmp_path):
    result = export(tiny_llama_dir, tmp_path / "m.gguf", "Q8_0")
    llm = load_llama(result.out)
    tok = hf_tokenizer(tiny_llama_dir)
    assert llm.tokenize(MIXED_TEXT.encode(), add_bos=False, special=True) == tok.encode(MIXED_TEXT, add_special_tokens=False)
    assert llm.metadata["tokenizer.ggml.pre"] == "gpt-2"
    assert llm.metadata["tokenizer.chat_template"] == tok.chat_template
    # llama-cpp-python formats chats with the file's own template
    assert llm.chat_format == "chat_template.default"
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    messages = [{"role": "user", "content": "hi"}]
    prompt = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>",
                                 bos_token="<|im_start|>")(messages=messages).prompt
    assert prompt == tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    answer = llm.create_chat_completion(messages=messages, max_tokens=3)
    assert answer["choices"][0]["message"]["role"] == "assistant"


SPM_TEXTS = ["The quick brown fox.", " leading space", "double  space\n\ttab", "Café naïve 東京 🙂 (byte fallback)",
             "<s>user\nhi</s> there", "Numbers: 0 1 2 3 100 1000", ""]


def test_sentencepiece_style_tokenizer_round_trips(variants, tmp_path):
    src = variants["llama-spm"]
    result = export(src, tmp_path / "m.gguf", "Q8_0")
    llm = load_llama(result.out)
    tok = hf_tokenizer(src)
    assert llm.metadata["tokenizer.ggml.model"] == "llama" and llm.metadata["tokenizer.ggml.add_space_prefix"] == "true"
    assert llm.metadata["tokenizer.ggml.add_bos_token"] == "true"  # from the post-processor
    for text in SPM_TEXTS:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == tok.encode(text, add_special_tokens=False), text
    assert llm.tokenize(b"Hello there", add_bos=True) == tok.encode("Hello there")
    types = {int(i): t for i, t in enumerate(gguf.GGUFReader(result.out).get_field("tokenizer.ggml.token_type").contents())}
    assert types[0] == gguf.TokenType.UNKNOWN and types[1] == gguf.TokenType.CONTROL
    assert types[3] == gguf.TokenType.BYTE and types[258] == gguf.TokenType.BYTE and types[300] == gguf.TokenType.NORMAL


@pytest.mark.parametrize("gguf_type", ["F32", "BF16", "Q8_0", "Q5_1", "Q4_0"])
def test_direct_types_load_and_generate(tiny_llama_dir, tmp_path, gguf_type):
    result = export(tiny_llama_dir, tmp_path / "m.gguf", gguf_type)
    generates(result.out)
    types = result.tensor_types
    assert types["blk.0.attn_norm.weight"] == "F32" and types["output_norm.weight"] == "F32"
    assert types["blk.0.ffn_down.weight"] == gguf_type
    # 4/5-bit legacy files keep the output projection at Q8_0 (llama.cpp would use Q6_K)
    assert types["output.weight"] == ("Q8_0" if gguf_type in ("Q5_1", "Q4_0") else gguf_type)
    assert types["token_embd.weight"] == gguf_type
    assert result.imatrix is None


@pytest.fixture(scope="module")
def tiny_fp16(tiny_llama_dir, tmp_path_factory):
    import shutil

    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("tiny-fp16") / "tiny-fp16"
    AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float16).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tiny_llama_dir / name, folder / name)
    return folder


@pytest.mark.parametrize("gguf_type", ["Q8_0", "Q5_1", "Q4_0"])
def test_direct_types_match_llama_cpp_quantizer_byte_for_byte(tiny_fp16, tmp_path, gguf_type):
    """From the same fp16 weights, our kernels' file and llama.cpp's own quantization of an F16 export
    hold the same tensor types and the same bytes (on rows too narrow for llama.cpp's Q6_K output)."""
    import ctypes

    import llama_cpp

    from bitsmith.engine.config import GGUFType
    from bitsmith.engine.quant.gguf.llama_quantize import quantize_params

    ours = export(tiny_fp16, tmp_path / "ours.gguf", gguf_type).out
    f16 = export(tiny_fp16, tmp_path / "f16.gguf", "F16").out
    params, _keep = quantize_params(GGUFType(gguf_type), None, nthread=1)
    assert llama_cpp.llama_model_quantize(str(f16).encode(), str(tmp_path / "theirs.gguf").encode(), ctypes.byref(params)) == 0
    mine = {t.name: t for t in gguf.GGUFReader(ours).tensors}
    theirs = {t.name: t for t in gguf.GGUFReader(tmp_path / "theirs.gguf").tensors}
    assert {n: t.tensor_type for n, t in mine.items()} == {n: t.tensor_type for n, t in theirs.items()}
    for name, t in mine.items():
        assert t.data.tobytes() == theirs[name].data.tobytes(), name


def test_k_quant_reports_fallback_types(tiny_llama_dir, tmp_path):
    result = export(tiny_llama_dir, tmp_path / "m.gguf", "Q4_K_M")
    generates(result.out)
    # hidden 64 and ffn 128 are not multiples of 256: llama.cpp falls back to 32-wide blocks
    reader = gguf.GGUFReader(result.out)
    on_disk = {t.name: t.tensor_type.name for t in reader.tensors}
    assert result.tensor_types == on_disk
    assert set(result.fallbacks) == {n for n, t in on_disk.items() if t != "F32"}
    assert set(result.fallbacks.values()) <= {"Q5_0", "Q8_0"}
    assert sum(result.type_counts.values()) == len(on_disk)
    assert reader.get_field("general.file_type").contents() == gguf.LlamaFileType.MOSTLY_Q4_K_M
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["m.gguf", "m.gguf.report.json", "m.imatrix.gguf"]  # no intermediate left


def test_report_card(tiny_llama_dir, tmp_path):
    import json

    result = export(tiny_llama_dir, tmp_path / "m.gguf", "Q4_K_S", calibration="builtin", seed=3)
    card = json.loads(result.report.read_text())
    assert card["method"] == "gguf" and card["type"] == "Q4_K_S" and card["source"] == str(tiny_llama_dir)
    assert card["imatrix"]["used"] is True and len(card["imatrix"]["calibration_sha256"]) == 64
    assert "built-in" in card["imatrix"]["calibration_source"] and card["imatrix"]["seed"] == 3
    assert {"bitsmith", "gguf", "llama-cpp-python"} <= set(card["tool_versions"])
    assert card["size_bytes"] == result.out.stat().st_size and card["peak_rss_bytes"] > 0
    assert card["tensor_type_counts"] == result.type_counts and card["seconds"] >= 0


def test_imatrix_off_by_choice_and_for_high_bit_types(tiny_llama_dir, tmp_path):
    assert export(tiny_llama_dir, tmp_path / "a.gguf", "Q4_K_M", imatrix=False).imatrix is None
    assert export(tiny_llama_dir, tmp_path / "b.gguf", "Q6_K").imatrix is None


def test_rope_permutation_interleaves_each_head():
    n_head, head_dim, cols = 2, 8, 3
    w = torch.arange(n_head * head_dim * cols, dtype=torch.float32).reshape(n_head * head_dim, cols)
    out = permute_rope(w, n_head)
    for h in range(n_head):
        block = w[h * head_dim:(h + 1) * head_dim]
        first, second = block[: head_dim // 2], block[head_dim // 2:]
        expected = torch.stack([first, second], dim=1).reshape(head_dim, cols)
        assert torch.equal(out[h * head_dim:(h + 1) * head_dim], expected)
    bias = torch.arange(n_head * head_dim, dtype=torch.float32)
    assert torch.equal(permute_rope(bias, n_head)[:4], torch.tensor([0.0, 4.0, 1.0, 5.0]))


def test_tensor_types_follow_llama_cpp_conventions():
    assert tensor_type("blk.0.attn_norm.weight", (64,), QT.Q4_0, False) == QT.F32
    assert tensor_type("blk.0.attn_q.bias", (64,), QT.Q4_0, False) == QT.F32
    assert tensor_type("blk.0.attn_q.weight", (64, 64), QT.Q4_0, False) == QT.Q4_0
    assert tensor_type("output.weight", (400, 64), QT.Q4_1, False) == QT.Q8_0
    assert tensor_type("token_embd.weight", (400, 64), QT.Q4_1, True) == QT.Q8_0
    assert tensor_type("token_embd.weight", (400, 64), QT.Q4_1, False) == QT.Q4_1
    assert tensor_type("blk.0.ffn_down.weight", (64, 100), QT.Q8_0, False) == QT.F16  # 100 % 32 != 0


def test_pre_tokenizer_names(tmp_path):
    from bitsmith.engine.formats.gguf.export_vocab import SPLIT_PATTERNS

    def pre(*steps):
        return {"pre_tokenizer": {"type": "Sequence", "pretokenizers": list(steps)}}

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}
    assert pre_tokenizer_name({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False}}, tmp_path) == "gpt-2"
    assert pre_tokenizer_name(pre({"type": "Digits", "individual_digits": True},
                                  {"type": "ByteLevel", "use_regex": True}), tmp_path) == "smollm"
    for pattern, name in SPLIT_PATTERNS.items():
        split = {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated"}
        assert pre_tokenizer_name(pre(split, byte_level), tmp_path) == name
    with pytest.raises(UnsupportedModel, match="no llama.cpp equivalent"):
        pre_tokenizer_name(pre({"type": "Split", "pattern": {"Regex": "x"}}, byte_level), tmp_path)
