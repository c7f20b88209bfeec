"""Downloading from the Hub into the shared Hugging Face cache, as a job: a disk-space check first,
progress in bytes, cancel at any chunk, and every file verified against the hub's checksum.

huggingface_hub resolves the file and moves the bytes (its `http_get`, which sends the Range
header), but since version 1.x its `hf_hub_download` deletes an interrupted file. So the transfer
goes to `blobs/<etag>.incomplete` here, kept across a cancel or a crash, and continues from its
length next time; once verified it becomes `blobs/<etag>` with the snapshot link beside it: the
cache layout huggingface_hub documents, so transformers and the catalog find the file."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import queue
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from ..cancel import NEVER, CancelToken
from ..config import HubSettings
from ..errors import Cancelled, InvalidInput
from ..events import Done, EtaClock, Job, Log, Progress
from ..fsutil import check_disk
from .client import cache_dir, endpoint, hub_errors
from .search import HubFile, RepoFiles, repo_files

HASH_CHUNK = 4 * 1024 * 1024
_END = object()


@dataclass(frozen=True)
class DownloadResult:
    repo: str
    revision: str
    folder: Path  # the snapshot folder in the cache (what the catalog lists and `chat` can open)
    files: tuple[Path, ...]


def choose_files(listing: RepoFiles, patterns: list[str] | None) -> list[HubFile]:
    """The files a download takes: those matching `patterns` (names or globs), else the whole
    repository, except that pickle weights are never taken and a repository of several GGUF files
    needs one chosen (each is a whole model)."""
    files = [f for f in listing.files if f.format != "pickle"]
    if patterns:
        chosen = [f for f in files if any(fnmatch.fnmatchcase(f.name, p) for p in patterns)]
        if not chosen:
            raise InvalidInput(f"{listing.repo}: no file matches {', '.join(patterns)}",
                               suggestion="see the files with 'bitsmith hub files REPO'")
        return chosen
    ggufs = [f for f in files if f.format == "gguf"]
    if len(ggufs) > 1:
        names = ", ".join(f.name for f in ggufs[:4]) + (", ..." if len(ggufs) > 4 else "")
        raise InvalidInput(f"{listing.repo} has {len(ggufs)} GGUF files, each a whole model ({names})",
                           suggestion="choose one with --file NAME")
    return files


def _already_have(folder: Path, f: HubFile) -> int:
    """Bytes of `f` already in the cache: all of it, or the part an interrupted download left."""
    blob_dir = folder / "blobs"
    key = f.sha256 or f.blob_id
    if not key:
        return 0
    for name in (key, key + ".incomplete"):
        try:
            return (blob_dir / name).stat().st_size
        except OSError:
            continue
    return 0


def _repo_folder(repo: str) -> Path:
    return Path(cache_dir()) / ("models--" + repo.replace("/", "--"))


def _verify(path: Path, f: HubFile, cancel: CancelToken) -> None:
    """Against the hub's sha256 (LFS files) or git blob id (small files); a mismatch removes the file,
    so the next try starts over rather than resuming garbage."""
    if f.sha256:
        h, expected = hashlib.sha256(), f.sha256
    elif f.blob_id:  # git's id of a small file: sha1 of "blob <size>\0" and the content
        h, expected = hashlib.sha1(b"blob %d\0" % path.stat().st_size), f.blob_id
    else:
        return
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            cancel.check()
            h.update(chunk)
    if h.hexdigest() != expected:
        path.unlink(missing_ok=True)
        raise InvalidInput(f"{f.name}: the downloaded file does not match the hub's checksum and was removed",
                           suggestion="download it again")


class _Either:
    """Cancelled when either token is."""

    def __init__(self, a: CancelToken, b: CancelToken):
        self.a, self.b = a, b

    @property
    def cancelled(self) -> bool:
        return self.a.cancelled or self.b.cancelled

    def check(self) -> None:
        self.a.check()
        self.b.check()


class _Bar:
    """Stands in for huggingface_hub's tqdm bar: reports bytes and stops the transfer on cancel."""

    def __init__(self, report, cancel: CancelToken, **kw):
        self.report, self.cancel = report, cancel
        self.n = kw.get("initial") or 0
        report(self.n)

    def update(self, n=1) -> None:
        if self.cancel.cancelled:
            raise Cancelled("download cancelled; it resumes where it stopped next time")
        self.n += n or 0
        self.report(self.n)

    def update_transfer(self, n=1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def _link(blob: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        if target.resolve() == blob.resolve():
            return
        target.unlink()
    try:
        os.symlink(os.path.relpath(blob, target.parent), target)
    except OSError:  # no symlinks (Windows without developer mode): the cache then holds a copy
        shutil.copy2(blob, target)


def _fetch(repo: str, f: HubFile, revision: str, settings: HubSettings, report, cancel: CancelToken) -> Path:
    from filelock import FileLock
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    token = settings.token or False
    meta = get_hf_file_metadata(hf_hub_url(repo, f.name, revision=revision, endpoint=endpoint(settings)),
                                token=token, endpoint=endpoint(settings))
    if not meta.etag:
        raise InvalidInput(f"{repo}/{f.name}: the hub did not say which version of the file this is (no ETag)")
    folder = _repo_folder(repo)
    blob = folder / "blobs" / meta.etag
    lock = Path(cache_dir()) / ".locks" / folder.name / f"{meta.etag}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    blob.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):  # the same lock huggingface_hub takes for this blob
        if not blob.exists():
            partial = blob.with_name(blob.name + ".incomplete")
            have = partial.stat().st_size if partial.exists() else 0
            if meta.size is not None and have > meta.size:
                have = 0  # longer than the file: not a prefix of it
            with open(partial, "r+b" if have else "wb") as fh:
                fh.seek(have)
                fh.truncate()
                if meta.size is None or have < meta.size:
                    http_get(meta.location, fh, resume_size=have, headers=build_hf_headers(token=token),
                             expected_size=meta.size, displayed_filename=f.name,
                             tqdm_class=lambda **kw: _Bar(report, cancel, **kw))
            report(None)  # transfer over: verifying
            _verify(partial, f, cancel)
            os.replace(partial, blob)
        target = folder / "snapshots" / (meta.commit_hash or revision) / f.name
        _link(blob, target)
    return target


def _write_ref(folder: Path, name: str, commit: str) -> None:
    """refs/<branch> names the commit, as huggingface_hub writes it, so a later offline lookup of
    the branch (transformers' from_pretrained with no network) finds this snapshot."""
    if name == commit:
        return
    ref = folder / "refs" / name
    ref.parent.mkdir(parents=True, exist_ok=True)
    temp = ref.with_name(f".{ref.name}.tmp")
    temp.write_text(commit)
    os.replace(temp, ref)


def download(repo: str, patterns: list[str] | None = None, settings: HubSettings = HubSettings(),
             cancel: CancelToken = NEVER, revision: str | None = None) -> Job:
    listing = repo_files(repo, settings, revision)
    chosen = choose_files(listing, patterns)
    folder = _repo_folder(repo)
    Path(cache_dir()).mkdir(parents=True, exist_ok=True)
    have = {f.name: min(_already_have(folder, f), f.size or 0) for f in chosen}
    total = sum(f.size or 0 for f in chosen)
    check_disk(Path(cache_dir()) / "download", total - sum(have.values()))
    if any(have.values()):
        yield Log(f"{sum(have.values())} of {total} bytes are already in the cache; downloading the rest")
    clock = EtaClock(max(total, 1), "download")
    done_before, last, paths = 0, -1, []
    for f in chosen:
        cancel.check()
        # A short queue: the transfer waits for the job's consumer, so progress is current and a
        # cancel lands within a chunk or two of where the user pressed it.
        events: queue.Queue = queue.Queue(maxsize=2)
        outcome: list = []
        left = CancelToken()  # set when the consumer stops iterating: the transfer stops too

        def put(item) -> None:
            while not left.cancelled:
                try:
                    events.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def work(f=f):
            try:
                with hub_errors(settings, f"{repo}/{f.name}"):
                    outcome.append(_fetch(repo, f, listing.revision, settings, put, _Either(cancel, left)))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the job's thread below
                outcome.append(exc)
            finally:
                put(_END)

        worker = threading.Thread(target=work, name="bitsmith-download", daemon=True)
        worker.start()
        try:
            while (n := events.get()) is not _END:
                if n is None:
                    yield Progress(0, 1, "verify", f.name)
                else:
                    last = done_before + n
                    yield clock.progress(last, f.name)
        finally:
            left.cancel()
        worker.join()
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        paths.append(outcome[0])
        done_before += f.size or 0
        if last != done_before:  # already in the cache: no transfer reported it
            last = done_before
            yield clock.progress(done_before, f.name)
    _write_ref(folder, revision or "main", listing.revision)
    snapshot = folder / "snapshots" / listing.revision
    yield Done(DownloadResult(repo, listing.revision, snapshot, tuple(paths)))


__all__ = ["download", "choose_files", "DownloadResult"]
