"""A tiny random Llama with a real byte-level BPE tokenizer, built offline in a few seconds.

The test suite builds it as a fixture and the bundle's `--self-test` converts it to GGUF, so it
lives in the engine (a frozen bundle carries no tests/).

Its widths are chosen so that quantizers see realistic shapes in miniature: hidden 64 (GGUF blocks
of 32 fit, group size 64 divides it), 2 layers, grouped-query attention (4 heads, 2 KV heads).
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog. A small model learns nothing, but its tokenizer is real.
def add(a, b):\n    return a + b\nprint(add(2, 3))
Paris is the capital of France. Berlin is the capital of Germany. Rome is the capital of Italy.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. Punctuation: , . ; : ! ? ( ) [ ] { } " ' - _ / \\
Unicode: café, naïve, Zürich, 東京, Привет, emoji 🙂.
"""


def build_tiny_llama(folder: Path, *, seed: int = 0, tie_embeddings: bool = False) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,  # its bars would interleave with the self-test's report lines
    )
    tok.train_from_iterator([TRAINING_TEXT] * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
        unk_token="<|endoftext|>", pad_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=tie_embeddings,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    # Random init gives near-uniform logits; widen them so greedy choices are well separated.
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0) if not tie_embeddings else None
    model.save_pretrained(folder, safe_serialization=True)
    return folder
