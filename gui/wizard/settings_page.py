"""Wizard page 3: where the output goes, and the advanced settings with sane defaults."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWizardPage)

from .size_target import SizeTarget

from bitsmith.engine.api import METHODS, Device, EngineError, Method

from ..terms import tip
from .state import WizardState


def output_folder() -> str:
    """Where outputs go unless the user picks another place: the folder used last, else Bitsmith's
    models folder (never the source's folder, which may be inside the installation)."""
    from bitsmith.engine import api

    remembered = QSettings().value("convert/output_dir", "", str)
    if remembered:
        return remembered
    folder = api.models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)

CALIBRATION_CHOICES = (("builtin", "Bitsmith's built-in sample text (fast)"),
                       ("model", "Written by the model itself (slow on a CPU: the plan shows how long)"),
                       ("file", "A text or JSONL file…"))


class SettingsPage(QWizardPage):
    def __init__(self, state: WizardState, parent=None):
        super().__init__(parent)
        self.state = state
        self.setTitle(self.tr("Settings"))
        self.setSubTitle(self.tr("The defaults suit most models; open Advanced to change them."))
        self.out = QLineEdit()
        browse = QPushButton(self.tr("Browse…"))
        browse.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(browse)

        self.evaluate = QCheckBox(self.tr("Measure what it cost (perplexity, KL divergence against the source)"))
        self.evaluate.setToolTip(self.tr("After converting, both models read Bitsmith's built-in held-out sample "
                                         "(about 1,500 tokens); the figures go into the report card."))
        self.evaluate.setChecked(state.evaluate)
        self.size_target = SizeTarget()
        self._default_out = ""  # the name the page proposed: replaced when the target changes, a typed one is kept
        self.size_target.changed.connect(self._target_changed)

        self.advanced = QGroupBox(self.tr("Advanced"))
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)
        self.bits = QComboBox()
        for b in (2, 3, 4, 8):
            self.bits.addItem(str(b), b)
        self.group_size = QComboBox()
        self.group_size.addItem(self.tr("automatic"), None)
        for g in (128, 64, 32, -1):
            self.group_size.addItem(self.tr("per channel") if g == -1 else str(g), g)
        self.sym = QCheckBox(self.tr("symmetric (no zero point)"))
        self.desc_act = QCheckBox(self.tr("activation order (desc_act)"))
        self.desc_act.setChecked(state.desc_act)  # on by default (GPTQ act-order with static groups)
        self.awq_rounding = QComboBox()
        self.awq_rounding.addItem(self.tr("GPTQ error correction (best quality)"), "gptq")
        self.awq_rounding.addItem(self.tr("nearest, after a clipping search (original AWQ)"), "nearest")
        self.imatrix = QComboBox()
        for label, value in ((self.tr("automatic (on for 4 bits and fewer)"), None), (self.tr("on"), True),
                             (self.tr("off"), False)):
            self.imatrix.addItem(label, value)
        self.calibration = QComboBox()
        for value, label in CALIBRATION_CHOICES:
            self.calibration.addItem(self.tr(label), value)
        self.calibration.activated.connect(self._calibration_chosen)
        self.calibration_file = ""
        self.samples = QSpinBox(minimum=1, maximum=4096, value=state.samples)
        self.seq_len = QSpinBox(minimum=16, maximum=8192, value=state.seq_len, singleStep=64)
        self.device = QComboBox()
        for d in Device:
            self.device.addItem(d.value, d.value)
        for widget, term in ((self.bits, "bits"), (self.group_size, "group size"), (self.sym, "sym"),
                             (self.desc_act, "desc_act"), (self.awq_rounding, "awq rounding"), (self.imatrix, "imatrix"), (self.calibration, "calibration"),
                             (self.samples, "samples"), (self.seq_len, "sequence length"), (self.device, "device")):
            widget.setToolTip(tip(term))
        form = QFormLayout(self.advanced)
        self.rows = {
            "bits": (self.tr("Bits:"), self.bits), "group": (self.tr("Group size:"), self.group_size),
            "sym": ("", self.sym), "desc_act": ("", self.desc_act),
            "awq_rounding": (self.tr("Rounding:"), self.awq_rounding), "imatrix": (self.tr("Importance matrix:"), self.imatrix),
            "calibration": (self.tr("Calibration text:"), self.calibration), "samples": (self.tr("Samples:"), self.samples),
            "seq_len": (self.tr("Sequence length:"), self.seq_len), "device": (self.tr("Device:"), self.device),
        }
        for label, widget in self.rows.values():
            form.addRow(label, widget)
        self.advanced.toggled.connect(lambda _on: self._target_rows())
        self.error = QLabel()
        self.error.setStyleSheet("color: #b00020;")
        self.error.setWordWrap(True)
        layout = QVBoxLayout(self)
        top = QFormLayout()
        top.addRow(self.tr("Save as:"), out_row)
        top.addRow(self.tr("Target size:"), self.size_target)
        top.addRow("", self.evaluate)
        layout.addLayout(top)
        layout.addWidget(self.advanced)
        layout.addWidget(self.error)
        layout.addStretch(1)

    def initializePage(self) -> None:
        s = self.state
        s.out_dir = s.out_dir or output_folder()
        self.out.setText(s.out or s.default_out())
        self.bits.setCurrentIndex(self.bits.findData(s.bits))
        self.awq_rounding.setCurrentIndex(self.awq_rounding.findData(s.awq_rounding))
        method = s.method
        self._default_out = self.out.text()
        self.size_target.set_method(method, s.source, s.gguf_type.value if method is Method.GGUF else f"{s.bits}-bit")
        relevant = {
            "bits": method in (Method.GPTQ, Method.RTN), "group": method in (Method.GPTQ, Method.AWQ, Method.RTN),
            "sym": method in (Method.GPTQ, Method.RTN), "desc_act": method is Method.GPTQ,
            "awq_rounding": method is Method.AWQ,
            "imatrix": method is Method.GGUF,
            "calibration": METHODS[method].needs_calibration or method is Method.GGUF,
            "samples": METHODS[method].needs_calibration or method is Method.GGUF,
            "seq_len": METHODS[method].needs_calibration or method is Method.GGUF,
            "device": True,
        }
        form: QFormLayout = self.advanced.layout()
        for key, (_label, widget) in self.rows.items():
            form.setRowVisible(widget, relevant[key])
        self.error.clear()

    def _target_changed(self) -> None:
        """A size target names the output after it (…-mix-4.5bpw), unless the user typed a name."""
        s = self.state
        s.target_bpw, s.target_bytes = self.size_target.target()
        if self.out.text() == self._default_out:
            self._default_out = s.default_out()
            self.out.setText(self._default_out)
        self._target_rows()

    def _target_rows(self) -> None:
        """Bits and group size are chosen per layer under a target: the fixed choice would be ignored.
        (The Advanced box enables and disables its children one by one, so both decide here.)"""
        for key in ("bits", "group"):
            self.rows[key][1].setEnabled(self.advanced.isChecked() and not self.size_target.active())

    def _browse(self) -> None:
        if self.state.method is Method.GGUF:
            path, _ = QFileDialog.getSaveFileName(self, self.tr("Save the GGUF file as"), self.out.text(),
                                                  self.tr("GGUF (*.gguf)"))
        else:
            path = QFileDialog.getExistingDirectory(self, self.tr("Folder to create the model in"), self.state.out_dir)
            if path:
                path = path + "/" + self.state.default_out().rsplit("/", 1)[-1]
        if path:
            self.out.setText(path)

    def _calibration_chosen(self) -> None:
        if self.calibration.currentData() == "file":
            path, _ = QFileDialog.getOpenFileName(self, self.tr("Calibration text"), "",
                                                  self.tr("Text (*.txt *.jsonl *.md);;All files (*)"))
            if path:
                self.calibration_file = path
                self.calibration.setItemText(2, path)
            else:
                self.calibration.setCurrentIndex(0)

    def validatePage(self) -> bool:
        s = self.state
        s.out = self.out.text().strip()
        s.bits = self.bits.currentData() if s.method is not Method.AWQ else 4
        s.group_size = self.group_size.currentData()
        s.sym, s.desc_act = self.sym.isChecked(), self.desc_act.isChecked()
        s.awq_rounding = self.awq_rounding.currentData()
        s.imatrix = self.imatrix.currentData()
        cal = self.calibration.currentData()
        s.calibration = self.calibration_file if cal == "file" else cal
        s.samples, s.seq_len = self.samples.value(), self.seq_len.value()
        s.device = Device(self.device.currentData())
        s.evaluate = self.evaluate.isChecked()
        s.target_bpw, s.target_bytes = self.size_target.target()
        try:
            s.to_config()
        except EngineError as exc:  # explained here, before anything runs
            self.error.setText(str(exc))
            return False
        if not s.out:
            self.error.setText(self.tr("Choose where to save the result."))
            return False
        self.error.clear()
        from pathlib import Path

        QSettings().setValue("convert/output_dir", str(Path(s.out).expanduser().parent))  # remembered for next time
        return True
