"""Searching the Hub and listing a repository's files with their format, quantization and a fit
estimate for this machine."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from ..config import HubSettings
from .client import hub_api, hub_errors
from .fit import Fit, estimate_fit

#: llama.cpp's file-type names as they appear in GGUF file names (Q4_K_M, IQ3_XS, F16, BF16...).
GGUF_TYPE = re.compile(r"(?<![A-Za-z0-9])(I?Q\d(?:_[A-Z0-9]+)*|F16|F32|BF16)(?![A-Za-z0-9])", re.IGNORECASE)
WEIGHT_SUFFIXES = {".gguf": "gguf", ".safetensors": "safetensors", ".bin": "pickle", ".pt": "pickle",
                   ".pth": "pickle", ".ckpt": "pickle"}
QUANT_TAGS = ("gptq", "awq", "bitsandbytes", "4-bit", "8-bit", "int8", "fp8", "exl2")


@dataclass(frozen=True)
class HubModel:
    repo: str
    downloads: int | None
    likes: int | None
    tags: tuple[str, ...]
    library: str | None
    updated: str | None

    def to_dict(self) -> dict:
        return {**asdict(self), "tags": list(self.tags)}


@dataclass(frozen=True)
class HubFile:
    name: str
    size: int | None
    format: str  # gguf, safetensors, pickle (never loaded), other
    quant: str | None  # Q4_K_M for a GGUF, gptq/awq/... for a quantized safetensors repo
    sha256: str | None  # for LFS files: what the download is verified against
    blob_id: str | None  # git blob id: what small files are verified against
    fit: Fit | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fit"] = {**asdict(self.fit), "label": self.fit.label} if self.fit else None
        return d


@dataclass(frozen=True)
class RepoFiles:
    repo: str
    revision: str
    files: tuple[HubFile, ...]
    #: The safetensors weights together (a Hugging Face folder is loaded as a whole), when there are any.
    folder_fit: Fit | None = None
    quant: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)

    def to_dict(self) -> dict:
        return {"repo": self.repo, "revision": self.revision, "quant": self.quant, "notes": list(self.notes),
                "total_bytes": self.total_bytes, "files": [f.to_dict() for f in self.files],
                "folder_fit": {**asdict(self.folder_fit), "label": self.folder_fit.label} if self.folder_fit else None}


def search(text: str, limit: int = 20, settings: HubSettings = HubSettings()) -> list[HubModel]:
    """Text-generation models whose name matches `text`, most downloaded first."""
    api = hub_api(settings)
    with hub_errors(settings, f"search for {text!r}"):
        found = list(api.list_models(search=text, sort="downloads", limit=limit))
    return [HubModel(m.id, getattr(m, "downloads", None), getattr(m, "likes", None), tuple(m.tags or ()),
                     getattr(m, "library_name", None), str(m.last_modified) if getattr(m, "last_modified", None) else None)
            for m in found]


def file_format(name: str) -> str:
    for suffix, fmt in WEIGHT_SUFFIXES.items():
        if name.lower().endswith(suffix):
            return fmt
    return "other"


def gguf_type(name: str) -> str | None:
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    found = GGUF_TYPE.findall(stem)
    return found[-1].upper() if found else None


def repo_quant(tags: tuple[str, ...], repo: str) -> str | None:
    """The quantization of a safetensors repository, from its tags or name (config.json is not
    fetched: listing a repository downloads nothing)."""
    lowered = [t.lower() for t in tags] + re.split(r"[-_.]", repo.lower().rsplit("/", 1)[-1])
    return next((q for q in QUANT_TAGS if q in lowered), None)


def repo_files(repo: str, settings: HubSettings = HubSettings(), revision: str | None = None) -> RepoFiles:
    api = hub_api(settings)
    with hub_errors(settings, repo):
        info = api.model_info(repo, revision=revision, files_metadata=True)
    quant = repo_quant(tuple(info.tags or ()), repo)
    files, notes = [], []
    for s in info.siblings or []:
        fmt = file_format(s.rfilename)
        lfs = getattr(s, "lfs", None)
        sha = getattr(lfs, "sha256", None) if lfs is not None else None
        q = gguf_type(s.rfilename) if fmt == "gguf" else (quant if fmt == "safetensors" else None)
        fit = estimate_fit(s.size, fmt, quantized=True) if fmt == "gguf" and s.size else None
        files.append(HubFile(s.rfilename, s.size, fmt, q, sha, getattr(s, "blob_id", None), fit))
    weights = [f for f in files if f.format == "safetensors"]
    folder_fit = (estimate_fit(sum(f.size or 0 for f in weights), "safetensors", quantized=quant is not None)
                  if weights else None)
    if any(f.format == "pickle" for f in files):
        notes.append("pickle weights (.bin/.pt) are listed but never downloaded or loaded")
    if not any(f.format in ("gguf", "safetensors") for f in files):
        notes.append("no GGUF or safetensors weights: Bitsmith cannot load this repository")
    return RepoFiles(repo, info.sha or revision or "main", tuple(files), folder_fit, quant, tuple(notes))
