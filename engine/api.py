"""The one facade the GUI and the CLI call. Jobs are generators of events taking a cancel token;
everything else returns plain data."""

from __future__ import annotations

from pathlib import Path

from .cancel import NEVER, CancelToken
from .catalog import ModelInfo, Origin
from .catalog import inspect as _inspect
from .catalog import scan as _scan
from .catalog import user_paths
from .config import Device, ImportConfig
from .device import DeviceChoice, resolve_device
from .events import Job
from .paths import bundled_model_path


def scan() -> list[ModelInfo]:
    return _scan()


def inspect(path: Path | str) -> ModelInfo:
    return _inspect(path)


def bundled_model() -> Path:
    return bundled_model_path()


def add_model_path(path: Path | str) -> str:
    return user_paths.add(path)


def user_model_paths() -> list[str]:
    return user_paths.load()


def remove_model_path(path: Path | str) -> bool:
    return user_paths.remove(path)


def device(requested: Device | str = Device.AUTO) -> DeviceChoice:
    return resolve_device(requested)


def import_gguf(config: ImportConfig, cancel: CancelToken = NEVER) -> Job:
    from .formats.gguf_import import import_gguf as job

    return job(config, cancel)


__all__ = ["scan", "inspect", "bundled_model", "add_model_path", "remove_model_path", "user_model_paths", "device",
           "import_gguf", "ModelInfo", "Origin"]
