"""The block-by-block runner: with no quantization it reproduces the full model; blocks are loaded
lazily and released; progress and cancel work between layers."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from bitsmith.engine.cancel import CancelToken
from bitsmith.engine.errors import Cancelled
from bitsmith.engine.events import Progress
from bitsmith.engine.formats.hf_folder import open_hf_folder
from bitsmith.engine.layers import BlockRunner

from .weight_only_helpers import drive, random_windows, one_torch_thread  # noqa: F401


class _NoQuant:
    def quantize_block(self, step):
        for name in step.linears():
            yield step.layer_done(name)
        return {}


def _full_logits(folder, ids, device="cpu"):
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).to(device).eval()
    with torch.no_grad():
        return model(input_ids=ids.to(device)).logits.cpu()


def _runner_logits(folder, ids, device="cpu"):
    runner = BlockRunner(open_hf_folder(folder), device, batch_size=2)
    drive(runner.capture(ids))
    drive(runner.run(_NoQuant(), lambda *a: None))
    return runner, torch.cat(runner.logits())


def test_no_quantization_reproduces_the_full_model(tiny_llama_dir):
    ids = random_windows(5, 24)  # 5 windows in batches of 2: a short last batch too
    runner, logits = _runner_logits(tiny_llama_dir, ids)
    assert torch.allclose(logits, _full_logits(tiny_llama_dir, ids), atol=1e-5, rtol=1e-5)
    # Every block and the embedding went back to the meta device: nothing stays loaded.
    assert all(p.is_meta for b in runner.blocks for p in b.parameters())
    assert runner.inner.embed_tokens.weight.is_meta


def test_qwen2_with_biases_and_tied_embeddings(tiny_llama_dir, tmp_path):
    from tests.fixtures.tiny_variants import build_variant

    folder = build_variant(tiny_llama_dir, tmp_path / "qwen2", "qwen2")
    ids = random_windows(3, 16)
    _, logits = _runner_logits(folder, ids)
    assert torch.allclose(logits, _full_logits(folder, ids), atol=1e-5, rtol=1e-5)


def test_progress_names_block_and_layer_and_cancel_stops_between_layers(tiny_llama_dir):
    runner = BlockRunner(open_hf_folder(tiny_llama_dir), "cpu")
    drive(runner.capture(random_windows(2, 16)))
    cancel = CancelToken()
    events = []
    with pytest.raises(Cancelled):
        for event in runner.run(_NoQuant(), lambda *a: None, cancel, stage="test"):
            events.append(event)
            if len(events) == 3:
                cancel.cancel()
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[0].detail == "block 1/2: self_attn.q_proj" and progress[0].total == 14
    assert len(progress) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runner_on_cuda_matches_cpu(tiny_llama_dir):
    ids = random_windows(3, 16)
    _, logits = _runner_logits(tiny_llama_dir, ids, "cuda")
    assert torch.allclose(logits, _full_logits(tiny_llama_dir, ids), atol=1e-4, rtol=1e-4)
