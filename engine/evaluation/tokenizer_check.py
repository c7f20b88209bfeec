"""Refusing to compare a model with a source that reads text differently.

Next-token distributions can only be compared position by position when both models map the same
text to the same ids: same vocabulary width, same ids for a probe text and for the head of the
evaluation text. One tokenization (the evaluated model's) then feeds both.
"""

from __future__ import annotations

from ..errors import InvalidInput
from .provider import LogitsProvider

#: Words, digits, code, whitespace runs and non-Latin scripts: where tokenizers usually disagree.
PROBE_TEXT = (
    "Hello, world! In 2024 the price rose 12.5% to $1,299.\n"
    "def area(r):\n    return 3.14159 * r ** 2  # circle\n\t\tTabs and   spaces.\n"
    "Café, naïve, Zürich, 東京, Привет, مرحبا, 🙂."
)
TEXT_HEAD_CHARS = 2000


def check_same_tokenizer(model: LogitsProvider, source: LogitsProvider, text: str) -> None:
    if model.vocab_size != source.vocab_size:
        raise InvalidInput(
            f"{model.name} has a vocabulary of {model.vocab_size} tokens but its source {source.name} has "
            f"{source.vocab_size}; they cannot be compared", suggestion="pick the model it was converted from",
        )
    for probe in (PROBE_TEXT, text[:TEXT_HEAD_CHARS]):
        same_stream(model.tokenize(probe), source.tokenize(probe), model.name, source.name)


def same_stream(ours: list[int], theirs: list[int], model_name: str, source_name: str) -> None:
    """Refuse, naming the first differing position, two token streams that are not the same."""
    if ours != theirs:
        at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        raise InvalidInput(
            f"{model_name} and its source {source_name} tokenize the same text differently "
            f"(first difference at token {at})", suggestion="pick the model it was converted from",
        )
