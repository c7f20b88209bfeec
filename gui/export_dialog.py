"""Export an output to the tools people run: Ollama (a Modelfile, and `ollama create` when Ollama
is installed), LM Studio (the GGUF placed in its models folder) or just the model card. Shows the
Modelfile before anything is written; the export runs on a worker thread."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPlainTextEdit, QPushButton, QRadioButton, QVBoxLayout, QWidget)

from bitsmith.engine import api
from bitsmith.engine.api import EngineError, ExportSettings, Log

from .errors import show_error
from .workers import JobWorker, call_in_worker


class ExportDialog(QDialog):
    def __init__(self, model_path: Path | str, parent: QWidget | None = None):
        super().__init__(parent)
        self.model_path = Path(model_path)
        self.is_gguf = self.model_path.suffix.lower() == ".gguf"
        self.worker: JobWorker | None = None
        self.result = None
        self.setWindowTitle(self.tr("Export %1").replace("%1", self.model_path.name))
        self.targets = QButtonGroup(self)
        self.ollama = QRadioButton(self.tr("Ollama"))
        self.lmstudio = QRadioButton(self.tr("LM Studio"))
        self.card = QRadioButton(self.tr("Model card only (README.md)"))
        for i, b in enumerate((self.ollama, self.lmstudio, self.card)):
            self.targets.addButton(b, i)
        self.ollama.setEnabled(self.is_gguf)
        self.lmstudio.setEnabled(self.is_gguf)
        (self.ollama if self.is_gguf else self.card).setChecked(True)
        self.name = QLineEdit()
        self.name.setPlaceholderText(self.tr("from the file name"))
        self.out = QLineEdit()
        self.out.setPlaceholderText(self.tr("default folder"))
        browse = QPushButton(self.tr("Browse…"))
        browse.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(browse)
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.export_button = self.buttons.addButton(self.tr("Export"), QDialogButtonBox.AcceptRole)
        self.buttons.rejected.connect(self.reject)
        self.export_button.clicked.disconnect()
        self.export_button.clicked.connect(self.export)

        form = QFormLayout()
        targets = QHBoxLayout()
        for b in (self.ollama, self.lmstudio, self.card):
            targets.addWidget(b)
        form.addRow(self.tr("To"), targets)
        form.addRow(self.tr("Name"), self.name)
        form.addRow(self.tr("Folder"), out_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.targets.idToggled.connect(lambda _i, on: on and self._update())
        self._update()
        if self.is_gguf:
            self._load_preview()
        else:
            self.message.setText(self.tr("Ollama and LM Studio run GGUF files; convert this model to GGUF to export it there."))

    def target(self) -> str:
        return ("ollama", "lmstudio", "card")[self.targets.checkedId()]

    def _update(self) -> None:
        t = self.target()
        self.name.setEnabled(t != "card")
        self.preview.setVisible(t == "ollama")
        self.out.setPlaceholderText({"ollama": self.tr("Bitsmith's exports folder"),
                                     "lmstudio": self.tr("LM Studio's models folder"),
                                     "card": self.tr("beside the model")}[t])

    def _load_preview(self) -> None:
        self.preview.setPlainText(self.tr("Reading the chat template…"))
        self._preview_worker = call_in_worker(lambda: api.modelfile_text(self.model_path), self)
        self._preview_worker.result.connect(self.preview.setPlainText)
        self._preview_worker.errored.connect(lambda exc, _d: self.preview.setPlainText(str(exc)))
        self._preview_worker.start()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Export to"), self.out.text() or str(Path.home()))
        if folder:
            self.out.setText(folder)

    def export(self) -> None:
        if self.worker is not None and self.worker.is_running():
            return
        try:
            settings = ExportSettings(self.model_path, self.target(), out=self.out.text().strip() or None,
                                      name=self.name.text().strip() or None)
        except EngineError as exc:
            self.message.setText(str(exc))
            return
        self.export_button.setEnabled(False)
        self.message.setText(self.tr("Exporting…"))
        self.worker = JobWorker(lambda token: api.export_model(settings, None, token), self)
        self.worker.event.connect(lambda ev: isinstance(ev, Log) and self.message.setText(ev.message))
        self.worker.result.connect(self._done)
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(lambda: self.export_button.setEnabled(True))
        self.worker.start()

    def _done(self, result) -> None:
        self.result = result
        lines = [self.tr("Model card: %1").replace("%1", str(result.card))]
        if result.modelfile:
            lines.insert(0, self.tr("Modelfile: %1").replace("%1", str(result.modelfile)))
        if result.placed:
            lines.insert(0, self.tr("In LM Studio's folder: %1").replace("%1", str(result.placed)))
        if result.created:
            lines.append(self.tr("Registered with Ollama."))
        elif result.command:
            lines.append(self.tr("Ollama is not installed here; once it is, run: %1").replace("%1", result.command))
        self.message.setText("\n".join(lines))

    def _failed(self, exc, details: str) -> None:
        if isinstance(exc, EngineError):
            self.message.setText(str(exc))
        else:
            show_error(self, exc, details)

    def done(self, r: int) -> None:
        for w in (self.worker, getattr(self, "_preview_worker", None)):
            if w is not None:
                w.wait(30000)
        super().done(r)
