"""The Hub client against a fake hub on 127.0.0.1: search, files with format, quantization and fit,
resumable and verified downloads into the shared cache, and one line when offline or unreachable."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest

from bitsmith.engine.cancel import CancelToken
from bitsmith.engine.cli import run
from bitsmith.engine.config import HubSettings
from bitsmith.engine.errors import Cancelled, InvalidInput, NotEnoughDisk
from bitsmith.engine.events import Progress, run_job
from bitsmith.engine.hub import HubUnavailable, download, repo_files, search
from bitsmith.engine.hub.fit import estimate_fit
from tests.fixtures.fake_hub import COMMIT, FakeHub

CHUNK = 64 * 1024
BIG = bytes(range(256)) * (12 * 1024)  # 3 MiB: 48 chunks, so a download can be stopped half way
REPOS = {
    "acme/Tiny-GGUF": {"tiny.Q4_K_M.gguf": BIG, "tiny.Q8_0.gguf": b"\x01" * 5000, "README.md": b"# tiny\n"},
    "acme/tiny-gptq": {"model.safetensors": b"\x02" * 8000, "config.json": b"{}", "pytorch_model.bin": b"\x03" * 10},
    "other/unrelated": {"notes.txt": b"hello"},
}


@pytest.fixture()
def hub(monkeypatch):
    from huggingface_hub import constants

    # conftest turns the Hub off for every test; these talk to the fake one only.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", CHUNK)
    with FakeHub(REPOS, tags={"acme/tiny-gptq": ["gptq", "4-bit"]}) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def test_search_finds_models_by_name(hub):
    found = search("tiny")
    assert [m.repo for m in found] == ["acme/Tiny-GGUF", "acme/tiny-gptq"]
    assert found[1].tags == ("gptq", "4-bit") and found[0].library == "gguf"
    assert search("nothing-like-this") == []


def test_files_show_size_format_quantization_and_fit(hub):
    gguf = repo_files("acme/Tiny-GGUF")
    by_name = {f.name: f for f in gguf.files}
    assert gguf.revision == COMMIT and gguf.total_bytes == len(BIG) + 5000 + 7
    q4 = by_name["tiny.Q4_K_M.gguf"]
    assert (q4.size, q4.format, q4.quant, q4.sha256) == (len(BIG), "gguf", "Q4_K_M", hashlib.sha256(BIG).hexdigest())
    assert by_name["tiny.Q8_0.gguf"].quant == "Q8_0" and by_name["README.md"].format == "other"
    assert q4.fit is not None and q4.fit.verdict == "fits"  # 3 MB of weights fits any machine that runs the tests
    gptq = repo_files("acme/tiny-gptq")
    assert gptq.quant == "gptq" and gptq.folder_fit is not None
    assert any("pickle" in n for n in gptq.notes)
    assert {f.name: f.format for f in gptq.files}["pytorch_model.bin"] == "pickle"


def test_fit_verdicts_follow_the_memory_figures():
    gib = 1024**3
    # 4 GiB of GGUF weights need 4 GiB * 1.15 + 300 MiB = ~4.9 GiB.
    assert estimate_fit(4 * gib, "gguf", True, available=8 * gib, total=16 * gib).verdict == "fits"
    assert estimate_fit(4 * gib, "gguf", True, available=4 * gib, total=16 * gib).verdict == "tight"
    assert estimate_fit(4 * gib, "gguf", True, available=2 * gib, total=4 * gib).verdict == "too big"
    # float16 safetensors are loaded as float32 on the CPU: twice the file size before the allowance.
    assert estimate_fit(4 * gib, "safetensors", False, 8 * gib, 16 * gib).needed_bytes > 8 * gib


def test_a_cancelled_download_resumes_where_it_stopped_and_lands_in_the_shared_cache(hub):
    token = CancelToken()

    def stop_half_way(ev):
        if isinstance(ev, Progress) and ev.stage == "download" and ev.step >= len(BIG) // 2:
            token.cancel()

    with pytest.raises(Cancelled):
        run_job(download("acme/Tiny-GGUF", ["*Q4_K_M*"], cancel=token), stop_half_way)
    partial = list(Path(hub_cache()).rglob("*.incomplete"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < len(BIG)
    kept = partial[0].stat().st_size
    hub.requests.clear()
    steps = []
    result = run_job(download("acme/Tiny-GGUF", ["tiny.Q4_K_M.gguf"]),
                     lambda ev: steps.append(ev.step) if isinstance(ev, Progress) and ev.stage == "download" else None)
    gets = [r for r in hub.requests if r[0] == "GET" and "/resolve/" in r[1]]
    assert gets == [("GET", f"/acme/Tiny-GGUF/resolve/{COMMIT}/tiny.Q4_K_M.gguf", f"bytes={kept}-")]
    assert steps[0] == kept and steps[-1] == len(BIG)  # progress counts the resumed part as done
    assert result.files[0].read_bytes() == BIG and not list(Path(hub_cache()).rglob("*.incomplete"))
    # Other tools find it where huggingface_hub puts things, with no network.
    from huggingface_hub import hf_hub_download

    cached = hf_hub_download("acme/Tiny-GGUF", "tiny.Q4_K_M.gguf", cache_dir=hub_cache(), local_files_only=True)
    assert Path(cached).read_bytes() == BIG
    from bitsmith.engine.catalog.sources import hf_cache  # the catalog's own walk of the cache

    assert [c.name for c in hf_cache()] == ["acme/Tiny-GGUF/tiny.Q4_K_M.gguf"]


def hub_cache() -> str:
    import os

    return os.environ["HF_HUB_CACHE"]


def test_a_file_that_does_not_match_its_checksum_is_removed(hub):
    hub.corrupt.add(("acme/Tiny-GGUF", "tiny.Q8_0.gguf"))
    with pytest.raises(InvalidInput, match="does not match the hub's checksum"):
        run_job(download("acme/Tiny-GGUF", ["tiny.Q8_0.gguf"]))
    assert not any(p.is_file() and p.stat().st_size == 5000 for p in Path(hub_cache()).rglob("*"))
    hub.corrupt.clear()
    assert run_job(download("acme/Tiny-GGUF", ["tiny.Q8_0.gguf"])).files[0].read_bytes() == b"\x01" * 5000


def test_disk_space_is_checked_before_anything_is_fetched(hub, monkeypatch):
    from bitsmith.engine import fsutil

    monkeypatch.setattr(fsutil, "free_bytes", lambda _path: 1000)
    with pytest.raises(NotEnoughDisk):
        run_job(download("acme/Tiny-GGUF", ["tiny.Q4_K_M.gguf"]))
    assert not [r for r in hub.requests if "/resolve/" in r[1]]


def test_choosing_files(hub):
    with pytest.raises(InvalidInput, match="has 2 GGUF files"):
        run_job(download("acme/Tiny-GGUF"))
    with pytest.raises(InvalidInput, match="no file matches"):
        run_job(download("acme/Tiny-GGUF", ["*.safetensors"]))
    result = run_job(download("acme/tiny-gptq"))  # a whole folder, but never the pickle file
    assert sorted(p.name for p in result.files) == ["config.json", "model.safetensors"]
    assert (result.folder / "config.json").read_bytes() == b"{}"
    with pytest.raises(InvalidInput, match="no such repository"):
        repo_files("acme/missing")


def test_offline_or_unreachable_is_one_line(capsys, monkeypatch):
    with pytest.raises(HubUnavailable, match="offline mode is on"):  # the test suite runs offline
        search("tiny")
    assert run(["hub", "search", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bitsmith: error: the Hugging Face Hub is off") and err.count("\n") == 1
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(HubUnavailable, match="cannot be reached"):
        search("tiny", settings=HubSettings(endpoint=closed, timeout_s=2))
    assert run(["hub", "files", "acme/x", "--endpoint", closed]) == 2
    assert "cannot be reached" in capsys.readouterr().err


def test_the_hub_commands(hub, capsys):
    assert run(["hub", "search", "tiny"]) == 0
    assert "acme/tiny-gptq" in capsys.readouterr().out
    assert run(["hub", "files", "acme/Tiny-GGUF", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {f["name"]: f["quant"] for f in listing["files"]}["tiny.Q8_0.gguf"] == "Q8_0"
    assert run(["hub", "download", "acme/Tiny-GGUF", "--file", "tiny.Q8_0.gguf", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert Path(out["files"][0]).read_bytes() == b"\x01" * 5000 and out["revision"] == COMMIT
