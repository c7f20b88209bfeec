"""The quantization wizard, driven page by page to a finished GGUF conversion of the tiny model."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWizard

from bitsmith.engine import api
from bitsmith.engine.config import Method
from bitsmith.engine.events import Progress
from bitsmith.gui.conversion_queue import DONE, ConversionQueue
from bitsmith.gui.wizard import ConvertWizard


def _wizard(qtbot, tiny_llama_dir):
    queue = ConversionQueue()
    src = api.inspect(tiny_llama_dir)
    w = ConvertWizard(queue, [src], src)
    qtbot.addWidget(w)
    w.show()
    return w, queue


def _small_calibrated_run(s, out):
    """Settings page: save to `out`, 4 windows of 64 tokens of the built-in text (seconds, not minutes)."""
    s.out.setText(str(out))
    s.advanced.setChecked(True)
    s.calibration.setCurrentIndex(s.calibration.findData("builtin"))
    s.samples.setValue(4)
    s.seq_len.setValue(64)
    return out


def test_wizard_runs_a_gguf_conversion_to_the_end(qtbot, app_settings, tiny_llama_dir, tmp_path):
    w, queue = _wizard(qtbot, tiny_llama_dir)
    assert w.currentPage() is w.page_source and w.page_source.isComplete()
    w.next()
    w.page_method.select(Method.GGUF, "Q8_0")
    w.next()
    assert w.currentPage() is w.page_settings
    out = tmp_path / "tiny-Q8_0.gguf"
    w.page_settings.out.setText(str(out))
    w.next()
    assert w.currentPage() is w.page_plan
    qtbot.waitUntil(w.page_plan.isComplete, timeout=30000)
    plan = w.page_plan.plan
    assert plan.output_bytes > 0 and "Q8_0" in plan.steps[-2] and "evaluate" in plan.steps[-1]
    assert w.button(QWizard.CommitButton).text() == "Convert" and w.button(QWizard.CommitButton).isVisible()

    progress, ticks = [], []
    queue.event.connect(lambda _e, ev: isinstance(ev, Progress) and progress.append(ev))
    timer = QTimer(interval=1)
    timer.timeout.connect(lambda: ticks.append(w.page_run.entry.status if w.page_run.entry else None))
    timer.start()
    w.next()
    assert w.currentPage() is w.page_run
    qtbot.waitUntil(lambda: w.currentPage() is w.page_result, timeout=120000)
    timer.stop()
    entry = w.page_run.entry
    assert entry.status == DONE, entry.error
    assert progress and progress[-1].step == progress[-1].total
    assert "running" in ticks  # the event loop kept turning while the conversion ran
    assert out.is_file() and w.page_result.path == out
    labels = [w.page_result.form.itemAt(i).widget().text() for i in range(w.page_result.form.count())
              if w.page_result.form.itemAt(i).widget()]
    assert "Size:" in labels
    # evaluated against the source on the built-in held-out sample (on by default)
    assert w.page_settings.evaluate.isChecked()
    assert {"Perplexity:", "KL divergence:", "Top-1 agreement:"} <= set(labels)
    assert "evaluation" in (api.inspect(out).report_card or {})
    assert w.page_result.chat_button.isEnabled()
    with qtbot.waitSignal(w.chat_requested) as blocker:
        w.page_result.chat_button.click()
    assert blocker.args == [str(out)]


def test_invalid_settings_are_explained_before_the_run(qtbot, app_settings, tiny_llama_dir):
    w, queue = _wizard(qtbot, tiny_llama_dir)
    w.next()
    w.page_method.select(Method.GGUF, "Q8_0")
    w.next()
    w.page_settings.out.setText("")
    w.page_settings.out.setText("   ")
    w.next()
    assert w.currentPage() is w.page_settings
    assert "save" in w.page_settings.error.text().lower()
    assert queue.entries == []


def test_cancel_from_the_run_page_leaves_no_output(qtbot, app_settings, bundled_gguf, tmp_path, request):
    queue = ConversionQueue()
    request.addfinalizer(queue.shutdown)
    src = api.inspect(bundled_gguf)
    w = ConvertWizard(queue, [src], src)
    qtbot.addWidget(w)
    w.show()
    w.next()
    w.page_method.select(Method.GGUF, "Q8_0")
    w.next()
    out = tmp_path / "cancelled.gguf"
    w.page_settings.out.setText(str(out))
    w.next()
    qtbot.waitUntil(w.page_plan.isComplete, timeout=60000)
    w.next()
    qtbot.waitUntil(lambda: bool(w.page_run.entry.stages_seen), timeout=60000)
    w.page_run.cancel_button.click()
    qtbot.waitUntil(lambda: w.currentPage() is w.page_result, timeout=60000)
    assert w.page_run.entry.status == "cancelled"
    assert "cancelled" in w.page_result.summary.text()
    assert list(tmp_path.iterdir()) == []


def test_wizard_gptq_to_chat(qtbot, app_settings, tiny_llama_dir, tmp_path):
    """The other half of the user's path: GPTQ through the wizard, the report, then chat with it."""
    from bitsmith.gui.main_window import MainWindow

    api.add_model_path(tiny_llama_dir)
    main = MainWindow()
    qtbot.addWidget(main)
    main.show()
    qtbot.waitUntil(lambda: not main.browser.is_scanning(), timeout=30000)
    main.browser.select_path(str(tiny_llama_dir))
    w = main.open_wizard(main.browser.selected_model())
    w.next()
    w.page_method.select(Method.GPTQ)
    w.next()
    out = _small_calibrated_run(w.page_settings, tmp_path / "tiny-GPTQ-4bit")
    w.next()
    qtbot.waitUntil(w.page_plan.isComplete, timeout=30000)
    assert w.page_plan.plan.group_size == 64
    w.next()
    qtbot.waitUntil(lambda: w.currentPage() is w.page_result, timeout=180000)
    assert w.page_run.entry.status == DONE, w.page_run.entry.error
    labels = [w.page_result.form.itemAt(i).widget().text() for i in range(w.page_result.form.count())
              if w.page_result.form.itemAt(i).widget()]
    assert {"Made with:", "Perplexity:", "KL divergence:"} <= set(labels)
    w.page_result.chat_button.click()
    pane = main.chat_page
    assert main.current_area() == "chat"
    qtbot.waitUntil(lambda: pane.session is not None, timeout=60000)
    assert pane.backend.path == str(out)
    pane.max_tokens.setValue(8)
    pane.input.setPlainText("Hello")
    pane.send()
    qtbot.waitUntil(lambda: not pane.is_busy(), timeout=60000)
    assert pane.view.turns[-1].role == "assistant" and pane.view.turns[-1].stats["completion_tokens"] > 0


def test_size_target_for_the_methods_the_engine_can_fit(qtbot, app_settings, tiny_llama_dir, monkeypatch):
    """The settings page offers "Target size" exactly for the methods whose engine description says
    they can fit a size (MethodInfo.size_budget), names the output after the target, converts between
    bits per weight and bytes with the model's parameter count, and the plan shows the fitted size."""
    from bitsmith.engine.api import METHODS, MethodInfo

    w, _queue = _wizard(qtbot, tiny_llama_dir)
    w.next()
    for method, info in METHODS.items():
        if w.page_method.group.buttons()[list(METHODS).index(method)].isEnabled():
            w.page_method.select(method)
            w.next()
            assert w.page_settings.size_target.isEnabled() == info.size_budget, method
            if not info.size_budget:
                assert "GGUF" in w.page_settings.size_target.toolTip()
            w.back()
    # data-driven: a method the engine starts to describe as able gets the control, no GUI list
    monkeypatch.setattr(MethodInfo, "size_budget", property(lambda self: self.method is Method.AWQ))
    w.page_method.select(Method.AWQ)
    w.next()
    assert w.page_settings.size_target.isEnabled()
    monkeypatch.undo()
    w.back()

    # GPTQ under a target: its bits and group size are chosen per layer, so the fixed ones are off
    w.page_method.select(Method.GPTQ)
    w.next()
    page = w.page_settings
    page.advanced.setChecked(True)
    assert page.bits.isEnabled() and page.group_size.isEnabled()
    page.size_target.check.setChecked(True)
    assert not page.bits.isEnabled() and not page.group_size.isEnabled()
    assert "instead of 4-bit everywhere" in page.size_target.equivalent.text()
    page.size_target.check.setChecked(False)
    assert page.bits.isEnabled()
    page.advanced.setChecked(False)  # the Advanced box still disables its rows
    assert not page.bits.isEnabled()
    w.back()

    w.page_method.select(Method.GGUF, "Q4_K_M")
    w.next()
    target = page.size_target
    target.check.setChecked(True)
    target.value.setValue(4.5)
    assert target.target() == (4.5, None)
    assert page.out.text().endswith("-mix-4.5bpw.gguf")  # named after the target, as the engine names it
    params = w.state.source.parameters
    target.unit.setCurrentIndex(target.unit.findText("MB"))  # the same size in MB
    assert target.value.value() == pytest.approx(4.5 * params / 8 / 1e6, abs=0.006)  # shown to 0.01 MB
    bpw, size = target.target()
    assert bpw is None and size == int(target.value.value() * 1e6)
    w.next()
    qtbot.waitUntil(w.page_plan.isComplete, timeout=30000)
    assert w.state.target_bytes == size
    assert w.page_plan.plan.output_bytes == size  # the plan fits the target, and says so
    text = w.page_plan.labels["output"].text()
    assert text.startswith("at most") and f"({8 * size / params:.2f} bits per weight)" in text and "best mix" in text


def test_awq_rounding_is_offered_for_awq_only_and_reaches_the_job(qtbot, app_settings, tiny_llama_dir, tmp_path):
    """The Rounding row shows for AWQ alone; the choice goes into the job's settings and its card."""
    import json

    w, _queue = _wizard(qtbot, tiny_llama_dir)
    w.next()
    form = w.page_settings.advanced.layout()
    for method in (Method.GPTQ, Method.GGUF, Method.RTN):
        w.page_method.select(method, "Q8_0" if method is Method.GGUF else None)
        w.next()
        assert not form.isRowVisible(w.page_settings.awq_rounding), method
        w.back()
    w.page_method.select(Method.AWQ)
    w.next()
    s = w.page_settings
    assert form.isRowVisible(s.awq_rounding) and s.awq_rounding.currentData() == "gptq"
    s.awq_rounding.setCurrentIndex(s.awq_rounding.findData("nearest"))
    out = _small_calibrated_run(s, tmp_path / "tiny-AWQ-4bit")
    w.next()
    assert w.state.to_config().extra == {"awq_rounding": "nearest"}
    qtbot.waitUntil(w.page_plan.isComplete, timeout=30000)
    w.next()
    qtbot.waitUntil(lambda: w.currentPage() is w.page_result, timeout=180000)
    card = json.loads((out / "bitsmith-report.json").read_text())
    assert card["settings"]["awq_rounding"] == "nearest", card["settings"]
