"""What each conversion method is, in one plain sentence, and which one suits this machine."""

from __future__ import annotations

from dataclasses import dataclass

from .architectures import path_of_method
from .config import BUDGET_METHODS, Device, Method


@dataclass(frozen=True)
class MethodInfo:
    method: Method
    title: str
    explanation: str
    needs_calibration: bool
    best_on: Device  # where it runs and is used best

    @property
    def size_budget(self) -> bool:
        """Whether it can fit the best output to a size or bits per weight (QuantizeConfig's
        target_bytes / target_bpw); the GUI offers its size control from this."""
        return self.method in BUDGET_METHODS

    @property
    def path(self) -> str:
        """The path a family may be refused on (the keys of ModelInfo.unavailable): "gguf-export"..."""
        return path_of_method(self.method.value)


METHODS: dict[Method, MethodInfo] = {m.method: m for m in (
    MethodInfo(Method.GGUF, "GGUF (llama.cpp)", "One file that runs fast on any CPU, and in llama.cpp, LM Studio, "
               "Ollama and GPT4All; pick a type from Q8_0 (near-lossless) down to Q2_K (smallest).", False, Device.CPU),
    MethodInfo(Method.GPTQ, "GPTQ", "4-bit (or 2/3/8-bit) weights tuned on sample text to undo rounding errors; "
               "fastest on NVIDIA GPUs with vLLM or transformers.", True, Device.CUDA),
    MethodInfo(Method.AWQ, "AWQ", "4-bit weights that protect the channels activations use most; "
               "a strong GPU format for vLLM and transformers.", True, Device.CUDA),
    MethodInfo(Method.RTN, "RTN (round to nearest)", "Plain rounding to 2-8 bits with no sample text: quick, "
               "and the baseline the calibrated methods must beat.", False, Device.CUDA),
    MethodInfo(Method.INT8, "INT8 (Bitsmith)", "8-bit weights, one scale per output channel: almost no quality "
               "loss and half the size of fp16; runs on the CPU.", False, Device.CPU),
    MethodInfo(Method.BNB_INT8, "bitsandbytes LLM.int8", "8-bit weights with outliers kept in 16 bits, "
               "loaded by transformers; best on NVIDIA GPUs.", False, Device.CUDA),
    MethodInfo(Method.BNB_NF4, "bitsandbytes NF4", "4-bit NormalFloat weights loaded by transformers "
               "(QLoRA's format); best on NVIDIA GPUs.", False, Device.CUDA),
)}


def recommended(device: Device) -> Method:
    """CPU only: GGUF; an NVIDIA GPU: GPTQ."""
    return Method.GPTQ if device is Device.CUDA else Method.GGUF


def recommendation_text(device: Device) -> str:
    if device is Device.CUDA:
        return "You have an NVIDIA GPU: GPTQ or AWQ give the fastest GPU inference."
    return "No NVIDIA GPU was found: GGUF (Q4_K_M is a good balance) runs best on this computer."
