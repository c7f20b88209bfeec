"""y = x @ dequant(W) + b for packed GPTQ/AWQ weights, in plain torch.

- `linear_reference`: unpacks and dequantizes on every call, then one matmul. Holds nothing beyond
  the packed weight, so memory stays at the quantized size; the ground truth for the other paths.
- `linear_cached`: dequantizes once per (dtype, device) into the weight's cache slot and reuses it.
  On the CPU unpacking costs more than the matmul itself at chat-sized inputs, so this is the CPU
  fast path; it trades memory (a full-width copy of the matrix) for speed, which is why it is not
  used on CUDA, where the GPU's memory is the scarce resource (see woq_triton for the fused path).
"""

from __future__ import annotations

import torch

from .woq_dequant import PackedWeight


def _apply(x: torch.Tensor, w_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    y = torch.matmul(x, w_t)
    return y + bias.to(y.dtype) if bias is not None else y


def linear_reference(x: torch.Tensor, weight: PackedWeight, bias: torch.Tensor | None = None) -> torch.Tensor:
    return _apply(x, weight.dequantize(x.dtype), bias)


def linear_cached(x: torch.Tensor, weight: PackedWeight, bias: torch.Tensor | None = None) -> torch.Tensor:
    key = (x.dtype, x.device)
    w_t = weight.cache.get(key)
    if w_t is None:
        w_t = weight.dequantize(x.dtype).contiguous()
        weight.cache[key] = w_t
    return _apply(x, w_t, bias)
