"""Compare: one source model and its variants. A chart of size on disk against perplexity or KL
divergence (colour: evaluation speed) from their report cards, a table of the same figures, and the
same prompt with the same seed sent to two variants, answers side by side."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QHeaderView, QLabel, QPlainTextEdit, QPushButton,
                               QSpinBox, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from bitsmith.engine.api import (Log, ModelInfo, SamplingSettings, SideAnswer, SidePiece, VariantPoint, family,
                                 root_of, sources_with_variants)

from .chat_view import ChatView, Turn
from .compare_tokens import KLLegend, answers_then_colours, coloured_html, summary
from .errors import show_error
from .figures import metric_value, verdict_of
from .heap import release_model
from .icons import icon
from .terms import tip
from .workers import JobWorker

METRICS = (("perplexity", "Perplexity"), ("kl_divergence", "KL divergence"))
COLUMNS = ("Variant", "Name", "Verdict", "Size", "Bits/weight", "Perplexity", "KL divergence", "Flips", "Eval tok/s")
COLUMN_TERMS = {4: "bits/weight", 5: "perplexity", 6: "kl divergence", 7: "flips", 8: "evaluation speed"}
NAME, VERDICT = 1, 2


class CompareArea(QWidget):
    evaluate_requested = Signal(str)  # path of a variant without figures

    def __init__(self, parent=None):
        super().__init__(parent)
        self.models: list[ModelInfo] = []
        self.points: list[VariantPoint] = []
        self.worker: JobWorker | None = None
        self._warnings: list[str] = []

        self.source_picker = QComboBox()
        self.source_picker.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.source_picker.setMinimumWidth(160)
        self.source_picker.currentIndexChanged.connect(lambda _i: self._show_family())
        self.metric_picker = QComboBox()
        for key, label in METRICS:
            self.metric_picker.addItem(self.tr(label), key)
        self.metric_picker.currentIndexChanged.connect(lambda _i: self._draw())
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel(self.tr("Source model:")))
        top.addWidget(self.source_picker, 1)
        top.addWidget(QLabel(self.tr("Chart:")))
        top.addWidget(self.metric_picker)

        self._chart = None  # created when the area is first shown (pyqtgraph loads then, not at start-up)
        self.chart_box = QWidget()
        self.chart_box.setMinimumHeight(160)
        QVBoxLayout(self.chart_box).setContentsMargins(0, 0, 0, 0)
        self._chart_stale = True
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([self.tr(c) for c in COLUMNS])
        for col, term in COLUMN_TERMS.items():
            self.table.horizontalHeaderItem(col).setToolTip(tip(term))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        # Every column fits the table's width, never behind a scroll bar: the figures take what they
        # need, the name a fixed share (elided in the middle, full path in its tooltip) and the
        # verdict the rest, its words wrapped over as many lines as the row needs.
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(NAME, QHeaderView.Interactive)
        header.setSectionResizeMode(VERDICT, QHeaderView.Stretch)
        header.setStretchLastSection(False)
        header.sectionResized.connect(lambda col, _old, _new: col == VERDICT and self.table.resizeRowsToContents())
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.table.setWordWrap(True)
        self.table.setTextElideMode(Qt.ElideMiddle)
        self.evaluate_button = QPushButton(icon("evaluate"), self.tr("Evaluate selected…"))
        self.evaluate_button.clicked.connect(self._evaluate_selected)
        upper = QSplitter(Qt.Horizontal)
        upper.addWidget(self.chart_box)
        table_box = QWidget()
        tl = QVBoxLayout(table_box)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.table, 1)
        tl.addWidget(self.evaluate_button, 0, Qt.AlignRight)
        upper.addWidget(table_box)
        upper.setSizes([360, 720])

        # side by side
        self.pick_a, self.pick_b = QComboBox(), QComboBox()
        for picker in (self.pick_a, self.pick_b):  # long names must not widen the window
            picker.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            picker.setMinimumContentsLength(12)
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText(self.tr("A prompt for both models"))
        self.prompt.setFixedHeight(60)
        self.seed = QSpinBox(minimum=0, maximum=999999, value=42)
        self.max_tokens = QSpinBox(minimum=1, maximum=4096, value=160)
        self.colour_tokens = QCheckBox(self.tr("Colour tokens by KL"))
        self.colour_tokens.setChecked(True)
        self.colour_tokens.setToolTip(self.tr("After both answer, each answer not written by the source is read "
                                              "again by its model and by the source, and every token is shaded by "
                                              "how far the two disagreed there (a few seconds more)."))
        self.send_button = QPushButton(icon("send"), self.tr("Send to both"))
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton(icon("stop"), self.tr("Stop"))
        self.stop_button.clicked.connect(self.stop)
        self.status = QLabel()
        pickers = QHBoxLayout()
        pickers.addWidget(QLabel(self.tr("A:")))
        pickers.addWidget(self.pick_a, 1)
        pickers.addWidget(QLabel(self.tr("B:")))
        pickers.addWidget(self.pick_b, 1)
        knobs = QHBoxLayout()
        knobs.addWidget(QLabel(self.tr("Seed:")))
        knobs.addWidget(self.seed)
        knobs.addWidget(QLabel(self.tr("Max tokens:")))
        knobs.addWidget(self.max_tokens)
        knobs.addWidget(self.colour_tokens)
        knobs.addStretch(1)
        knobs.addWidget(self.send_button)
        knobs.addWidget(self.stop_button)
        send_row = QVBoxLayout()
        send_row.addWidget(self.prompt, 1)
        send_row.addLayout(knobs)
        self.view_a, self.view_b = ChatView(), ChatView()
        answers = QSplitter(Qt.Horizontal)
        answers.addWidget(self.view_a)
        answers.addWidget(self.view_b)
        lower = QWidget()
        ll = QVBoxLayout(lower)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(pickers)
        ll.addLayout(send_row)
        ll.addWidget(answers, 1)
        self.legend = KLLegend()
        self.legend.hide()  # until an answer is coloured
        ll.addWidget(self.legend)
        ll.addWidget(self.status)

        self.splitter = QSplitter(Qt.Vertical)
        self.splitter.addWidget(upper)
        self.splitter.addWidget(lower)
        self.splitter.setSizes([330, 400])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.hint)
        layout.addWidget(self.splitter, 1)
        self._update_buttons()

    @property
    def chart(self):
        if self._chart is None:
            from .variant_chart import VariantChart

            self._chart = VariantChart()
            self.chart_box.layout().addWidget(self._chart)
        return self._chart

    def showEvent(self, event):
        super().showEvent(event)
        if self._chart_stale:
            self._draw()

    # --- the family ----------------------------------------------------------------------------
    def set_models(self, models: list[ModelInfo]) -> None:
        current = self.source_picker.currentData()
        self.models = [m for m in models if m.ok]
        self.source_picker.blockSignals(True)
        self.source_picker.clear()
        for m in sources_with_variants(self.models):
            self.source_picker.addItem(m.name, m.path)
        self.source_picker.blockSignals(False)
        idx = self.source_picker.findData(current)
        self.source_picker.setCurrentIndex(max(idx, 0))
        self._show_family()

    def show_family_of(self, model: ModelInfo) -> None:
        """Show the family `model` belongs to, whether it is the source or one of the variants."""
        root = root_of(model, self.models)
        if self.source_picker.findData(root.path) < 0:
            self.source_picker.addItem(root.name, root.path)
        self.source_picker.setCurrentIndex(self.source_picker.findData(root.path))
        self._show_family()

    def _show_family(self) -> None:
        path = self.source_picker.currentData()
        root = next((m for m in self.models if m.path == path), None)
        self.points = family(root, self.models) if root else []
        for picker in (self.pick_a, self.pick_b):
            picker.clear()
            for p in self.points:
                picker.addItem(f"{p.label}: {p.name}", p.path)
        if len(self.points) > 1:  # the source against its smallest evaluated-or-not variant
            self.pick_b.setCurrentIndex(min(range(1, len(self.points)), key=lambda i: self.points[i].size_bytes or 0))
        self._fill_table()
        self.table.setColumnWidth(NAME, 150)
        self.table.resizeRowsToContents()
        self._draw()
        self._update_buttons()

    def _draw(self) -> None:
        metric = self.metric_picker.currentData()
        if self.isVisible() or self._chart is not None:
            self.chart.show_points(self.points, metric, self.metric_picker.currentText())
            self._chart_stale = False
        else:
            self._chart_stale = True
        missing = [p for p in self.points if p.perplexity is None]
        if not self.points:
            self.hint.setText(self.tr("No conversions yet. Convert a model; its variants appear here."))
        elif missing:
            self.hint.setText(self.tr("%1 of %2 models have no evaluation yet and are not on the chart: select one "
                                      "and press “Evaluate selected…”.").replace("%1", str(len(missing)))
                              .replace("%2", str(len(self.points))))
        else:
            self.hint.setText(self.tr("Colour: evaluation speed (brighter is faster). Square: the source."))

    def _fill_table(self) -> None:
        self.table.setRowCount(len(self.points))
        for row, p in enumerate(self.points):
            ppl = (f"{p.perplexity:.3f}" + (f" ± {p.perplexity_stderr:.2f}" if p.perplexity_stderr else "")
                   if p.perplexity is not None else self.tr("not evaluated"))
            kl = metric_value(p, "kl_divergence")
            card = next((m.report_card for m in self.models if m.path == p.path), None)
            verdict = (self.tr("the original") if p.generation == 0 else
                       verdict_of(card) or (self.tr("not evaluated against the source") if p.perplexity is not None
                                            else "—"))
            flips = flip_rate(p, card)
            cells = (p.label, p.name, verdict, f"{p.size_bytes / 1e6:.1f} MB" if p.size_bytes else "?",
                     f"{p.bits_per_weight:.2f}" if p.bits_per_weight else "?", ppl,
                     f"{kl:.4f}" if kl is not None else "—", f"{flips:.1%}" if flips is not None else "—",
                     f"{p.tokens_per_second:.0f}" if p.tokens_per_second else "—")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.UserRole, p.path)
                item.setToolTip(verdict if col == 2 else p.path)
                self.table.setItem(row, col, item)

    def _evaluate_selected(self) -> None:
        item = self.table.currentItem()
        if item is not None:
            self.evaluate_requested.emit(item.data(Qt.UserRole))

    # --- side by side --------------------------------------------------------------------------
    def send(self) -> None:
        text = self.prompt.toPlainText().strip()
        paths = [self.pick_a.currentData(), self.pick_b.currentData()]
        if not text or None in paths or self.worker is not None:
            return
        settings = SamplingSettings(seed=self.seed.value(), max_new_tokens=self.max_tokens.value())
        for view, picker in ((self.view_a, self.pick_a), (self.view_b, self.pick_b)):
            view.set_turns([Turn("user", text), Turn("assistant", "", note=picker.currentText())])
        source = self.points[0].path if self.points and self.colour_tokens.isChecked() else None
        self.legend.hide()
        self.worker = JobWorker(lambda token: answers_then_colours(paths, text, settings, source, token), self)
        self.worker.event.connect(self._on_event)
        self.worker.errored.connect(lambda exc, tb: setattr(self, "error_box", show_error(self, exc, tb)))
        self.worker.cancelled.connect(lambda: self.status.setText(self.tr("Stopped.")))
        self._warnings = []  # why an answer was left uncoloured: kept in the final status line
        self.worker.result.connect(lambda _answers: self.status.setText(" ".join(
            [self.tr("Both answered with seed %1.").replace("%1", str(settings.seed))]
            + ([self.tr("Tokens coloured by KL against the source.")] if self.legend.isVisible() else [])
            + self._warnings)))
        self.worker.finished.connect(self._on_finished)
        self._update_buttons()
        self.worker.start()

    def _on_event(self, ev) -> None:
        views = (self.view_a, self.view_b)
        if isinstance(ev, SidePiece):
            views[ev.side].append_to_last(ev.text)
        elif isinstance(ev, SideAnswer):
            view = views[ev.side]
            view.finish_last(ev.answer.text, ev.answer.stats.to_dict(), view.turns[-1].note)
        elif isinstance(ev, tuple):  # (side, TokenDivergence): that answer's tokens coloured
            side, div = ev
            last = views[side].turns[-1]
            last.html = coloured_html(div)
            last.note = f"{last.note} · {summary(div)}"
            views[side].set_turns(views[side].turns)
            self.legend.show()
        elif isinstance(ev, Log):
            self.status.setText(ev.message)
            if ev.level == "warning":
                self._warnings.append(ev.message)

    def stop(self) -> None:  # also stops the colouring; the answers already shown stay
        if self.worker is not None:
            self.worker.cancel()

    def _on_finished(self) -> None:
        self.worker = None
        release_model()  # each compared model was closed after its answer: give its memory back now
        self._update_buttons()

    def _update_buttons(self) -> None:
        busy = self.worker is not None
        self.send_button.setEnabled(not busy and len(self.points) > 0)
        self.stop_button.setEnabled(busy)
        for w in (self.pick_a, self.pick_b, self.source_picker):
            w.setEnabled(not busy)

    def shutdown(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(30000)


def flip_rate(p: VariantPoint, card: dict | None) -> float | None:
    """How often the variant's greedy next token differs from the source's over the evaluation text:
    1 - "same top p" from the card's distribution figures (1 - top-1 agreement for older cards)."""
    if p.generation == 0 and p.perplexity is not None:
        return 0.0  # the source against itself
    dist = ((card or {}).get("evaluation") or {}).get("distribution") or {}
    same = dist.get("same_top_p", p.top1_agreement)
    return None if same is None else 1.0 - same
