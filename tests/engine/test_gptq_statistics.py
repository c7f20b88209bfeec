"""GPTQ's input statistics: the Hessian from tiles on and above its diagonal equals the plain
product, and a capture pass that stops before the group's layers (pre-hooks) gathers exactly what
the pass that let them run gathered, without running them."""

from __future__ import annotations

import pytest
import torch

from bitsmith.engine.formats.hf_folder import open_hf_folder
from bitsmith.engine.layers import BlockRunner, BlockStep
from bitsmith.engine.quant.gptq.hessian import H_TILE, InputStats, StatsCollector
from bitsmith.engine.quant.weight_only.block_groups import block_groups
from bitsmith.engine.events import EtaClock
from bitsmith.engine.cancel import NEVER

from .weight_only_helpers import drive, quantize_tiny, random_windows, one_torch_thread  # noqa: F401


def test_tiled_hessian_equals_the_full_product():
    g = torch.Generator().manual_seed(0)
    n = 2 * H_TILE + 252  # three tiles, the last one narrow
    stats = InputStats(n, "cpu")
    batches = [torch.randn(2, 37, n, generator=g) * torch.rand(n, generator=g) for _ in range(3)]
    seen = []
    for i, x in enumerate(batches):
        stats.add(x)
        seen.append(x.reshape(-1, n).double())
        if i == 1:
            stats.H  # read mid-way: later batches must still reach the mirrored tiles
    X = torch.cat(seen)
    exact = 2 * X.t() @ X / X.shape[0]
    H = stats.H
    # Tiles below the diagonal are copies; inside a diagonal tile the product's own rounding may
    # differ between (a, b) and (b, a), as with one full product.
    assert torch.equal(H[H_TILE:, :H_TILE], H[:H_TILE, H_TILE:].t())
    # float32 sums of ~200 products against float64: relative error ~1e-6 of the largest entry;
    # 1e-5 still fails a missing or stale tile (errors of the entries' own size).
    assert torch.allclose(H.double(), exact, rtol=0, atol=1e-5 * float(exact.abs().max()))
    assert stats.n == X.shape[0]


def test_stopping_before_the_group_gathers_the_same_statistics(tiny_llama_dir):
    runner = BlockRunner(open_hf_folder(tiny_llama_dir), "cpu", batch_size=2)
    drive(runner.capture(random_windows(4, 16)))
    block = runner.load_block(0)
    step = BlockStep(runner, 0, block, EtaClock(1, "test"), 0, NEVER)
    linears = step.linears()
    traced = block_groups(step)
    assert traced.shared_input == {"self_attn.k_proj": "self_attn.q_proj", "self_attn.v_proj": "self_attn.q_proj",
                                   "mlp.up_proj": "mlp.gate_proj"}
    for group in traced.sequential:
        calls = {n: 0 for n in group}
        counters = {n: (lambda n: lambda *_: calls.__setitem__(n, calls[n] + 1))(n) for n in group}
        after = StatsCollector({n: linears[n] for n in group})
        step.forward(hooks=after.hooks(), stop_after=group, before_batch=after.new_batch)
        before = StatsCollector({n: linears[n] for n in group}, traced.shared_input)
        step.forward(pre_hooks=before.pre_hooks(), stop_before=before.stop_before(), before_batch=before.new_batch,
                     hooks=counters)
        for n in group:
            assert torch.equal(before.get(n).H, after.get(n).H), n
            assert before.rows(n) == after.rows(n) == 4 * 16
        assert calls == {n: 0 for n in group}  # none of the group's layers ran


@pytest.mark.parametrize("family", ["llama", "qwen3_moe"])
def test_replaying_final_layers_gives_the_same_output(tiny_llama_dir, tiny, tmp_path, monkeypatch, family):
    """GPTQ's passes replay the outputs of layers quantized two groups back (engine/layer_replay.py)
    instead of computing them again: the output files are the same bytes as with nothing replayed,
    on a dense block and on routed experts (calls kept per batch, experts some batches skip)."""
    import bitsmith.engine.layers as layers
    from bitsmith.engine.layer_replay import LayerReplay

    source = tiny_llama_dir if family == "llama" else tiny(family)
    ids = random_windows(6, 24)
    used = []
    real = LayerReplay.finish

    def finish(self, names, n_batches):
        real(self, names, n_batches)
        used.append(len(self.ready))
    monkeypatch.setattr(LayerReplay, "finish", finish)
    replayed = quantize_tiny(source, tmp_path / "replayed", "gptq", ids).out
    assert max(used) >= 4  # q/k/v/o at least were replayed
    monkeypatch.setattr(layers, "replay_budget", lambda device: 0)
    computed = quantize_tiny(source, tmp_path / "computed", "gptq", ids).out
    files = sorted(p.name for p in replayed.iterdir() if p.suffix == ".safetensors")
    assert files and files == sorted(p.name for p in computed.iterdir() if p.suffix == ".safetensors")
    for name in files:
        assert (replayed / name).read_bytes() == (computed / name).read_bytes(), name
