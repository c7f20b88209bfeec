"""Issue 18's conversion problems on a real (tiny) conversion in a child process: the memory graph
follows that process (problem 6), quitting asks and never blocks (7), the Convert area's statuses,
percentages, notification and history after a restart (13), and errors that name the log (11)."""

from __future__ import annotations

import os

from bitsmith.engine import api
from bitsmith.engine.api import EngineError, GGUFType, Method, QuantizeConfig
from bitsmith.gui import notify
from bitsmith.gui.conversion_queue import DONE, QUEUED, ConversionQueue, QueueEntry
from bitsmith.gui.convert_area import ConvertArea, Past
from bitsmith.gui.errors import describe, log_file
from bitsmith.gui.main_window import MainWindow


def _cfg(src, out):
    return QuantizeConfig(source=src, out=out, method=Method.GGUF, gguf_type=GGUFType.Q8_0)


def test_overall_progress_counts_each_stage_once_and_never_goes_back(tiny_llama_dir, tmp_path):
    """Problem 13: a stage seen again ("loading" after "quantize") counted as a new one."""
    e = QueueEntry(_cfg(tiny_llama_dir, tmp_path / "x.gguf"), "x", expected_stages=2)
    e.status = "running"
    seen = []
    for stage, step in (("loading", 1), ("quantize", 1), ("loading", 1), ("quantize", 2), ("evaluate", 1)):
        if stage not in e.stages_seen:
            e.stages_seen.append(stage)
        e.stage, e.step, e.total = stage, step, 2
        seen.append(e.overall_fraction)
    assert seen == sorted(seen) and seen[-1] <= 1.0 and len(e.stages_seen) == 3


def test_quitting_during_a_conversion_asks_then_closes_without_blocking(qtbot, app_settings, tiny_llama_dir,
                                                                        tmp_path, monkeypatch):
    """Problems 6, 7 and 13 on one real conversion (the tiny model to Q8_0, in a child process)."""
    monkeypatch.setattr(notify, "NOTIFY_AFTER_S", 0.0)
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: not w.browser.is_scanning(), timeout=60000)
    src = api.inspect(tiny_llama_dir)
    wizard = w.open_wizard(src)
    first = w.queue.add(_cfg(tiny_llama_dir, tmp_path / "first.gguf"), "tiny → first")
    second = w.queue.add(_cfg(tiny_llama_dir, tmp_path / "second.gguf"), "tiny → second")
    area = w.convert_page
    row = area.rows.index(second)
    assert second.status == QUEUED and "Queued" in area.table.item(row, 1).text()
    assert area.table.cellWidget(row, 2).format() == "waiting"  # not "Waiting 0 %"

    # Problem 6: the process doing the work is the child, and the graph follows it.
    qtbot.waitUntil(lambda: first.pid is not None, timeout=60000)
    assert first.pid != os.getpid()
    wizard.page_run.entry = first
    wizard.page_run._on_changed(first)
    assert wizard.page_run.memory.sampler.pid == first.pid

    # Problem 13: the user is told. The notice follows the queue's `finished`, which comes once the
    # worker's thread has stopped, a moment after the status changed: wait for the notice itself.
    qtbot.waitUntil(lambda: ("Conversion finished", "tiny → first") in w.notifier.sent, timeout=180000)
    assert first.status == DONE, first.log

    # Problem 7: quitting while the second runs asks first; "no" keeps everything going.
    qtbot.waitUntil(lambda: second.pid is not None, timeout=60000)
    asked = []
    monkeypatch.setattr(w, "confirm_quit", lambda entry: asked.append(entry) or False)
    w.close()
    assert asked == [second] and w.isVisible() and second.status == "running"
    monkeypatch.setattr(w, "confirm_quit", lambda entry: asked.append(entry) or True)
    w.close()  # returns at once: the window stays responsive while the child cleans up
    assert w.isVisible() and len(asked) == 2
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=90000)
    assert second.status == "cancelled" and not (tmp_path / "second.gguf").exists()

    # Problem 13: after a restart the Convert area still lists them, with the report card of the output.
    fresh = ConvertArea(ConversionQueue())
    qtbot.addWidget(fresh)
    past = [r for r in fresh.rows if isinstance(r, Past)]
    statuses = {r.output.name: r.status for r in past}
    assert statuses.get("first.gguf") == "done" and statuses.get("second.gguf") == "cancelled"
    fresh.table.selectRow(fresh.rows.index(next(r for r in past if r.output.name == "first.gguf")))
    assert "Output: " in fresh.log.toPlainText() and "Size:" in fresh.log.toPlainText()
    assert fresh.chat_button.isEnabled()


def test_errors_name_the_log_file_and_are_written_to_it(qtbot, app_settings):
    """Problem 11: "see the log file" without its path, and an empty log."""
    from bitsmith.gui.app import configure_logging

    configure_logging()
    title, message, _ = describe(EngineError("the conversion process ended unexpectedly",
                                             suggestion="see the log file; the machine may have run out of memory"),
                                 "Traceback: the child's details")
    assert str(log_file()) in message
    text = log_file().read_text()
    assert "ended unexpectedly" in text and "the child's details" in text
