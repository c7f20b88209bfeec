"""GPTQ (and RTN, its floor) end to end on the tiny model, on real layers of the bundled model, and
the refusals made before any work."""

from __future__ import annotations

import json

import pytest
import torch

from bitsmith.engine.cancel import CancelToken
from bitsmith.engine.config import Method, QuantizeConfig
from bitsmith.engine.errors import Cancelled, InvalidInput
from bitsmith.engine.events import Progress
from bitsmith.engine.formats.hf_folder import open_hf_folder
from bitsmith.engine.fsutil import PARTIAL_PREFIX
from bitsmith.engine.layers import BlockRunner
from bitsmith.engine.quant.gptq.layer import GPTQMethod
from bitsmith.engine.quant.weight_only.rtn import RTNMethod
from bitsmith.engine.config import WeightOnlySettings
from bitsmith.engine.quant.weight_only.settings import default_group_size
from bitsmith.engine.quant.weight_only.job import quantize_weight_only
from bitsmith.engine.runtime.quantized_hf import load_quantized_model

from tests.conftest import SHARED_DATA

from .weight_only_helpers import drive, quantize_tiny, random_windows, text_windows, one_torch_thread  # noqa: F401


@pytest.fixture(scope="module")
def tiny_outputs(tiny_llama_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("gptq")
    ids = random_windows(8, 32)
    return {
        "rtn": quantize_tiny(tiny_llama_dir, root / "rtn", "rtn", ids),
        "gptq": quantize_tiny(tiny_llama_dir, root / "gptq", "gptq", ids),
        "gptq-act": quantize_tiny(tiny_llama_dir, root / "gptq-act", "gptq", ids, bits=3, desc_act=True, sym=True),
    }


def test_default_group_size():
    assert default_group_size([576, 1536]) == 64  # SmolLM2
    assert default_group_size([64, 128]) == 64
    assert default_group_size([4096, 11008]) == 128
    assert default_group_size([96]) == 32
    assert default_group_size([100]) == -1


def test_gptq_beats_rtn_on_the_tiny_model(tiny_outputs):
    rtn, gptq = tiny_outputs["rtn"], tiny_outputs["gptq"]
    assert gptq.summary["mean"] < rtn.summary["mean"]
    for layer in ("q_proj", "k_proj", "v_proj"):  # same inputs for both: block 0's first group
        name = f"model.layers.0.self_attn.{layer}"
        assert gptq.layer_errors[name] < rtn.layer_errors[name]
    assert all(g < r for g, r in zip(gptq.block_errors, rtn.block_errors))


def test_output_folder_reloads_and_generates(tiny_outputs, tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    for key in ("gptq", "gptq-act"):
        result = tiny_outputs[key]
        config = json.loads((result.out / "config.json").read_text())["quantization_config"]
        assert config["quant_method"] == "gptq" and config["checkpoint_format"] == "gptq"
        model, tokenizer = load_quantized_model(result.out, "cpu")
        ids = random_windows(1, 12, seed=3)
        with torch.no_grad():
            got = model(input_ids=ids).logits
            ref = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32)(input_ids=ids).logits
        assert float((got - ref).norm() / ref.norm()) < 0.3
        out = model.generate(input_ids=ids[:, :4], max_new_tokens=6, min_new_tokens=6, do_sample=False)
        assert out.shape[1] == 10 and tokenizer.chat_template
    card = json.loads((tiny_outputs["gptq"].out / "bitsmith-report.json").read_text())
    assert card["method"] == "gptq" and card["settings"]["group_size"] == 64
    assert card["calibration"]["samples"] == 8 and card["peak_rss_bytes"] > 0 and card["size_bytes"] > 0


def test_gptq_beats_rtn_on_real_layers(bundled_hf_dir):
    src = open_hf_folder(bundled_hf_dir)
    ids = text_windows(bundled_hf_dir, 4, 64)
    errors = {}
    for name, method in (("rtn", RTNMethod), ("gptq", GPTQMethod)):
        runner = BlockRunner(src, "cpu", max_blocks=1)
        drive(runner.capture(ids))
        settings = WeightOnlySettings(Method(name), 4, 64, False)
        got = {}
        drive(runner.run(method(settings), lambda i, b, layers, info: got.update(layers)))
        errors[name] = {n: r.rel_error for n, r in got.items()}
    for layer in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj"):
        assert errors["gptq"][layer] < errors["rtn"][layer]
    assert sum(errors["gptq"].values()) < 0.8 * sum(errors["rtn"].values())


def test_bad_settings_are_refused_before_any_work(tiny_llama_dir, tmp_path):
    with pytest.raises(InvalidInput, match="2, 3, 4 or 8 bits"):
        QuantizeConfig(source=tiny_llama_dir, out=tmp_path / "x", method="gptq", bits=5)
    with pytest.raises(InvalidInput, match="awq supports 4 bits"):
        QuantizeConfig(source=tiny_llama_dir, out=tmp_path / "x", method="awq", bits=3)
    cfg = QuantizeConfig(source=tiny_llama_dir, out=tmp_path / "out", method="gptq", group_size=128)
    with pytest.raises(InvalidInput, match="group size 128 does not divide its input width 64"):
        next(quantize_weight_only(cfg, random_windows(2, 16)))
    with pytest.raises(InvalidInput, match="needs calibration windows"):
        next(quantize_weight_only(QuantizeConfig(source=tiny_llama_dir, out=tmp_path / "out", method="gptq"), None))
    assert list(tmp_path.iterdir()) == []


def test_cancel_mid_run_leaves_no_output_folder(tiny_llama_dir, tmp_path):
    out = tmp_path / "cancelled"
    cancel = CancelToken()
    job = quantize_weight_only(QuantizeConfig(source=tiny_llama_dir, out=out, method="gptq"), random_windows(4, 16), cancel)
    with pytest.raises(Cancelled):
        for event in job:
            if isinstance(event, Progress) and event.stage == "gptq" and event.step == 3:
                cancel.cancel()
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(PARTIAL_PREFIX)]


def test_cli_entry_point(tiny_llama_dir, tmp_path, capsys):
    from bitsmith.engine.cli import run

    assert run(["quantize", str(tiny_llama_dir), "--method", "gptq", "--out", str(tmp_path / "cli"),
                "--samples", "4", "--seq-len", "16", "--device", "cpu", "--quiet"]) == 0
    assert (tmp_path / "cli" / "model.safetensors").is_file()
    assert "cli" in capsys.readouterr().out


def test_rtn_needs_no_calibration(tiny_llama_dir, tmp_path):
    result = quantize_tiny(tiny_llama_dir, tmp_path / "rtn8", "rtn", None, bits=8, sym=True)
    assert result.summary == {} and result.block_errors == [None, None]
    model, _ = load_quantized_model(result.out, "cpu")
    assert model(input_ids=random_windows(1, 6)).logits.isfinite().all()


@pytest.mark.skipif(not (SHARED_DATA / "wikitext-2-raw-test.txt").is_file(),
                    reason="needs ../shared/data's WikiText-2 text: 9,216 tokens, the packaged texts hold ~3,000")
def test_the_range_search_lowers_gptqs_kl_on_held_out_text(bundled_hf_dir):
    """The grid search before GPTQ's pass (each group's two range ends shrunk independently, by
    H-weighted rounding error) is not GPTQ's own objective, and on synthetic layers (heavy-tailed
    weights, strongly correlated inputs) it does not pay: 1.11x the error of min/max grids. On real
    layers it does, given calibration enough for the Hessians: the bundled model with its first
    four blocks quantized (act-order, static groups, 4-bit g64) on 32 x 256 tokens, scored by mean
    KL against the float model on the next 4 x 256 tokens, is closer with the search (0.0206
    against 0.0251 measured with the search to 0.8; these 8,192 tokens now get the search to 0.65,
    WeightOnlySettings.gptq_max_shrink, and the test passed with it too). With 8 x 128 tokens
    (rank-deficient Hessians for the 1,536-wide down_proj) it was not; the whole model at 32 x 256:
    0.200 with min/max grids, 0.160 with one shrink factor, 0.151 with both ends searched to 0.8,
    0.149 to 0.65 (bench/QUALITY.md)."""
    from transformers import AutoModelForCausalLM

    src = open_hf_folder(bundled_hf_dir)
    ids = text_windows(bundled_hf_dir, 36, 256)
    calibration, held_out = ids[:32], ids[32:]
    model = AutoModelForCausalLM.from_pretrained(str(bundled_hf_dir), dtype=torch.float32).eval()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.inference_mode():
        reference = torch.log_softmax(model(input_ids=held_out).logits, -1)
    kl = {}
    for grid in (0, 20):
        runner = BlockRunner(src, "cpu", max_blocks=4)
        drive(runner.capture(calibration))
        settings = WeightOnlySettings(Method.GPTQ, 4, 64, False, desc_act=True, mse_grid=grid)
        state = model.state_dict()

        def sink(i, block, _layers, _info):
            for k, v in block.state_dict().items():
                state[f"{runner.layers_prefix}{i}.{k}"].copy_(v)

        drive(runner.run(GPTQMethod(settings), sink))
        with torch.inference_mode():
            q = torch.log_softmax(model(input_ids=held_out).logits, -1)
        kl[grid] = float((reference.exp() * (reference - q)).sum(-1).mean())
        model.load_state_dict(original)
    # 18 % apart when measured; float rounding across CPUs and thread counts moves each far less.
    assert kl[20] < 0.97 * kl[0], kl


def test_gptq_clips_deeper_only_where_calibration_covers_the_inputs(tiny_llama_dir):
    """The grid search weighs columns by H's diagonal, which few tokens per input channel estimate
    badly, so GPTQ searches to 0.65 per range end only where a layer saw at least 4 tokens per input
    channel (tiny Llama, 8 x 32 = 256 tokens: the 64-wide inputs qualify, the 128-wide down_proj
    does not), and AWQ's rounding keeps its own search whatever the tokens."""
    src = open_hf_folder(tiny_llama_dir)
    settings = WeightOnlySettings(Method.GPTQ, 4, 32, False, desc_act=True)
    awq_rounding = GPTQMethod(settings).kernel_settings._replace(mse_max_shrink=0.19, mse_independent_ends=False)
    for method, expected in ((GPTQMethod(settings), {64: 0.35, 128: 0.2}),
                             (GPTQMethod(settings, kernel_settings=awq_rounding), {64: 0.19, 128: 0.19})):
        runner = BlockRunner(src, "cpu", max_blocks=1)
        drive(runner.capture(random_windows(8, 32)))
        seen: dict[int, set[float]] = {}
        kernel = method.kernel

        def spy(weight, H, ks, kernel=kernel, seen=seen):
            seen.setdefault(weight.shape[1], set()).add(ks.mse_max_shrink)
            return kernel(weight, H, ks)

        method.kernel = spy
        drive(runner.run(method, lambda *_: None))
        assert seen == {n: {shrink} for n, shrink in expected.items()}
