"""The settings page's "Target size" control: fit the best output into a size (MB, GB) or a number of
bits per weight instead of one type or bit width. It is offered for the methods whose engine
description says they can (MethodInfo.size_budget), so a method gains it when the engine does."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QWidget

from bitsmith.engine.api import METHODS, Method, ModelInfo

#: unit -> bytes per unit (None: bits per weight)
UNITS = (("bits/weight", None), ("MB", 1e6), ("GB", 1e9))
DEFAULT_BPW = 4.5


class SizeTarget(QWidget):
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.parameters = 0
        self.method: Method | None = None
        self.replaces = ""
        self.check = QCheckBox(self.tr("Best mix that fits"))
        self.value = QDoubleSpinBox(decimals=2, minimum=0.01, maximum=1e6, value=DEFAULT_BPW, singleStep=0.1)
        self.unit = QComboBox()
        for label, scale in UNITS:
            self.unit.addItem(self.tr(label), scale)
        self._unit_index = 0
        self.equivalent = QLabel()
        self.equivalent.setStyleSheet("color: #555;")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        for w in (self.check, self.value, self.unit):
            row.addWidget(w)
        row.addWidget(self.equivalent, 1)
        self.check.toggled.connect(self._update)
        self.value.valueChanged.connect(self._update)
        self.unit.currentIndexChanged.connect(self._unit_changed)
        self._update()

    def set_method(self, method: Method, source: ModelInfo | None, replaces: str = "") -> None:
        """`replaces`: the uniform choice the target overrides (the GGUF type or the bit width picked)."""
        self.method = method
        self.replaces = replaces
        self.parameters = (source.parameters if source is not None else 0) or 0
        able = [m.value.upper() for m, info in METHODS.items() if info.size_budget]
        if METHODS[method].size_budget:
            self.setEnabled(True)
            self.setToolTip(self.tr("Instead of one type for every tensor (GGUF) or one bit width for every layer "
                                    "(GPTQ), Bitsmith measures how much each part of the model suffers from "
                                    "rounding and spends the size where it matters most."))
        else:
            self.check.setChecked(False)
            self.setEnabled(False)
            self.setToolTip(self.tr("A size target is available for %1; for %2 choose the bits and group size.")
                            .replace("%1", " and ".join(able)).replace("%2", method.value.upper()))
        self._update()

    def active(self) -> bool:
        return self.isEnabled() and self.check.isChecked()

    def target(self) -> tuple[float | None, int | None]:
        """(target_bpw, target_bytes) as QuantizeConfig takes them; (None, None) when off."""
        if not self.active():
            return None, None
        scale = self.unit.currentData()
        return (self.value.value(), None) if scale is None else (None, int(self.value.value() * scale))

    def _unit_changed(self, index: int) -> None:
        """The same size in the new unit (bits per weight <-> bytes through the parameter count)."""
        old, new = UNITS[self._unit_index][1], self.unit.itemData(index)
        self._unit_index = index
        size = self._bytes(self.value.value(), old)
        if size is not None:
            self.value.blockSignals(True)
            self.value.setValue(size * 8 / self.parameters if new is None else size / new)
            self.value.blockSignals(False)
        self._update()

    def _bytes(self, value: float, scale: float | None) -> float | None:
        if scale is not None:
            return value * scale
        return value * self.parameters / 8 if self.parameters else None

    def _update(self, *_args) -> None:
        on = self.check.isChecked()
        self.value.setEnabled(on)
        self.unit.setEnabled(on)
        self.equivalent.setText(self._equivalent() if on else "")
        self.changed.emit()

    def _equivalent(self) -> str:
        """What the target means for this model, in the other unit."""
        if not self.parameters:
            return ""
        scale = self.unit.currentData()
        size = self._bytes(self.value.value(), scale)
        text = (self.tr("≈ %1 MB").replace("%1", f"{size / 1e6:,.0f}") if scale is None else
                self.tr("≈ %1 bits/weight").replace("%1", f"{size * 8 / self.parameters:.2f}"))
        if self.method is Method.GPTQ:  # its bits count the quantized layers; a size counts the whole folder
            text += self.tr(" (embeddings and head stay 16-bit)")
        if self.replaces:
            text += self.tr(" · instead of %1 everywhere").replace("%1", self.replaces)
        return text
