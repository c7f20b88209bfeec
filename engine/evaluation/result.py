"""The figures one evaluation produces, for the CLI's JSON, the GUI and the report card."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class EvalResult:
    model: str
    backend: str
    text: str
    text_sha256: str
    ctx: int
    windows: int  # windows evaluated
    windows_available: int  # windows the whole text holds
    tokens_in_text: int
    tokens_evaluated: int  # scored tokens: windows x (ctx - 1)
    perplexity: float
    perplexity_stderr: float | None  # delta method: perplexity x stderr of the mean log-likelihood
    nll_mean: float  # mean negative log-likelihood per token, in nats
    nll_stderr: float | None
    seconds: float  # the whole job, loading included
    tokens_per_second: float  # text tokens evaluated per second of the window loop (source included)
    source: str | None = None
    source_backend: str | None = None
    kl_divergence: float | None = None  # mean KL(source || model) per token, in nats
    kl_divergence_stderr: float | None = None
    top1_agreement: float | None = None  # share of positions where both models' top token is the same
    top1_agreement_stderr: float | None = None
    bits_per_weight: float | None = None
    size_bytes: int | None = None
    peak_memory_bytes: int | None = None
    # Against a source, on the same token stream: llama-perplexity's --kl-divergence figures
    # (engine/evaluation/token_stats.py: PPL ratio, KLD and Δp percentiles, RMS Δp, same top p).
    distribution: dict | None = None
    verdict: str | None = None  # the PPL ratio in plain words (engine/evaluation/verdict.py)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_card(self) -> dict:
        """The report card's `evaluation` entry."""
        return {
            "perplexity": self.perplexity, "kl_divergence": self.kl_divergence,
            "top1_agreement": self.top1_agreement, "tokens_evaluated": self.tokens_evaluated,
            "windows": self.windows, "windows_available": self.windows_available, "ctx": self.ctx,
            "text": self.text, "text_sha256": self.text_sha256, "source": self.source,
            "backend": self.backend, "source_backend": self.source_backend,
            "stderr": {
                "perplexity": self.perplexity_stderr, "nll": self.nll_stderr,
                "kl_divergence": self.kl_divergence_stderr, "top1_agreement": self.top1_agreement_stderr,
            },
            "bits_per_weight": self.bits_per_weight, "size_bytes": self.size_bytes,
            "seconds": self.seconds, "tokens_per_second": self.tokens_per_second,
            "distribution": self.distribution, "verdict": self.verdict,
        }
