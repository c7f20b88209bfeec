"""Typed errors read plainly; unexpected ones are logged with their traceback; cancels are silent."""

from __future__ import annotations

from bitsmith.engine.errors import Cancelled, InvalidInput
from bitsmith.gui.app import configure_logging
from bitsmith.gui.errors import describe, log_file, show_error


def test_engine_errors_are_shown_plainly(qtbot, app_settings):
    box = show_error(None, InvalidInput("m.gguf: truncated GGUF file", suggestion="download it again"), "tb")
    assert box.windowTitle() == "Invalid input"
    assert box.text() == "m.gguf: truncated GGUF file (download it again)"
    box.close()


def test_a_cancel_is_not_an_error(qtbot, app_settings):
    assert show_error(None, Cancelled("cancelled by the user")) is None


def test_unexpected_errors_are_logged_with_the_log_path(qtbot, app_settings):
    configure_logging()
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError as exc:
        import traceback

        title, message, details = describe(exc, traceback.format_exc())
    assert title == "Unexpected error" and str(log_file()) in message and "ZeroDivisionError" in message
    text = log_file().read_text()
    assert "boom" in text and "Traceback" in text


def test_no_display_is_one_line_not_a_crash(monkeypatch, capsys):
    from bitsmith.gui.app import no_display_reason, run_app

    assert no_display_reason({"DISPLAY": ":0"}) is None and no_display_reason({"QT_QPA_PLATFORM": "offscreen"}) is None
    monkeypatch.setattr("sys.platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert run_app([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no display" in err and "bitsmith --help" in err


def test_a_failed_conversion_is_shown_in_a_dialog_over_the_convert_area(qtbot, app_settings, tmp_path):
    from bitsmith.engine.config import QuantizeConfig
    from bitsmith.gui.conversion_queue import ConversionQueue
    from bitsmith.gui.convert_area import ConvertArea

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 20)  # a truncated header
    queue = ConversionQueue()
    area = ConvertArea(queue)
    qtbot.addWidget(area)
    area.show()
    with qtbot.waitSignal(queue.finished, timeout=60000):
        entry = queue.add(QuantizeConfig(broken, tmp_path / "out.gguf", "gguf", gguf_type="Q8_0"), "broken")
    assert entry.status == "failed"
    qtbot.waitUntil(lambda: getattr(area, "error_box", None) is not None, timeout=5000)
    assert "broken.gguf" in area.error_box.text() and area.error_box.windowTitle()
    area.error_box.close()
    assert list(tmp_path.iterdir()) == [broken]
