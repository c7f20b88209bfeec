"""Shared pieces of the pause/resume tests: a tiny Llama deep enough to stop in the middle of, what
"the same output" means on disk, and driving a job until a chosen block is finished."""

from __future__ import annotations

import shutil
from pathlib import Path

from bitsmith.engine.errors import Cancelled
from bitsmith.engine.events import Done, Log

#: Blocks of the deep tiny model: room to stop after block 1 or 2 and still have blocks left.
LAYERS = 4
#: The files that make up a quantized folder's model: every byte must match between two runs.
#: (The report card differs by its times and the resume note; the model card is written by convert.)
MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json")


def build_deep_tiny(folder: Path, like: Path, layers: int = LAYERS) -> Path:
    """The tiny Llama of tests/fixtures (`like`: its folder, for the tokenizer and the widths) with
    `layers` decoder blocks, seeded, so every build is identical."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for item in Path(like).iterdir():
        if item.is_file() and item.suffix != ".safetensors" and item.name != "config.json":
            shutil.copy(item, folder / item.name)
    config = AutoConfig.from_pretrained(like)
    config.num_hidden_layers = layers
    torch.manual_seed(1)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(folder, safe_serialization=True)
    return folder


def model_bytes(folder: Path) -> dict[str, bytes]:
    """Every model file of a quantized folder, byte for byte (shards included)."""
    folder = Path(folder)
    names = [p.name for p in folder.iterdir() if p.name in MODEL_FILES or p.name.startswith("model-")]
    assert any(n.endswith(".safetensors") for n in names), sorted(p.name for p in folder.iterdir())
    return {n: (folder / n).read_bytes() for n in sorted(names)}


def run_events(job) -> tuple[list, object]:
    events, result = [], None
    for event in job:
        events.append(event)
        if isinstance(event, Done):
            result = event.result
    return events, result


def logs(events) -> list[str]:
    return [e.message for e in events if isinstance(e, Log)]


def run_until_block(job, token, k: int) -> tuple[list, Cancelled]:
    """Drive `job` and cancel it (through `token`) as soon as block `k` (1-based) reports its
    checkpoint saved; returns the events and the Cancelled it ended with."""
    events = []
    try:
        for event in job:
            events.append(event)
            if isinstance(event, Log) and event.message.startswith(f"block {k}/"):
                token.cancel()
    except Cancelled as exc:
        return events, exc
    raise AssertionError(f"the job was not cancelled after block {k}: {logs(events)}")
