"""Wizard pages 1 and 2: which model, and which method."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QRadioButton, QVBoxLayout, QWizardPage)

from bitsmith.engine import api
from bitsmith.engine.api import (METHODS, GGUFType, Method, human_bytes, human_count, recommendation_text,
                                 recommended)

from ..terms import tip
from .state import WizardState

GGUF_TYPE_NOTES = {
    "F16": "no loss, 16 bits", "BF16": "no loss, 16 bits", "F32": "no loss, 32 bits",
    "Q8_0": "near-lossless, 8.5 bits", "Q6_K": "excellent, 6.6 bits", "Q5_K_M": "very good, 5.7 bits",
    "Q5_1": "very good, 6 bits", "Q5_0": "very good, 5.5 bits", "Q4_K_M": "good balance, 4.9 bits",
    "Q4_K_S": "smaller, 4.6 bits", "Q4_1": "fair, 5 bits", "Q4_0": "fair, 4.5 bits",
    "Q3_K_M": "noticeable loss, 3.9 bits", "Q2_K": "smallest, large loss, about 3 bits",
}


class SourcePage(QWizardPage):
    def __init__(self, state: WizardState, models: list, parent=None):
        super().__init__(parent)
        self.state = state
        self.setTitle(self.tr("Choose the model to convert"))
        self.setSubTitle(self.tr("Any model Bitsmith found. A GGUF file is first imported as a Hugging Face folder."))
        self.list = QListWidget()
        for m in models:
            if not m.ok or m.format is None or m.format.value not in ("gguf", "hf"):
                continue
            item = QListWidgetItem(f"{m.name}  —  {m.format.value}, {human_count(m.parameters)} parameters, "
                                   f"{m.dtype}, {human_bytes(m.size_bytes)}")
            item.setData(Qt.UserRole, m)
            self.list.addItem(item)
            if state.source is not None and m.path == state.source.path:
                self.list.setCurrentItem(item)
        if self.list.currentItem() is None and self.list.count():
            self.list.setCurrentRow(0)
        self.list.currentItemChanged.connect(lambda *_: self.completeChanged.emit())
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)

    def isComplete(self) -> bool:
        return self.list.currentItem() is not None

    def validatePage(self) -> bool:
        self.state.source = self.list.currentItem().data(Qt.UserRole)
        self.state.out = ""
        return True


class MethodPage(QWizardPage):
    def __init__(self, state: WizardState, parent=None):
        super().__init__(parent)
        self.state = state
        self.setTitle(self.tr("Choose how to convert it"))
        device = api.device("auto").device
        self.setSubTitle(self.tr(recommendation_text(device)))
        self.group = QButtonGroup(self)
        self.group.buttonToggled.connect(lambda *_: self.completeChanged.emit())
        self.explanations: dict[str, QLabel] = {}  # method value -> its explanation (or why not)
        layout = QVBoxLayout(self)
        best = recommended(device)
        for method, info in METHODS.items():
            label = info.title + (self.tr("  (recommended)") if method is best else "")
            button = QRadioButton(label)
            button.setProperty("method", method.value)
            self.group.addButton(button)
            explanation = QLabel(self.tr(info.explanation))
            self.explanations[method.value] = explanation
            explanation.setWordWrap(True)
            explanation.setContentsMargins(24, 0, 0, 6)
            layout.addWidget(button)
            layout.addWidget(explanation)
            if method is Method.GGUF:
                row = QHBoxLayout()
                row.setContentsMargins(24, 0, 0, 8)
                row.addWidget(QLabel(self.tr("Type:")))
                self.gguf_type = QComboBox()
                for t in GGUFType:
                    self.gguf_type.addItem(f"{t.value} — {self.tr(GGUF_TYPE_NOTES.get(t.value, ''))}", t.value)
                self.gguf_type.setToolTip(tip("gguf type"))
                self.gguf_type.setCurrentIndex(self.gguf_type.findData(state.gguf_type.value))
                row.addWidget(self.gguf_type, 1)
                layout.addLayout(row)
            if method is state.method:
                button.setChecked(True)
        layout.addStretch(1)

    def initializePage(self) -> None:
        """The source is known now: a method the source's family cannot take is shown disabled,
        with the engine's one-line reason as its text and tooltip (plan() would refuse it)."""
        source = self.state.source
        refused = getattr(source, "unavailable", None) or {}
        for button in self.group.buttons():
            method = Method(button.property("method"))
            info = METHODS[method]
            reason = refused.get(info.path)
            button.setEnabled(reason is None)
            explanation = self.explanations[method.value]
            if reason is None:
                button.setToolTip("")
                explanation.setText(self.tr(info.explanation))
                explanation.setEnabled(True)
                continue
            why = self.tr("Not available for %1: %2").replace("%1", source.family or source.name).replace("%2", reason)
            button.setToolTip(why)
            explanation.setText(why)
            explanation.setToolTip(why)
            explanation.setEnabled(False)
        checked = self.group.checkedButton()
        if checked is not None and not checked.isEnabled():
            usable = [b for b in self.group.buttons() if b.isEnabled()]
            self.group.setExclusive(False)  # an exclusive group cannot uncheck its last button
            checked.setChecked(False)
            self.group.setExclusive(True)
            if usable:
                usable[0].setChecked(True)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        checked = self.group.checkedButton()
        return checked is not None and checked.isEnabled()

    def selected_method(self) -> Method:
        return Method(self.group.checkedButton().property("method"))

    def select(self, method: Method, gguf_type: str | None = None) -> None:
        for b in self.group.buttons():
            if b.property("method") == method.value and b.isEnabled():
                b.setChecked(True)
        if gguf_type:
            self.gguf_type.setCurrentIndex(self.gguf_type.findData(gguf_type))

    def validatePage(self) -> bool:
        new_method = self.selected_method()
        new_type = GGUFType(self.gguf_type.currentData())
        if (new_method, new_type) != (self.state.method, self.state.gguf_type):
            self.state.out = ""
        self.state.method, self.state.gguf_type = new_method, new_type
        return True
