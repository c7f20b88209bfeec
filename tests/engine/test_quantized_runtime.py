"""QuantLinear reads both layouts back to exactly the weights the quantizers produced; the loader
builds a runnable model (tied embeddings, biases) and the config keys are the ones transformers reads."""

from __future__ import annotations

import json

import pytest
import torch

from bitsmith.engine.formats import awq_layout, gptq_layout
from bitsmith.engine.runtime.quant_linear import QuantLinear
from bitsmith.engine.runtime.quantized_hf import kernel_summary, load_quantized_model
from bitsmith.kernels.gptq_blocked import gptq_quantize
from bitsmith.kernels.gptq_common import GPTQSettings
from bitsmith.kernels.woq_quantize import dequantize, rtn_quantize

from .weight_only_helpers import quantize_tiny, random_windows, one_torch_thread  # noqa: F401


def _layer(layout, gq, bias, out, inp, group):
    tensors = (gptq_layout if layout == "gptq" else awq_layout).layer_tensors("m", gq, bias)
    layer = QuantLinear(inp, out, bias is not None, layout, gq.bits, group)
    layer.load_state_dict({k[2:]: v for k, v in tensors.items()}, strict=True)
    return layer


@pytest.mark.parametrize("bits,group,act", [(2, 32, False), (3, 64, True), (4, 64, True), (8, -1, False)])
def test_gptq_layout_reads_back_the_quantizer_weights_exactly(bits, group, act):
    g = torch.Generator().manual_seed(bits)
    x = torch.randn(512, 128, generator=g)
    W = torch.randn(64, 128, generator=g)
    out = gptq_quantize(W, x.t() @ x, GPTQSettings(bits=bits, group_size=group, act_order=act, static_groups=False))
    bias = torch.randn(64, generator=g).half()
    layer = _layer("gptq", out.quant, bias, 64, 128, group)
    assert torch.equal(layer.dequantized_weight(), out.dequantized)
    y = layer(x[:5])
    assert torch.allclose(y, x[:5] @ out.dequantized.t() + bias.float(), atol=1e-4)


def test_awq_layout_reads_back_exactly():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(48, 128, generator=g)
    gq = rtn_quantize(W, 4, 32, sym=False)  # zero points may be 0 here: AWQ stores them as they are
    layer = _layer("awq", gq, None, 48, 128, 32)
    assert torch.equal(layer.dequantized_weight(), dequantize(gq))


def test_reference_kernel_can_be_forced_and_matches_the_cached_one():
    gq = rtn_quantize(torch.randn(32, 64), 4, 32, sym=True, min_zero=1)
    fast = _layer("gptq", gq, None, 32, 64, 32)
    slow = _layer("gptq", gq, None, 32, 64, 32)
    slow.forced_kernel = "torch-dequant"
    x = torch.randn(2, 64)
    assert torch.allclose(fast(x), slow(x), atol=1e-5)
    assert fast.kernel_name == "torch-cached" and slow.kernel_name == "torch-dequant"


@pytest.mark.parametrize("variant,method", [("llama-tied", "gptq"), ("qwen2", "awq")])
def test_loader_handles_tied_embeddings_and_biases(tiny_llama_dir, tmp_path, variant, method):
    from transformers import AutoModelForCausalLM

    from tests.fixtures.tiny_variants import build_variant

    src = build_variant(tiny_llama_dir, tmp_path / variant, variant)
    result = quantize_tiny(src, tmp_path / "out", method, random_windows(4, 32), bits=4)
    model, tokenizer = load_quantized_model(result.out, "cpu")
    ids = random_windows(1, 10, seed=7)
    with torch.no_grad():
        got = model(input_ids=ids).logits
        ref = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32)(input_ids=ids).logits
    assert float((got - ref).norm() / ref.norm()) < 0.3
    assert kernel_summary(model) == {"torch-cached": 14}
    if variant == "llama-tied":
        assert model.lm_head.weight is model.get_input_embeddings().weight


def test_configs_are_the_ones_transformers_reads(tiny_llama_dir, tmp_path):
    from transformers import AwqConfig, GPTQConfig

    for method, cls in (("gptq", GPTQConfig), ("awq", AwqConfig)):
        result = quantize_tiny(tiny_llama_dir, tmp_path / method, method, random_windows(2, 16))
        qcfg = json.loads((result.out / "config.json").read_text())["quantization_config"]
        parsed = cls.from_dict(qcfg)
        assert parsed.bits == 4 and parsed.group_size == 64 and parsed.quant_method.value == method
        assert getattr(parsed, "format", "gptq") in ("gptq", "gemm")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_quantized_model_runs_on_cuda(tiny_llama_dir, tmp_path):
    result = quantize_tiny(tiny_llama_dir, tmp_path / "out", "gptq", random_windows(2, 16))
    model, _ = load_quantized_model(result.out, "cuda")
    model(input_ids=random_windows(1, 8).cuda())
    assert set(kernel_summary(model)) <= {"triton-fused", "torch-dequant"}
