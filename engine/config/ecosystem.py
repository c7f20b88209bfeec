"""Settings of the pieces that connect Bitsmith to other tools: the local OpenAI-compatible server,
the Hugging Face Hub client and the exports to Ollama and LM Studio."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ..errors import InvalidInput

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


@dataclass(frozen=True)
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: any free port
    #: When set, every request must carry `Authorization: Bearer <api_key>`.
    api_key: str | None = None
    #: Listening beyond this machine is a deliberate choice: it needs this flag and an API key.
    allow_remote: bool = False
    #: Requests waiting for the one generation slot; more than this get a 503 instead of piling up.
    max_queue: int = 16
    #: Name the model is listed under in /v1/models; None: the file or folder name.
    model_name: str | None = None

    def __post_init__(self):
        if not 0 <= self.port <= 65535:
            raise InvalidInput(f"port must be between 0 and 65535, not {self.port}")
        if self.max_queue < 1:
            raise InvalidInput(f"the request queue must hold at least 1 request, not {self.max_queue}")
        if self.api_key is not None and not self.api_key.strip():
            raise InvalidInput("the API key is empty")
        if not is_loopback(self.host):
            if not self.allow_remote:
                raise InvalidInput(f"listening on {self.host} would expose the model beyond this machine",
                                   suggestion="add --allow-remote and --api-key KEY, or keep the default 127.0.0.1")
            if not self.api_key:
                raise InvalidInput(f"listening on {self.host} needs an API key", suggestion="add --api-key KEY")


class ExportTarget(str, Enum):
    OLLAMA = "ollama"
    LMSTUDIO = "lmstudio"
    CARD = "card"  # only the model card (README.md)


class LinkMode(str, Enum):
    """How a GGUF is placed in LM Studio's folder: a hard link costs no space (same disk only), a copy
    always works, a symbolic link follows the original if it moves."""

    AUTO = "auto"  # hard link, else copy
    HARDLINK = "hardlink"
    SYMLINK = "symlink"
    COPY = "copy"


@dataclass(frozen=True)
class ExportSettings:
    model: Path
    target: ExportTarget
    #: Ollama: the folder for the Modelfile and card; LM Studio: its models folder (None: its own);
    #: card: the folder for README.md (None: the output's own folder, or beside a GGUF file)
    out: Path | None = None
    name: str | None = None  # the name in the other tool; None: from the file name
    link: LinkMode = LinkMode.AUTO
    run_tool: bool = True  # Ollama: run `ollama create` when it is installed

    def __post_init__(self):
        object.__setattr__(self, "model", Path(self.model))
        if self.out is not None:
            object.__setattr__(self, "out", Path(self.out))
        for attr, enum in (("target", ExportTarget), ("link", LinkMode)):
            value = getattr(self, attr)
            try:
                object.__setattr__(self, attr, enum(value))
            except ValueError:
                raise InvalidInput(f"{attr} must be one of {', '.join(e.value for e in enum)}, not {value!r}") from None
        if self.name is not None:
            bad = set(self.name) - set("abcdefghijklmnopqrstuvwxyz0123456789._-:/")
            if not self.name or bad:
                raise InvalidInput(f"model name {self.name!r}: use lower-case letters, digits and . _ - : / only")


@dataclass(frozen=True)
class HubSettings:
    endpoint: str | None = None  # None: HF_ENDPOINT, else huggingface.co
    token: str | None = None
    timeout_s: float = 10.0

    def __post_init__(self):
        if self.endpoint is not None and not self.endpoint.startswith(("http://", "https://")):
            raise InvalidInput(f"hub address {self.endpoint!r} must start with http:// or https://")
        if self.timeout_s <= 0:
            raise InvalidInput(f"the hub timeout must be positive, not {self.timeout_s}")
