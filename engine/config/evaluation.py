"""What to evaluate, against what, on which text; validated on construction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .jobs import Device, parse_enum
from ..errors import InvalidInput

DEFAULT_CTX = 512
MIN_CTX = 2  # one token of context and one to predict


@dataclass(frozen=True)
class EvalSettings:
    model: Path
    text: Path  # held-out text: plain UTF-8 or JSONL with a "text" field
    source: Path | None = None  # the model it was converted from; without it, only perplexity
    ctx: int = DEFAULT_CTX  # window length in tokens; windows do not overlap
    windows: int | None = None  # evaluate only the first N windows (a quick estimate); None: all
    device: Device = Device.CPU  # for transformers models; llama.cpp runs on the CPU here
    save: bool = False  # merge the figures into the model's report card when done
    threads: int | None = None  # CPU threads for llama.cpp and torch; None: every core

    def __post_init__(self):
        # Absolute: these paths go into the report card, which is read from anywhere later.
        object.__setattr__(self, "model", Path(self.model).absolute())
        object.__setattr__(self, "text", Path(self.text).absolute())
        if self.source is not None:
            object.__setattr__(self, "source", Path(self.source).absolute())
        object.__setattr__(self, "device", parse_enum(Device, self.device, "device"))
        if self.ctx < MIN_CTX:
            raise InvalidInput(f"the evaluation window must hold at least {MIN_CTX} tokens, not {self.ctx}")
        if self.threads is not None and self.threads < 1:
            raise InvalidInput(f"the number of threads must be at least 1, not {self.threads}")
        if self.windows is not None and self.windows < 1:
            raise InvalidInput(f"the number of windows must be at least 1, not {self.windows}")
