"""Where a quantized model's answer departs from its source, token by token.

For Compare: given the prompt and the answer a variant wrote, both models read the same tokens and,
at each position of the answer, we measure KL(source || variant) of the next-token distributions
(full vocabulary: an answer is short) and whether their greedy choices differ (a "flip": the token
the source would have written is not the one the variant wrote). The view colours each token by its
KL; the flip rate over the evaluation text is `1 - same top p` from `evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..cancel import NEVER, CancelToken
from ..errors import InvalidInput
from ..events import Done, Job, Log
from ..text_tokens import load_tokenizer
from .provider import open_provider
from .tokenizer_check import check_same_tokenizer

MAX_TOKENS = 4096


@dataclass(frozen=True)
class TokenDivergence:
    pieces: tuple[str, ...]  # the answer's tokens, as text (their concatenation is the answer)
    kld: tuple[float, ...]  # KL(source || variant) in nats at the position that wrote each token
    flips: tuple[bool, ...]  # the source's most likely token differs from the variant's there
    source_top: tuple[str, ...] = ()  # the source's most likely token there, as text (for tooltips)

    @property
    def flip_rate(self) -> float:
        return sum(self.flips) / len(self.flips) if self.flips else 0.0

    @property
    def mean_kld(self) -> float:
        return sum(self.kld) / len(self.kld) if self.kld else 0.0


def answer_divergence(model: Path | str, source: Path | str, prompt: str, answer: str, device: str = "cpu",
                      threads: int | None = None, cancel: CancelToken = NEVER) -> Job:
    """`prompt` is the text the model saw before answering (the chat template applied), `answer` what
    it wrote. Yields Log events, then Done(TokenDivergence)."""
    import torch

    if not answer:
        raise InvalidInput("there is no answer to compare")
    yield Log(f"reading the answer with {Path(model).name} and {Path(source).name}")
    tokenizer = load_tokenizer(model)
    head = tokenizer.encode(prompt)
    ids = tokenizer.encode(prompt + answer)
    if ids[:len(head)] != head or len(ids) <= len(head):
        head = head[:-1]  # the prompt's last token merged with the answer's first: score it too
    if len(ids) > MAX_TOKENS:
        raise InvalidInput(f"the prompt and answer hold {len(ids)} tokens; at most {MAX_TOKENS} are compared")
    pieces = tuple(tokenizer.decode([t]) for t in ids[len(head):])
    variant = open_provider(model, len(ids), device, threads)  # a context just as long as the text
    try:
        q = torch.log_softmax(variant.logits(ids).double(), -1)
        cancel.check()
        reference = open_provider(source, len(ids), device, threads)
        try:
            check_same_tokenizer(variant, reference, prompt + answer)
            p = torch.log_softmax(reference.logits(ids).double(), -1)
        finally:
            reference.close()
    finally:
        variant.close()
    # Position t predicts token t+1: the answer's tokens are predicted from len(head)-1 on.
    rows = slice(len(head) - 1, len(ids) - 1)
    kld = (p[rows].exp() * (p[rows] - q[rows])).sum(-1).clamp(min=0.0)
    top = p[rows].argmax(-1)
    flips = top != q[rows].argmax(-1)
    yield Done(TokenDivergence(pieces, tuple(float(v) for v in kld), tuple(bool(f) for f in flips),
                               tuple(tokenizer.decode([int(t)]) for t in top)))
