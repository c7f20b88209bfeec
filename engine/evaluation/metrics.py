"""Per-token figures of one window, and running means with their standard errors.

For a window of ids x[0..L-1], position t < L-1 predicts x[t+1]: the first token of each window is
context only, so a window scores L-1 tokens.
- negative log-likelihood: -log p_model(x[t+1])
- KL(source || model) of the next-token distributions: sum_v p_s(v) (log p_s(v) - log p_m(v))
- top-1 agreement: argmax of the model's logits equals the source's
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Rows per slice of the [L, vocab] tensors, so large vocabularies do not need several copies at once.
ROW_CHUNK = 128


@dataclass
class RunningMean:
    """Mean and standard error of the mean of per-token values, accumulated in float64."""

    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def add(self, values) -> None:
        v = values.double()
        self.count += v.numel()
        self.total += float(v.sum())
        self.total_sq += float((v * v).sum())

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def stderr(self) -> float | None:
        """Treats tokens as independent, as llama.cpp's perplexity tool does; tokens of one window are
        correlated, so this is a lower bound on the true uncertainty."""
        if self.count < 2:
            return None
        var = max(0.0, (self.total_sq - self.count * self.mean**2) / (self.count - 1))
        return math.sqrt(var / self.count)


def window_figures(model_logits, ids, source_logits=None):
    """Per-token (nll, kl, agree) for one window; kl and agree are None without a source."""
    import torch

    targets = torch.as_tensor(ids[1:], dtype=torch.long)
    n = len(targets)
    nll, kl, agree = [], [], []
    for lo in range(0, n, ROW_CHUNK):
        hi = min(n, lo + ROW_CHUNK)
        log_m = torch.log_softmax(model_logits[lo:hi].float(), dim=-1)
        nll.append(-log_m.gather(1, targets[lo:hi, None])[:, 0])
        if source_logits is not None:
            log_s = torch.log_softmax(source_logits[lo:hi].float(), dim=-1)
            kl.append((log_s.exp() * (log_s - log_m)).sum(-1))
            agree.append((model_logits[lo:hi].argmax(-1) == source_logits[lo:hi].argmax(-1)).float())
    if source_logits is None:
        return torch.cat(nll), None, None
    return torch.cat(nll), torch.cat(kl), torch.cat(agree)
