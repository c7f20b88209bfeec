"""Importance matrix: for every linear layer, how strongly each input channel is driven.

Calibration windows run through the Hugging Face model (transformers, CPU); a forward pre-hook on
each nn.Linear adds up the squares (and the values) of its inputs per input channel and counts the
rows, exactly the statistics llama.cpp's imatrix tool gathers. Entries are keyed by the GGUF name
of the weight the layer multiplies ("blk.0.attn_q.weight"), because that is how llama.cpp's
quantizer looks them up. The Q/K rotary permutation reorders output rows only, so the input-channel
statistics need no permutation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator

import gguf
import numpy as np

from ...cancel import NEVER, CancelToken
from ...errors import OutOfMemory
from ...events import EtaClock, Event, Log
from ...formats.gguf.arch import require_export_arch
from ...formats.gguf.export_tensors import OUTPUT, gguf_arch_enum
from ...formats.hf_folder import HFFolder


@dataclass
class ImatrixStats:
    sums: dict[str, np.ndarray] = field(default_factory=dict)  # sum of x² per input channel (float64)
    act_sums: dict[str, np.ndarray] = field(default_factory=dict)  # sum of x per input channel
    counts: dict[str, int] = field(default_factory=dict)  # rows (tokens) seen
    n_chunks: int = 0
    chunk_size: int = 0
    datasets: list[str] = field(default_factory=list)

    def means(self) -> dict[str, np.ndarray]:
        """Mean of squared inputs per channel: what llama_model_quantize takes as `imatrix`."""
        return {name: (s / max(self.counts[name], 1)).astype(np.float32) for name, s in self.sums.items()}


def linear_gguf_names(module_names: list[str], src: HFFolder, n_layer: int, tied: bool) -> dict[str, str]:
    """HF module name ("model.layers.0.self_attn.q_proj") -> GGUF weight name, for the weights
    llama.cpp multiplies activations with; lm_head counts only when it is its own tensor."""
    table = gguf.get_tensor_name_map(gguf_arch_enum(require_export_arch(src.family, str(src.path))), n_layer)
    out = {}
    for module in module_names:
        name = table.get_name(module + ".weight", try_suffixes=(".weight",))
        if name is None or (name == OUTPUT and tied):
            continue
        out[module] = name
    return out


def _check_memory(src: HFFolder) -> None:
    from ...telemetry import available_memory

    need = src.n_params * 4
    free = available_memory()
    if need > free * 0.9:
        raise OutOfMemory(
            f"{src.path}: the importance matrix needs the model in float32 (about {need / 1024**3:.1f} GiB) "
            f"but only {free / 1024**3:.1f} GiB of memory is free",
            suggestion="turn the importance matrix off (--imatrix off)",
        )


def compute_imatrix(src: HFFolder, windows: list[list[int]], dataset: str, tied: bool,
                    cancel: CancelToken = NEVER) -> Generator[Event, None, ImatrixStats]:
    """Run `windows` through the model and return the per-weight statistics."""
    import torch

    _check_memory(src)
    clock = EtaClock(len(windows), "imatrix")
    yield clock.progress(0, "loading the model")
    model = _load_float32(src.path)
    n_layer = int(src.config["num_hidden_layers"])
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    names = linear_gguf_names(list(linears), src, n_layer, tied)
    stats = ImatrixStats(chunk_size=max(len(w) for w in windows), datasets=[dataset])

    def hook_for(gguf_name: str):
        def hook(_module, inputs):
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).to(torch.float64)
            sq = (x * x).sum(0).numpy()
            act = x.sum(0).numpy()
            if gguf_name in stats.sums:
                stats.sums[gguf_name] += sq
                stats.act_sums[gguf_name] += act
                stats.counts[gguf_name] += x.shape[0]
            else:
                stats.sums[gguf_name], stats.act_sums[gguf_name], stats.counts[gguf_name] = sq, act, x.shape[0]
        return hook

    handles = [linears[m].register_forward_pre_hook(hook_for(g)) for m, g in names.items()]
    try:
        with torch.inference_mode():
            for i, window in enumerate(windows, 1):
                cancel.check()
                model(input_ids=torch.tensor([window], dtype=torch.long), use_cache=False)
                stats.n_chunks += 1
                yield clock.progress(i, f"window {i}/{len(windows)}")
    finally:
        for h in handles:
            h.remove()
        del model
    missing = sorted(set(names.values()) - set(stats.sums))
    if missing:
        yield Log(f"no activations reached {len(missing)} weights (e.g. {missing[0]})", "warning")
    return stats


def _load_float32(folder: Path):
    """The model in float32 for exact statistics, without transformers' loading bar on the terminal."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
