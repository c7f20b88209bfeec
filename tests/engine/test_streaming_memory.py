"""Memory does not grow with depth: during each streamed job, count what is materialized.

The block runner's jobs (importance matrix, GPTQ, AWQ, RTN) must hold at most one decoder block's
parameters off the meta device at a time; the tensor-at-a-time writers (GGUF export, INT8) must hold
at most one block's worth of checkpoint tensors alive at once. A 6-block model makes "all of them"
distinguishable from "one". Counts, not timings or RSS: they hold on any machine. Both a dense
Llama and a Qwen3-MoE (fused 3-D expert weights and a router per block) are counted.
"""

from __future__ import annotations

import shutil
import weakref

import pytest
import torch

from bitsmith.engine.config import QuantizeConfig
from bitsmith.engine.events import run_job
from bitsmith.engine.formats.hf_folder import HFFolder, open_hf_folder
from bitsmith.engine.layers import BlockRunner

from .weight_only_helpers import drive, one_torch_thread, random_windows  # noqa: F401

N_BLOCKS = 6


@pytest.fixture(scope="module", params=["llama", "qwen3_moe"])
def deep_model(request, tiny_llama_dir, tmp_path_factory):
    """The tiny Llama's widths and tokenizer with 6 blocks, or the tiny Qwen3-MoE with 6 blocks."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if request.param == "qwen3_moe":
        from tests.fixtures.tiny_families import build_tiny

        return build_tiny("qwen3_moe", tmp_path_factory.mktemp("deep") / "moe6", num_hidden_layers=N_BLOCKS)
    folder = tmp_path_factory.mktemp("deep") / "llama6"
    folder.mkdir()
    for f in tiny_llama_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens")):
            shutil.copy(f, folder / f.name)
    config = LlamaConfig.from_pretrained(tiny_llama_dir)
    config.num_hidden_layers = N_BLOCKS
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture
def resident_blocks(monkeypatch):
    """The most decoder blocks with materialized parameters seen right after each block load."""
    seen = []
    real = BlockRunner.load_block

    def load_block(self, i):
        block = real(self, i)
        seen.append(sum(any(not p.is_meta for p in b.parameters()) for b in self.blocks))
        return block

    monkeypatch.setattr(BlockRunner, "load_block", load_block)
    return seen


def test_importance_matrix_holds_one_block(deep_model, resident_blocks):
    from bitsmith.engine.quant.gguf.imatrix import compute_imatrix

    drive(compute_imatrix(open_hf_folder(deep_model), random_windows(3, 16), "test", tied=False))
    assert len(resident_blocks) == N_BLOCKS and max(resident_blocks) == 1


@pytest.mark.parametrize("method", ["gptq", "awq", "rtn"])
def test_weight_only_jobs_hold_one_block(deep_model, tmp_path, resident_blocks, method):
    from bitsmith.engine.quant.weight_only.job import quantize_weight_only

    cfg = QuantizeConfig(source=deep_model, out=tmp_path / method, method=method, group_size=32, device="cpu")
    windows = None if method == "rtn" else random_windows(2, 16)
    run_job(quantize_weight_only(cfg, windows))
    assert len(resident_blocks) == N_BLOCKS and max(resident_blocks) == 1


@pytest.fixture
def live_tensors(monkeypatch):
    """Checkpoint tensors read through HFFolder.tensor and still referenced: (now, most, total)."""
    state = {"now": 0, "most": 0, "total": 0}
    real = HFFolder.tensor

    def gone():
        state["now"] -= 1

    def tensor(self, name):
        t = real(self, name)
        state["now"] += 1
        state["total"] += 1
        state["most"] = max(state["most"], state["now"])
        weakref.finalize(t, gone)
        return t

    monkeypatch.setattr(HFFolder, "tensor", tensor)
    return state


def _block0(folder) -> dict:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(folder / "model.safetensors")).items() if ".layers.0." in k}


def _per_block(folder) -> int:
    src = open_hf_folder(folder)
    return sum(1 for n in src.shapes if ".layers.0." in n)


@pytest.mark.parametrize("kind", ["gguf-q8_0", "int8"])
def test_tensor_writers_hold_at_most_one_block(deep_model, tmp_path, live_tensors, kind, monkeypatch):
    if kind == "int8":
        from bitsmith.engine.quant import int8

        # The writer keeps a shard's tensors until the shard is complete (2 GiB: the whole tiny
        # model); shards of about one block's int8 bytes make that bound one block here too.
        block_bytes = sum(v.numel() for k, v in _block0(deep_model).items())
        monkeypatch.setattr(int8, "SHARD_BYTES", block_bytes)
        cfg = QuantizeConfig(source=deep_model, out=tmp_path / "int8", method="int8")
    else:
        cfg = QuantizeConfig(source=deep_model, out=tmp_path / "m.gguf", method="gguf", gguf_type="Q8_0")
    from bitsmith.engine.quant import quantize

    run_job(quantize(cfg))
    # every tensor was read (the count is real), never more than one block's worth at once
    assert live_tensors["total"] >= N_BLOCKS * _per_block(deep_model)
    assert 1 <= live_tensors["most"] <= _per_block(deep_model)
