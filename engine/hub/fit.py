"""Will a model from the Hub fit this machine? From file sizes alone, before anything is
downloaded: weights as they will sit in memory, plus the KV cache and runtime allowance the
catalog's estimates use for local models."""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog.estimate import RUNTIME_OVERHEAD

#: Share of the weights allowed for the chat KV cache and scratch buffers when the model's shape is
#: not known yet (a 4096-token f16 cache is 5-15% of the weights of common 1-70B models).
KV_SHARE = 0.15
#: Memory the rest of the system keeps for itself: "fits" leaves this much of the RAM that is free now.
HEADROOM = 0.10


@dataclass(frozen=True)
class Fit:
    needed_bytes: int
    available_bytes: int
    total_bytes: int
    verdict: str  # "fits", "tight" (only if other programs give memory back), "too big"

    @property
    def label(self) -> str:
        return {"fits": "fits in memory", "tight": "tight: close other programs",
                "too big": "too big for this machine"}[self.verdict]


def memory_needed(weight_bytes: int, fmt: str, quantized: bool) -> int:
    """Bytes to chat with a model whose weight files sum to `weight_bytes`. An unquantized float16
    or bfloat16 checkpoint is loaded as float32 on the CPU (the transformers runtime), so it doubles."""
    in_memory = weight_bytes * (2 if fmt == "safetensors" and not quantized else 1)
    return int(in_memory * (1 + KV_SHARE)) + RUNTIME_OVERHEAD


def estimate_fit(weight_bytes: int, fmt: str, quantized: bool, available: int | None = None,
                 total: int | None = None) -> Fit:
    if available is None or total is None:
        from ..telemetry import system_memory

        available, total = system_memory()
    need = memory_needed(weight_bytes, fmt, quantized)
    verdict = "fits" if need <= available * (1 - HEADROOM) else "tight" if need <= total * (1 - HEADROOM) else "too big"
    return Fit(need, available, total, verdict)
