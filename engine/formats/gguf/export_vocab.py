"""The tokenizer of a Hugging Face folder, written as GGUF `tokenizer.*` metadata.

Two kinds are understood, both read from tokenizer.json (no sentencepiece needed):
- byte-level BPE (GPT-2 style, Llama 3, Qwen2, SmolLM): `tokenizer.ggml.model = "gpt2"` with merges
  and the pre-tokenizer name llama.cpp uses to pick its splitting regex;
- SentencePiece-style BPE with byte fallback (Llama 2, Mistral): `tokenizer.ggml.model = "llama"`,
  where llama.cpp merges by token score, so scores are derived from the merge ranks.
Special token ids, add-bos/eos flags, merges and the chat template come through gguf's SpecialVocab.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import gguf

from ...errors import UnsupportedModel

# The split patterns of known byte-level BPE tokenizers, as tokenizer.json stores them, and the
# `tokenizer.ggml.pre` name under which llama.cpp applies the same split.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPLIT_PATTERNS = {_LLAMA3_SPLIT: "llama-bpe", _QWEN2_SPLIT: "qwen2"}

_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")
_LOOKS_SPECIAL = re.compile(r"<\|.*\|>|<[a-z_]+>|\[[A-Z_]+\]")


@dataclass(frozen=True)
class VocabInfo:
    model: str  # "gpt2" or "llama"
    pre: str | None  # the pre-tokenizer name for "gpt2" vocabularies
    n_tokens: int
    has_chat_template: bool


def add_tokenizer(w: gguf.GGUFWriter, folder: Path, vocab_size: int) -> VocabInfo:
    """Write every `tokenizer.*` key for the model in `folder`, padded to `vocab_size` entries."""
    tj_path = folder / "tokenizer.json"
    if not tj_path.is_file():
        raise UnsupportedModel(f"{folder}: no tokenizer.json (Bitsmith exports fast tokenizers only)")
    tj = json.loads(tj_path.read_text(encoding="utf-8"))
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        raise UnsupportedModel(f"{tj_path}: '{model.get('type')}' tokenizers cannot be exported to GGUF yet")
    added = {int(t["id"]): t for t in tj.get("added_tokens") or []}
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    by_id = {i: tok for tok, i in vocab.items()}
    by_id.update({i: t["content"] for i, t in added.items()})
    if by_id and max(by_id) >= vocab_size:
        raise UnsupportedModel(f"{tj_path}: token id {max(by_id)} does not fit the model's {vocab_size} embeddings")

    spm = bool(model.get("byte_fallback"))
    if spm:
        scores = _scores_from_merges(model.get("merges") or [], vocab)
        pre = None
    else:
        pre = pre_tokenizer_name(tj, tj_path)
        scores = None

    tokens, types, token_scores = [], [], []
    unk = model.get("unk_token")
    for i in range(vocab_size):
        text = by_id.get(i)
        if text is None:  # embedding rows past the tokenizer: padding llama.cpp must never emit
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            token_scores.append(-1e9)
            continue
        tokens.append(text)
        token_scores.append(scores.get(text, 0.0) if scores is not None else 0.0)
        if spm and text == unk:
            types.append(gguf.TokenType.UNKNOWN)
        elif i in added:
            special = added[i].get("special") or _LOOKS_SPECIAL.fullmatch(text) is not None
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        elif spm and _BYTE_TOKEN.fullmatch(text):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)

    w.add_tokenizer_model("llama" if spm else "gpt2")
    if pre:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if spm:
        w.add_token_scores(token_scores)
        w.add_add_space_prefix(_adds_space_prefix(tj))

    special = gguf.SpecialVocab(folder, load_merges=not spm, n_vocab=vocab_size)
    special.add_special_token.update(_adds_bos_eos(folder))
    special.add_to_gguf(w, quiet=True)
    return VocabInfo("llama" if spm else "gpt2", pre, len(tokens), special.chat_template is not None)


def pre_tokenizer_name(tj: dict, where: Path) -> str:
    """llama.cpp's name for the splitting a byte-level BPE tokenizer.json describes."""
    pre = tj.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True) and not steps[0].get("add_prefix_space"):
        return "gpt-2"
    if (kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits")
            and steps[1].get("use_regex", True) and not steps[1].get("add_prefix_space")):
        return "smollm"  # each digit alone, then GPT-2's split
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        pattern = (steps[0].get("pattern") or {}).get("Regex")
        if pattern in SPLIT_PATTERNS:
            return SPLIT_PATTERNS[pattern]
    raise UnsupportedModel(f"{where}: its pre-tokenizer ({' + '.join(map(str, kinds))}) has no llama.cpp equivalent known to Bitsmith")


def _scores_from_merges(merges: list, vocab: dict[str, int]) -> dict[str, float]:
    """SentencePiece merges the adjacent pair whose joined piece scores highest; Hugging Face's
    conversion orders the merges by that score, so the earlier the merge, the higher the score."""
    scores: dict[str, float] = {}
    for rank, merge in enumerate(merges):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        joined = left + right
        if joined in vocab and joined not in scores:
            scores[joined] = -float(rank)
    return scores


def _adds_space_prefix(tj: dict) -> bool:
    """True when the tokenizer puts '▁' before the text (Llama 2 style), as SentencePiece does."""
    prepends = any(d.get("type") == "Prepend" and d.get("prepend") == "\u2581" for d in _nodes(tj.get("normalizer")))
    metaspace = any(
        d.get("type") == "Metaspace" and d.get("prepend_scheme", "always") != "never" and d.get("add_prefix_space", True)
        for d in _nodes(tj.get("pre_tokenizer"))
    )
    return prepends or metaspace


def _nodes(node):
    """Every dict inside a tokenizer.json component (Sequences nest their steps in lists)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def _adds_bos_eos(folder: Path) -> dict[str, bool]:
    """Whether the tokenizer adds bos/eos by itself: tokenizer_config.json's explicit add_*_token
    settings (transformers honours those first), else what tokenizer.json's post-processor does,
    found by encoding a letter with and without special tokens."""
    from tokenizers import Tokenizer

    settings = {}
    config_file = folder / "tokenizer_config.json"
    if config_file.is_file():
        settings = json.loads(config_file.read_text(encoding="utf-8"))
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    plain = tok.encode("a", add_special_tokens=False).ids
    full = tok.encode("a", add_special_tokens=True).ids
    bos, eos = (tok.token_to_id(_token_text(settings.get(f"{k}_token")) or "") for k in ("bos", "eos"))
    front = len(full) > len(plain) and full[-len(plain):] == plain and bos is not None and full[0] == bos
    back = len(full) > len(plain) and full[:len(plain)] == plain and eos is not None and full[-1] == eos
    flags = {"bos": front, "eos": back}
    for kind in flags:
        if isinstance(settings.get(f"add_{kind}_token"), bool):
            flags[kind] = settings[f"add_{kind}_token"]
    return flags


def _token_text(entry) -> str | None:
    """A tokenizer_config special-token entry: a string, or a dict holding `content`."""
    return entry.get("content") if isinstance(entry, dict) else entry
