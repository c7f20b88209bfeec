"""One token stream, every format: the source's distributions are computed once and stored, every
output is scored against them, and the figures are llama-perplexity's (--kl-divergence): checked
here against the same statistics computed independently from full logits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from bitsmith.engine.calibration.resources import builtin_text_path
from bitsmith.engine.cli import run as cli
from bitsmith.engine.evaluation import EvalSettings, evaluate
from bitsmith.engine.evaluation.token_stats import distribution_stats
from bitsmith.engine.evaluation.verdict import Variant, compare, verdict
from bitsmith.engine.events import run_job
from bitsmith.engine.threads import torch_threads

TEXT = builtin_text_path()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


def _run(model, source, ctx=64, windows=2):
    return run_job(evaluate(EvalSettings(model, TEXT, source, ctx=ctx, windows=windows, threads=1)))


def _opened(monkeypatch) -> list[str]:
    """Record every model the evaluation loads."""
    import sys

    ev = sys.modules["bitsmith.engine.evaluation.evaluate"]  # the module; the package exports the function
    opened, real = [], ev.open_provider
    monkeypatch.setattr(ev, "open_provider", lambda path, *a, **k: opened.append(str(path)) or real(path, *a, **k))
    return opened


def test_the_source_runs_once_per_text_and_window_length(tiny_llama_dir, tmp_path, monkeypatch):
    import shutil

    from bitsmith.engine.paths import cache_dir

    copy = tmp_path / "copy"
    shutil.copytree(tiny_llama_dir, copy)
    opened = _opened(monkeypatch)
    first = _run(copy, tiny_llama_dir)
    assert opened == [str(copy), str(tiny_llama_dir)]  # model, then the source to build the reference
    again = _run(copy, tiny_llama_dir)
    assert opened[2:] == [str(copy)]  # the stored reference: the source is not loaded again
    assert again.distribution == first.distribution and again.kl_divergence == 0
    _run(copy, tiny_llama_dir, ctx=32)
    assert opened[3:] == [str(copy), str(tiny_llama_dir)]  # another window length: a new reference
    # A damaged reference file is not trusted: it is rebuilt from the source.
    for ref in (cache_dir() / "kl-reference").glob("*.safetensors"):
        ref.write_bytes(b"\x00" * 64)
    assert _run(copy, tiny_llama_dir).distribution == first.distribution
    assert opened[5:] == [str(copy), str(tiny_llama_dir)]


def test_statistics_match_an_independent_computation():
    """distribution_stats against numpy on made-up per-token values (exact: same definitions)."""
    rng = np.random.default_rng(0)
    nll_p = rng.gamma(2.0, 1.0, 5000)
    nll_q = nll_p + rng.normal(0.02, 0.1, 5000)
    kld = rng.gamma(0.5, 0.02, 5000)
    same = rng.random(5000) < 0.9
    d = distribution_stats(nll_q, nll_p, kld, same)
    diff = nll_q - nll_p
    assert d["ppl_ratio"] == pytest.approx(math.exp(diff.mean()), rel=1e-12)
    assert d["ln_ppl_ratio_stderr"] == pytest.approx(diff.std(ddof=1) / math.sqrt(5000), rel=1e-12)
    assert d["kld"]["99%"] == pytest.approx(np.sort(kld)[int(round(0.99 * 4999))], rel=0.02)  # interpolation
    assert d["kld"]["median"] == pytest.approx(np.median(kld), rel=1e-12)
    dp = np.exp(-nll_q) - np.exp(-nll_p)
    assert d["rms_delta_p"] == pytest.approx(math.sqrt((dp ** 2).mean()), rel=1e-12)
    assert d["delta_p"]["mean"] == pytest.approx(dp.mean(), rel=1e-12)
    assert d["same_top_p"] == pytest.approx(same.mean(), rel=1e-12)
    assert d["kld"]["max"] >= d["kld"]["99.9%"] >= d["kld"]["90%"] >= d["kld"]["median"] >= d["kld"]["min"]


def _full_logits_hf(folder, ids):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor(ids)[None]).logits[0]


def _full_logits_llama(path, ids):
    from bitsmith.engine.runtime.llamacpp_open import open_llama

    llm = open_llama(path, n_ctx=len(ids), n_batch=len(ids), n_ubatch=len(ids), logits_all=True, n_threads=1,
                n_threads_batch=1, verbose=False, seed=0)
    try:
        llm.eval(ids)
        return torch.from_numpy(np.array(llm.scores[:len(ids)], dtype=np.float32))
    finally:
        llm.close()


@pytest.mark.bundled
def test_a_gguf_against_its_source_matches_llama_perplexity_figures(bundled_gguf, bundled_hf_dir):
    """The bundled Q4_1 GGUF (llama.cpp) against its float16 import (transformers): every figure
    recomputed here from both models' full logits, window by window, with full-vocabulary KL."""
    ctx, windows = 128, 2
    result = _run(bundled_gguf, bundled_hf_dir, ctx=ctx, windows=windows)
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(bundled_hf_dir)(TEXT.read_text(encoding="utf-8"),
                                                        add_special_tokens=False)["input_ids"]
    nll_q, nll_p, kl, same = [], [], [], []
    for w in range(windows):
        window = ids[w * ctx:(w + 1) * ctx]
        q = torch.log_softmax(_full_logits_llama(bundled_gguf, window)[:-1].double(), -1)
        p = torch.log_softmax(_full_logits_hf(bundled_hf_dir, window)[:-1].double(), -1)
        t = torch.tensor(window[1:])[:, None]
        nll_q.append(-q.gather(1, t)[:, 0])
        nll_p.append(-p.gather(1, t)[:, 0])
        kl.append((p.exp() * (p - q)).sum(-1))
        same.append((q.argmax(-1) == p.argmax(-1)).double())
    expected = distribution_stats(*(torch.cat(x).numpy() for x in (nll_q, nll_p, kl, same)))
    d = result.distribution
    assert d["tokens"] == expected["tokens"] == windows * (ctx - 1)
    # Losses and Δp come from the same weights run again here: llama.cpp's float32 logits agree
    # between two contexts to ~1e-5 relative (see test_evaluation), so 1e-3 is plenty and still
    # catches any mistake in which token or position is scored (those move these by >1 %).
    for key in ("ppl_model", "ppl_source", "ppl_ratio", "rms_delta_p"):
        assert d[key] == pytest.approx(expected[key], rel=1e-3), key
    assert d["delta_p"]["mean"] == pytest.approx(expected["delta_p"]["mean"], abs=1e-4)
    # Same top token: a near tie can flip with that noise; one flip in 254 is 0.4 %.
    assert d["same_top_p"] == pytest.approx(expected["same_top_p"], abs=0.01)
    # KL from the stored top-256 plus one bucket is a lower bound of the full-vocabulary KL (merging
    # tokens never raises KL; 1e-3 above allows the logits' noise). This small model leaves about 5 %
    # of its probability beyond its top 256 tokens, and the bound then sits 8 % below the full mean
    # (measured); per position the gap is wider where the source is unsure, so the quantiles get
    # a wider floor. A bucket mistake (wrong tail masses, a sign) moves these far outside.
    assert 0.9 < d["reference_mass"] < 1 and d["reference_top_k"] == 256
    assert expected["kld"]["mean"] * 0.85 <= d["kld"]["mean"] <= expected["kld"]["mean"] * 1.001 + 1e-6
    for key in ("median", "90%", "99%", "max"):
        assert expected["kld"][key] * 0.6 <= d["kld"][key] <= expected["kld"][key] * 1.001 + 1e-6, key
    assert result.verdict and ("loses" in result.verdict or "matches" in result.verdict or "better" in result.verdict)


def test_eval_json_has_every_figure(tiny_llama_dir, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_llama_dir, copy)
    assert cli(["eval", str(copy), "--source", str(tiny_llama_dir), "--text", str(TEXT), "--ctx", "64",
                "--windows", "2", "--threads", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    d = out["distribution"]
    for key in ("ppl_model", "ppl_source", "ppl_ratio", "ppl_ratio_stderr", "ln_ppl_correlation", "rms_delta_p",
                "same_top_p"):
        assert key in d, key
    for key in ("mean", "stderr", "max", "99.9%", "99%", "95%", "90%", "median", "10%", "5%", "1%", "0.1%", "min"):
        assert key in d["kld"] and key in d["delta_p"], key
    assert out["verdict"].startswith("matches the original")
    assert cli(["eval", str(copy), "--source", str(tiny_llama_dir), "--text", str(TEXT), "--ctx", "64",
                "--windows", "2", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "Mean PPL(Q)/PPL(base)" in text and "99.9% KLD" in text and "RMS Δp" in text and "Same top p" in text


def test_verdicts_in_words():
    assert verdict(1.031, 0.004).startswith("loses 3.1 % ± 0.4 %: slightly worse")
    assert verdict(1.002, 0.001).startswith("loses 0.2 % ± 0.1 %: indistinguishable")
    assert verdict(1.30, None).endswith("much worse; expect frequent mistakes")
    lines = compare([Variant("Q4_K_M", 1.031, 0.004, 1000), Variant("GPTQ g128", 1.022, 0.003, 920)])
    assert lines[0].startswith("GPTQ g128 loses 2.2 % ± 0.3 %")
    assert lines[1] == "Q4_K_M loses 3.1 % ± 0.4 % at 9 % larger size"


def test_answer_divergence_token_by_token(tiny_llama_dir, tmp_path):
    """Compare's colouring: per answer token, KL(source || variant) and whether the greedy choice
    flips; a model against itself has none, a damaged copy some, and the pieces spell the answer."""
    import shutil

    from transformers import AutoModelForCausalLM

    from bitsmith.engine.evaluation.answer_kld import answer_divergence

    prompt, answer = "The capital of France is", " Paris, a city on the Seine."
    same = run_job(answer_divergence(tiny_llama_dir, tiny_llama_dir, prompt, answer, threads=1))
    assert "".join(same.pieces) == answer and len(same.kld) == len(same.pieces) == len(same.flips)
    assert max(same.kld) == 0 and same.flip_rate == 0
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.05)
    damaged = tmp_path / "damaged"
    model.save_pretrained(damaged)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_llama_dir / name, damaged / name)
    worse = run_job(answer_divergence(damaged, tiny_llama_dir, prompt, answer, threads=1))
    assert min(worse.kld) > 0 and worse.mean_kld > 0.001
