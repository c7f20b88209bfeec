"""Model-generated calibration text: the source model answers the shipped seed prompts.

Used when the user has no calibration data. Each sample is one seed prompt (through the model's chat
template when it has one) and the model's sampled answer, rendered back as the full conversation, so
the calibration text looks like what the model sees in a chat. Prompts are shuffled by the seed and
each batch is sampled under its own seed, so the same seed on the same machine gives the same text.
Generation runs through transformers, in batches, left-padded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Generator

from ..cancel import CancelToken
from ..catalog import inspect
from ..errors import UnsupportedModel
from ..events import EtaClock, Event, Log
from ..hf_model import load_causal_lm
from ..text_tokens import HFTokenizer
from ..threads import torch_threads
from .background_generate import generate_in_background
from .resources import seed_prompts
from .text_file import RECORD_SEPARATOR


#: Batches in a row that yield no usable answer before we give up on the model.
MAX_EMPTY_BATCHES = 3


@dataclass(frozen=True)
class GenerationSettings:
    temperature: float = 0.9
    top_p: float = 0.95
    max_batch: int = 16
    #: The KV cache of one batch may take this much; bigger models get smaller batches.
    kv_cache_budget_bytes: int = 1 << 30
    device: str = "cpu"
    threads: int | None = None  # CPU threads for torch during generation; None: torch's default


@dataclass(frozen=True)
class GeneratedText:
    text: str
    samples: int
    tokens: int  # tokens of `text` as the model's tokenizer counts them, sample by sample


def generate_calibration_text(model_path: Path, tokens_needed: int, max_new_tokens: int, seed: int,
                              cancel: CancelToken, settings: GenerationSettings = GenerationSettings()
                              ) -> Generator[Event, None, "GeneratedText"]:
    """A step of a larger job: yields Log and Progress, and returns (not yields) a GeneratedText once
    the samples hold `tokens_needed` tokens, for the caller's `yield from`."""
    with torch_threads(settings.threads):
        return (yield from _generate(model_path, tokens_needed, max_new_tokens, seed, cancel, settings))


def _generate(model_path: Path, tokens_needed: int, max_new_tokens: int, seed: int, cancel: CancelToken,
              settings: GenerationSettings):
    yield Log(f"loading {Path(model_path).name} to write calibration text")
    tokenizer = HFTokenizer.load(Path(model_path))
    tok = tokenizer.hf
    tok.padding_side = "left"  # generation continues from the right edge of every row
    model = load_causal_lm(model_path, settings.device, inspect(model_path).parameters)
    stops = _stop_ids(model, tok)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (stops[0] if stops else 0)
    batch = _batch_size(model.config, max_new_tokens, settings)
    prompts = seed_prompts()
    random.Random(seed).shuffle(prompts)
    templated = bool(getattr(tok, "chat_template", None))
    yield Log(f"generating about {tokens_needed} tokens of calibration text, {batch} answers at a time"
              f"{' through the chat template' if templated else ''}")

    samples: list[str] = []
    have = shown = 0
    clock = EtaClock(tokens_needed, "calibration")
    batch_index = next_prompt = empty_batches = 0
    while have < tokens_needed:
        cancel.check()
        # No more rows than the tokens still missing call for (answers may stop early: one spare).
        rows = min(batch, -(-(tokens_needed - have) // max_new_tokens) + 1)
        chosen = [prompts[(next_prompt + i) % len(prompts)] for i in range(rows)]
        next_prompt += rows
        rendered = [_render_prompt(tok, p, templated) for p in chosen]
        inputs = tok(rendered, return_tensors="pt", padding=True, add_special_tokens=not templated)
        sampling = generate_in_background(
            model, dict(inputs.to(settings.device)), seed * 1_000_003 + batch_index, cancel, settings.threads,
            do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=0,
            max_new_tokens=max_new_tokens, eos_token_id=stops or None, pad_token_id=pad_id,
        )
        while True:
            try:
                steps = next(sampling)
            except StopIteration as finished:
                out = finished.value
                break
            # While the batch runs, every row is counted as still writing (an upper bound).
            shown = max(shown, min(have + steps * rows, tokens_needed - 1))
            yield clock.progress(shown, f"{len(samples)} answers, batch {batch_index + 1}")
        answers = out[:, inputs["input_ids"].shape[1]:].cpu()
        before = len(samples)
        for prompt, row in zip(chosen, answers):
            answer = _answer_text(tok, row.tolist(), stops, pad_id)
            if not answer:
                continue  # an immediate end of turn says nothing about the model's activations
            sample = _render_sample(tok, prompt, answer, templated)
            samples.append(sample)
            have += len(tokenizer.encode(sample + RECORD_SEPARATOR))
            if have >= tokens_needed:
                break
        batch_index += 1
        empty_batches = 0 if len(samples) > before else empty_batches + 1
        if empty_batches >= MAX_EMPTY_BATCHES:
            raise UnsupportedModel(f"{model_path}: the model ends every answer at once; it cannot write calibration text",
                                   suggestion="pick a calibration file or the built-in text")
        shown = max(shown, min(have, tokens_needed))  # never backwards, so the ETA stays sane
        yield clock.progress(shown, f"{len(samples)} answers")
    return GeneratedText(RECORD_SEPARATOR.join(samples), len(samples), have)


def _render_prompt(tok, prompt: str, templated: bool) -> str:
    if templated:
        # tokenize=False: transformers 5 would otherwise return a dict of tensors.
        return tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    return prompt + "\n"


def _render_sample(tok, prompt: str, answer: str, templated: bool) -> str:
    if templated:
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        return tok.apply_chat_template(messages, tokenize=False)
    return f"{prompt}\n{answer}"


def _answer_text(tok, ids: list[int], stops: list[int], pad_id: int) -> str:
    for i, token in enumerate(ids):
        if token in stops or token == pad_id:
            ids = ids[:i]
            break
    return tok.decode(ids, skip_special_tokens=True).strip()


def _stop_ids(model, tok) -> list[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    ids.append(tok.eos_token_id)
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def _batch_size(config, max_new_tokens: int, settings: GenerationSettings) -> int:
    """As many rows as fit the KV-cache budget (float32 keys and values), capped at max_batch."""
    heads = getattr(config, "num_attention_heads", 1) or 1
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or getattr(config, "hidden_size", 64) // heads
    layers = getattr(config, "num_hidden_layers", 1) or 1
    per_token = 2 * layers * kv_heads * head_dim * 4
    rows = settings.kv_cache_budget_bytes // max(1, per_token * (max_new_tokens + 128))
    return int(max(1, min(settings.max_batch, rows)))
