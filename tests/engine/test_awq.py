"""AWQ: folding scales leaves the float model unchanged; the searches never do worse than RTN;
AWQ beats RTN on the tiny model and on real layers; its folder reloads and generates."""

from __future__ import annotations

import json

import pytest
import torch

from bitsmith.engine.config import Method
from bitsmith.engine.events import Log, run_job
from bitsmith.engine.formats.hf_folder import open_hf_folder
from bitsmith.engine.layers import BlockRunner
from bitsmith.engine.quant.awq.layer import AWQMethod, fold_scales
from bitsmith.engine.quant.weight_only.block_groups import trace_groups
from bitsmith.engine.quant.awq.search import search_scale
from bitsmith.engine.quant.gptq.hessian import relative_output_error
from bitsmith.engine.quant.weight_only.rtn import RTNMethod
from bitsmith.engine.config import WeightOnlySettings
from bitsmith.engine.runtime.quantized_hf import load_quantized_model
from bitsmith.kernels.woq_quantize import dequantize, rtn_quantize

from .weight_only_helpers import drive, quantize_tiny, random_windows, text_windows, one_torch_thread  # noqa: F401


@pytest.fixture(scope="module")
def mha_llama(tiny_llama_dir, tmp_path_factory):
    """The tiny Llama without grouped-query attention, so v_proj -> o_proj can be scaled too."""
    import shutil

    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("mha") / "tiny-mha"
    torch.manual_seed(5)
    LlamaForCausalLM(LlamaConfig(vocab_size=400, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                                 tie_word_embeddings=True)).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny_llama_dir / name).exists():
            shutil.copy(tiny_llama_dir / name, folder / name)
    return folder


def test_folding_scales_keeps_the_float_block(mha_llama):
    runner = BlockRunner(open_hf_folder(mha_llama), "cpu", max_blocks=1)
    drive(runner.capture(random_windows(2, 16)))
    block = runner.load_block(0)
    before = runner.forward_block(0, block, keep=True)
    modules = dict(block.named_modules())
    linears = {n: m for n, m in modules.items() if isinstance(m, torch.nn.Linear)}
    traced = trace_groups(block, linears, lambda hooks: runner.forward_block(0, block, hooks, batches=1))
    # Derived from the block: both norms feed their projections, and v -> o, up -> down chain.
    assert [p for p, _ in traced.norm_groups] == ["input_layernorm", "post_attention_layernorm"]
    assert [p for p, _ in traced.chains] == ["self_attn.v_proj", "mlp.up_proj"]
    g = torch.Generator().manual_seed(0)
    for prev, names in [*traced.norm_groups, *traced.chains]:
        layers = [modules[n] for n in names]
        fold_scales(modules[prev], layers, torch.rand(layers[0].in_features, generator=g) + 0.5)
    after = runner.forward_block(0, block, keep=True)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(after, before))


def test_grouped_query_fold_keeps_the_float_block(tiny_llama_dir):
    """v_proj's output scales repeated per query head onto o_proj's inputs: the float block is the same."""
    from bitsmith.engine.quant.awq.search import gqa_expand

    runner = BlockRunner(open_hf_folder(tiny_llama_dir), "cpu", max_blocks=1)
    drive(runner.capture(random_windows(2, 16)))
    block = runner.load_block(0)
    before = runner.forward_block(0, block, keep=True)
    attn = block.self_attn
    repeats = attn.o_proj.in_features // attn.v_proj.out_features
    assert repeats > 1  # the fixture really is grouped-query
    small = torch.rand(attn.v_proj.out_features, generator=torch.Generator().manual_seed(1)) + 0.5
    fold_scales(attn.v_proj, [attn.o_proj], gqa_expand(small, repeats, attn.head_dim), prev_s=small)
    after = runner.forward_block(0, block, keep=True)
    # Exact up to float32 rounding of the rescaled weights (values ~1, relative 1e-7 per product).
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(after, before))
    # A wrong head size (the values repeated per channel instead of per head) does change it: the
    # check the job runs after a fold would catch a model whose heads are laid out otherwise.
    wrong = small.repeat_interleave(repeats)
    fold_scales(attn.v_proj, [attn.o_proj], wrong / gqa_expand(small, repeats, attn.head_dim), prev_s=torch.ones_like(small))
    moved = runner.forward_block(0, block, keep=True)
    assert not all(torch.allclose(a, b, atol=1e-3) for a, b in zip(moved, before))


def test_range_search_beats_the_plain_and_the_one_factor_grids():
    """The clipping search over both ends of each group's grid: never worse than min/max (its first
    candidate), and better than shrinking both ends by one factor on groups that lean to one side."""
    from bitsmith.engine.quant.awq.search import search_range
    from bitsmith.kernels.woq_quantize import quantize_on_grid, range_params, range_shrinks

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 128, generator=g) * (torch.rand(128, generator=g) + 0.2)
    H = x.t() @ x
    W = torch.randn(48, 128, generator=g)
    W[:, ::7] += 2.5  # a few large positive weights: groups whose range leans to one side

    def err(gq):
        d = dequantize(gq) - W
        return float(((d @ H) * d).sum())

    shrinks = range_shrinks(20, 0.35)
    assert shrinks[0] == 1.0 and len(shrinks) == 8 and abs(shrinks[-1] - 0.65) < 1e-9
    scale, zero = search_range(W, H, 4, 32, shrinks)
    searched = err(quantize_on_grid(W, scale, zero, 4, 32))
    plain = err(rtn_quantize(W, 4, 32, sym=False))
    w = W.reshape(48, 4, 32)
    one_factor = []
    for f in shrinks:  # each group's best single factor, chosen by the same per-group objective
        s, z = range_params(w.amin(-1) * f, w.amax(-1) * f, 4, False)
        one_factor.append(err(quantize_on_grid(W, s, z, 4, 32)))
    assert searched < plain
    assert searched < min(one_factor)
    # quantize_on_grid is round-to-nearest on the given grid: with the min/max grid it is RTN itself.
    s, z = range_params(w.amin(-1), w.amax(-1), 4, False)
    assert torch.equal(quantize_on_grid(W, s, z, 4, 32).q, rtn_quantize(W, 4, 32, sym=False).q)


def test_scale_search_never_loses_to_rtn():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 128, generator=g) * (torch.rand(128, generator=g) * 4) ** 2  # a few loud channels
    H = x.t() @ x
    W = torch.randn(64, 128, generator=g)
    s, alpha, losses = search_scale([W], H, x.abs().mean(0), 4, 32)
    rtn = relative_output_error(W, dequantize(rtn_quantize(W, 4, 32, sym=False)), H)
    awq = relative_output_error(W, dequantize(rtn_quantize(W * s, 4, 32, sym=False)) / s, H)
    assert len(losses) == 20 and losses[0] == min(losses[:1])  # alpha = 0 is plain RTN
    assert awq <= rtn and alpha > 0


def test_awq_beats_rtn_on_the_tiny_model_and_reloads(tiny_llama_dir, tmp_path):
    ids = random_windows(8, 32)
    rtn = quantize_tiny(tiny_llama_dir, tmp_path / "rtn", "rtn", ids)
    logs = []
    from bitsmith.engine.config import QuantizeConfig
    from bitsmith.engine.quant.weight_only.job import quantize_weight_only

    cfg = QuantizeConfig(source=tiny_llama_dir, out=tmp_path / "awq", method="awq")
    awq = run_job(quantize_weight_only(cfg, ids), on_event=lambda e: logs.append(e) if isinstance(e, Log) else None)
    assert all(a < r for a, r in zip(awq.block_errors, rtn.block_errors))
    # Grouped-query attention (4 query heads, 2 kv heads): v -> o is scaled with one scale per value
    # channel, and the fold check found the block unchanged (it logs and undoes a fold otherwise).
    card = json.loads((awq.out / "bitsmith-report.json").read_text())
    assert "model.layers.0.self_attn.v_proj" in card["method_details"]["alphas"]
    assert not any("not scaled" in e.message for e in logs)
    config = json.loads((awq.out / "config.json").read_text())["quantization_config"]
    assert config == {**config, "quant_method": "awq", "version": "gemm", "zero_point": True, "bits": 4,
                      "group_size": 64}
    model, _ = load_quantized_model(awq.out, "cpu")
    out = model.generate(input_ids=ids[:1, :4], max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape[1] == 9


def test_awq_with_v_to_o_scaling_reloads_exactly(mha_llama, tmp_path):
    """Folded norms and v_proj rows are written, so the reloaded model is the one AWQ measured."""
    result = quantize_tiny(mha_llama, tmp_path / "awq", "awq", random_windows(4, 32))
    card = json.loads((result.out / "bitsmith-report.json").read_text())
    assert "model.layers.0.self_attn.v_proj" in card["method_details"]["alphas"]
    model, _ = load_quantized_model(result.out, "cpu")
    assert model(input_ids=random_windows(1, 8)).logits.isfinite().all()


def test_awq_beats_rtn_on_real_layers(bundled_hf_dir):
    src = open_hf_folder(bundled_hf_dir)
    ids = text_windows(bundled_hf_dir, 4, 64)
    block_error = {}
    for name, method in (("rtn", RTNMethod), ("awq", AWQMethod)):
        runner = BlockRunner(src, "cpu", max_blocks=1)
        drive(runner.capture(ids))
        stats = drive(runner.run(method(WeightOnlySettings(Method(name), 4, 64, False)), lambda *a: None))
        block_error[name] = stats[0]["output_rel_error"]
    assert block_error["awq"] < block_error["rtn"]


def test_both_roundings_beat_rtn_on_real_layers_and_gptq_rounding_wins(bundled_hf_dir):
    """One block of the bundled model: AWQ's own clipping + nearest rounding and the GPTQ rounding
    of the scaled weights both beat RTN on the block's output, GPTQ's rounding by more (it minimizes
    the layers' output error itself), and its groups stay consecutive (what AWQ files hold)."""
    src = open_hf_folder(bundled_hf_dir)
    ids = text_windows(bundled_hf_dir, 4, 64)
    errors, quants = {}, {}
    for rounding in ("nearest", "gptq"):
        runner = BlockRunner(src, "cpu", max_blocks=1)
        drive(runner.capture(ids))
        method = AWQMethod(WeightOnlySettings(Method.AWQ, 4, 64, False, awq_rounding=rounding))
        got = {}
        stats = drive(runner.run(method, lambda i, block, layers, info: got.update(layers)))
        errors[rounding] = stats[0]["output_rel_error"]
        quants[rounding] = got
    runner = BlockRunner(src, "cpu", max_blocks=1)
    drive(runner.capture(ids))
    rtn = drive(runner.run(RTNMethod(WeightOnlySettings(Method.RTN, 4, 64, False)), lambda *a: None))[0]["output_rel_error"]
    assert errors["gptq"] < errors["nearest"] < rtn
    for name, result in quants["gptq"].items():
        inp = result.quant.q.shape[1]
        assert torch.equal(result.quant.g_idx.long(), torch.arange(inp) // 64), name


def test_the_scale_search_reads_only_its_share_of_the_calibration(bundled_hf_dir, monkeypatch):
    """With GPTQ's rounding, AWQ's own statistics pass reads the first batches holding
    awq_search_tokens tokens, and GPTQ's passes read every batch."""
    from bitsmith.engine.quant.gptq.hessian import StatsCollector

    src = open_hf_folder(bundled_hf_dir)
    runner = BlockRunner(src, "cpu", max_blocks=1)
    drive(runner.capture(text_windows(bundled_hf_dir, 16, 32)))
    sizes = [h.shape[0] * h.shape[1] for h in runner._hidden]
    assert len(sizes) > 2
    from bitsmith.engine.layers import BlockStep

    step = BlockStep(runner, 0, runner.load_block(0), None, 0, None)
    assert step.batches_covering(1) == 1
    assert step.batches_covering(sizes[0] + 1) == 2
    assert step.batches_covering(10**9) == len(sizes)
    counts = []
    real = StatsCollector.new_batch

    def counting(self):
        counts.append(self)  # the collector itself (kept alive, so no two share an identity)
        return real(self)

    monkeypatch.setattr(StatsCollector, "new_batch", counting)
    settings = WeightOnlySettings(Method.AWQ, 4, 64, False, awq_search_tokens=sizes[0] + 1)
    drive(runner.run(AWQMethod(settings), lambda *a: None))
    # new_batch runs before each batch and once after the pass: the first collector is AWQ's.
    per = {}
    for c in counts:
        per[id(c)] = per.get(id(c), 0) + 1
    calls = list(per.values())
    assert calls[0] == 2 + 1
    # GPTQ: one collector per group of layers fed one tensor (q/k/v, o, gate/up, down), every batch.
    assert calls[1:] == [len(sizes) + 1] * 4
