"""Pause and Resume in the Convert area, on a real GPTQ conversion in a child process (as the window
runs it): Pause stops it after the block in progress and keeps its checkpoint, the row says
"Paused (block k/n)", and Resume queues the same entry again, which continues from that block and
writes the bytes of an uninterrupted run. Cancel on a paused entry removes the checkpoint.

So that the pause lands at a known block on any machine, the child holds after reporting block 1's
checkpoint until the window's cancel flag reaches it (`held_convert`); everything else is the real job."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QObject, Qt, Signal

from bitsmith.engine import api
from bitsmith.engine.api import Method, QuantizeConfig
from bitsmith.engine.quant import resume
from bitsmith.gui import conversion_queue
from bitsmith.gui.conversion_queue import CANCELLED, DONE, PAUSED, ConversionQueue, QueueEntry
from bitsmith.gui.convert_area import ConvertArea
from tests.engine.resume_helpers import LAYERS, build_deep_tiny, model_bytes

TIMEOUT_MS = 300_000  # a hang guard for child processes on a loaded machine, never a timing assertion


def held_convert(cfg, cancel):
    """The real conversion (run in the child process); once block 1's "done; checkpoint saved" line
    has been sent to the window, it waits for the cancel flag, as a slower block 2 would.

    The wait comes after that line is yielded (the child sends each event before asking for the
    next), never inside the checkpoint's save: the line is what the test waits for before pressing
    Pause, so holding before it would only run out the hang guard below."""
    from bitsmith.engine.convert import convert
    from bitsmith.engine.events import Log

    for event in convert(cfg, cancel):
        yield event
        if isinstance(event, Log) and event.message.startswith("block 1/"):
            deadline = time.monotonic() + 120  # a hang guard if the flag never comes, not a timing
            while not cancel.cancelled and time.monotonic() < deadline:
                time.sleep(0.02)


@pytest.fixture
def held(monkeypatch):
    """The queue's conversions run `held_convert` in the child process instead of `convert`."""
    from bitsmith.engine.process_job import run_in_process

    real = api.convert

    def convert(config, cancel=None, *, in_process=False, evaluate_on=None, on_process=None):
        assert in_process and evaluate_on is None
        return run_in_process(held_convert, config, cancel=cancel, on_start=on_process)

    monkeypatch.setattr(api, "convert", convert)
    return real


@pytest.fixture(scope="module")
def deep_tiny(tiny_llama_dir, tmp_path_factory):
    return build_deep_tiny(tmp_path_factory.mktemp("deep") / "deep-tiny", tiny_llama_dir)


def _cfg(src, out):
    return QuantizeConfig(source=src, out=out, method=Method.GPTQ, samples=4, seq_len=32, calibration="builtin")


def _paused_entry(qtbot, area: ConvertArea, queue: ConversionQueue, cfg) -> QueueEntry:
    entry = queue.add(cfg, "deep-tiny → gptq")
    qtbot.waitUntil(lambda: any(line.startswith("block 1/") for line in entry.log) or entry.finished,
                    timeout=TIMEOUT_MS)
    area.table.selectRow(area.rows.index(entry))
    assert entry.status == "running", entry.log
    assert area.pause_button.isEnabled() and not area.resume_button.isEnabled()
    qtbot.mouseClick(area.pause_button, Qt.LeftButton)
    assert not area.pause_button.isEnabled(), "one press is enough"
    qtbot.waitUntil(lambda: entry.status != "running", timeout=TIMEOUT_MS)
    assert entry.status == PAUSED, entry.log
    return entry


def test_pause_keeps_the_finished_block_and_resume_finishes_with_identical_output(qtbot, app_settings, held,
                                                                                   deep_tiny, tmp_path):
    queue = ConversionQueue()
    area = ConvertArea(queue)
    qtbot.addWidget(area)
    finished = []
    queue.finished.connect(finished.append)
    out = tmp_path / "out" / "deep-gptq"
    entry = _paused_entry(qtbot, area, queue, _cfg(deep_tiny, out))

    row = area.rows.index(entry)
    assert area.table.item(row, 1).text() == f"Paused (block 1/{LAYERS})"
    assert resume.progress(out) == (1, LAYERS) and not out.exists()
    assert finished == [], "a paused conversion has not ended"
    assert area.resume_button.isEnabled() and area.cancel_button.isEnabled() and not area.pause_button.isEnabled()
    assert any("Resume continues from block 2" in line for line in entry.log), entry.log

    with qtbot.waitSignal(queue.finished, timeout=TIMEOUT_MS):
        qtbot.mouseClick(area.resume_button, Qt.LeftButton)
    assert entry.status == DONE, entry.log
    assert any(line.startswith(f"resuming at block 2/{LAYERS}") for line in entry.log), entry.log
    assert area.table.item(row, 1).text() == "Done"
    assert not resume.resume_folder(out).exists()

    reference = tmp_path / "reference" / "deep-gptq"
    api.run_job(held(_cfg(deep_tiny, reference), in_process=True))  # the same child process, never paused
    assert model_bytes(out) == model_bytes(reference)


def test_cancel_on_a_paused_conversion_removes_its_checkpoint(qtbot, app_settings, held, deep_tiny, tmp_path):
    queue = ConversionQueue()
    area = ConvertArea(queue)
    qtbot.addWidget(area)
    out = tmp_path / "out" / "deep-gptq"
    entry = _paused_entry(qtbot, area, queue, _cfg(deep_tiny, out))
    assert resume.resume_folder(out).is_dir()

    with qtbot.waitSignal(queue.finished, timeout=10_000):
        qtbot.mouseClick(area.cancel_button, Qt.LeftButton)
    assert entry.status == CANCELLED
    assert not resume.resume_folder(out).exists() and not out.exists()
    assert not area.resume_button.isEnabled() and not area.cancel_button.isEnabled()


def test_only_methods_that_keep_checkpoints_offer_pause(tiny_llama_dir, tmp_path):
    for method, offered in ((Method.GPTQ, True), (Method.AWQ, True), (Method.RTN, True), (Method.GGUF, False),
                            (Method.INT8, False)):
        cfg = QuantizeConfig(source=tiny_llama_dir, out=tmp_path / method.value, method=method)
        assert QueueEntry(cfg, method.value).resumable is offered, method


class _HeldWorker(QObject):
    """A worker whose signals the test sends by hand, so that its thread's `finished` can come well
    after the job's last signal (in a real run the two are separate events, usually close together)."""

    event = Signal(object)
    result = Signal(object)
    errored = Signal(object, str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, make_job, parent=None):
        super().__init__(parent)

    def start(self):
        pass

    def pause(self):
        pass

    def cancel(self):
        pass


@pytest.mark.parametrize("ending", ["paused", "cancelled", "done", "failed"])
def test_the_row_shows_how_a_conversion_ended_before_its_thread_has_stopped(qtbot, app_settings, monkeypatch,
                                                                            tiny_llama_dir, tmp_path, ending):
    monkeypatch.setattr(conversion_queue, "JobWorker", _HeldWorker)
    queue = ConversionQueue()
    area = ConvertArea(queue)
    qtbot.addWidget(area)
    entry = queue.add(_cfg(tiny_llama_dir, tmp_path / "out"), "tiny → gptq")
    worker = queue._worker  # the stand-in above: the queue keeps the one it started
    area.table.selectRow(area.rows.index(entry))
    if ending == "paused":
        qtbot.mouseClick(area.pause_button, Qt.LeftButton)
        worker.cancelled.emit()
    elif ending == "cancelled":
        qtbot.mouseClick(area.cancel_button, Qt.LeftButton)
        worker.cancelled.emit()
    elif ending == "done":
        worker.result.emit(None)
    else:
        worker.errored.emit(RuntimeError("disk full"), "")

    text = area.table.item(area.rows.index(entry), 1).text()
    assert text.startswith({"paused": "Paused", "cancelled": "Cancelled", "done": "Done", "failed": "Failed"}[ending]), text
    assert area.resume_button.isEnabled() is (ending == "paused")
    worker.finished.emit()
    assert queue.is_idle()
