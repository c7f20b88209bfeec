"""A model's own tokenizer behind one small interface (text <-> token ids), for transformers folders
and GGUF files alike. Calibration and evaluation both tokenize through it, so a window of ids means
the same thing to every backend.

Special-token text such as "<|im_end|>" is parsed as the special token by both backends (the
transformers default), so chat transcripts and held-out text tokenize identically in either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

from .errors import UnsupportedModel


class TextTokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def bos_id(self) -> int | None:
        """The token a prompt starts with when the model's tokenizer adds one (None: it adds none)."""
        ...

    def decode(self, ids: Sequence[int]) -> str: ...


class HFTokenizer:
    """A transformers tokenizer; no BOS/EOS is added, so windows cut anywhere in the text."""

    def __init__(self, tokenizer):
        self.hf = tokenizer
        self.vocab_size = len(tokenizer)

    @classmethod
    def load(cls, folder: Path) -> "HFTokenizer":
        from transformers import AutoTokenizer

        try:
            return cls(AutoTokenizer.from_pretrained(str(folder)))
        except (OSError, ValueError, TypeError) as exc:
            raise UnsupportedModel(f"{folder}: cannot load its tokenizer ({_first_line(exc)})") from exc

    def encode(self, text: str) -> list[int]:
        # verbose=False: a whole evaluation file is longer than the model's context on purpose.
        return list(self.hf(text, add_special_tokens=False, verbose=False)["input_ids"])

    def bos_id(self) -> int | None:
        bos = self.hf.bos_token_id
        ids = self.hf("a")["input_ids"]
        return bos if bos is not None and ids and ids[0] == bos else None

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=False)


class LlamaCppTokenizer:
    """llama.cpp's own tokenizer, from a loaded `Llama` (a full model or one opened `vocab_only`)."""

    def __init__(self, llm):
        self.llm = llm
        self.vocab_size = int(llm.n_vocab())

    @classmethod
    def load(cls, path: Path) -> "LlamaCppTokenizer":
        from llama_cpp import Llama

        try:
            return cls(Llama(str(path), vocab_only=True, verbose=False))
        except (ValueError, RuntimeError, OSError) as exc:
            raise UnsupportedModel(f"{path}: llama.cpp cannot read its vocabulary ({_first_line(exc)})") from exc

    def encode(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def bos_id(self) -> int | None:
        bos = self.llm.token_bos()
        ids = self.llm.tokenize(b"a", add_bos=True, special=False)  # adds BOS only if the vocabulary says so
        return bos if bos >= 0 and ids and ids[0] == bos else None

    def decode(self, ids: Sequence[int]) -> str:
        return self.llm.detokenize(list(ids), special=True).decode("utf-8", errors="replace")


def load_tokenizer(path: Path | str) -> TextTokenizer:
    """The tokenizer of a GGUF file (llama.cpp's) or of a transformers model folder."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return LlamaCppTokenizer.load(path)
    if path.is_dir():
        return HFTokenizer.load(path)
    raise UnsupportedModel(f"{path}: not a GGUF file or a model folder")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
