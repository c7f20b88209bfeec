"""Bitsmith's own quantized linear layer: reads the GPTQ v1 and AWQ GEMM tensors as stored on disk
and multiplies through the kernel registry ("woq_linear"), on the CPU or CUDA.

Kernels, best first: the fused Triton kernel (CUDA, when triton imports), a cached dequantized
weight (CPU: unpacking costs more than the matmul at chat sizes, so it is done once), and the
reference, which unpacks and dequantizes on every call. The choice is made on the first forward on
a device, with the reasons the others were passed over (`kernel_report()`). A fast path that fails
or disagrees with the reference on its first call is dropped for the reference, with the reason.
"""

from __future__ import annotations

import torch
from torch import nn

from bitsmith.kernels.registry import select
from bitsmith.kernels.woq_dequant import PackedWeight
from bitsmith.kernels.woq_linear import linear_reference

from ..formats.packed_sizes import BIAS_DTYPE
from ..formats.quant_layouts import LAYOUTS

#: Fast paths are checked once against the reference to this relative tolerance.
SELF_CHECK_RTOL = 2e-2


class QuantLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool, layout: str, bits: int,
                 group_size: int, kernel: str | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.layout, self.bits, self.group_size = layout, bits, group_size
        self.forced_kernel = kernel  # "torch-dequant" etc.: skip selection (benchmarks, tests)
        groups = 1 if group_size == -1 else in_features // group_size
        if layout not in LAYOUTS:
            raise ValueError(f"unknown quantized layout {layout!r}")
        # The buffers are the checkpoint's tensors, shaped by the layout module that writes them.
        for suffix, (shape, dtype) in LAYOUTS[layout].packed_shapes(out_features, in_features, groups, bits).items():
            self.register_buffer(suffix, torch.empty(shape, dtype=dtype))
        if "g_idx" not in self._buffers:
            self.g_idx = None  # consecutive groups (AWQ): the kernels take None for "i // group_size"
        self.register_buffer("bias", torch.empty(out_features, dtype=BIAS_DTYPE) if bias else None)
        self._cache: dict = {}
        self._impl = None
        self._checked = False
        self.kernel_name: str | None = None
        self.kernel_skipped: tuple = ()

    def packed(self) -> PackedWeight:
        return PackedWeight(self.layout, self.bits, self.group_size, self.in_features, self.out_features,
                            self.qweight, self.qzeros, self.scales, self.g_idx, self._cache)

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[out, in], as nn.Linear holds it."""
        return self.packed().dequantize(dtype).t()

    def _select(self, device: torch.device) -> None:
        if self.forced_kernel == "torch-dequant":
            self._impl, self.kernel_name, self._checked = linear_reference, "torch-dequant", True
            return
        choice = select("woq_linear", device.type, kind=f"{self.layout}{self.bits}")
        self._impl, self.kernel_name, self.kernel_skipped = choice.impl, choice.name, choice.skipped
        self._checked = choice.name == "torch-dequant"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._impl is None:
            self._select(x.device)
        w = self.packed()
        if self._checked:
            return self._impl(x, w, self.bias)
        return self._first_call(x, w)

    def _first_call(self, x: torch.Tensor, w: PackedWeight) -> torch.Tensor:
        reference = linear_reference(x, w, self.bias)
        try:
            y = self._impl(x, w, self.bias)
            scale = reference.abs().max().clamp(min=1e-6)
            ok = bool(((y.float() - reference.float()).abs().max() / scale) <= SELF_CHECK_RTOL)
            why = "its first result disagreed with the reference"
        except Exception as exc:  # noqa: BLE001 - a broken fast path must not break chat
            ok, why = False, f"it failed: {type(exc).__name__}: {exc}"
        self._checked = True
        if not ok:
            self.kernel_skipped += ((self.kernel_name, why),)
            self._impl, self.kernel_name = linear_reference, "torch-dequant"
            self._cache.clear()
        return reference

    def _apply(self, fn, *args, **kwargs):
        # Moving or casting the buffers invalidates cached weights and the kernel choice.
        self._cache.clear()
        self._impl, self._checked = None, False
        return super()._apply(fn, *args, **kwargs)

    def kernel_report(self) -> str:
        skipped = "; ".join(f"{name}: {why}" for name, why in self.kernel_skipped)
        return f"{self.kernel_name or 'not chosen yet'}" + (f" (passed over: {skipped})" if skipped else "")

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, layout={self.layout}, "
                f"bits={self.bits}, group_size={self.group_size}")
