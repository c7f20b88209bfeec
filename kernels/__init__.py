"""Bitsmith kernels: tensors in, tensors out; no models, no Qt.

Public API:
  gguf_quantize(tensor, qtype, device="cpu") -> numpy array for GGUFWriter.add_tensor
  gguf_dequantize(data, qtype, device="cpu") -> float32 torch tensor
  select(op, device="cpu", **needs) -> Choice(impl, name, device, skipped)
"""

from . import catalog as _catalog  # noqa: F401  (registers the shipped kernels)
from .ggml_types import SUPPORTED as GGUF_KERNEL_TYPES
from .gguf_ops import gguf_dequantize, gguf_quantize
from .registry import Choice, Kernel, KernelUnavailable, device_status, register, select

__all__ = ["gguf_quantize", "gguf_dequantize", "GGUF_KERNEL_TYPES", "select", "register",
           "Choice", "Kernel", "KernelUnavailable", "device_status"]
