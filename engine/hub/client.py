"""The Hugging Face Hub as Bitsmith reaches it: through huggingface_hub, at the address in
HubSettings (else HF_ENDPOINT, else huggingface.co), into the shared Hugging Face cache. Offline
mode, or a hub that cannot be reached, is one line (HubUnavailable), never a traceback."""

from __future__ import annotations

import os
from contextlib import contextmanager

from ..config import HubSettings
from ..errors import EngineError, InvalidInput


class HubUnavailable(EngineError):
    title = "Hugging Face Hub unavailable"


def endpoint(settings: HubSettings) -> str:
    # Read now, not at import: huggingface_hub fixes its own copy when it is first imported.
    return (settings.endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def cache_dir() -> str:
    """The Hugging Face cache that transformers, llama.cpp's hub helpers and Bitsmith's catalog share."""
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def hub_api(settings: HubSettings):
    from huggingface_hub import HfApi

    if offline():
        raise HubUnavailable("the Hugging Face Hub is off: offline mode is on (HF_HUB_OFFLINE)",
                             suggestion="unset HF_HUB_OFFLINE to search and download; local models still work")
    reachable(settings)
    return HfApi(endpoint=endpoint(settings), token=settings.token or False)


def reachable(settings: HubSettings) -> None:
    """A plain connection to the hub first: huggingface_hub retries a refused or unresolvable address
    five times with back-off (about 25 s, a warning each time) before it gives up."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(endpoint(settings))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=settings.timeout_s).close()
    except OSError as exc:
        raise HubUnavailable(f"the hub at {endpoint(settings)} cannot be reached ({exc.strerror or type(exc).__name__})",
                             suggestion="check the network; local models still work") from None


@contextmanager
def hub_errors(settings: HubSettings, what: str):
    """Turn huggingface_hub's and the HTTP library's exceptions into one-line engine errors."""
    from huggingface_hub import errors as hf

    import logging

    where = endpoint(settings)
    hf_log = logging.getLogger("huggingface_hub")
    level = hf_log.level
    hf_log.setLevel(logging.ERROR)  # its retry warnings would interleave with Bitsmith's one line
    try:
        yield
    except EngineError:
        raise
    except hf.OfflineModeIsEnabled:
        raise HubUnavailable("the Hugging Face Hub is off: offline mode is on (HF_HUB_OFFLINE)",
                             suggestion="unset HF_HUB_OFFLINE to search and download; local models still work") from None
    except (hf.RepositoryNotFoundError, hf.GatedRepoError) as exc:
        gated = isinstance(exc, hf.GatedRepoError)
        raise InvalidInput(f"{what}: {'the repository is gated' if gated else 'no such repository'} on {where}",
                           suggestion="accept its terms on the Hub and log in with a token" if gated else
                           "check the name, as owner/name") from None
    except (hf.EntryNotFoundError, hf.RevisionNotFoundError):
        raise InvalidInput(f"{what}: no such file or revision on {where}") from None
    except hf.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        raise HubUnavailable(f"{what}: the hub at {where} answered HTTP {status}") from None
    except (OSError, TimeoutError) as exc:
        raise HubUnavailable(f"{what}: the hub at {where} cannot be reached ({type(exc).__name__})",
                             suggestion="check the network; local models still work") from None
    except Exception as exc:  # noqa: BLE001 - the HTTP library's connection errors have no common base we import
        if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "requests", "urllib3"):
            raise HubUnavailable(f"{what}: the hub at {where} cannot be reached ({type(exc).__name__})",
                                 suggestion="check the network; local models still work") from None
        raise
    finally:
        hf_log.setLevel(level)
