"""The importance matrix streamed block by block (engine/layers.py's runner) against a reference
computed the plain way: the whole model in float32, float64 hooks on every nn.Linear, one window at
a time (the implementation it replaced). And routed experts as llama.cpp stores them: one row-block
per expert with its own count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bitsmith.engine.formats.hf_folder import open_hf_folder
from bitsmith.engine.quant.gguf.imatrix import compute_imatrix, linear_gguf_names
from bitsmith.engine.quant.gguf.imatrix_file import load_imatrix, save_imatrix

from .weight_only_helpers import drive, one_torch_thread, random_windows  # noqa: F401


def _whole_model_reference(folder, windows, tied: bool) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """GGUF name -> (sum x², sum x, rows), float64, from the whole model run window by window."""
    from transformers import AutoModelForCausalLM

    src = open_hf_folder(folder)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    names = linear_gguf_names(list(linears), src, int(src.config["num_hidden_layers"]), tied)
    out: dict[str, list] = {}

    def hook_for(name):
        def hook(_m, inputs):
            x = inputs[0].reshape(-1, inputs[0].shape[-1]).double()
            acc = out.setdefault(name, [0.0, 0.0, 0])
            acc[0] = acc[0] + (x * x).sum(0).numpy()
            acc[1] = acc[1] + x.sum(0).numpy()
            acc[2] += x.shape[0]
        return hook

    handles = [linears[m].register_forward_pre_hook(hook_for(g)) for m, g in names.items()]
    with torch.inference_mode():
        for w in windows:
            model(input_ids=w[None], use_cache=False)
    for h in handles:
        h.remove()
    return {k: tuple(v) for k, v in out.items()}


def test_streamed_equals_the_whole_model_pass(tiny_llama_dir):
    windows = random_windows(6, 24, seed=3)  # 6 windows: one full batch of 4 and a short one of 2
    ref = _whole_model_reference(tiny_llama_dir, windows, tied=False)
    stats = drive(compute_imatrix(open_hf_folder(tiny_llama_dir), windows, "test", tied=False))
    assert set(stats.sums) == set(ref) and "output.weight" in ref  # the untied head has its entry
    for name, (sq, act, rows) in ref.items():
        assert stats.counts[name] == rows == 6 * 24, name
        # Both are float32 forwards of the same weights; they differ only in rounding: batches of 4
        # windows against one window at a time (matmul blocking: ~1e-7 relative per block) and
        # float32 per-batch sums against float64 per-row adds (~1e-7). Two blocks compound that to
        # a few 1e-7; 1e-5 leaves a wide margin and still catches any wrong row, window or layer.
        assert np.allclose(stats.sums[name], sq, rtol=1e-5, atol=0), name
        assert np.allclose(stats.act_sums[name], act, rtol=1e-5, atol=1e-5 * np.abs(act).max()), name
    assert stats.n_chunks == 6 and stats.chunk_size == 24


def test_tied_head_has_no_entry(tiny_llama_dir, tmp_path):
    from tests.fixtures.tiny_variants import build_variant

    folder = build_variant(tiny_llama_dir, tmp_path / "qwen2", "qwen2")  # tied embeddings, q/k/v biases
    windows = random_windows(2, 16)
    ref = _whole_model_reference(folder, windows, tied=True)
    stats = drive(compute_imatrix(open_hf_folder(folder), windows, "test", tied=True))
    assert set(stats.sums) == set(ref) and "output.weight" not in stats.sums
    for name, (sq, _act, _rows) in ref.items():
        assert np.allclose(stats.sums[name], sq, rtol=1e-5, atol=0), name  # as above


@pytest.fixture(scope="module")
def tiny_moe(tmp_path_factory):
    from tests.fixtures.tiny_families import build_tiny

    return build_tiny("qwen3_moe", tmp_path_factory.mktemp("moe") / "qwen3_moe")


def _routing_reference(folder, windows):
    """Per block: the MoE input rows and the experts the router picks for each (top-k of the
    softmax of the router's logits, qwen3_moe's rule), from the whole model."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    k = model.config.num_experts_per_tok
    seen = {}

    def hook_for(i, mlp):
        def hook(_m, inputs):
            x = inputs[0].reshape(-1, inputs[0].shape[-1])
            router = mlp.gate.weight if isinstance(mlp.gate.weight, torch.Tensor) else mlp.gate
            picks = torch.softmax(x @ router.T, -1).topk(k, -1).indices
            seen.setdefault(i, []).append((x.double(), picks))
        return hook

    handles = [layer.mlp.register_forward_pre_hook(hook_for(i, layer.mlp)) for i, layer in enumerate(model.model.layers)]
    with torch.inference_mode():
        model(input_ids=windows, use_cache=False)
    for h in handles:
        h.remove()
    return seen, model.config.num_experts


def test_experts_are_one_row_block_each_with_its_own_count(tiny_moe, tmp_path):
    windows = random_windows(4, 32, seed=5)
    stats = drive(compute_imatrix(open_hf_folder(tiny_moe), windows, "test", tied=False))
    seen, n_exp = _routing_reference(tiny_moe, windows)
    for i, parts in seen.items():
        x = torch.cat([p[0] for p in parts])
        picks = torch.cat([p[1] for p in parts])
        for kind in ("gate", "up"):
            name = f"blk.{i}.ffn_{kind}_exps.weight"
            assert stats.sums[name].shape == (n_exp, x.shape[1]), name
            for e in range(n_exp):
                rows = (picks == e).any(-1)
                assert stats.counts[name][e] == int(rows.sum()), (name, e)
                # float32 against float64 sums of the same rows (see the dense test): 1e-5
                assert np.allclose(stats.sums[name][e], (x[rows] ** 2).sum(0).numpy(), rtol=1e-5, atol=1e-12), (name, e)
        down = stats.counts[f"blk.{i}.ffn_down_exps.weight"]
        assert down.sum() == x.shape[0] * 2  # every token reaches its 2 experts' down projection
    # The file keeps the row-blocks and per-expert counts; means flatten expert after expert.
    path = tmp_path / "m.imatrix.gguf"
    save_imatrix(stats, path)
    back = load_imatrix(path)
    name = "blk.1.ffn_down_exps.weight"
    assert np.array_equal(back.counts[name], stats.counts[name])
    assert np.allclose(back.sums[name], stats.sums[name], rtol=1e-6)  # stored as float32
    means = stats.means()[name]
    assert means.shape == (n_exp * stats.sums[name].shape[1],)
    e = int(np.argmax(stats.counts[name]))
    width = stats.sums[name].shape[1]
    assert np.allclose(means[e * width:(e + 1) * width], stats.sums[name][e] / stats.counts[name][e], rtol=1e-6)


def test_moe_q4_k_m_with_imatrix_loads_in_llama_cpp(tiny_moe, tmp_path):
    from tests.engine.gguf_export_helpers import export, generates

    result = export(tiny_moe, tmp_path / "moe.gguf", "Q4_K_M", imatrix=True)
    generates(result.out)
    saved = load_imatrix(result.imatrix)
    assert saved.sums["blk.0.ffn_up_exps.weight"].ndim == 2
