"""Kernel selection: priority order, skip reasons, and the reference fallback."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from gguf import GGMLQuantizationType as QT

from bitsmith import kernels
from bitsmith.kernels import registry
from bitsmith.kernels.registry import Kernel, KernelUnavailable, Registry

from .gguf_cases import gguf_quantize_reference, same_bytes

NO_CUDA = not torch.cuda.is_available()


def _fake_impl(*args):
    return "fake"


def _fake_reference(*args):
    return "reference"


def _registry(*kernels_: Kernel) -> Registry:
    reg = Registry()
    reg.register(Kernel("op", "ref", f"{__name__}:_fake_reference", devices=("cpu", "cuda"), reference=True))
    for kernel in kernels_:
        reg.register(kernel)
    return reg


def test_highest_priority_available_kernel_wins():
    reg = _registry(Kernel("op", "slow", f"{__name__}:_fake_impl", priority=1),
                    Kernel("op", "fast", f"{__name__}:_fake_impl", priority=5))
    choice = reg.select("op")
    assert (choice.name, choice.device, choice.skipped) == ("fast", "cpu", ())
    assert choice.impl() == "fake"


def test_each_skipped_kernel_says_why_and_the_reference_catches_the_rest():
    reg = _registry(
        Kernel("op", "off", f"{__name__}:_fake_impl", priority=9, available=lambda: (False, "forced off")),
        Kernel("op", "gpu-only", f"{__name__}:_fake_impl", devices=("cuda",), priority=8),
        Kernel("op", "int4-only", f"{__name__}:_fake_impl", priority=7, supports={"bits": {4}}),
        Kernel("op", "broken", "bitsmith.kernels.no_such_module:fn", priority=6),
    )
    choice = reg.select("op", bits=8)
    assert choice.name == "ref" and choice.impl() == "reference"
    reasons = dict(choice.skipped)
    assert list(reasons) == ["off", "gpu-only", "int4-only", "broken"]
    assert reasons["off"] == "forced off"
    assert reasons["gpu-only"] == "does not run on cpu"
    assert reasons["int4-only"] == "bits=8 is not supported"
    assert reasons["broken"].startswith("could not import bitsmith.kernels.no_such_module:fn")


def test_an_op_without_a_usable_reference_is_an_error():
    reg = Registry()
    with pytest.raises(KernelUnavailable, match="no reference"):
        reg.select("op")
    reg = _registry()
    reg.register(Kernel("op2", "ref2", f"{__name__}:_fake_reference", supports={"bits": {8}}, reference=True))
    with pytest.raises(KernelUnavailable, match="bits=3 is not supported"):
        reg.select("op2", bits=3)


def test_registering_twice_is_refused():
    reg = _registry()
    with pytest.raises(ValueError, match="already"):
        reg.register(Kernel("op", "ref", f"{__name__}:_fake_impl"))
    with pytest.raises(ValueError, match="already has a reference"):
        reg.register(Kernel("op", "ref-b", f"{__name__}:_fake_impl", reference=True))
    with pytest.raises(ValueError, match="unknown device"):
        reg.select("op", device="tpu")


def test_cpu_picks_the_vectorized_gguf_kernel():
    choice = kernels.select("gguf_quantize", "cpu", qtype=QT.Q8_0, dtype=torch.float32)
    assert (choice.name, choice.device, choice.skipped) == ("torch-vectorized", "cpu", ())


def test_an_unusable_device_sends_the_search_to_the_cpu_and_says_why(monkeypatch):
    monkeypatch.setattr(registry, "device_status", lambda device: (device == "cpu", "no GPU here"))
    reg = _registry(Kernel("op", "any-device", f"{__name__}:_fake_impl", devices=("cpu", "cuda"), priority=5),
                    Kernel("op", "gpu-only", f"{__name__}:_fake_impl", devices=("cuda",), priority=9))
    choice = reg.select("op", device="cuda:1")
    assert (choice.name, choice.device) == ("any-device", "cpu")
    assert choice.skipped == (("gpu-only on cuda", "no GPU here"), ("any-device on cuda", "no GPU here"),
                              ("ref on cuda", "no GPU here"), ("gpu-only", "does not run on cpu"))


@pytest.mark.skipif(not NO_CUDA, reason="needs a machine where torch sees no CUDA GPU")
def test_cuda_request_on_a_cpu_machine_says_why_and_runs_the_fast_cpu_kernel():
    choice = kernels.select("gguf_quantize", "cuda", qtype=QT.Q4_0, dtype=torch.float32)
    assert (choice.name, choice.device) == ("torch-vectorized", "cpu")
    reasons = dict(choice.skipped)
    assert "torch sees no CUDA GPU" in reasons["torch-vectorized on cuda"]
    assert "torch sees no CUDA GPU" in reasons["torch-reference on cuda"]
    x = torch.randn(4, 64)
    assert same_bytes(kernels.gguf_quantize(x, "Q4_0", device="cuda"), gguf_quantize_reference(x, QT.Q4_0))


def test_forced_unavailable_fast_path_falls_back_to_the_reference(monkeypatch):
    disabled = [dataclasses.replace(k, available=lambda: (False, "disabled by test"))
                if k.name == "torch-vectorized" else k for k in registry.REGISTRY._kernels]
    monkeypatch.setattr(registry.REGISTRY, "_kernels", disabled)
    choice = kernels.select("gguf_quantize", "cpu", qtype=QT.Q5_1, dtype=torch.float32)
    assert choice.name == "torch-reference"
    assert choice.skipped == (("torch-vectorized", "disabled by test"),)
    x = torch.randn(4, 64)
    for qtype in (QT.Q5_1, QT.BF16):
        assert same_bytes(kernels.gguf_quantize(x, qtype), gguf_quantize_reference(x, qtype))


def test_kernels_import_no_qt_and_no_implementation_until_selected():
    code = ("import sys; from bitsmith import kernels; "
            "assert not any(m.startswith(('PySide6', 'pyqtgraph')) for m in sys.modules); "
            "assert 'bitsmith.kernels.ggml_vectorized' not in sys.modules; "
            "kernels.select('gguf_quantize', 'cpu'); "
            "assert 'bitsmith.kernels.ggml_vectorized' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(_repo_root()))


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]
