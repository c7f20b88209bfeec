"""The GGUF export job as a user meets it: cancelling, disk checks, refusals, and the CLI."""

from __future__ import annotations

import pytest

from bitsmith.engine.cancel import CancelToken
from bitsmith.engine.cli import run
from bitsmith.engine.config import QuantizeConfig
from bitsmith.engine.errors import Cancelled, InvalidInput, NotEnoughDisk, UnsupportedModel
from bitsmith.engine.events import Progress
from bitsmith.engine.fsutil import DISK_MARGIN
from bitsmith.engine.quant import quantize
from bitsmith.engine.quant.gguf import job as gguf_job
from tests.engine.gguf_export_helpers import export


def _cancel_at(stage: str, step: int):
    token = CancelToken()

    def on_event(event):
        if isinstance(event, Progress) and event.stage == stage and event.step >= step:
            token.cancel()

    return token, on_event


@pytest.mark.parametrize("gguf_type,stage,step", [
    ("Q8_0", "convert", 5),  # our kernels writing the final file
    ("Q4_K_M", "imatrix", 1),  # calibration windows through the model
    ("Q4_K_M", "convert", 5),  # the F16 intermediate
    ("Q4_K_M", "quantize", 0),  # inside llama.cpp: stops when it returns
])
def test_cancel_leaves_no_file(tiny_llama_dir, tmp_path, gguf_type, stage, step):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    token, on_event = _cancel_at(stage, step)
    with pytest.raises(Cancelled):
        export(tiny_llama_dir, out_dir / "m.gguf", gguf_type, cancel=token, on_event=on_event)
    assert list(out_dir.iterdir()) == []  # not even a hidden partial or intermediate


def test_cancel_during_llama_cpp_takes_effect_when_it_returns(tiny_llama_dir, tmp_path, monkeypatch):
    import llama_cpp

    real, token = llama_cpp.llama_model_quantize, CancelToken()

    def cancelled_midway(*args):
        token.cancel()  # the user presses Cancel while the C call runs
        return real(*args)

    monkeypatch.setattr(llama_cpp, "llama_model_quantize", cancelled_midway)
    with pytest.raises(Cancelled):
        export(tiny_llama_dir, tmp_path / "m.gguf", "Q5_K_M", cancel=token)
    assert list(tmp_path.iterdir()) == []


def test_not_enough_disk_is_refused_before_any_work(tiny_llama_dir, tmp_path, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("work started despite the disk check")

    monkeypatch.setattr(gguf_job, "export_gguf", must_not_run)
    monkeypatch.setattr(gguf_job, "compute_imatrix", must_not_run)
    monkeypatch.setattr("bitsmith.engine.fsutil.free_bytes", lambda path: 10 * 1024**2)
    with pytest.raises(NotEnoughDisk, match="free but the output needs about"):
        export(tiny_llama_dir, tmp_path / "m.gguf", "Q4_0")
    assert list(tmp_path.iterdir()) == []


def test_k_quants_count_the_intermediate_in_the_disk_estimate(tiny_llama_dir, tmp_path, monkeypatch):
    from bitsmith.engine.config import GGUFType
    from bitsmith.engine.formats.hf_folder import open_hf_folder

    src = open_hf_folder(tiny_llama_dir)
    need_k = gguf_job.estimated_bytes(src, GGUFType.Q4_K_M)
    assert need_k > gguf_job.estimated_bytes(src, GGUFType.Q4_0)  # 64-wide rows: counted at fallback width
    room = DISK_MARGIN + need_k + 1024  # enough for the file, not for the F16 intermediate as well
    monkeypatch.setattr("bitsmith.engine.fsutil.free_bytes", lambda path: room)
    with pytest.raises(NotEnoughDisk):
        export(tiny_llama_dir, tmp_path / "k.gguf", "Q4_K_M")
    assert export(tiny_llama_dir, tmp_path / "legacy.gguf", "Q4_0").out.exists()


def test_existing_output_needs_overwrite(tiny_llama_dir, tmp_path):
    target = tmp_path / "m.gguf"
    target.write_bytes(b"keep me")
    with pytest.raises(InvalidInput, match="already exists"):
        export(tiny_llama_dir, target, "Q8_0")
    assert target.read_bytes() == b"keep me"
    result = export(tiny_llama_dir, target, "Q8_0", extra={"overwrite": True})
    assert result.out == target and target.stat().st_size > 1000


def test_output_folder_gets_a_file_named_after_model_and_type(tiny_llama_dir, tmp_path):
    result = export(tiny_llama_dir, tmp_path, "Q4_1")
    assert result.out == tmp_path / f"{tiny_llama_dir.name}-Q4_1.gguf"


def test_cli_quantizes(tiny_llama_dir, tmp_path, capsys):
    out = tmp_path / "m.gguf"
    assert run(["quantize", str(tiny_llama_dir), "--type", "q4_0", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "bits/weight" in printed and out.exists()


@pytest.mark.parametrize("case", ["missing", "bits", "exists"])
def test_cli_errors_are_one_line_with_status_2(tiny_llama_dir, bundled_gguf, tmp_path, capsys, case):
    out = tmp_path / "m.gguf"
    args = {
        "missing": [str(tmp_path / "nowhere"), "--out", str(out)],
        "bits": [str(tiny_llama_dir), "--method", "gptq", "--bits", "5", "--out", str(out)],
        "exists": [str(tiny_llama_dir), "--out", str(tmp_path)],
    }[case]
    if case == "exists":
        (tmp_path / f"{tiny_llama_dir.name}-Q4_K_M.gguf").write_bytes(b"x")
    assert run(["quantize", *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == ""
    expected = {"missing": "no such file or folder", "bits": "supports 2, 3, 4 or 8 bits",
                "exists": "already exists"}[case]
    assert expected in lines[0]
