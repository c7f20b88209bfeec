"""Disk full: the check before starting, and the space running out at any moment of every method.

Two ways to run out: a real size-limited tmpfs filled by "another program" so that the output
cannot fit (after the plan's check has passed, as when something else writes meanwhile), and, where
mounting is not permitted, the writers themselves failing with ENOSPC (or numpy's short write) at a
random call. Either way: one NotEnoughDisk line naming the disk and the space needed, the job
history says "failed", and nothing is left behind, not even a hidden partial or lock file."""

from __future__ import annotations

import errno
import random
import shutil

import pytest

from bitsmith.engine import api, fsutil
from bitsmith.engine.formats import safetensors_shards
from bitsmith.engine.errors import NotEnoughDisk

from .helpers import METHODS, job_history, leftovers, record, run_cli
from .small_disk import fill, tmpfs

GIB = 1024**3


def test_the_margin_shortfall_reads_without_contradiction(tmp_path):
    # The case the issue quotes: the output fits (0.28 < 0.41 GiB) but not with the margin.
    text = fsutil.disk_shortfall(tmp_path, int(0.28 * GIB), int(0.41 * GIB))
    assert "0.41 GiB free" in text and "0.28 GiB" in text and "less than the 0.25 GiB Bitsmith keeps free" in text
    assert "but" not in text  # "has 0.41 free but needs 0.28" was the contradiction
    short = fsutil.disk_shortfall(tmp_path, int(0.5 * GIB), int(0.41 * GIB))
    assert "has 0.41 GiB free but the output needs about 0.50 GiB" in short
    assert fsutil.disk_shortfall(tmp_path, GIB, 2 * GIB) is None


def test_the_plan_warns_before_starting_on_a_small_disk(tiny_llama_dir, tmp_path):
    with tmpfs(tmp_path / "disk", "8m") as disk:
        cfg = METHODS["int8"].config(tiny_llama_dir, disk / "out")
        plan = api.plan(cfg)
        assert not plan.fits
        [warning] = [w for w in plan.warnings if "disk" in w]
        assert str(disk) in warning and "less than the 0.25 GiB Bitsmith keeps free" in warning
        with pytest.raises(NotEnoughDisk, match="free") as refused:
            api.run_job(api.convert(cfg))
        assert "\n" not in str(refused.value)
        assert list(disk.iterdir()) == []


def _assert_clean_failure(exc: NotEnoughDisk, disk, home, out_folder):
    text = str(exc)
    assert "\n" not in text and str(disk) in text, text
    assert "needs about" in text or "keeps free" in text, text
    assert leftovers(out_folder) == set() and not any(p.name.startswith("tiny") for p in out_folder.iterdir())
    assert job_history(home).jobs()[0]["status"] == "failed"


DISK_CASES = [(m, seed) for m in METHODS for seed in range(3)]


def _disk_params():
    for method, seed in DISK_CASES:
        marks = () if seed == 0 else (pytest.mark.reliability,)
        yield pytest.param(method, seed, marks=marks, id=f"{method}-{seed}")


@pytest.mark.parametrize("method,seed", list(_disk_params()))
def test_a_disk_that_fills_up_during_the_write(method, seed, tiny_llama_dir, tmp_path, monkeypatch, _isolated_home):
    case = METHODS[method]
    rng = random.Random(f"disk-{method}-{seed}")
    # The check before starting passes (something else takes the space afterwards): the write
    # itself must then fail cleanly.
    monkeypatch.setattr(fsutil, "disk_shortfall", lambda *args: None)
    with tmpfs(tmp_path / "disk", "4m") as disk:
        out_folder = disk / "models"
        out_folder.mkdir()
        leave = int(rng.uniform(0.0, 0.9) * case.disk_bytes)
        filler = fill(disk, leave)
        free_before = shutil.disk_usage(disk).free
        with pytest.raises(NotEnoughDisk) as failed:
            api.run_job(api.convert(case.config(tiny_llama_dir, out_folder / case.out_name)))
        record("disk-full", method=method, seed=seed, free=free_before, message=str(failed.value))
        _assert_clean_failure(failed.value, disk, _isolated_home, out_folder)
        assert shutil.disk_usage(disk).free == free_before  # every byte written was given back
        filler.unlink()


def _failing(real, fail_at: int, numpy_style: bool):
    """`real` (a function or method), whose `fail_at`-th call writes nothing more and fails as a
    full disk does."""
    calls = [0]

    def writer(*args, **kwargs):
        calls[0] += 1
        if calls[0] >= fail_at:
            if numpy_style:  # what ndarray.tofile raises: no errno, only the counts
                raise OSError("884736 requested and 746192 written")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    return writer


INJECT_CASES = [(m, seed) for m in METHODS for seed in range(2)]


@pytest.mark.parametrize("method,seed", [pytest.param(m, s, id=f"{m}-{s}") for m, s in INJECT_CASES])
def test_an_injected_write_error_is_a_full_disk_too(method, seed, tiny_llama_dir, tmp_path, monkeypatch, _isolated_home):
    """Runs everywhere (no mount needed): the GGUF writer's tensor writes and the safetensors
    shard writes fail at a random call, as ENOSPC (seed 0) or numpy's errno-less short write."""
    import gguf
    import safetensors.torch

    rng = random.Random(f"inject-{method}-{seed}")
    fail_at = rng.randint(1, 3)
    monkeypatch.setattr(gguf.GGUFWriter, "write_tensor_data",
                        _failing(gguf.GGUFWriter.write_tensor_data, fail_at, numpy_style=seed == 1))
    monkeypatch.setattr(safetensors.torch, "save_file", _failing(safetensors.torch.save_file, 1, numpy_style=seed == 1))
    # The shard writer's own writes (engine/formats/safetensors_shards.py assembles each shard).
    monkeypatch.setattr(safetensors_shards, "_copy_bytes", _failing(safetensors_shards._copy_bytes, 1,
                                                                    numpy_style=seed == 1))
    out_folder = tmp_path / "models"
    out_folder.mkdir()
    with pytest.raises(NotEnoughDisk) as failed:
        api.run_job(api.convert(METHODS[method].config(tiny_llama_dir, out_folder / METHODS[method].out_name)))
    record("disk-full-injected", method=method, seed=seed, message=str(failed.value))
    text = str(failed.value)
    assert "\n" not in text and "filled up while writing" in text and str(fsutil.mount_point(out_folder)) in text
    assert list(out_folder.iterdir()) == []
    assert job_history(_isolated_home).jobs()[0]["status"] == "failed"


@pytest.mark.reliability
def test_the_cli_says_one_line_when_another_program_filled_the_disk(tiny_llama_dir, tmp_path):
    """Another program has filled the disk (all but 128 KiB) before `quantize --method gguf --type
    F16` starts: the plan warns, the job refuses before writing, in one line naming the disk and
    its free space, exit 2, nothing left. (Filling it during the run races a job this short; the
    write failing midway is the next test's, made certain by a file size limit.)"""
    case = METHODS["gguf-f16"]
    with tmpfs(tmp_path / "disk", "300m") as disk:
        fill(disk, 128 * 1024)
        out = disk / case.out_name
        done = run_cli(["quantize", str(tiny_llama_dir), *case.args, "--out", str(out)], tmp_path / "home", tmp_path)
        errors = [line for line in done.stderr.splitlines() if line.startswith(("bitsmith:", "Traceback"))]
        warnings = [line for line in done.stderr.splitlines() if line.strip().startswith("warning:") and "free" in line]
        record("disk-full-cli", lines=errors, warnings=warnings)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(errors) == 1 and errors[0].startswith("bitsmith: error:") and str(disk) in errors[0], done.stderr
        assert warnings, "the plan warned before the job started"
        assert sorted(p.name for p in disk.iterdir()) == ["other-program.bin"]


def test_the_gui_shows_a_full_disk_in_one_line(qtbot, qapp, tiny_llama_dir, tmp_path):
    """The window's queue runs conversions in a child process; a disk too small is refused there
    and the dialog shows the one line."""
    from bitsmith.gui.app import create_app
    from bitsmith.gui.conversion_queue import ConversionQueue
    from bitsmith.gui.convert_area import ConvertArea

    create_app([])
    with tmpfs(tmp_path / "disk", "8m") as disk:
        queue = ConversionQueue()
        area = ConvertArea(queue)
        qtbot.addWidget(area)
        area.show()
        with qtbot.waitSignal(queue.finished, timeout=120000):
            entry = queue.add(METHODS["int8"].config(tiny_llama_dir, disk / "tiny-int8"), "tiny int8")
        assert entry.status == "failed"
        qtbot.waitUntil(lambda: getattr(area, "error_box", None) is not None, timeout=5000)
        text = area.error_box.text()
        assert area.error_box.windowTitle() == "Not enough disk space" and str(disk) in text and "\n" not in text
        area.error_box.close()
        assert list(disk.iterdir()) == []


def test_the_cli_says_one_line_when_a_write_fails_midway(tiny_llama_dir, tmp_path):
    """The write itself failing in the middle, deterministically: the kernel refuses to grow any
    file past 64 KiB (RLIMIT_FSIZE), so numpy's tofile in the GGUF writer comes back short, as on
    a disk that fills up during the write."""
    import resource
    import subprocess
    import sys

    from .helpers import child_env

    case = METHODS["gguf-f16"]
    out = tmp_path / "out" / case.out_name
    limit = 64 * 1024

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    code = "import sys; from bitsmith.main import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", code, "quantize", str(tiny_llama_dir), *case.args, "--out", str(out)],
                          env=child_env(tmp_path / "home"), cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, preexec_fn=small_files)
    errors = [line for line in done.stderr.splitlines() if line.startswith(("bitsmith:", "Traceback"))]
    record("disk-full-cli-midway", lines=errors)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1 and str(out) in errors[0] and "needs about" in errors[0], done.stderr
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("method", ["bnb-int8", "bnb-nf4"])
def test_bitsandbytes_on_a_disk_that_fills_up(method, tiny_llama_dir, tmp_path, monkeypatch, _isolated_home):
    """The bitsandbytes methods save through transformers: a full disk there is the same one line,
    and nothing is left behind (on a real small tmpfs; skipped where bitsandbytes cannot run)."""
    from bitsmith.engine.config import QuantizeConfig
    from bitsmith.engine.runtime.bnb_support import bnb_status

    ok, why = bnb_status("cpu", 8 if method == "bnb-int8" else 4)
    if not ok:
        pytest.skip(why)
    monkeypatch.setattr(fsutil, "disk_shortfall", lambda *args: None)
    with tmpfs(tmp_path / "disk", "4m") as disk:
        out_folder = disk / "models"
        out_folder.mkdir()
        filler = fill(disk, 150_000)  # less than the tiny model's 8-bit weights take
        free_before = shutil.disk_usage(disk).free
        with pytest.raises(NotEnoughDisk) as failed:
            api.run_job(api.convert(QuantizeConfig(tiny_llama_dir, out_folder / f"tiny-{method}", method)))
        record("disk-full", method=method, seed=0, free=free_before, message=str(failed.value))
        _assert_clean_failure(failed.value, disk, _isolated_home, out_folder)
        assert shutil.disk_usage(disk).free == free_before
        filler.unlink()
