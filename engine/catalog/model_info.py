"""The catalog's record of one model. Plain data: the GUI wraps it in a Qt model, the CLI prints it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import Enum

from ..config import ModelFormat


class Origin(str, Enum):
    BUNDLED = "bundled"
    USER = "user"  # a file or folder the user added
    HF_CACHE = "hf-cache"
    OLLAMA = "ollama"
    LMSTUDIO = "lmstudio"


@dataclass
class ModelInfo:
    name: str
    path: str
    origin: Origin
    format: ModelFormat | None = None
    architecture: str | None = None
    parameters: int | None = None
    dtype: str | None = None  # "float16", "bfloat16", or a quant type such as "Q4_1", "gptq-4bit"
    bits_per_weight: float | None = None
    size_bytes: int | None = None
    context_length: int | None = None
    has_chat_template: bool = False
    ram_to_chat_bytes: int | None = None
    ram_to_quantize_bytes: int | None = None
    layers: int | None = None
    hidden_size: int | None = None
    report_card: dict | None = None  # the report card beside the model, when there is one
    source: str | None = None  # lineage: what this model was converted from
    error: str | None = None  # why it cannot be used, one line; the rest may be partial
    notes: list[str] = field(default_factory=list)
    family: str | None = None  # "Qwen3-MoE", or the model type for families outside the table
    experts: int | None = None  # routed experts per MoE layer (None: a dense model)
    experts_per_token: int | None = None
    active_parameters: int | None = None  # what one token goes through (MoE: shared + its experts)
    unavailable: dict = field(default_factory=dict)  # path ("gptq", "bnb", "gguf-export") -> why not

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["origin"] = self.origin.value
        d["format"] = self.format.value if self.format else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelInfo":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["origin"] = Origin(d["origin"])
        d["format"] = ModelFormat(d["format"]) if d.get("format") else None
        return cls(**d)
