"""Which device a job runs on, and why."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .config import Device, parse_enum
from .errors import InvalidInput


@dataclass(frozen=True)
class DeviceChoice:
    device: Device
    reason: str
    name: str
    total_bytes: int | None = None
    free_bytes: int | None = None

    @property
    def torch_device(self) -> str:
        return "cuda" if self.device is Device.CUDA else "cpu"


def cuda_status() -> tuple[bool, str]:
    """Whether torch can use a CUDA GPU here, and a sentence saying why or why not."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False, "torch is not installed"
    if torch.version.cuda is None:
        return False, f"this torch ({torch.__version__}) is a CPU-only build"
    if not torch.cuda.is_available():
        return False, "torch was built with CUDA but sees no GPU (driver missing or no device)"
    return True, f"torch sees {torch.cuda.device_count()} CUDA GPU(s)"


def resolve_device(requested: Device | str = Device.AUTO) -> DeviceChoice:
    requested = parse_enum(Device, requested, "device")
    ok, why = cuda_status()
    if requested is Device.CUDA and not ok:
        raise InvalidInput(
            f"CUDA was requested but {why}",
            suggestion="choose the CPU, or install a CUDA build of torch (see the README)",
        )
    if requested is Device.CPU or not ok:
        reason = "CPU chosen by the user" if requested is Device.CPU else f"CPU: {why}"
        return DeviceChoice(Device.CPU, reason, _cpu_name())
    import torch

    free, total = torch.cuda.mem_get_info(0)
    name = torch.cuda.get_device_name(0)
    reason = "CUDA chosen by the user" if requested is Device.CUDA else f"CUDA: {why}"
    return DeviceChoice(Device.CUDA, reason, name, total, free)


def _cpuinfo_field(key: str) -> str | None:
    """The first `key` line of Linux's /proc/cpuinfo (None elsewhere or when absent)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_name() -> str:
    import platform

    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "CPU"


@functools.lru_cache(maxsize=1)
def cpu_has_amx() -> bool:
    """Whether the CPU advertises AMX tiles (Linux; elsewhere no such CPUs are in desktop use)."""
    return "amx_tile" in (_cpuinfo_field("flags") or "").split()
