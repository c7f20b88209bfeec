"""The GGUF entry points the writer and the evaluator call; they pick a kernel through the registry."""

from __future__ import annotations

from enum import Enum

import numpy as np
import torch
from gguf import GGMLQuantizationType as QT

from .ggml_types import BLOCK_TYPES, parse_qtype, type_size
from .registry import select


def gguf_quantize(tensor: torch.Tensor, qtype: QT | str | Enum, device: str = "cpu") -> np.ndarray:
    """Quantize a float tensor to a GGML type, byte for byte as `gguf.quants.quantize` does.

    tensor: any shape of at least one dimension, float32/float16/bfloat16 or float64; for block
        types the last dimension must be a multiple of 32. It is read, never modified, and may
        live on any device. Values are taken as float32 first, as gguf does for every block
        type (for F16 from float64 gguf rounds once, we twice: rare last-bit differences).
    qtype: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0 or Q5_1, as a GGMLQuantizationType, a name
        ("Q8_0", "q8_0") or a str Enum such as engine.config.GGUFType.
    device: "cpu" or "cuda"; when torch cannot use CUDA the work runs on the CPU (same bytes).

    Returns what gguf.quants.quantize returns, ready for
    `GGUFWriter.add_tensor(name, array, raw_dtype=qtype)`: float32 / float16 arrays of the
    tensor's shape for F32 / F16, and for BF16 and the block types a uint8 array of shape
    (*tensor.shape[:-1], bytes per row).
    Raises ValueError for a bad shape and KernelUnavailable for an unsupported type or dtype.
    """
    qtype = parse_qtype(qtype)
    if isinstance(tensor, np.ndarray):
        tensor = torch.from_numpy(tensor)
    shape = tuple(tensor.shape)
    if not shape:
        raise ValueError("a GGUF tensor needs at least one dimension")
    if qtype in BLOCK_TYPES and shape[-1] % type_size(qtype)[0]:
        raise ValueError(f"{qtype.name} needs rows that are a multiple of 32 values; this one has {shape[-1]}")
    choice = select("gguf_quantize", device, qtype=qtype, dtype=tensor.dtype)
    rows = tensor.detach().reshape(-1, shape[-1])
    out = choice.impl(rows, qtype, choice.device).cpu().numpy()
    return out.reshape(*shape[:-1], out.shape[-1])


def gguf_dequantize(data: np.ndarray | torch.Tensor, qtype: QT | str | Enum, device: str = "cpu") -> torch.Tensor:
    """Back to float32, value for value as `gguf.quants.dequantize` does.

    data: what gguf_quantize returned (or a GGUFReader tensor's data): bytes of shape
        (..., bytes per row) for BF16 and the block types (any integer dtype is read as its
        bytes), float16 / float32 values for F16 / F32.
    Returns a float32 tensor of shape (..., values per row) on `device` (or the CPU when torch
    cannot use the device).
    """
    qtype = parse_qtype(qtype)
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data if data.flags.writeable else data.copy())
    data = data.detach()
    want = {QT.F32: torch.float32, QT.F16: torch.float16}.get(qtype, torch.uint8)
    if data.dtype != want:
        data = data.contiguous().view(want)  # reinterpret the stored bytes
    shape = tuple(data.shape)
    block, size = (1, 1) if qtype in (QT.F32, QT.F16) else type_size(qtype)
    if not shape or shape[-1] % size:
        raise ValueError(f"{qtype.name} rows must be whole blocks of {size} bytes; got shape {shape}")
    choice = select("gguf_dequantize", device, qtype=qtype)
    values = choice.impl(data.reshape(-1, shape[-1]), qtype, choice.device)
    return values.reshape(*shape[:-1], shape[-1] // size * block)
