"""Configs, cancel tokens, events, device choice and safe outputs."""

from __future__ import annotations

import pytest

from bitsmith.engine.cancel import CancelToken
from bitsmith.engine.config import Device, GGUFType, Method, QuantizeConfig, parse_enum
from bitsmith.engine.device import resolve_device
from bitsmith.engine.errors import Cancelled, EngineError, InvalidInput, NotEnoughDisk
from bitsmith.engine.events import Collected, Done, EtaClock, Log, Progress, run_job
from bitsmith.engine.fsutil import PARTIAL_PREFIX, check_disk, staged_output


def test_enums_parse_user_text_and_list_choices():
    assert parse_enum(Method, "GPTQ", "method") is Method.GPTQ
    assert parse_enum(GGUFType, "q4_k_m", "GGUF type") is GGUFType.Q4_K_M
    with pytest.raises(InvalidInput, match="unknown method 'zip'.*gguf, gptq"):
        parse_enum(Method, "zip", "method")


def test_quantize_config_is_frozen_and_validated(tmp_path):
    cfg = QuantizeConfig(source=tmp_path, out=tmp_path / "o", method="gptq", bits=3)
    assert cfg.method is Method.GPTQ and cfg.device is Device.AUTO
    with pytest.raises(Exception):
        cfg.bits = 4  # frozen
    with pytest.raises(InvalidInput, match="5"):
        QuantizeConfig(source=tmp_path, out=tmp_path / "o", method="gptq", bits=5)
    with pytest.raises(InvalidInput, match="group size"):
        QuantizeConfig(source=tmp_path, out=tmp_path / "o", method="rtn", group_size=48)


def test_imatrix_defaults_on_for_four_bits_and_fewer(tmp_path):
    def cfg(t, **kw):
        return QuantizeConfig(source=tmp_path, out=tmp_path / "o", method="gguf", gguf_type=t, **kw)

    assert cfg("Q4_K_M").use_imatrix and cfg("Q2_K").use_imatrix
    assert not cfg("Q8_0").use_imatrix and not cfg("F16").use_imatrix
    assert not cfg("Q4_K_M", imatrix=False).use_imatrix


def test_cancel_token_raises_cancelled_once_set():
    token = CancelToken()
    token.check()
    token.cancel()
    assert token.cancelled
    with pytest.raises(Cancelled):
        token.check()
    assert isinstance(Cancelled("x"), EngineError)


def test_errors_are_one_line_with_suggestion():
    err = InvalidInput("bad\nthing", suggestion="do this")
    assert str(err) == "bad thing (do this)"


def test_eta_clock_and_run_job_collect_events():
    def job():
        clock = EtaClock(3, "work")
        for i in range(1, 4):
            yield clock.progress(i, f"item {i}")
        yield Log("finished")
        yield Done(42)

    seen = Collected()
    assert run_job(job(), seen) == 42
    progress = seen.of(Progress)
    assert [p.step for p in progress] == [1, 2, 3] and progress[-1].fraction == 1.0
    assert progress[-1].eta_s == pytest.approx(0.0, abs=1e-6)
    assert seen.of(Log)[0].message == "finished"


def test_auto_device_is_reported_with_a_reason():
    choice = resolve_device("auto")
    assert choice.reason and choice.name
    import torch

    if not torch.cuda.is_available():
        assert choice.device is Device.CPU and "CPU" in choice.reason
        with pytest.raises(InvalidInput, match="CUDA was requested"):
            resolve_device("cuda")


def test_staged_output_renames_only_when_complete(tmp_path):
    target = tmp_path / "out-model"
    with staged_output(target, is_dir=True) as temp:
        assert temp.name.startswith(PARTIAL_PREFIX) and temp.is_dir()
        (temp / "config.json").write_text("{}")
        assert not target.exists()
    assert (target / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out-model"]


@pytest.mark.parametrize("error", [Cancelled("stop"), RuntimeError("boom")])
def test_staged_output_leaves_nothing_on_error_or_cancel(tmp_path, error):
    target = tmp_path / "model.gguf"
    with pytest.raises(type(error)):
        with staged_output(target, is_dir=False) as temp:
            temp.write_bytes(b"GGUF partial")
            raise error
    assert list(tmp_path.iterdir()) == []


def test_staged_output_refuses_existing_target_unless_overwrite(tmp_path):
    target = tmp_path / "m.gguf"
    target.write_bytes(b"old")
    with pytest.raises(InvalidInput, match="already exists"):
        with staged_output(target, is_dir=False):
            pass
    with staged_output(target, is_dir=False, overwrite=True) as temp:
        temp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"]


def test_staged_output_sweeps_leftovers_of_a_crash_but_not_live_writers(tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{PARTIAL_PREFIX}{dead.stdout.strip()}-abcd-dead-model"
    stale.mkdir()
    live = tmp_path / f"{PARTIAL_PREFIX}{os.getpid()}-abcd-being-written"
    live.mkdir()
    with staged_output(tmp_path / "new", is_dir=True):
        pass
    assert not stale.exists() and live.exists()


def test_disk_check_names_folder_and_sizes(tmp_path):
    check_disk(tmp_path / "x", 1024)
    with pytest.raises(NotEnoughDisk, match=str(tmp_path)):
        check_disk(tmp_path / "x", 10**18)
