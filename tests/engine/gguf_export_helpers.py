"""Shared by the GGUF export tests: run an export, load the result in llama.cpp, compare logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bitsmith.engine.cancel import NEVER
from bitsmith.engine.config import QuantizeConfig
from bitsmith.engine.events import run_job
from bitsmith.engine.quant.gguf.job import GGUFResult, quantize_gguf

#: Special tokens, non-ASCII letters, emoji, digits, code and irregular spacing.
MIXED_TEXT = (
    "<|im_start|>user\nCafé naïve Zürich 東京 Привет 🙂 — 2024-11-22, x=3.14159!<|im_end|>\n"
    "<|im_start|>assistant\ndef add(a, b):\n    return a + b  # done\n\n  spaced   out\t tab<|im_end|>"
)

FILLER = (
    "The quick brown fox jumps over the lazy dog. Paris is the capital of France. "
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. def add(a, b): return a + b\n"
)


def export(source: Path, out: Path, gguf_type: str, cancel=NEVER, on_event=None, **settings) -> GGUFResult:
    settings.setdefault("calibration", "builtin")
    settings.setdefault("samples", 4)
    settings.setdefault("seq_len", 64)
    cfg = QuantizeConfig(source=source, out=out, method="gguf", gguf_type=gguf_type, **settings)
    return run_job(quantize_gguf(cfg, cancel), on_event)


def load_llama(path: Path, n_ctx: int = 512):
    from bitsmith.engine.runtime.llamacpp_open import open_llama

    return open_llama(path, n_ctx=n_ctx, logits_all=True, verbose=False, seed=0)


def hf_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def token_ids(folder: Path, n: int) -> list[int]:
    tok = hf_tokenizer(folder)
    ids: list[int] = []
    while len(ids) < n:
        ids += tok.encode(FILLER, add_special_tokens=False)
    return ids[:n]


def hf_logits(folder: Path, ids: list[int]) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0].numpy()


def llama_logits(path: Path, ids: list[int]) -> np.ndarray:
    llm = load_llama(path, n_ctx=max(512, len(ids)))
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


def top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(-1) == b.argmax(-1)).mean())


def generates(path: Path, n: int = 8) -> str:
    llm = load_llama(path, n_ctx=128)
    out = llm("The capital of France is", max_tokens=n, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1
    return out["choices"][0]["text"]
