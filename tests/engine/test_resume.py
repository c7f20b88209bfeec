"""Pause and resume of GPTQ, AWQ and RTN in the caller's process: a job cancelled after block k
keeps a checkpoint beside its output, and running the same job again continues from block k + 1 and
writes the very bytes an uninterrupted run writes. A checkpoint made with other settings, other
calibration windows or another source, a damaged one and one the user asked to ignore (restart)
are discarded with one line, and the run starts at block 1. (The real kill of the CLI is in
test_resume_kill.py.)"""

from __future__ import annotations

import json
import os

import pytest

from bitsmith.engine.cancel import CancelToken
from bitsmith.engine.config import QuantizeConfig
from bitsmith.engine.events import Log
from bitsmith.engine.quant import resume
from bitsmith.engine.quant.weight_only.job import quantize_weight_only
from bitsmith.engine.reportcard import read_report_card

from .resume_helpers import LAYERS, build_deep_tiny, logs, model_bytes, run_events, run_until_block
from .weight_only_helpers import one_torch_thread, random_windows  # noqa: F401 - the fixture applies here

WINDOWS = random_windows(8, 32)  # two batches of four: the kept activations are a list of batches


@pytest.fixture(scope="module")
def deep_tiny(tiny_llama_dir, tmp_path_factory):
    return build_deep_tiny(tmp_path_factory.mktemp("deep") / "deep-tiny", tiny_llama_dir)


def _cfg(src, out, method, **kw):
    return QuantizeConfig(source=src, out=out, method=method, **kw)


def _job(src, out, method, windows=WINDOWS, token=None, **kw):
    return quantize_weight_only(_cfg(src, out, method, **kw), windows, token or CancelToken())


def _reference(src, folder, method, windows=WINDOWS, **kw):
    out = folder / f"reference-{method}"
    _, result = run_events(_job(src, out, method, windows, **kw))
    return out, result


CASES = {  # id -> (method, calibration windows, block to stop after)
    "gptq": ("gptq", WINDOWS, 2),
    "awq": ("awq", WINDOWS, 2),
    "rtn": ("rtn", WINDOWS, 1),
    "rtn-uncalibrated": ("rtn", None, 3),  # nothing to keep but the blocks' tensors
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_job_cancelled_at_block_k_resumes_there_and_writes_the_same_bytes(case, deep_tiny, tmp_path):
    method, windows, k = CASES[case]
    reference, ref_result = _reference(deep_tiny, tmp_path, method, windows)
    out = tmp_path / "out"
    token = CancelToken()
    events, cancelled = run_until_block(_job(deep_tiny, out, method, windows, token), token, k)

    folder = resume.resume_folder(out)
    assert not out.exists(), "a cancelled run leaves no output"
    assert f"{k}/{LAYERS} blocks are kept in {folder}" in str(cancelled), str(cancelled)
    assert f"continues from block {k + 1}" in str(cancelled)
    assert resume.progress(out) == (k, LAYERS)
    names = sorted(p.name for p in folder.iterdir())
    assert names.count("manifest.json") == 1 and [n for n in names if n.startswith("block-")] == [
        f"block-{i:05d}.safetensors" for i in range(k)]
    kept = [n for n in names if n.startswith("activations-")]
    assert kept == ([f"activations-{k:05d}.safetensors"] if windows is not None else []), names  # the latest only

    events, result = run_events(_job(deep_tiny, out, method, windows))
    lines = logs(events)
    assert f"resuming at block {k + 1}/{LAYERS}" in " ".join(lines), lines
    assert not any(line.startswith(f"block {i}/") for i in range(1, k + 1) for line in lines), \
        "finished blocks are not quantized again"
    assert model_bytes(out) == model_bytes(reference)
    # What the method recorded for the card survives the pause (state restored from the checkpoint).
    card, ref_card = read_report_card(out), read_report_card(reference)
    assert card["layer_errors"] == ref_card["layer_errors"]
    assert card["block_output_errors"] == ref_card["block_output_errors"]
    assert card["method_details"] == ref_card["method_details"]
    assert card["resumed"]["at_block"] == k + 1 and ref_card["resumed"] is None
    assert result.block_errors == ref_result.block_errors
    assert not folder.exists(), "success removes the checkpoint"


def _checkpoint_after(src, out, method, k, **kw):
    token = CancelToken()
    run_until_block(_job(src, out, method, token=token, **kw), token, k)
    assert resume.progress(out) == (k, LAYERS)


def _one_discard_line(lines):
    found = [line for line in lines if "checkpoint" in line and "discarded" in line]
    assert len(found) == 1, lines
    assert not any("resuming" in line for line in lines), lines
    return found[0]


@pytest.mark.parametrize("change", ["settings", "windows", "source"])
def test_a_checkpoint_made_for_another_run_is_discarded_with_one_line(change, deep_tiny, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(deep_tiny, src)
    out = tmp_path / "out"
    _checkpoint_after(src, out, "gptq", 1, group_size=64)
    kw, windows = {"group_size": 64}, WINDOWS
    if change == "settings":
        kw = {"group_size": 32}
    elif change == "windows":
        windows = random_windows(8, 32, seed=1)
    else:  # the source rewritten since: same size, a newer modification time
        weights = src / "model.safetensors"
        st = weights.stat()
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    events, _ = run_events(_job(src, out, "gptq", windows, **kw))
    line = _one_discard_line(logs(events))
    expected = {"settings": "the settings differ (group_size: 64 then, 32 now)",
                "windows": "the calibration windows differ", "source": "the source model's files changed"}[change]
    assert expected in line and "starting at block 1" in line, line
    assert not resume.resume_folder(out).exists()
    if change == "settings":  # what the discarded blocks would have given is not in the output
        reference, _ = _reference(src, tmp_path, "gptq", group_size=32)
        assert model_bytes(out) == model_bytes(reference)


def test_restart_ignores_the_checkpoint_and_starts_at_block_1(deep_tiny, tmp_path):
    out = tmp_path / "out"
    _checkpoint_after(deep_tiny, out, "gptq", 2)
    events, _ = run_events(_job(deep_tiny, out, "gptq", restart=True))
    lines = logs(events)
    assert any(line.startswith("--restart: the checkpoint of an earlier run (2/4 blocks)") for line in lines), lines
    assert not any("resuming" in line for line in lines)
    assert [line for line in lines if line.startswith("block ")] == [f"block {i}/4 done; checkpoint saved"
                                                                      for i in range(1, 5)]
    assert model_bytes(out) == model_bytes(_reference(deep_tiny, tmp_path, "gptq")[0])


def _flip_a_data_byte(path):
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # inside the last tensor's data, past the JSON header
    path.write_bytes(bytes(data))


DAMAGES = {
    "block-data": (lambda f: _flip_a_data_byte(f / "block-00000.safetensors"),
                   "block-00000.safetensors is damaged"),
    "activations-truncated": (lambda f: (f / "activations-00002.safetensors").write_bytes(
        (f / "activations-00002.safetensors").read_bytes()[:100]), "activations-00002.safetensors is unreadable"),
    "block-missing": (lambda f: (f / "block-00001.safetensors").unlink(), "block-00001.safetensors is unreadable"),
    "manifest-garbage": (lambda f: (f / "manifest.json").write_text("{not json"), "manifest.json is missing or unreadable"),
    "manifest-inconsistent": (lambda f: (f / "manifest.json").write_text(json.dumps(
        {**json.loads((f / "manifest.json").read_text()), "done": 3})), "manifest.json is inconsistent"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_checkpoint_is_discarded_with_one_line_and_the_output_is_still_right(damage, deep_tiny, tmp_path):
    out = tmp_path / "out"
    _checkpoint_after(deep_tiny, out, "gptq", 2)
    hurt, expected = DAMAGES[damage]
    hurt(resume.resume_folder(out))
    events, _ = run_events(_job(deep_tiny, out, "gptq"))
    line = _one_discard_line(logs(events))
    assert expected in line and "\n" not in line, line
    assert model_bytes(out) == model_bytes(_reference(deep_tiny, tmp_path, "gptq")[0])


def test_a_save_interrupted_before_its_manifest_leaves_the_previous_checkpoint(deep_tiny, tmp_path, monkeypatch):
    """The kill in the middle of a save, in-process: block 2's files are written but the manifest
    never moves on (the rename fails as if the process died there). The checkpoint is still the
    one after block 1, and the next run removes the unnamed files and resumes at block 2."""
    out = tmp_path / "out"
    real_replace = os.replace

    def dies_on_the_second_manifest(src, dst):
        if str(dst).endswith("manifest.json") and resume.progress(out) == (1, LAYERS):
            raise KeyboardInterrupt  # what a signal arriving here would raise
        return real_replace(src, dst)

    monkeypatch.setattr(resume.os, "replace", dies_on_the_second_manifest)
    with pytest.raises(KeyboardInterrupt):
        run_events(_job(deep_tiny, out, "gptq"))
    monkeypatch.setattr(resume.os, "replace", real_replace)
    folder = resume.resume_folder(out)
    assert resume.progress(out) == (1, LAYERS)
    assert (folder / "block-00001.safetensors").exists() and (folder / "activations-00002.safetensors").exists()
    (folder / ".manifest.json.deadbeef.tmp").write_text("{")  # a kill leaves its temporary file too

    events, _ = run_events(_job(deep_tiny, out, "gptq"))
    assert "resuming at block 2/4" in " ".join(logs(events))
    assert model_bytes(out) == model_bytes(_reference(deep_tiny, tmp_path, "gptq")[0])


def test_the_checkpoint_counts_in_the_disk_check_and_keeps_one_set_of_activations(deep_tiny, tmp_path, monkeypatch):
    from bitsmith.engine.formats.hf_folder import open_hf_folder
    from bitsmith.engine.formats.quantized_folder import plan_sizes
    from bitsmith.engine.quant.weight_only import job as job_module

    asked = []
    real = job_module.check_disk
    monkeypatch.setattr(job_module, "check_disk", lambda target, needed: (asked.append(needed), real(target, needed)))
    after_each = []
    real_save = resume.BlockCheckpoint.save

    def save(self, index, *args, **kw):
        real_save(self, index, *args, **kw)
        after_each.append({p.name: p.stat().st_size for p in self.folder.iterdir()})

    monkeypatch.setattr(resume.BlockCheckpoint, "save", save)
    run_events(_job(deep_tiny, tmp_path / "out", "gptq"))
    assert len(after_each) == LAYERS
    for i, files in enumerate(after_each):  # the blocks so far, the manifest, the latest activations only
        assert sorted(files) == sorted([f"block-{b:05d}.safetensors" for b in range(i + 1)] + ["manifest.json"]
                                       + ([f"activations-{i + 1:05d}.safetensors"] if i + 1 < LAYERS else []))
    # The disk check asked for the output plus at least what the checkpoint took at its largest.
    planned = sum(size for _, size in plan_sizes(open_hf_folder(deep_tiny), "gptq", 64, 4))
    assert asked[0] - planned >= max(sum(files.values()) for files in after_each), (asked, after_each[-1])


def test_the_cli_flag_restart_reaches_the_settings(tiny_llama_dir, tmp_path):
    from bitsmith.engine.cli import build_parser
    from bitsmith.engine.cli.cmd_quantize import config_from_args

    base = ["quantize", str(tiny_llama_dir), "--method", "gptq", "--out", str(tmp_path / "x")]
    assert config_from_args(build_parser().parse_args(base + ["--restart"])).restart is True
    assert config_from_args(build_parser().parse_args(base)).restart is False


def test_a_pause_ends_as_paused_keeps_the_checkpoint_and_is_recorded_so(deep_tiny, tmp_path):
    # convert() is what the GUI runs: its job history must say "paused", not "cancelled", and the
    # Paused it raises still carries where the run will continue.
    from bitsmith.engine.convert import convert
    from bitsmith.engine.errors import Paused
    from bitsmith.engine.jobs_history import JobHistory

    out = tmp_path / "out"
    token = CancelToken()
    job = convert(_cfg(deep_tiny, out, "rtn"), token)
    with pytest.raises(Paused) as e:
        for event in job:
            if isinstance(event, Log) and event.message.startswith("block 1/"):
                token.pause()
    assert f"1/{LAYERS} blocks are kept" in str(e.value), str(e.value)
    assert resume.progress(out) == (1, LAYERS)
    [record] = [j for j in JobHistory().jobs() if j["output"] == str(out)]
    assert record["status"] == "paused", record
