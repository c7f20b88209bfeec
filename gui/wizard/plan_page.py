"""Wizard page 4: what the conversion will cost, from the engine's plan(), before anything runs."""

from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWizard, QWizardPage

from bitsmith.engine import api
from bitsmith.engine.api import Method, heldout_text_path, human_bytes, human_seconds

from ..workers import call_in_worker
from .state import WizardState


class PlanPage(QWizardPage):
    def __init__(self, state: WizardState, parent=None):
        super().__init__(parent)
        self.state = state
        self.plan = None
        self._worker = None
        self.setTitle(self.tr("Plan"))
        self.setSubTitle(self.tr("What this conversion will need. Nothing has been written yet."))
        # Leaving this page starts the conversion; there is no going back to change it.
        self.setCommitPage(True)
        self.setButtonText(QWizard.CommitButton, self.tr("Convert"))
        self.form = QFormLayout()
        self.labels = {}
        for key, label in (("steps", "Steps:"), ("output", "Output size:"), ("memory", "Peak memory:"),
                           ("disk", "Disk space:"), ("time", "Time (estimate):"), ("notes", "Notes:")):
            value = QLabel()
            value.setWordWrap(True)
            self.labels[key] = value
            self.form.addRow(self.tr(label), value)
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #b00020; font-weight: bold;")
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(self.warning)
        layout.addStretch(1)

    def initializePage(self) -> None:
        self.plan = None
        for v in self.labels.values():
            v.setText("…")
        self.warning.setText(self.tr("Reading the model's headers…"))
        cfg = self.state.to_config()
        evaluate_on = heldout_text_path() if self.state.evaluate else None
        self._worker = call_in_worker(lambda: api.plan(cfg, evaluate_on), self)
        self._worker.result.connect(self._show)
        self._worker.errored.connect(lambda exc, _tb: self.warning.setText(str(exc)))
        self._worker.finished.connect(self._done)
        self._worker.start()

    def _done(self) -> None:
        self._worker = None
        self.completeChanged.emit()

    def _show(self, plan) -> None:
        self.plan = plan
        self.labels["steps"].setText("\n".join(f"{i + 1}. {s}" for i, s in enumerate(plan.steps)))
        self.labels["output"].setText(self._output_text(plan))
        self.labels["memory"].setText(self.tr("%1 (%2 available)").replace("%1", human_bytes(plan.peak_memory_bytes))
                                      .replace("%2", human_bytes(plan.memory_available_bytes)))
        self.labels["disk"].setText(self.tr("%1 needed, %2 free").replace("%1", human_bytes(plan.disk_needed_bytes))
                                    .replace("%2", human_bytes(plan.disk_free_bytes)))
        self.labels["time"].setText(human_seconds(plan.seconds))
        self.labels["notes"].setText("\n".join(plan.notes) or "—")
        if plan.warnings:
            self.warning.setText(self.tr("This may not fit: ") + "; ".join(plan.warnings))
        else:
            self.warning.setText("")

    def _output_text(self, plan) -> str:
        """The size; under a size target, what it means in bits per weight and how the mix is chosen."""
        s = self.state
        if s.target_bpw is None and s.target_bytes is None:
            return human_bytes(plan.output_bytes)
        params = (s.source.parameters if s.source is not None else 0) or 0
        bpw = s.target_bpw if s.target_bpw is not None else (8 * plan.output_bytes / params if params else None)
        what = (self.tr("one type per tensor, chosen by how much each tensor suffers") if s.method is Method.GGUF
                else self.tr("bits and group size per layer, chosen by how much each layer suffers"))
        text = self.tr("at most %1").replace("%1", human_bytes(plan.output_bytes))
        if bpw is not None:
            text += self.tr(" (%1 bits per weight)").replace("%1", f"{bpw:.2f}")
        return text + self.tr(": the best mix that fits, %1.").replace("%1", what)

    def isComplete(self) -> bool:
        return self.plan is not None and self._worker is None
