"""The importance matrix: its statistics, its GGUF names, what reaches llama.cpp, and its file."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

import json

from bitsmith.engine.config import Method, QuantizeConfig
from bitsmith.engine.formats.hf_folder import open_hf_folder
from bitsmith.engine.quant.gguf.job import quantize_gguf as quantize
from bitsmith.engine.quant.gguf.imatrix import compute_imatrix, linear_gguf_names
from bitsmith.engine.quant.gguf.imatrix_file import imatrix_path_for, load_imatrix, save_imatrix
from tests.engine.gguf_export_helpers import export, generates, hf_tokenizer


def _drain(gen):
    """Run a generator job to its return value."""
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def _captured_imatrix(params_ref) -> dict[str, np.ndarray]:
    """Walk params.imatrix the way llama.cpp does: until the entry whose name is NULL."""
    params = params_ref._obj
    out, i = {}, 0
    while params.imatrix and params.imatrix[i].name is not None:
        entry = params.imatrix[i]
        out[entry.name.decode()] = np.ctypeslib.as_array(entry.data, shape=(entry.size,)).copy()
        i += 1
    return out


def test_every_matrix_reaches_llama_quantize_with_its_imatrix(tiny_llama_dir, tmp_path, monkeypatch):
    import llama_cpp

    real = llama_cpp.llama_model_quantize
    seen = {}

    def spy(fname_inp, fname_out, params):
        seen.update(_captured_imatrix(params))
        return real(fname_inp, fname_out, params)

    monkeypatch.setattr(llama_cpp, "llama_model_quantize", spy)
    result = export(tiny_llama_dir, tmp_path / "m.gguf", "Q4_K_M")
    shapes = {t.name: [int(d) for d in t.shape] for t in gguf.GGUFReader(result.out).tensors}
    matrices = {n for n, s in shapes.items() if len(s) == 2 and n != "token_embd.weight"}
    assert set(seen) == matrices  # token embeddings are looked up, never multiplied: no entry
    for name, values in seen.items():
        assert values.shape == (shapes[name][0],), name  # one value per input channel (ne[0])
        assert np.all(np.isfinite(values)) and np.all(values > 0), name
    # the q/k/v projections read the same normalized input, so their statistics are identical
    assert np.array_equal(seen["blk.0.attn_q.weight"], seen["blk.0.attn_k.weight"])
    # and the file beside the output holds the same means
    saved = load_imatrix(result.imatrix).means()
    assert set(saved) == set(seen)
    assert np.allclose(saved["blk.1.ffn_down.weight"], seen["blk.1.ffn_down.weight"], rtol=1e-6)


def test_imatrix_changes_the_quantized_weights(tiny_llama_dir, tmp_path):
    on = export(tiny_llama_dir, tmp_path / "on.gguf", "Q3_K_M", imatrix=True)
    off = export(tiny_llama_dir, tmp_path / "off.gguf", "Q3_K_M", imatrix=False)
    generates(on.out)
    generates(off.out)
    data = [{t.name: bytes(t.data.tobytes()) for t in gguf.GGUFReader(r.out).tensors} for r in (on, off)]
    differing = [n for n in data[0] if data[0][n] != data[1][n]]
    assert "blk.0.ffn_up.weight" in differing and "blk.0.attn_norm.weight" not in differing
    assert gguf.GGUFReader(on.out).get_field("quantize.imatrix.entries_count").contents() == 15
    assert gguf.GGUFReader(off.out).get_field("quantize.imatrix.entries_count") is None


def test_legacy_type_with_requested_imatrix_goes_through_llama_cpp(tiny_llama_dir, tmp_path):
    import json

    result = export(tiny_llama_dir, tmp_path / "m.gguf", "Q4_0", imatrix=True)
    card = json.loads(result.report.read_text())
    assert card["quantizer"].startswith("llama.cpp") and card["imatrix"]["used"] is True
    assert result.tensor_types["blk.0.attn_q.weight"] == "Q4_0"
    generates(result.out)
    plain = export(tiny_llama_dir, tmp_path / "plain.gguf", "Q4_0")  # the default: our kernels, no imatrix
    assert plain.imatrix is None and json.loads(plain.report.read_text())["quantizer"] == "bitsmith kernels"


def test_statistics_are_mean_squares_of_each_layers_input(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    src = open_hf_folder(tiny_llama_dir)
    tok = hf_tokenizer(tiny_llama_dir)
    windows = [tok.encode("The quick brown fox jumps over the lazy dog.", add_special_tokens=False)] * 2
    stats = _drain(compute_imatrix(src, windows, "test", tied=False))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32).eval()
    with torch.inference_mode():
        x = model.model.layers[0].input_layernorm(model.model.embed_tokens(torch.tensor([windows[0]])))[0]
    expected = (x.double() ** 2).mean(0).numpy()
    assert stats.counts["blk.0.attn_q.weight"] == 2 * len(windows[0]) and stats.n_chunks == 2
    assert np.allclose(stats.means()["blk.0.attn_q.weight"], expected, rtol=1e-5)


def test_hf_module_names_map_to_gguf_weight_names(tiny_llama_dir, bundled_hf_dir):
    modules = ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.o_proj", "model.layers.0.mlp.gate_proj",
               "model.layers.1.mlp.down_proj", "model.layers.0.mlp.up_proj", "lm_head"]
    untied = linear_gguf_names(modules, open_hf_folder(tiny_llama_dir), 2, tied=False)
    assert untied == {
        "model.layers.0.self_attn.q_proj": "blk.0.attn_q.weight", "model.layers.1.self_attn.o_proj": "blk.1.attn_output.weight",
        "model.layers.0.mlp.gate_proj": "blk.0.ffn_gate.weight", "model.layers.1.mlp.down_proj": "blk.1.ffn_down.weight",
        "model.layers.0.mlp.up_proj": "blk.0.ffn_up.weight", "lm_head": "output.weight",
    }
    tied = linear_gguf_names(modules, open_hf_folder(bundled_hf_dir), 30, tied=True)
    assert "lm_head" not in tied and tied["model.layers.1.mlp.down_proj"] == "blk.1.ffn_down.weight"


def test_imatrix_file_uses_llama_cpp_gguf_layout(tiny_llama_dir, tmp_path):
    src = open_hf_folder(tiny_llama_dir)
    windows = [list(range(3, 40))]
    stats = _drain(compute_imatrix(src, windows, "unit-test.txt", tied=False))
    path = imatrix_path_for(tmp_path / "model.Q4_K_M.gguf")
    assert path.name == "model.Q4_K_M.imatrix.gguf"
    save_imatrix(stats, path)
    reader = gguf.GGUFReader(path)
    assert reader.get_field("general.type").contents() == "imatrix"
    assert reader.get_field("general.architecture") is None
    assert reader.get_field("imatrix.datasets").contents() == ["unit-test.txt"]
    assert reader.get_field("imatrix.chunk_count").contents() == 1
    tensors = {t.name: t for t in reader.tensors}
    in_sum2 = tensors["blk.0.attn_q.weight.in_sum2"]
    assert in_sum2.tensor_type == gguf.GGMLQuantizationType.F32 and list(in_sum2.shape) == [64, 1]
    assert float(tensors["blk.0.attn_q.weight.counts"].data[0, 0]) == len(windows[0])
    back = load_imatrix(path)
    assert back.counts == stats.counts and np.allclose(back.sums["blk.1.ffn_down.weight"], stats.sums["blk.1.ffn_down.weight"])


def test_the_importance_matrix_uses_the_one_calibration_system(tiny_llama_dir, tmp_path):
    """The imatrix is fed by build_calibration like GPTQ and AWQ: a user's file is cut into the same
    windows, named in the card, and a missing file fails in one line before any work."""
    from bitsmith.engine.calibration import build_calibration
    from bitsmith.engine.errors import InvalidInput
    from bitsmith.engine.events import run_job

    user = tmp_path / "calib.txt"
    user.write_text("The quick brown fox jumps over the lazy dog. " * 60, encoding="utf-8")
    out = tmp_path / "tiny-Q4_K_M.gguf"
    cfg = QuantizeConfig(tiny_llama_dir, out, Method.GGUF, gguf_type="Q4_K_M", imatrix=True,
                         calibration=str(user), samples=2, seq_len=32, seed=3)
    result = run_job(quantize(cfg))
    card = json.loads(result.report.read_text())
    expected = run_job(build_calibration(str(user), tiny_llama_dir, 2, 32, 3))
    assert card["imatrix"]["calibration_source"] == expected.source
    assert card["imatrix"]["calibration_sha256"] == expected.sha256
    assert card["imatrix"]["windows"] == 2 and card["imatrix"]["window_tokens"] == 32
    with pytest.raises(InvalidInput, match="missing.txt"):
        run_job(quantize(QuantizeConfig(tiny_llama_dir, tmp_path / "x.gguf", Method.GGUF, gguf_type="Q4_K_M",
                                        imatrix=True, calibration=str(tmp_path / "missing.txt"))))
    assert not (tmp_path / "x.gguf").exists()

