"""The GPTQ v1 checkpoint layout (AutoGPTQ / GPTQModel `checkpoint_format: "gptq"`, as transformers
and optimum load it), for one quantized linear layer `<name>`:

  <name>.qweight  int32 [in * bits / 32, out]     codes packed down the input dim (bit stream)
  <name>.qzeros   int32 [groups, out * bits / 32] zero points MINUS ONE, packed along the output dim
  <name>.scales   float16 [groups, out]
  <name>.g_idx    int32 [in]                      group of each input column
  <name>.bias     float16 [out]                   when the layer has one

w[o, i] = scales[g_idx[i], o] * (q[i, o] - (qzeros_unpacked[g_idx[i], o] + 1)). See docs/formats.md.

Layers may differ in bits and group size (a size-budget GPTQ): `quantization_config` holds the
setting most weights use, and GPTQModel's per-module "dynamic" map (also read by vLLM) holds the
others: {"+:<regex>": {"bits": b, "group_size": g}}, the regex matched (re.match) against the module
name, "+:" (or no prefix) overriding the base, "-:" leaving a module unquantized; the first match wins.
"""

from __future__ import annotations

import re
from typing import Callable

import torch

from bitsmith.kernels.woq_pack import pack_cols, pack_rows
from bitsmith.kernels.woq_quantize import GroupQuant

from .. import __version__
from ..config import WeightOnlySettings
from .packed_sizes import tensor_bytes

SUFFIXES = ("qweight", "qzeros", "scales", "g_idx")


def layer_tensors(name: str, gq: GroupQuant, bias: torch.Tensor | None) -> dict[str, torch.Tensor]:
    mask = 2**gq.bits - 1
    tensors = {
        f"{name}.qweight": pack_rows(gq.q.t(), gq.bits),
        # v1 stores zero - 1 (our asymmetric zeros are >= 1, so this never goes negative).
        f"{name}.qzeros": pack_cols((gq.zeros.long() - 1) & mask, gq.bits),
        f"{name}.scales": gq.scales.to(torch.float16),
        f"{name}.g_idx": gq.g_idx.to(torch.int32),
    }
    if bias is not None:
        tensors[f"{name}.bias"] = bias.to(torch.float16)
    return tensors


def packed_shapes(out: int, inp: int, groups: int, bits: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Shape and dtype of each stored tensor of one layer (bias aside): the one statement of this
    layout's sizes, read by the shard planner and by the runtime's QuantLinear buffers."""
    return {"qweight": ((inp * bits // 32, out), torch.int32), "qzeros": ((groups, out * bits // 32), torch.int32),
            "scales": ((groups, out), torch.float16), "g_idx": ((inp,), torch.int32)}


def layer_sizes(name: str, out: int, inp: int, groups: int, bits: int, has_bias: bool) -> list[tuple[str, int]]:
    """Bytes of each tensor layer_tensors() will produce, for planning shards before quantizing."""
    return tensor_bytes(name, packed_shapes(out, inp, groups, bits), out, has_bias)


def layer_bytes(out: int, inp: int, bits: int, group_size: int, has_bias: bool) -> int:
    """Bytes of one layer as written: codes, zeros, scales, g_idx (and bias)."""
    groups = 1 if group_size == -1 else inp // group_size
    return sum(n for _, n in layer_sizes("", out, inp, groups, bits, has_bias))


def dynamic_config(s: WeightOnlySettings, checkpoint_name: Callable[[str], str] | None = None) -> dict:
    """GPTQModel's "dynamic" map for the layers whose setting differs from the base (module name
    -> checkpoint name through `checkpoint_name`, which takes and returns a weight's name)."""
    name = checkpoint_name or (lambda n: n)
    out = {}
    for layer, bits, group in sorted(s.overrides):
        if (bits, group) != (s.bits, s.group_size):
            out[f"+:^{re.escape(name(layer + '.weight')[:-len('.weight')])}$"] = {"bits": bits, "group_size": group}
    return out


def module_setting(qcfg: dict, module: str) -> tuple[int, int] | None:
    """(bits, group size) of `module` under a quantization_config with an optional "dynamic" map;
    None where a "-:" pattern leaves the module unquantized."""
    bits, group = int(qcfg["bits"]), int(qcfg["group_size"])
    for pattern, override in (qcfg.get("dynamic") or {}).items():
        if pattern.startswith("-:"):
            if re.match(pattern[2:], module):
                return None
        elif re.match(pattern.removeprefix("+:"), module):
            return int(override.get("bits", bits)), int(override.get("group_size", group))
    return bits, group


def quantization_config(s: WeightOnlySettings, quantizer: str, checkpoint_name: Callable[[str], str] | None = None) -> dict:
    """config.json `quantization_config`, with the keys transformers' GPTQConfig reads, and the
    per-module "dynamic" map when layers differ."""
    config = {
        "quant_method": "gptq",
        "bits": s.bits,
        "group_size": s.group_size,
        "desc_act": s.desc_act,
        "act_group_aware": False,  # GPTQModel's GAR ordering: not used here
        "sym": s.sym,
        "static_groups": bool(s.desc_act and s.static_groups),
        "true_sequential": s.true_sequential,
        "damp_percent": s.damp,
        "checkpoint_format": "gptq",
        "format": "gptq",
        "pack_dtype": "int32",
        "lm_head": False,
        "meta": {"quantizer": [f"bitsmith:{__version__}"], "method": quantizer},
    }
    dynamic = dynamic_config(s, checkpoint_name)
    if dynamic:
        config["dynamic"] = dynamic
    return config
