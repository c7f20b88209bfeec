"""Int8Linear: a Linear whose weight is Bitsmith INT8 (int8 [out, in] + float32 scale [out]).

Its state-dict keys are the file's (`weight`, `weight_scale`, `bias`), so a checkpoint loads into it
with `load_state_dict(assign=True)`. The matmul is a kernel picked once through the kernels
registry: the int8 x int8 path where torch._int_mm runs, else dequantize-and-matmul.
"""

from __future__ import annotations

import torch
from torch import nn

from bitsmith.kernels.int8_ops import select_int8_linear


class Int8Linear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        # Buffers, not parameters: int8 weights cannot take gradients, and nothing should train them.
        self.register_buffer("weight", torch.empty(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("weight_scale", torch.empty(out_features, dtype=torch.float32, device=device))
        self.bias = nn.Parameter(torch.empty(out_features, dtype=dtype, device=device),
                                 requires_grad=False) if bias else None
        self._impl = None
        self.kernel_name = ""

    @classmethod
    def like(cls, linear: nn.Linear, dtype: torch.dtype) -> "Int8Linear":
        """An empty (meta) Int8Linear with the shape of `linear`, to be filled by load_state_dict."""
        return cls(linear.in_features, linear.out_features, linear.bias is not None, device="meta", dtype=dtype)

    def use_kernel(self, impl, name: str) -> None:
        self._impl, self.kernel_name = impl, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._impl is None:  # built by hand rather than by the loader: pick now
            choice = select_int8_linear(x.device.type, x.dtype)
            self.use_kernel(choice.impl, choice.name)
        return self._impl(x, self.weight, self.weight_scale, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, kernel={self.kernel_name or 'unselected'}")
