"""The plan at scale: an 8B-shape model (Llama-3.1-8B widths, from headers alone: a ModelShape built
here, no 16 GB of weights), memory flat with depth for every streamed method, and the importance
matrix's default budget. The machine's speed probe is fixed, so the figures are the cost model's own
and hold on any machine; bench/SCALE.md holds what the model was calibrated against."""

from __future__ import annotations

import pytest

from bitsmith.engine import plan as plan_module
from bitsmith.engine.config import QuantizeConfig
from bitsmith.engine.model_shape import ModelShape
from bitsmith.engine.quant.gguf.imatrix_budget import MIN_WINDOWS, imatrix_windows

GiB = 1024**3


def shape_of(layers: int, hidden=4096, inner=14336, heads=32, kv=8, head_dim=128, vocab=128256) -> ModelShape:
    block = [(heads * head_dim, hidden), (kv * head_dim, hidden), (kv * head_dim, hidden), (hidden, heads * head_dim),
             (inner, hidden), (inner, hidden), (hidden, inner)]
    per_block = sum(r * c for r, c in block) + 2 * hidden
    matrices = tuple((r * c, c, False) for _ in range(layers) for r, c in block)
    matrices += ((vocab * hidden, hidden, False), (vocab * hidden, hidden, True))
    linear = layers * sum(r * c for r, c in block)
    n = layers * per_block + 2 * vocab * hidden + hidden
    return ModelShape(path=None, is_gguf=False, n_params=n, block_linear_params=linear, layers=layers, hidden=hidden,
                      in_features=tuple(sorted({c for _, c in block})), largest_block_params=per_block,
                      bytes_on_disk=2 * n, matrices=matrices, block_linears=tuple(block))


#: plan.machine_gflops() on the 2-core development machine (one core's 512x512 matmul speed in its
#: own CPU time, ~60 GFLOP/s, x 2 cores x 0.9): bench/SCALE.md
PROBE_GFLOPS = 110.0


@pytest.fixture
def probe(monkeypatch):
    monkeypatch.setattr(plan_module, "machine_gflops", lambda: PROBE_GFLOPS)


def _plan(tmp_path, shape, method, **kw):
    cfg = QuantizeConfig(tmp_path / "src", tmp_path / "out", method, calibration="builtin", **kw)
    return plan_module.plan(cfg, shape)


def test_the_imatrix_budget_shrinks_only_the_default_on_large_models():
    assert imatrix_windows(128, 512, 135_000_000) == 128  # small: every default window
    assert imatrix_windows(128, 512, 8_030_000_000) == 16  # 8B: 8192 tokens
    assert imatrix_windows(128, 512, 70_000_000_000) == MIN_WINDOWS  # never below the floor
    assert imatrix_windows(300, 512, 8_030_000_000) == 300  # the user's own choice is kept
    assert imatrix_windows(128, 2048, 1_240_000_000) == 25  # longer windows: fewer of them


def test_8b_gguf_with_imatrix_by_default_is_about_an_hour_and_fits(tmp_path, probe):
    p = _plan(tmp_path, shape_of(32), "gguf", gguf_type="Q4_K_M")
    assert any("16 windows of 512 tokens" in s for s in p.steps), p.steps
    assert 0.5 * 3600 < p.seconds < 1.3 * 3600  # "about an hour" on 2 idle cores
    assert p.peak_memory_bytes < 6 * GiB  # the embedding or one block in float32, not 32 GB


@pytest.mark.parametrize("method", ["gguf", "gptq", "awq", "rtn", "int8"])
def test_planned_memory_is_flat_with_depth(tmp_path, probe, method):
    kw = {"gguf_type": "Q4_K_M"} if method == "gguf" else {}
    shallow, deep = (_plan(tmp_path, shape_of(n), method, samples=8, seq_len=256, **kw) for n in (4, 32))
    assert deep.peak_memory_bytes <= 1.2 * shallow.peak_memory_bytes, method
    assert deep.seconds > 2 * shallow.seconds  # time does grow with depth


def test_8b_gptq_says_how_long_it_takes(tmp_path, probe):
    """GPTQ at its default 128 windows of 512 tokens on 2 cores: hours, and the plan says so; and
    it fits the 24 GiB machine the issue names, with room for the desktop beside it (one float32
    block and its temporaries, the 65k tokens' activations twice, the Hessians and the widest one's
    factorization, the 2 GiB of replayed outputs: about 11 GB)."""
    p = _plan(tmp_path, shape_of(32), "gptq")
    assert p.seconds > 2 * 3600 and p.peak_memory_bytes < 16 * GiB


def moe_shape(layers: int, hidden=2048, experts=32, inner=768, heads=32, kv=4, head_dim=128, vocab=49152) -> ModelShape:
    """bench/scale_models.py's "moe" shape (Qwen3-MoE widths, 32 experts of 768): one router and
    three linears per expert in every block."""
    block = [(heads * head_dim, hidden), (kv * head_dim, hidden), (kv * head_dim, hidden),
             (hidden, heads * head_dim), (experts, hidden)]
    block += [(inner, hidden), (inner, hidden), (hidden, inner)] * experts
    per_block = sum(r * c for r, c in block) + 2 * hidden
    linear = layers * sum(r * c for r, c in block)
    n = layers * per_block + 2 * vocab * hidden + hidden
    return ModelShape(path=None, is_gguf=False, n_params=n, block_linear_params=linear, layers=layers, hidden=hidden,
                      in_features=tuple(sorted({c for _, c in block})), largest_block_params=per_block,
                      bytes_on_disk=2 * n, matrices=(), moe=True, block_linears=tuple(block),
                      block_linear_routed=(False,) * 5 + (True,) * (len(block) - 5),
                      expert_share=4 / experts)


def test_rtn_measuring_errors_counts_every_experts_hessian(tmp_path, probe):
    """RTN given a calibration file measures each layer's output error, holding every layer's input
    Hessian of a block at once: one per expert layer in a MoE block. bench_scale measured 2.88 GiB
    for the MoE shape at 4 layers, which the plan put at 1.85 GiB before it counted them (-36 %;
    3.05 GiB now, bench/SCALE.md). Without calibration text there are no Hessians to count."""
    shape = moe_shape(4)
    text = tmp_path / "calibration.txt"
    text.write_text("calibration text\n")
    plain = _plan(tmp_path, shape, "rtn")
    measured = plan_module.plan(QuantizeConfig(tmp_path / "src", tmp_path / "out", "rtn", calibration=str(text)), shape)
    hessians = sum(4 * n * n for _rows, n in shape.block_linears)
    assert measured.peak_memory_bytes - plain.peak_memory_bytes == hessians
    assert 2.88 * 0.7 * GiB < measured.peak_memory_bytes < 2.88 * 1.3 * GiB  # the issue's +-30 % of the measured peak


#: bench_scale, MoE shape, 4 layers, GPTQ 4-bit g128 (bench/SCALE.md, session 14): peak RSS at 2 x 64
#: and 32 x 512 calibration tokens
MOE_GPTQ_PEAK_GIB = {(2, 64): 2.68, (32, 512): 3.48}


@pytest.mark.parametrize("samples, seq_len", list(MOE_GPTQ_PEAK_GIB))
def test_moe_gptq_memory_counts_each_experts_outputs_for_its_own_tokens(tmp_path, probe, samples, seq_len):
    """GPTQ keeps the outputs of the layers it quantized for the later passes (engine/layer_replay.py):
    a routed expert's only for the tokens its router sent it (4 of 32 experts per token here). When
    the plan counted every expert's outputs for every token it said 5.10 GiB against 3.48 measured
    at 32 x 512 (+47 %); the issue asks for +-30 %. Memory depends on sizes alone, not on the probe."""
    p = _plan(tmp_path, moe_shape(4), "gptq", samples=samples, seq_len=seq_len)
    measured = MOE_GPTQ_PEAK_GIB[(samples, seq_len)] * GiB
    assert 0.7 * measured < p.peak_memory_bytes < 1.3 * measured, p.peak_memory_bytes / GiB


def test_an_expert_without_enough_tokens_costs_no_gptq_solve(tmp_path, probe):
    """An expert that saw fewer calibration tokens than its input width is rounded to nearest (no
    Hessian solve, no grid search; no AWQ scale search either): at 2 x 64 tokens every expert of
    the MoE shape is (16 tokens each on average against 768-2048 inputs), so doubling the experts'
    width adds almost nothing to the plan, while at 128 x 512 (8,192 tokens each) it adds their
    solves. Measured: 4-layer GPTQ at 2 x 64, 74 CPU s, plan 271 s before it knew (x7.3)."""
    def seconds(method, samples, seq_len, inner):
        return _plan(tmp_path, moe_shape(4, inner=inner), method, samples=samples, seq_len=seq_len).seconds

    for method in ("gptq", "awq"):
        few = seconds(method, 2, 64, 1536) - seconds(method, 2, 64, 768)
        many = seconds(method, 128, 512, 1536) - seconds(method, 128, 512, 768)
        assert many > 10 * few > 0, (method, few, many)


def test_a_moe_forward_costs_the_experts_its_tokens_use(tmp_path):
    shape = moe_shape(4)
    experts = 4 * sum(r * c for r, c in shape.block_expert_linears)
    assert shape.active_params == shape.n_params - experts * 7 // 8
    assert shape_of(4).active_params == shape_of(4).n_params  # dense: every weight, every token


@pytest.mark.parametrize("family, shared", [("qwen3_moe", False), ("qwen2_moe", True)])
def test_model_shape_reads_the_routed_experts_from_the_folder(tiny, family, shared):
    """From a real checkpoint: the routed experts' weights (one matrix each, `mlp.experts.E.*`) and
    their share of the tokens from config.json; Qwen2-MoE's shared expert sees every token."""
    import json

    from bitsmith.engine.model_shape import model_shape

    folder = tiny(family)
    config = json.loads((folder / "config.json").read_text())
    shape = model_shape(folder)
    experts = config.get("num_experts") or config["num_local_experts"]  # transformers 5 saves Qwen3-MoE's so
    assert shape.moe and shape.expert_share == config["num_experts_per_tok"] / experts
    assert len(shape.block_expert_linears) == 3 * experts
    assert all(r == config["moe_intermediate_size"] or c == config["moe_intermediate_size"]
               for r, c in shape.block_expert_linears)
    seen = shape.block_linear_tokens(1000)
    assert sum(t == 1000 * shape.expert_share for _r, _c, t in seen) == len(shape.block_expert_linears)
    dense_rows = [r for r, _c, t in seen if t == 1000]
    assert (config.get("shared_expert_intermediate_size", 0) in dense_rows) is shared


def _probe_with_clock(monkeypatch, stall_at: int | None, samples: int) -> float:
    """machine_gflops() on a fake CPU clock: every reading advances 1/1024 s, and reading number
    `stall_at` another 50/1024 s (the thread lost its core to the host inside a sample). Binary
    fractions keep every sum exact, so each clean sample counts the same matmuls over the same time."""
    calls = {"n": 0, "t": 0.0}

    def thread_time() -> float:
        calls["n"] += 1
        calls["t"] += (1 + (50 if calls["n"] == stall_at else 0)) / 1024
        return calls["t"]

    monkeypatch.setattr(plan_module.time, "thread_time", thread_time)
    monkeypatch.setattr(plan_module, "PROBE_SAMPLES", samples)
    plan_module.machine_gflops.cache_clear()
    try:
        return plan_module.machine_gflops()
    finally:
        plan_module.machine_gflops.cache_clear()


def test_a_stall_inside_one_probe_sample_does_not_slow_the_plan(monkeypatch):
    # The rates come from the fake clock alone (a count of matmuls over fake seconds), so the
    # comparisons are exact on any CPU. Reading 3 falls inside the first sample.
    clean = _probe_with_clock(monkeypatch, None, plan_module.PROBE_SAMPLES)
    assert _probe_with_clock(monkeypatch, 3, plan_module.PROBE_SAMPLES) == clean
    # The single sample the probe used to take reads the stall as a slower machine.
    assert _probe_with_clock(monkeypatch, 3, 1) < 0.5 * clean
