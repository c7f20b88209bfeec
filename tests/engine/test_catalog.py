"""The catalog: real metadata from headers, every source, the cache, and bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from safetensors.torch import save_file

from bitsmith.engine.catalog import Origin, inspect, scan, user_paths
from bitsmith.engine.catalog import readers as readers_mod
from bitsmith.engine.catalog.sources import bundled, hf_cache, lmstudio, ollama, user
from bitsmith.engine.config import ModelFormat
from bitsmith.engine.errors import InvalidInput, UnsupportedModel
from tests.fixtures.tiny_gguf import write_tiny_gguf


def test_bundled_model_has_its_real_metadata(bundled_gguf):
    m = inspect(bundled_gguf)
    assert m.origin is Origin.BUNDLED and "bundled" in m.name
    assert m.format is ModelFormat.GGUF and m.architecture == "llama"
    assert m.dtype == "Q4_1"
    assert m.parameters == 134_515_008  # SmolLM2-135M: the sum of its tensors' elements
    assert m.context_length == 8192 and m.layers == 30 and m.hidden_size == 576
    assert m.has_chat_template
    assert m.size_bytes == os.path.getsize(bundled_gguf)
    assert 5.0 < m.bits_per_weight < 6.0  # Q4_1 is 5 bits; norms are F32, embeddings Q8_0
    assert m.ram_to_chat_bytes > m.size_bytes


def test_hf_folder_metadata_matches_the_weights(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    m = inspect(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    assert m.format is ModelFormat.HF and m.architecture == "LlamaForCausalLM"
    assert m.parameters == sum(p.numel() for p in model.parameters())
    assert m.bits_per_weight == pytest.approx(32.0, abs=0.01)
    assert m.context_length == 512 and m.has_chat_template and m.dtype == "float32"


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_user_paths_are_remembered_and_scanned(tmp_path, tiny_llama_dir):
    folder = tmp_path / "models"
    _copy_model(tiny_llama_dir, folder / "tiny-a")
    (folder / "sub").mkdir()
    write_tiny_gguf(folder / "sub" / "x.gguf")
    user_paths.add(folder)
    assert user_paths.load() == [str(folder.resolve())]
    found = {Path(c.path).name: c for c in user()}
    assert set(found) == {"tiny-a", "x.gguf"}
    models = scan()
    assert models[0].origin is Origin.BUNDLED
    by_name = {Path(m.path).name: m for m in models}
    assert by_name["tiny-a"].format is ModelFormat.HF and by_name["x.gguf"].format is ModelFormat.GGUF
    assert user_paths.remove(folder) and user_paths.load() == []


def test_hf_cache_is_read_through_huggingface_hub(tmp_path, tiny_llama_dir, monkeypatch):
    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny"
    snap = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snap.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snap.name)
    for f in tiny_llama_dir.iterdir():  # blobs plus relative symlinks, as the hub lays them out
        blob = repo / "blobs" / f"blob-{f.name}"
        shutil.copy(f, blob)
        os.symlink(os.path.relpath(blob, snap), snap / f.name)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    cands = list(hf_cache())
    assert [c.name for c in cands] == ["acme/tiny"]
    m = inspect(cands[0].path)
    assert m.format is ModelFormat.HF and m.size_bytes > 0


def test_ollama_and_lmstudio_stores_are_read_in_place(tmp_path, monkeypatch):
    root = tmp_path / "ollama"
    blob = root / "blobs" / ("sha256-" + "ab" * 32)
    blob.parent.mkdir(parents=True)
    write_tiny_gguf(blob)
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "latest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [
        {"mediaType": "application/vnd.ollama.image.license", "digest": "sha256:00"},
        {"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:" + "ab" * 32},
    ]}))
    lms = tmp_path / "lmstudio"
    (lms / "pub" / "repo").mkdir(parents=True)
    write_tiny_gguf(lms / "pub" / "repo" / "m-Q4.gguf")
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    monkeypatch.setenv("LMSTUDIO_MODELS", str(lms))
    o = list(ollama())
    assert [(c.name, c.path) for c in o] == [("tiny:latest", blob)]
    assert [c.path.name for c in lmstudio()] == ["m-Q4.gguf"]
    models = {m.origin: m for m in scan()}
    assert models[Origin.OLLAMA].format is ModelFormat.GGUF and models[Origin.OLLAMA].ok
    assert models[Origin.LMSTUDIO].ok
    assert blob.is_file()  # read in place, never moved


def test_rescan_uses_the_cache_until_a_file_changes(tmp_path, monkeypatch):
    folder = tmp_path / "ggufs"
    folder.mkdir()
    for i in range(5):
        write_tiny_gguf(folder / f"m{i}.gguf")
    user_paths.add(folder)
    calls = []
    real = readers_mod.inspect_path
    monkeypatch.setattr("bitsmith.engine.catalog.scanner.inspect_path", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    first = scan()
    assert len(calls) == 6  # five files and the bundled model
    calls.clear()
    assert [m.to_dict() for m in scan()] == [m.to_dict() for m in first]
    assert calls == []
    write_tiny_gguf(folder / "m3.gguf", chat_template=None)
    os.utime(folder / "m3.gguf", ns=(1, 1))  # a different mtime even on coarse clocks
    again = {Path(m.path).name: m for m in scan()}
    assert calls == [folder / "m3.gguf"] and not again["m3.gguf"].has_chat_template


def test_a_gguf_header_is_parsed_once_per_version_of_the_file(tmp_path, monkeypatch):
    """Scans, chat loads and plans inspect the same files again and again; the header (a Python
    object per vocabulary token) is parsed again only when the file changes. The caller's name and
    origin, and the report card beside the file, are never taken from the kept copy."""
    from bitsmith.engine.reportcard import write_report_card

    path = tmp_path / "m.gguf"
    write_tiny_gguf(path)
    opened = []
    real = readers_mod.read_gguf_header
    monkeypatch.setattr(readers_mod, "read_gguf_header", lambda p: opened.append(p) or real(p))
    first = inspect(path)
    first.unavailable["gptq"] = "changed by a caller"  # a caller's change never reaches the kept copy
    first.name = "renamed by a caller"
    again = readers_mod.inspect_path(path, Origin.OLLAMA, "picked name")
    assert len(opened) == 1
    assert again.name == "picked name" and again.origin is Origin.OLLAMA and again.path == str(path)
    assert "gptq" not in again.unavailable and again.to_dict() != first.to_dict()
    write_report_card(path, {"source": "elsewhere.gguf"})
    assert inspect(path).source == "elsewhere.gguf" and len(opened) == 1
    write_tiny_gguf(path, chat_template=None)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
    assert not inspect(path).has_chat_template and len(opened) == 2
    path.write_bytes(path.read_bytes()[:200])  # a damaged file is read (and refused) every time
    for _ in range(2):
        with pytest.raises(InvalidInput):
            inspect(path)
    assert len(opened) == 4


# --- bad input: one line, naming the file and the problem ------------------------------------

def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_missing_path(tmp_path):
    with pytest.raises(InvalidInput) as e:
        inspect(tmp_path / "nope")
    assert "nope: no such file or folder" in _one_line(e)


def test_folder_without_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput) as e:
        inspect(tmp_path / "empty")
    assert "no config.json" in _one_line(e)


def test_truncated_safetensors(tmp_path, tiny_llama_dir):
    d = _copy_model(tiny_llama_dir, tmp_path / "t")
    st = d / "model.safetensors"
    data = st.read_bytes()
    st.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInput) as e:
        inspect(d)
    assert "model.safetensors: truncated safetensors file" in _one_line(e)


def test_corrupt_safetensors_header(tmp_path, tiny_llama_dir):
    d = _copy_model(tiny_llama_dir, tmp_path / "c")
    (d / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(InvalidInput) as e:
        inspect(d)
    assert "model.safetensors" in _one_line(e)


def test_truncated_and_non_gguf_files(tmp_path, bundled_gguf):
    cut = tmp_path / "cut.gguf"
    with open(bundled_gguf, "rb") as f:
        cut.write_bytes(f.read(5_000_000))
    with pytest.raises(InvalidInput) as e:
        inspect(cut)
    assert "cut.gguf" in _one_line(e) and "truncated" in _one_line(e).lower()
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(InvalidInput, match="notes.txt: not a model"):
        inspect(junk)


def test_unknown_architecture(tmp_path, tiny_llama_dir):
    d = _copy_model(tiny_llama_dir, tmp_path / "u")
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "mystery"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedModel) as e:
        inspect(d)
    assert "config.json: unknown architecture 'mystery'" in _one_line(e)


def test_pickle_only_checkpoint_is_never_loaded(tmp_path, tiny_llama_dir, monkeypatch):
    d = tmp_path / "p"
    d.mkdir()
    shutil.copy(tiny_llama_dir / "config.json", d / "config.json")
    (d / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    import pickle

    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle was loaded"))
    with pytest.raises(InvalidInput) as e:
        inspect(d)
    assert "pytorch_model.bin: pickle checkpoint" in _one_line(e)


def test_scan_keeps_unusable_models_with_their_error(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "broken.gguf").write_bytes(b"GGUF" + b"\x00" * 10)
    user_paths.add(folder)
    broken = [m for m in scan() if m.name == "broken.gguf"]
    assert len(broken) == 1 and broken[0].error and "broken.gguf" in broken[0].error


def test_empty_sources_yield_nothing(monkeypatch, tmp_path):
    assert list(hf_cache()) == [] and list(ollama()) == [] and list(lmstudio()) == []
    assert [c.origin for c in bundled()] == [Origin.BUNDLED]


def test_an_importance_matrix_beside_its_model_is_not_listed(tmp_path):
    write_tiny_gguf(tmp_path / "m-Q4_K_M.gguf")
    write_tiny_gguf(tmp_path / "m-Q4_K_M.imatrix.gguf")
    user_paths.add(tmp_path)
    assert [Path(m.path).name for m in scan() if m.origin is Origin.USER] == ["m-Q4_K_M.gguf"]


def test_gguf_outputs_in_a_folder_are_named_after_the_model_picked(tmp_path):
    from bitsmith.engine.config import QuantizeConfig
    from bitsmith.engine.quant.gguf.job import model_stem, output_path

    gguf = write_tiny_gguf(tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert model_stem(gguf) == "SmolLM2-135M-Instruct" and model_stem(tmp_path) == tmp_path.name
    cached = QuantizeConfig(tmp_path / "cache-import-1234", tmp_path, "gguf", gguf_type="Q8_0",
                            extra={"name": model_stem(gguf)})
    assert output_path(cached) == tmp_path / "SmolLM2-135M-Instruct-Q8_0.gguf"
