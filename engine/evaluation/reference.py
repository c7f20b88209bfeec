"""The source's next-token distributions over one token stream, computed once and kept on disk.

Every output of a source (GGUF through llama.cpp, GPTQ/AWQ/INT8/bitsandbytes through transformers)
is then scored against the same stored distributions, position by position, without running the
source again: like llama.cpp's `--kl-divergence-base` file, but compact. Per scored position the
file keeps the source's top-K log-probabilities with their token ids (K = 256: 2 KiB a token, where
llama.cpp's base file keeps the whole vocabulary, 96 KiB a token for a 49k vocabulary), and the
log-probability of the token that actually follows. Perplexities, Δp and "same top p" are exact.
KL divergence is computed over those K tokens plus one bucket for all the others (`kl_against`):
merging tokens into a bucket can only lower KL (log-sum inequality), so it is a lower bound of the
full-vocabulary value. How tight depends on how much probability lies beyond the top K: measured
on the bundled SmolLM2-135M (a small, unsure model: 5 % of the mass beyond the top 256 on our
held-out text), the bound is 8 % below the full KL for its Q4_1 GGUF (with K = 32 it was 23 %
below); the figures carry the mass the reference covers (`reference_mass`), so a reader can judge.

The file is safetensors (arrays) with its key in the metadata: the source's identity (path, size,
modification time of its weights), the text's SHA-256, the window length, the number of windows
and K. A reference whose key differs is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..cancel import NEVER, CancelToken
from ..errors import InvalidInput, NotEnoughDisk
from ..events import EtaClock
from ..fsutil import staged_output
from ..paths import cache_dir

TOP_K = 256
FORMAT = "bitsmith-kl-reference/1"


@dataclass
class Reference:
    ids: "torch.Tensor"  # noqa: F821 - int64 [windows * ctx], the token stream the figures belong to
    topk_ids: "torch.Tensor"  # noqa: F821 - int64 [positions, K], the source's most likely next tokens
    topk_logp: "torch.Tensor"  # noqa: F821 - float32 [positions, K], their log-probabilities (descending)
    target_logp: "torch.Tensor"  # noqa: F821 - float32 [positions], log-probability of the actual next token
    ctx: int
    windows: int
    vocab_size: int
    source: str
    backend: str
    path: Path | None = None

    @property
    def positions_per_window(self) -> int:
        return self.ctx - 1

    def window(self, w: int) -> tuple:
        """(topk_ids, topk_logp, target_logp) of window `w`'s scored positions."""
        lo, hi = w * (self.ctx - 1), (w + 1) * (self.ctx - 1)
        return self.topk_ids[lo:hi], self.topk_logp[lo:hi], self.target_logp[lo:hi]


def source_identity(source: Path) -> str:
    """Path, sizes and modification times of the files that hold the source's weights and tokenizer."""
    source = Path(source).resolve()
    files = [source] if source.is_file() else sorted(
        p for p in source.iterdir() if p.suffix in (".safetensors", ".json", ".gguf", ".model") and p.is_file())
    parts = [str(source)] + [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def reference_key(source: Path, text_sha256: str, ctx: int, windows: int) -> dict[str, str]:
    return {"format": FORMAT, "source": source_identity(source), "text_sha256": text_sha256, "ctx": str(ctx),
            "windows": str(windows), "top_k": str(TOP_K)}


def reference_path(key: dict[str, str]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir() / "kl-reference" / f"{digest}.safetensors"


def load_reference(key: dict[str, str]) -> Reference | None:
    """The stored reference for `key`, or None (none yet, or unreadable: it is then rebuilt)."""
    from safetensors import SafetensorError, safe_open

    path = reference_path(key)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if any(meta.get(k) != v for k, v in key.items()):
                return None
            arrays = {name: f.get_tensor(name) for name in ("ids", "topk_ids", "topk_logp", "target_logp")}
    except (SafetensorError, OSError, ValueError):
        return None
    return Reference(arrays["ids"], arrays["topk_ids"].long(), arrays["topk_logp"], arrays["target_logp"],
                     int(key["ctx"]), int(key["windows"]), int(meta["vocab_size"]), meta["source_path"],
                     meta["backend"], path)


def build_reference(source_provider, ids: list[int], ctx: int, windows: int, key: dict[str, str],
                    cancel: CancelToken = NEVER):
    """Run the source over `windows` windows of `ids` and store its distributions; a job whose
    return value (through `yield from`) is the Reference."""
    import torch
    from safetensors.torch import save_file

    clock = EtaClock(windows, "reference")
    parts = ([], [], [])
    for w in range(windows):
        cancel.check()
        window = ids[w * ctx:(w + 1) * ctx]
        logp = torch.log_softmax(source_provider.logits(window)[:-1].float(), dim=-1)
        k = min(TOP_K, logp.shape[-1])
        values, indices = logp.topk(k, dim=-1)
        parts[0].append(indices.to(torch.int32))
        parts[1].append(values)
        parts[2].append(logp.gather(1, torch.as_tensor(window[1:], dtype=torch.long)[:, None])[:, 0])
        yield clock.progress(w + 1, f"source distributions, window {w + 1} of {windows}")
    ref = Reference(torch.as_tensor(ids[:windows * ctx], dtype=torch.int64), torch.cat(parts[0]).long(),
                    torch.cat(parts[1]), torch.cat(parts[2]), ctx, windows, int(source_provider.vocab_size),
                    source_provider.name, source_provider.backend)
    path = reference_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**key, "vocab_size": str(ref.vocab_size), "source_path": ref.source, "backend": ref.backend}
    try:
        with staged_output(path, is_dir=False, overwrite=True) as temp:
            save_file({"ids": ref.ids, "topk_ids": ref.topk_ids.to(torch.int32), "topk_logp": ref.topk_logp,
                       "target_logp": ref.target_logp}, str(temp), metadata=meta)
        ref.path = path
    except (OSError, NotEnoughDisk):
        pass  # a cache that cannot be written costs only the next run's time, never this result
    return ref


def check_stream(ref: Reference, ids: list[int], model_name: str, vocab_size: int) -> None:
    """The evaluated model must read the text as the source did: same vocabulary width, same ids."""
    from .tokenizer_check import same_stream

    if vocab_size != ref.vocab_size:
        raise InvalidInput(f"{model_name} has a vocabulary of {vocab_size} tokens but its source {ref.source} has "
                           f"{ref.vocab_size}; they cannot be compared", suggestion="pick the model it was converted from")
    stream = ref.ids.tolist()
    same_stream(ids[:len(stream)], stream, model_name, ref.source)


def kl_against(ref_ids, ref_logp, model_logp):
    """KL(source || model) per position from the source's top-K and one bucket for the rest.

    ref_ids, ref_logp: [n, K]; model_logp: [n, vocab] log-softmax of the model. Returns [n] float64."""
    import torch

    p = ref_logp.double().exp()
    q_logp = model_logp.gather(1, ref_ids).double()
    kl = (p * (ref_logp.double() - q_logp)).sum(-1)
    p_rest = (1.0 - p.sum(-1)).clamp(min=0.0)
    q_rest = (1.0 - q_logp.exp().sum(-1)).clamp(min=1e-12)
    rest = torch.where(p_rest > 1e-12, p_rest * (p_rest.clamp(min=1e-12).log() - q_rest.log()),
                       torch.zeros_like(p_rest))
    return (kl + rest).clamp(min=0.0)


def cleanup_stale_references(keep: int = 32) -> None:
    """Keep the cache bounded: only the most recently used `keep` references stay."""
    folder = cache_dir() / "kl-reference"
    if not folder.is_dir():
        return
    files = sorted(folder.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        try:
            os.remove(old)
        except OSError:
            pass
