"""The AWQ GEMM checkpoint layout (AutoAWQ `version: "gemm"`, as transformers loads it), for one
quantized linear layer `<name>` (4 bits, zero point on):

  <name>.qweight  int32 [in, out / 8]      codes packed along the OUTPUT dim, 8 a word, nibble i
                                           holding column 8c + (0, 2, 4, 6, 1, 3, 5, 7)[i]
  <name>.qzeros   int32 [groups, out / 8]  zero points as they are (no minus one), same packing
  <name>.scales   float16 [groups, out]
  <name>.bias     float16 [out]            when the layer has one

w[o, i] = scales[i // group_size, o] * (q[i, o] - z[i // group_size, o]). The AWQ scales themselves
are already folded into the preceding norm or linear layer. See docs/formats.md.
"""

from __future__ import annotations

import torch

from bitsmith.kernels.woq_pack import pack_awq
from bitsmith.kernels.woq_quantize import GroupQuant

from ..config import WeightOnlySettings
from .packed_sizes import tensor_bytes


def layer_tensors(name: str, gq: GroupQuant, bias: torch.Tensor | None) -> dict[str, torch.Tensor]:
    if gq.bits != 4:
        raise ValueError(f"the AWQ GEMM layout holds 4-bit codes, not {gq.bits}-bit")
    tensors = {
        f"{name}.qweight": pack_awq(gq.q.t()),
        f"{name}.qzeros": pack_awq(gq.zeros),
        f"{name}.scales": gq.scales.to(torch.float16),
    }
    if bias is not None:
        tensors[f"{name}.bias"] = bias.to(torch.float16)
    return tensors


def packed_shapes(out: int, inp: int, groups: int, bits: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Shape and dtype of each stored tensor of one layer (bias aside): the one statement of this
    layout's sizes, read by the shard planner and by the runtime's QuantLinear buffers. There is no
    g_idx: AWQ's groups are always consecutive input columns."""
    return {"qweight": ((inp, out // 8), torch.int32), "qzeros": ((groups, out // 8), torch.int32),
            "scales": ((groups, out), torch.float16)}


def layer_sizes(name: str, out: int, inp: int, groups: int, bits: int, has_bias: bool) -> list[tuple[str, int]]:
    return tensor_bytes(name, packed_shapes(out, inp, groups, bits), out, has_bias)


def quantization_config(s: WeightOnlySettings) -> dict:
    """config.json `quantization_config`, with the keys transformers' AwqConfig reads."""
    from .. import __version__

    return {
        "quant_method": "awq",
        "bits": s.bits,
        "group_size": s.group_size,
        "zero_point": True,
        "version": "gemm",
        "modules_to_not_convert": None,
        "meta": {"quantizer": [f"bitsmith:{__version__}"]},
    }
