"""The model families Bitsmith understands, in one table shared by the catalog, importers,
exporters and quantizers.

`hf_model_types` are config.json `model_type` values; `gguf_arch` is llama.cpp's
`general.architecture`. `rope_permute` marks families whose Q/K weights llama.cpp expects in the
interleaved rotary layout (Hugging Face stores them split in halves).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UnsupportedModel


@dataclass(frozen=True)
class Family:
    name: str
    hf_model_types: tuple[str, ...]
    hf_class: str
    gguf_arch: str
    rope_permute: bool


FAMILIES: tuple[Family, ...] = (
    Family("Llama", ("llama",), "LlamaForCausalLM", "llama", True),
    Family("Mistral", ("mistral",), "MistralForCausalLM", "llama", True),
    Family("Qwen2", ("qwen2",), "Qwen2ForCausalLM", "qwen2", False),
)


def family_for_model_type(model_type: str, where: str = "config.json") -> Family:
    for fam in FAMILIES:
        if model_type in fam.hf_model_types:
            return fam
    known = ", ".join(t for f in FAMILIES for t in f.hf_model_types)
    raise UnsupportedModel(f"{where}: unknown architecture '{model_type}' (Bitsmith supports {known})")


def family_for_gguf_arch(arch: str, where: str = "GGUF file") -> Family:
    for fam in FAMILIES:
        if fam.gguf_arch == arch:
            return fam
    known = ", ".join(sorted({f.gguf_arch for f in FAMILIES}))
    raise UnsupportedModel(f"{where}: unknown architecture '{arch}' (Bitsmith supports {known})")


def is_known_model_type(model_type: str | None) -> bool:
    return any(model_type in f.hf_model_types for f in FAMILIES)
