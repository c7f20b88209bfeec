"""Which implementation of an op runs here, and why the others do not.

Every implementation declares what it supports (devices, dtypes, quant types, ...) and a cheap
`available()` check; its code is named by a "module:function" string and imported only when it is
chosen, so a missing extension or GPU becomes a skip reason instead of an import-time crash.
`select()` walks the candidates by priority and always ends at the op's reference implementation;
a device torch cannot use (CUDA on a CPU-only machine) sends the search to the CPU, with the reason.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Collection, Mapping


def always_available() -> tuple[bool, str]:
    return True, "no requirements"


@dataclass(frozen=True)
class Kernel:
    op: str
    name: str
    target: str  # "package.module:function", imported on selection
    devices: tuple[str, ...] = ("cpu",)
    priority: int = 0  # higher is tried first; the reference is the fallback whatever its priority
    # need -> allowed values, e.g. {"qtype": {"Q8_0"}, "dtype": {torch.float32}}; a need the
    # kernel does not mention is not constrained.
    supports: Mapping[str, Collection[Any]] = field(default_factory=dict)
    available: Callable[[], tuple[bool, str]] = always_available
    reference: bool = False


@dataclass(frozen=True)
class Choice:
    impl: Callable[..., Any]
    name: str
    device: str  # where to run it: the requested device, or "cpu" when torch cannot use that one
    skipped: tuple[tuple[str, str], ...] = ()  # (kernel name, reason), in the order tried


class KernelUnavailable(LookupError):
    """Not even the reference can do what was asked (e.g. an unsupported quant type)."""


def device_status(device: str) -> tuple[bool, str]:
    """Whether torch can run on `device` ("cpu", "cuda", "cuda:1"), with the reason."""
    kind = device.split(":", 1)[0]
    if kind == "cpu":
        return True, "the CPU is always there"
    if kind != "cuda":
        raise ValueError(f"unknown device {device!r}; expected 'cpu' or 'cuda'")
    import torch

    if torch.version.cuda is None:
        return False, f"torch sees no CUDA GPU: this torch ({torch.__version__}) is a CPU-only build"
    if not torch.cuda.is_available():
        return False, f"torch sees no CUDA GPU (built for CUDA {torch.version.cuda}; no driver or device)"
    return True, f"torch sees {torch.cuda.device_count()} CUDA GPU(s)"


class Registry:
    def __init__(self) -> None:
        self._kernels: list[Kernel] = []

    def register(self, kernel: Kernel) -> Kernel:
        if any(k.op == kernel.op and k.name == kernel.name for k in self._kernels):
            raise ValueError(f"kernel {kernel.name!r} is already registered for {kernel.op!r}")
        if kernel.reference and any(k.op == kernel.op and k.reference for k in self._kernels):
            raise ValueError(f"{kernel.op!r} already has a reference implementation")
        self._kernels.append(kernel)
        return kernel

    def candidates(self, op: str) -> list[Kernel]:
        """The op's kernels in the order select() tries them: by priority, reference last."""
        return sorted((k for k in self._kernels if k.op == op), key=lambda k: (k.reference, -k.priority))

    def select(self, op: str, device: str = "cpu", prefer: str | None = None, **needs: Any) -> Choice:
        """The best kernel for `op` on `device` that supports `needs`, or the reference.

        `prefer` forces one by name (benchmarks, tests, a user override): "fast" (or None) takes
        the best available, "reference" the ground truth, anything else a kernel's own name; the
        forced kernel must be able to run here, else KernelUnavailable says why."""
        if prefer not in (None, "fast"):
            return self._forced(op, device, prefer, needs)
        kernels = self.candidates(op)
        if not kernels or not kernels[-1].reference:
            raise KernelUnavailable(f"no reference implementation is registered for {op!r}")
        device_ok, device_why = device_status(device)
        kind = device.split(":", 1)[0]
        if not device_ok:  # the kernels compute the same results on the CPU: say why, go there
            passed_over = tuple((f"{k.name} on {kind}", device_why) for k in kernels if kind in k.devices)
            choice = self.select(op, "cpu", **needs)
            return replace(choice, skipped=passed_over + choice.skipped)
        skipped: list[tuple[str, str]] = []
        for kernel in kernels:
            why = _why_not(kernel, kind, needs)
            if why is None:
                impl, why = _load(kernel.target)
                if impl is not None:
                    return Choice(impl, kernel.name, device, tuple(skipped))
            skipped.append((kernel.name, why))
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped)
        raise KernelUnavailable(f"no kernel can run {op!r} on {device}: {reasons}")

    def _forced(self, op: str, device: str, name: str, needs: Mapping[str, Any]) -> Choice:
        best = self.select(op, device, **needs)
        kernels = self.candidates(op)
        if name == "reference":
            name = kernels[-1].name
        if name == best.name:
            return best
        for kernel in kernels:
            if kernel.name == name:
                why = _why_not(kernel, best.device.split(":", 1)[0], needs)
                impl, load_why = (None, why) if why else _load(kernel.target)
                if impl is None:
                    raise KernelUnavailable(f"{op} kernel {name!r} cannot run on {best.device}: {load_why}")
                return Choice(impl, name, best.device, ((best.name, f"{name} was asked for"),))
        known = ", ".join(k.name for k in kernels)
        raise KernelUnavailable(f"no {op} kernel named {name!r}; known: {known}, or 'fast'/'reference'")


def _why_not(kernel: Kernel, kind: str, needs: Mapping[str, Any]) -> str | None:
    if kind not in kernel.devices:
        return f"does not run on {kind}"
    if (why := _unsupported(kernel, needs)) is not None:
        return why
    ok, why = kernel.available()
    return None if ok else why


def _unsupported(kernel: Kernel, needs: Mapping[str, Any]) -> str | None:
    for key, value in needs.items():
        allowed = kernel.supports.get(key)
        if allowed is not None and value not in allowed:
            return f"{key}={getattr(value, 'name', value)} is not supported"  # Q4_K, not 12
    return None


def _load(target: str) -> tuple[Callable[..., Any] | None, str]:
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr), "loaded"
    except (ImportError, AttributeError) as exc:  # a broken optional extension is a skip, not a crash
        return None, f"could not import {target}: {exc}"


REGISTRY = Registry()
register = REGISTRY.register
select = REGISTRY.select
