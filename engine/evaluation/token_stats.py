"""The statistics careful users read in llama.cpp's `llama-perplexity --kl-divergence`, computed from
per-token values of one token stream, for any format.

Inputs are per scored position: the model's and the source's negative log-likelihood of the actual
next token, KL(source || model), and whether their most likely tokens agree. Errors are standard
errors of the mean treating tokens as independent (as llama.cpp does; tokens of one window are
correlated, so these are lower bounds), carried through exp() and sqrt() by the delta method.
"""

from __future__ import annotations

import math

import numpy as np

#: The percentiles llama.cpp prints, highest first (as fractions of the sorted values).
PERCENTILES = (0.999, 0.99, 0.95, 0.90, 0.50, 0.10, 0.05, 0.01, 0.001)


def _mean_se(v: np.ndarray) -> tuple[float, float | None]:
    n = v.size
    if n == 0:
        return math.nan, None
    mean = float(v.mean())
    return mean, (float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else None)


def _percentiles(v: np.ndarray) -> dict[str, float]:
    """The value below which each fraction of the positions lies (linear interpolation between the
    two nearest sorted values), keyed as llama.cpp labels them ("99.9%", "median", ...)."""
    out = {"max": float(v.max())}
    for q in PERCENTILES:
        label = "median" if q == 0.5 else f"{100 * q:g}%"
        out[label] = float(np.quantile(v, q))
    out["min"] = float(v.min())
    return out


def distribution_stats(nll_model, nll_source, kld, same_top) -> dict:
    """All figures, as plain floats (JSON-ready). Probabilities and Δp are fractions (0.01 = 1 %)."""
    nll_q = np.asarray(nll_model, dtype=np.float64)
    nll_p = np.asarray(nll_source, dtype=np.float64)
    kld = np.asarray(kld, dtype=np.float64)
    same = np.asarray(same_top, dtype=np.float64)
    n = int(nll_q.size)
    mean_q, se_q = _mean_se(nll_q)
    mean_p, se_p = _mean_se(nll_p)
    diff_mean, diff_se = _mean_se(nll_q - nll_p)
    ppl_q, ppl_p = math.exp(mean_q), math.exp(mean_p)
    ratio = math.exp(diff_mean)
    corr = float(np.corrcoef(nll_q, nll_p)[0, 1]) if n > 1 and nll_q.std() > 0 and nll_p.std() > 0 else None
    dp = np.exp(-nll_q) - np.exp(-nll_p)  # change in the probability of the correct token
    dp_mean, dp_se = _mean_se(dp)
    sq_mean, sq_se = _mean_se(dp * dp)
    rms = math.sqrt(sq_mean)
    kld_mean, kld_se = _mean_se(kld)
    same_mean, same_se = _mean_se(same)
    return {
        "tokens": n,
        "ppl_model": ppl_q, "ppl_model_stderr": ppl_q * se_q if se_q is not None else None,
        "ppl_source": ppl_p, "ppl_source_stderr": ppl_p * se_p if se_p is not None else None,
        "ln_ppl_correlation": corr,
        "ln_ppl_ratio": diff_mean, "ln_ppl_ratio_stderr": diff_se,
        "ppl_ratio": ratio, "ppl_ratio_stderr": ratio * diff_se if diff_se is not None else None,
        "ppl_difference": ppl_q - ppl_p,
        "kld": {"mean": kld_mean, "stderr": kld_se, **_percentiles(kld)},
        "delta_p": {"mean": dp_mean, "stderr": dp_se, **_percentiles(dp)},
        "rms_delta_p": rms, "rms_delta_p_stderr": (sq_se / (2 * rms)) if sq_se is not None and rms > 0 else None,
        "same_top_p": same_mean, "same_top_p_stderr": same_se,
    }


def stats_lines(d: dict) -> list[tuple[str, str]]:
    """The figures as llama.cpp prints them, one (label, value) pair a line, for the CLI."""
    def pm(value, err, scale=1.0, fmt=".4f", unit=""):
        if value is None:
            return "-"
        text = f"{value * scale:{fmt}}"
        return text + (f" ± {err * scale:{fmt}}" if err is not None else "") + unit

    lines = [("Mean PPL(Q)", pm(d["ppl_model"], d["ppl_model_stderr"], fmt=".6f")),
             ("Mean PPL(base)", pm(d["ppl_source"], d["ppl_source_stderr"], fmt=".6f")),
             ("Cor(ln(PPL(Q)), ln(PPL(base)))", pm(d["ln_ppl_correlation"], None, 100, ".2f", " %")),
             ("Mean ln(PPL(Q)/PPL(base))", pm(d["ln_ppl_ratio"], d["ln_ppl_ratio_stderr"], fmt=".6f")),
             ("Mean PPL(Q)/PPL(base)", pm(d["ppl_ratio"], d["ppl_ratio_stderr"], fmt=".6f")),
             ("Mean PPL(Q)-PPL(base)", pm(d["ppl_difference"], None, fmt=".6f")),
             ("Mean    KLD", pm(d["kld"]["mean"], d["kld"]["stderr"], fmt=".6f"))]
    lines += [(f"{k:>6} KLD", f"{v:.6f}") for k, v in d["kld"].items() if k not in ("mean", "stderr")]
    lines += [("Mean    Δp", pm(d["delta_p"]["mean"], d["delta_p"]["stderr"], 100, ".3f", " %")),
              ("RMS Δp", pm(d["rms_delta_p"], d["rms_delta_p_stderr"], 100, ".3f", " %"))]
    lines += [(f"{k:>6} Δp", f"{100 * v:.3f} %") for k, v in d["delta_p"].items() if k not in ("mean", "stderr")]
    lines.append(("Same top p", pm(d["same_top_p"], d["same_top_p_stderr"], 100, ".3f", " %")))
    if d.get("reference_mass") is not None:
        lines.append(("KLD over", f"the source's top {d['reference_top_k']} tokens, "
                                  f"{100 * d['reference_mass']:.1f} % of its probability (a lower bound)"))
    return lines
