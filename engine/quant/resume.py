"""Per-block checkpoints of a long quantization, so that a crash, a kill or a cancel costs at most the
block that was running.

After each finished block the job hands over what the writer needs for that block (its output
tensors) and the calibration activations that feed the next block. They go into a hidden folder
beside the output, `.bitsmith-resume-<output name>/` (hidden, and not a staged partial, so neither
the catalog nor the sweep of crashed partial outputs touches it):

  block-00003.safetensors        the writer's tensors of block 3 (each finished block keeps its file:
                                 together about the size of the output)
  activations-00004.safetensors  the inputs of block 4; only the latest is kept (8 windows of 256
                                 tokens at width 4096 in float32 are 32 MB)
  manifest.json                  the commit point: the key, how many blocks are finished, a digest of
                                 each file's tensors, and the job's bookkeeping (layer errors, ...)

Every file is written under a temporary name, flushed and renamed, and the manifest is renamed last,
so a kill at any moment leaves either the previous checkpoint or the next one; files the manifest
does not name are leftovers of an interrupted save, removed when the checkpoint is next opened.

A checkpoint is used only when its key matches the new run's exactly (the source's identity: name,
size and modification time of config.json and every safetensors file; the resolved settings; the
digest of the calibration windows; the versions whose arithmetic shapes the output). Otherwise, or
when a file is damaged, it is discarded with one line saying why. A resumed run's output is
byte-identical to an uninterrupted one's: the finished blocks are replayed into the writer from
their files, and the next block starts from the very activations the earlier run computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch

RESUME_PREFIX = ".bitsmith-resume-"
MANIFEST = "manifest.json"
#: The manifest's layout; a checkpoint written by another layout is discarded, never misread.
FORMAT = 1


def resume_folder(target: Path) -> Path:
    target = Path(target)
    return target.parent / f"{RESUME_PREFIX}{target.name}"


def source_identity(folder: Path, weight_files) -> list[list]:
    """[name, bytes, mtime in ns] of config.json, the safetensors index and every weight file:
    cheap to read for a 140 GB model, and any rewrite of a file changes it."""
    folder = Path(folder)
    files = {Path(f) for f in weight_files} | {folder / "config.json", folder / "model.safetensors.index.json"}
    identity = []
    for path in sorted(p for p in files if p.is_file()):
        st = path.stat()
        identity.append([path.name, st.st_size, st.st_mtime_ns])
    return identity


def windows_digest(ids: torch.Tensor | None) -> str | None:
    """The calibration windows' digest (their token ids and shape)."""
    return None if ids is None else tensors_digest({"windows": ids.long()})


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over each tensor's name, dtype, shape and bytes (the tensors as read back, so a
    damaged file is caught whether its header or its data was hit)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


@dataclass
class ResumePoint:
    done: int  # blocks finished by earlier runs
    n_blocks: int
    activations: list[torch.Tensor] | None  # the inputs of block `done`; None without calibration
    state: dict = field(default_factory=dict)  # the job's bookkeeping, as it saved it


class BlockCheckpoint:
    def __init__(self, target: Path, key: dict, n_blocks: int):
        self.target, self.folder, self.n_blocks = Path(target), resume_folder(target), n_blocks
        self.key = _normal({"format": FORMAT, "target": str(Path(target).absolute()), "n_blocks": n_blocks, **key})
        self.manifest: dict | None = None

    @property
    def done(self) -> int:
        return self.manifest["done"] if self.manifest else 0

    # -- opening ------------------------------------------------------------------------------
    def open(self, restart: bool = False) -> tuple[ResumePoint | None, list[tuple[str, str]]]:
        """The point to resume from (None: start at block 0) and the lines to log, as
        (message, level). A checkpoint that cannot be used is removed."""
        if not self.folder.exists():
            return None, []
        if restart:
            manifest = _read_json(self.folder / MANIFEST)
            what = f" ({manifest['done']}/{manifest['n_blocks']} blocks)" if _has_progress(manifest) else ""
            self.discard()
            return None, [(f"--restart: the checkpoint of an earlier run{what} in {self.folder} was removed; "
                           "starting at block 1", "info")]
        try:
            point = self._load()
        except _Unusable as exc:
            self.discard()
            return None, [(f"the checkpoint in {self.folder} was discarded: {exc}; starting at block 1", "warning")]
        return point, []

    def _load(self) -> ResumePoint:
        manifest = _read_json(self.folder / MANIFEST)
        if manifest is None:
            raise _Unusable(f"its {MANIFEST} is missing or unreadable")
        if manifest.get("key", {}).get("format") != FORMAT:
            raise _Unusable("it was written by another version of Bitsmith")
        if manifest["key"] != self.key:
            raise _Unusable(_difference(manifest["key"], self.key))
        if not _has_progress(manifest) or len(manifest.get("blocks", [])) != manifest["done"]:
            raise _Unusable(f"its {MANIFEST} is inconsistent")
        for entry in manifest["blocks"]:
            self._read(entry)  # verified now, so that a damaged file never reaches the output
        activations = None
        if manifest.get("activations"):
            state = self._read(manifest["activations"])
            activations = [state[k] for k in sorted(state)]
        named = {MANIFEST, *(e["file"] for e in manifest["blocks"])}
        if manifest.get("activations"):
            named.add(manifest["activations"]["file"])
        for leftover in self.folder.iterdir():  # an interrupted save's files
            if leftover.name not in named:
                _remove(leftover)
        self.manifest = manifest
        return ResumePoint(manifest["done"], manifest["n_blocks"], activations, manifest.get("state", {}))

    def _read(self, entry: dict) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        path = self.folder / entry["file"]
        try:
            tensors = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - whatever safetensors says about a damaged file
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise _Unusable(f"{entry['file']} is unreadable ({text})") from None
        if tensors_digest(tensors) != entry["digest"]:
            raise _Unusable(f"{entry['file']} is damaged (its tensors do not match their digest)")
        return tensors

    def block_tensors(self, index: int) -> dict[str, torch.Tensor]:
        """A finished block's output tensors, for the writer (verified when the checkpoint was opened)."""
        from safetensors.torch import load_file

        return load_file(str(self.folder / self.manifest["blocks"][index]["file"]))

    # -- saving -------------------------------------------------------------------------------
    def save(self, index: int, tensors: dict[str, torch.Tensor], activations: list[torch.Tensor] | None,
             state: dict) -> None:
        """Block `index` is finished: its output tensors, the inputs of the next block (None when
        there are none to keep) and the job's bookkeeping become the new checkpoint."""
        if index != self.done:
            raise ValueError(f"block {index} finished, but the checkpoint holds {self.done} blocks")
        self.folder.mkdir(parents=True, exist_ok=True)
        block = self._write(f"block-{index:05d}.safetensors", tensors)
        act = None
        if activations is not None:
            act = self._write(f"activations-{index + 1:05d}.safetensors",
                              {f"batch.{b:05d}": t for b, t in enumerate(activations)})
        previous = (self.manifest or {}).get("activations")
        manifest = {"key": self.key, "done": index + 1, "n_blocks": self.n_blocks,
                    "blocks": [*(self.manifest or {}).get("blocks", []), block], "activations": act, "state": state}
        _write_bytes(self.folder / MANIFEST, json.dumps(manifest, indent=1).encode())
        self.manifest = manifest
        if previous:  # only now: until the manifest moved on, the previous activations were the checkpoint
            _remove(self.folder / previous["file"])

    def _write(self, name: str, tensors: dict[str, torch.Tensor]) -> dict:
        from safetensors.torch import save_file

        tensors = {k: t.detach().cpu().contiguous() for k, t in tensors.items()}
        path = self.folder / name
        temp = path.with_name(f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        try:  # written straight to the file: no second copy of the activations in memory
            save_file(tensors, str(temp))
            _fsync(temp)
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return {"file": name, "digest": tensors_digest(tensors), "bytes": path.stat().st_size}

    # -- ending -------------------------------------------------------------------------------
    def discard(self) -> None:
        _remove(self.folder)
        self.manifest = None

    def bytes_on_disk(self) -> int:
        if not self.folder.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())

    def kept_note(self) -> str | None:
        """What a cancelled or failed run leaves for the next one, or None when nothing is kept."""
        if not self.done:
            return None
        return (f"{self.done}/{self.n_blocks} blocks are kept in {self.folder}: the same conversion continues "
                f"from block {min(self.done + 1, self.n_blocks)} (--restart starts over)")


class _Unusable(Exception):
    """Why a checkpoint cannot be used (one line)."""


def _normal(value):
    """As JSON would read it back (tuples become lists), so keys compare equal across runs."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _has_progress(manifest) -> bool:
    return (isinstance(manifest, dict) and isinstance(manifest.get("done"), int)
            and isinstance(manifest.get("n_blocks"), int) and 0 < manifest["done"] <= manifest["n_blocks"])


def _difference(old: dict, new: dict) -> str:
    """Which part of the key changed, in words."""
    if old.get("source") != new.get("source"):
        return "the source model's files changed since"
    if old.get("windows") != new.get("windows"):
        return "the calibration windows differ (samples, length, seed or text)"
    if old.get("settings") != new.get("settings"):
        a, b = old.get("settings") or {}, new.get("settings") or {}
        name = next((k for k in sorted({*a, *b}) if a.get(k) != b.get(k)), "?")
        return f"the settings differ ({name}: {a.get(name)} then, {b.get(name)} now)"
    if old.get("versions") != new.get("versions"):
        return "the software that computes the blocks changed (versions)"
    name = next((k for k in sorted({*old, *new}) if old.get(k) != new.get(k)), "?")
    return f"it was made for another run ({name} differs)"


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_bytes(path: Path, data: bytes) -> None:
    """Temporary name, flushed to the disk, renamed: a reader (or a kill) sees the old file or the new."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temp.write_bytes(data)
        _fsync(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    """On the disk before the rename, so that a power cut cannot leave a renamed but empty file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# -- what the facade asks without running a job ----------------------------------------------
def progress(target: Path) -> tuple[int, int] | None:
    """(finished blocks, blocks) of the checkpoint beside `target`, or None when there is none."""
    manifest = _read_json(resume_folder(target) / MANIFEST)
    return (manifest["done"], manifest["n_blocks"]) if _has_progress(manifest) else None


def discard(target: Path) -> bool:
    folder = resume_folder(target)
    existed = folder.exists()
    _remove(folder)
    return existed
