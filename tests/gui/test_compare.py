"""The Compare area and the Evaluate dialog on a real family: the tiny model and its GGUF variants,
converted and evaluated by the engine, listed by the real catalog."""

from __future__ import annotations

import pytest

from bitsmith.engine import api
from bitsmith.engine.evaluation.heldout import heldout_text_path
from bitsmith.engine.config import QuantizeConfig
from bitsmith.engine.events import run_job
from bitsmith.engine.reportcard import read_report_card
from bitsmith.gui.main_window import MainWindow


@pytest.fixture
def tiny_family(tiny_llama_dir, tmp_path):
    """The tiny model (a user folder) with Q8_0 and Q4_0 variants; only Q8_0 evaluated."""
    outs = {}
    for kind in ("Q8_0", "Q4_0"):
        out = tmp_path / f"tiny-{kind}.gguf"
        run_job(api.convert(QuantizeConfig(tiny_llama_dir, out, "gguf", gguf_type=kind, imatrix=False)))
        outs[kind] = out
    run_job(api.evaluate(api.EvalSettings(outs["Q8_0"], heldout_text_path(), source=tiny_llama_dir,
                                          ctx=64, windows=3, save=True)))
    api.add_model_path(tiny_llama_dir)
    api.add_model_path(tmp_path)
    return tiny_llama_dir, outs


def _open(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: not w.browser.is_scanning(), timeout=30000)
    return w


def _form_texts(form):
    """The values as shown, without the zero-width break points long paths get for wrapping."""
    return [form.itemAt(i).widget().text().replace("\u200b", "") for i in range(form.count())
            if form.itemAt(i).widget()]


def test_compare_charts_the_family_from_report_cards(qtbot, app_settings, tiny_family):
    source, outs = tiny_family
    w = _open(qtbot)
    w.browser.select_path(str(outs["Q4_0"]))
    w.browser.compare_requested.emit(w.browser.selected_model())
    page = w.compare_page
    assert w.current_area() == "compare"
    assert page.source_picker.currentData() == str(source)
    assert [p.label for p in page.points] == ["source", "Q4_0", "Q8_0"]  # by size within a generation
    assert page.table.rowCount() == 3
    # Only the evaluated variant is charted; the hint says what to do about the others.
    assert [p.path for p in page.chart.plotted] == [str(outs["Q8_0"])]
    card = read_report_card(outs["Q8_0"])["evaluation"]
    plotted = page.chart.scatter.data[0]
    assert plotted["x"] == pytest.approx(outs["Q8_0"].stat().st_size / 1e6, rel=0.01)
    assert plotted["y"] == pytest.approx(card["perplexity"])
    assert "2 of 3" in page.hint.text()
    page.metric_picker.setCurrentIndex(1)  # KL divergence
    assert page.chart.scatter.data[0]["y"] == pytest.approx(card["kl_divergence"])
    assert page.table.item(2, 6).text() == f"{card['kl_divergence']:.4f}"


def test_evaluate_dialog_saves_figures_that_the_browser_and_compare_show(qtbot, app_settings, tiny_family):
    source, outs = tiny_family
    w = _open(qtbot)
    dialog = w.evaluate_path(str(outs["Q4_0"]))
    assert dialog.reference.currentData() == str(source)  # against what it was made from, by default
    dialog.ctx.setValue(64)
    dialog.windows.setValue(2)
    dialog.start()
    with qtbot.waitSignal(dialog.evaluated, timeout=120000):
        pass
    ev = read_report_card(outs["Q4_0"])["evaluation"]
    assert ev["windows"] == 2 and ev["kl_divergence"] > 0 and ev["source"] == str(source)
    assert any(t.startswith(f"{ev['perplexity']:.3f}") for t in _form_texts(dialog.results))
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=30000)
    dialog.reject()
    qtbot.waitUntil(lambda: not w.browser.is_scanning(), timeout=30000)
    w.browser.select_path(str(outs["Q4_0"]))
    texts = _form_texts(w.browser.details._form)
    assert any(t.startswith(f"{ev['perplexity']:.3f}") for t in texts) and str(source) in texts
    w.browser.select_path(str(source))
    assert any("Q4_0" in t and "Q8_0" in t for t in _form_texts(w.browser.details._form))  # its variants
    w.compare_family(w.browser.selected_model())
    assert len(w.compare_page.chart.plotted) == 2


def test_side_by_side_with_one_seed(qtbot, app_settings, tiny_family):
    """The same model on both sides with the same seed answers the same: the seed reaches both runs."""
    _source, outs = tiny_family
    w = _open(qtbot)
    w.compare_family(api.inspect(outs["Q8_0"]))
    page = w.compare_page
    for picker in (page.pick_a, page.pick_b):
        picker.setCurrentIndex(picker.findData(str(outs["Q8_0"])))
    page.prompt.setPlainText("Tell me about Paris.")
    page.max_tokens.setValue(12)
    page.send()
    assert page.stop_button.isEnabled() and not page.send_button.isEnabled()
    qtbot.waitUntil(lambda: page.worker is None, timeout=120000)
    a, b = page.view_a.turns[-1], page.view_b.turns[-1]
    assert a.text and a.text == b.text
    assert a.stats["completion_tokens"] > 0 and b.stats["completion_tokens"] > 0
    assert "seed 42" in page.status.text()
    # a different model on side B is loaded after A has been closed, and answers too
    page.pick_b.setCurrentIndex(page.pick_b.findData(str(outs["Q4_0"])))
    page.send()
    qtbot.waitUntil(lambda: page.worker is None, timeout=120000)
    assert page.view_b.turns[-1].stats and page.view_b.turns[-1].note.startswith("Q4_0")


def test_the_table_fits_at_1400_px(qtbot, app_settings, tiny_family):
    """Every column inside the table's width, nothing behind a scroll bar; the verdict wraps in full."""
    from PySide6.QtCore import QRect, Qt

    from bitsmith.gui.compare_area import COLUMNS, NAME, VERDICT

    _source, outs = tiny_family
    w = _open(qtbot)
    w.resize(1400, 900)
    w.compare_family(api.inspect(outs["Q8_0"]))
    qtbot.waitUntil(lambda: w.compare_page.table.isVisible())
    qtbot.wait(50)  # the header's resize-to-contents pass runs from the event loop
    table = w.compare_page.table
    widths = [table.columnWidth(c) for c in range(len(COLUMNS))]
    assert sum(widths) <= table.viewport().width()
    assert not table.horizontalScrollBar().isVisible()
    for col in range(len(COLUMNS)):
        if col not in (NAME, VERDICT):  # the figures are never cut
            assert widths[col] >= table.horizontalHeader().sectionSizeHint(col), COLUMNS[col]
    for row in range(table.rowCount()):
        item = table.item(row, VERDICT)
        need = table.fontMetrics().boundingRect(QRect(0, 0, widths[VERDICT] - 8, 10000), Qt.TextWordWrap,
                                                item.text()).height()
        assert table.rowHeight(row) >= need, item.text()  # the whole verdict, wrapped, not elided


def test_compare_colours_the_variants_answer_by_kl(qtbot, app_settings, tiny_family):
    """Source against a variant: the variant's answer is re-read by both models in the worker, and each
    of its tokens shaded by its KL (the source's side is not compared with itself); the Flips column
    is 1 - same top p from the evaluation."""
    from PySide6.QtCore import Qt

    from bitsmith.gui.compare_area import COLUMNS

    from .test_compare_tokens import darkness, shown_tokens

    source, outs = tiny_family
    w = _open(qtbot)
    w.compare_family(api.inspect(outs["Q4_0"]))
    page = w.compare_page
    row = [page.table.item(r, 0).data(Qt.UserRole) for r in range(page.table.rowCount())].index(str(outs["Q8_0"]))
    same = read_report_card(outs["Q8_0"])["evaluation"]["distribution"]["same_top_p"]
    assert page.table.item(row, COLUMNS.index("Flips")).text() == f"{1 - same:.1%}"
    page.pick_a.setCurrentIndex(page.pick_a.findData(str(source)))
    page.pick_b.setCurrentIndex(page.pick_b.findData(str(outs["Q4_0"])))
    page.prompt.setPlainText("Tell me about Paris.")
    page.max_tokens.setValue(12)
    page.send()
    qtbot.waitUntil(lambda: page.worker is None, timeout=120000)
    a, b = page.view_a.turns[-1], page.view_b.turns[-1]
    assert a.html is None and b.html is not None and page.legend.isVisible()
    assert "coloured" in page.status.text() and "mean KL" in b.note
    tokens = shown_tokens(page.view_b)
    assert "".join("".join(t[0] for t in tokens).split()) == "".join(b.text.split())  # the answer, token by token
    kls = [float(t[2].split("KL ")[1].split(" nats")[0]) for t in tokens]
    assert max(kls) > 0  # a 4-bit copy of a random model does disagree somewhere
    order = sorted(range(len(kls)), key=lambda i: kls[i])
    shades = [darkness(tokens[i][1]) for i in order]
    assert shades == sorted(shades)  # darker exactly where the KL is larger
