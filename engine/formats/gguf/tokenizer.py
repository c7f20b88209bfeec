"""The tokenizer a GGUF describes, as a Hugging Face fast tokenizer, plus its stop tokens.

transformers already rebuilds a `tokenizers` tokenizer from GGUF metadata (vocabulary, merges,
control tokens, special-token names, chat template); we reuse that and correct what it misses,
checked token for token against llama.cpp's own tokenizer in the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
from tokenizers import normalizers, pre_tokenizers

from ...errors import UnsupportedModel
from .source import field_value


def _digits_then_gpt2():
    # llama.cpp splits every digit apart before the GPT-2 pattern for these vocabularies; without
    # it, " 2024" reaches BPE as one piece and numbers tokenize differently (seen on SmolLM2).
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


#: `tokenizer.ggml.pre` values whose splitting transformers' GGUF converter does not reproduce.
PRE_TOKENIZER_FIXES = {"smollm": _digits_then_gpt2}


def _match_llama_cpp_sentencepiece(backend, tokenizer_dict) -> None:
    """Spaces as llama.cpp's SentencePiece path writes them.

    llama.cpp puts "▁" before every run of text that starts the input or follows a special
    token, even when the text already starts with a space (" hi" -> "▁▁hi"); the Metaspace
    pre-tokenizer transformers sets skips that space and prefixes only the first run. A normalizer
    runs on every run between added tokens, so Prepend + Replace reproduces llama.cpp.
    """
    steps = [normalizers.Replace(" ", "▁")]
    if tokenizer_dict.get("add_prefix_space", True):
        steps.insert(0, normalizers.Prepend("▁"))
    backend.normalizer = normalizers.Sequence(steps)
    backend.pre_tokenizer = None


def _match_llama_cpp(backend, tokenizer_dict) -> None:
    if tokenizer_dict.get("tokenizer_type") == "llama":
        _match_llama_cpp_sentencepiece(backend, tokenizer_dict)
    fix = PRE_TOKENIZER_FIXES.get(tokenizer_dict.get("pre_tokenizer_type"))
    if fix is not None:
        backend.pre_tokenizer = fix()


#: End-of-turn markers of common chat templates; a chat answer ends with one of these, which is
#: not always the file's eos token.
END_OF_TURN_MARKERS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>")


def build_tokenizer(path: Path):
    """A `PreTrainedTokenizerFast` with the file's vocabulary, special tokens and chat template."""
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.gguf import convert_gguf_tokenizer, get_gguf_tokenizer

    architecture, tokenizer_dict, tokenizer_config = get_gguf_tokenizer(str(path))
    try:
        backend, extra = convert_gguf_tokenizer(architecture, tokenizer_dict)
    except ValueError as exc:  # transformers names the unsupported tokenizer model in one line
        kind = tokenizer_dict.get("tokenizer_type")
        raise UnsupportedModel(f"{path}: cannot rebuild its '{kind}' tokenizer ({exc})") from exc
    _match_llama_cpp(backend, tokenizer_dict)
    settings = {k: v for k, v in {**tokenizer_config, **extra}.items() if v is not None}
    return PreTrainedTokenizerFast(tokenizer_object=backend, **settings)


def stop_token_ids(reader: gguf.GGUFReader, tokenizer) -> list[int]:
    """eos, then the file's end-of-turn tokens and the chat template's, without repeats."""
    ids = [field_value(reader, key) for key in (gguf.Keys.Tokenizer.EOS_ID, gguf.Keys.Tokenizer.EOT_ID,
                                                 gguf.Keys.Tokenizer.EOM_ID)]
    template = tokenizer.chat_template or ""
    vocab = tokenizer.get_vocab()
    ids += [vocab[m] for m in END_OF_TURN_MARKERS if m in template and m in vocab]
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def save_tokenizer(tokenizer, folder: Path, max_length: int | None = None) -> None:
    """tokenizer.json and tokenizer_config.json, readable by transformers 4 and 5 alike."""
    if max_length:
        tokenizer.model_max_length = max_length
    # The chat template goes into tokenizer_config.json, where every transformers version and
    # llama.cpp's converter look for it, rather than only into the newer chat_template.jinja.
    tokenizer.save_pretrained(folder, save_jinja_files=False)
    # transformers 5 records its own class name, which transformers 4 cannot resolve; the fast
    # tokenizer's public name loads the same class in both.
    config_file = Path(folder) / "tokenizer_config.json"
    settings = json.loads(config_file.read_text(encoding="utf-8"))
    settings["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_file.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
