"""The chat pane: pick a model, talk to it, keep conversations. All model work runs in workers."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGridLayout, QHBoxLayout,
                               QInputDialog, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QMessageBox, QPlainTextEdit, QPushButton, QSpinBox, QSplitter,
                               QVBoxLayout, QWidget)

from bitsmith.engine import api
from bitsmith.engine.api import ChatSession, Log, SamplingSettings, TextPiece

from .chat_view import ChatView, Turn
from .errors import show_error
from .graphs import MemoryGraph, SpeedGraph
from .heap import settle_heap
from .workers import JobWorker, call_in_worker


class MessageInput(QPlainTextEdit):
    """Enter sends; Shift+Enter starts a new line."""

    submitted = Signal()

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key_Return, Qt.Key_Enter) and not event.modifiers() & Qt.ShiftModifier:
            self.submitted.emit()
            return
        super().keyPressEvent(event)


class ChatPane(QWidget):
    answer_finished = Signal(object)  # engine.chat.session.Answer
    busy_changed = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.store = api.history()
        self.backend = None
        self.session: ChatSession | None = None
        self._worker: JobWorker | None = None
        self._loaded_path: str | None = None

        # conversations
        self.conversations = QListWidget()
        self.conversations.currentItemChanged.connect(self._open_conversation)
        new_b, ren_b, del_b, exp_b = (QPushButton(self.tr(t)) for t in ("New", "Rename…", "Delete…", "Export…"))
        new_b.clicked.connect(self.new_conversation)
        ren_b.clicked.connect(self._rename)
        del_b.clicked.connect(self._delete)
        exp_b.clicked.connect(self._export)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addWidget(QLabel(self.tr("Conversations")))
        ll.addWidget(self.conversations, 1)
        grid = QGridLayout()
        for i, b in enumerate((new_b, ren_b, del_b, exp_b)):
            grid.addWidget(b, i // 2, i % 2)
        ll.addLayout(grid)

        # model and settings
        self.model_picker = QComboBox()
        self.model_picker.setMinimumWidth(200)
        self.model_picker.activated.connect(lambda _i: self.load_selected())
        self.model_state = QLabel(self.tr("No model loaded"))
        self.system_prompt = QLineEdit(placeholderText=self.tr("System prompt (optional)"))
        self.temperature = QDoubleSpinBox(minimum=0.0, maximum=2.0, singleStep=0.1, value=SamplingSettings().temperature)
        self.max_tokens = QSpinBox(minimum=1, maximum=8192, value=SamplingSettings().max_new_tokens)
        self.seed = QSpinBox(minimum=-1, maximum=999999, value=-1, specialValueText=self.tr("random"))
        top = QHBoxLayout()
        top.addWidget(QLabel(self.tr("Model:")))
        top.addWidget(self.model_picker, 1)
        form = QFormLayout()
        form.addRow(self.tr("System prompt:"), self.system_prompt)
        knobs = QGridLayout()
        for i, (label, w) in enumerate(((self.tr("Temperature:"), self.temperature),
                                        (self.tr("Max tokens:"), self.max_tokens), (self.tr("Seed:"), self.seed))):
            knobs.addWidget(QLabel(label), 0, 2 * i)
            knobs.addWidget(w, 0, 2 * i + 1)
        knobs.setColumnStretch(6, 1)
        form.addRow(knobs)

        # conversation and input
        self.view = ChatView()
        self.input = MessageInput()
        self.input.setPlaceholderText(self.tr("Type a message. Enter sends, Shift+Enter starts a new line."))
        self.input.setFixedHeight(80)
        self.input.submitted.connect(self.send)
        self.send_button = QPushButton(self.tr("Send"))
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton(self.tr("Stop"))
        self.stop_button.clicked.connect(self.stop)
        self.regen_button = QPushButton(self.tr("Regenerate"))
        self.regen_button.clicked.connect(self.regenerate)
        buttons = QVBoxLayout()
        for b in (self.send_button, self.stop_button, self.regen_button):
            buttons.addWidget(b)
        bottom = QHBoxLayout()
        bottom.addWidget(self.input, 1)
        bottom.addLayout(buttons)
        self.status = QLabel()

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.addLayout(top)
        rl.addLayout(form)
        self.speed_graph = SpeedGraph()
        self.memory_graph = MemoryGraph()
        graphs = QWidget()
        gl = QHBoxLayout(graphs)
        gl.setContentsMargins(0, 0, 0, 0)
        gl.addWidget(self.speed_graph)
        gl.addWidget(self.memory_graph)
        self.view_split = QSplitter(Qt.Vertical)
        self.view_split.addWidget(self.view)
        self.view_split.addWidget(graphs)
        self.view_split.setSizes([520, 170])
        rl.addWidget(self.view_split, 1)
        rl.addLayout(bottom)
        status_row = QHBoxLayout()
        status_row.addWidget(self.model_state)
        status_row.addStretch(1)
        status_row.addWidget(self.status)
        rl.addLayout(status_row)

        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setSizes([240, 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self._refresh_conversations()
        self._update_buttons()

    # --- models ------------------------------------------------------------------------------
    def set_models(self, models: list) -> None:
        current = self.model_picker.currentData()
        self.model_picker.clear()
        for m in models:
            if m.ok and m.format is not None and m.format.value != "pickle":
                self.model_picker.addItem(m.name, m.path)
        idx = self.model_picker.findData(current)
        self.model_picker.setCurrentIndex(max(idx, 0))

    def choose_model(self, path: str) -> None:
        idx = self.model_picker.findData(path)
        if idx >= 0:
            self.model_picker.setCurrentIndex(idx)
        self.load_selected()

    def load_selected(self) -> None:
        path = self.model_picker.currentData()
        if not path or path == self._loaded_path or self.is_busy():
            return
        self.model_state.setText(self.tr("Loading…"))
        old, self.backend, self.session = self.backend, None, None
        if old is not None:
            old.close()
        self._start(call_in_worker(lambda: api.load_model(path)), on_result=lambda b: self._loaded(path, b))

    def _loaded(self, path: str, backend) -> None:
        settle_heap()  # a model's runtime (transformers, for instance) may have just been imported
        self.backend, self._loaded_path = backend, path
        note = self.tr(" (no chat template: plain format)") if backend.uses_fallback_template else ""
        self.model_state.setText(self.tr("Ready: %1 on %2").replace("%1", backend.kind).replace("%2", backend.device) + note)
        self.session = self._new_session()

    def _settings(self) -> SamplingSettings:
        seed = self.seed.value()
        return SamplingSettings(temperature=self.temperature.value(), max_new_tokens=self.max_tokens.value(),
                                seed=None if seed < 0 else seed)

    def _new_session(self, conversation_id: int | None = None) -> ChatSession:
        if conversation_id is not None:
            return ChatSession.resume(self.backend, self.store, conversation_id)
        return ChatSession(self.backend, self.system_prompt.text(), self._settings(), self.store)

    # --- sending -----------------------------------------------------------------------------
    def send(self) -> None:
        text = self.input.toPlainText().strip()
        if not text or self.session is None or self.is_busy():
            return
        self.input.clear()
        self.session.system_prompt = self.system_prompt.text()
        self.session.settings = self._settings()
        self.view.add_turn(Turn("user", text))
        self._run_answer(lambda token: self.session.send(text, token))

    def regenerate(self) -> None:
        if self.session is None or self.is_busy() or not self.session.messages:
            return
        self.session.settings = self._settings()
        if self.view.turns and self.view.turns[-1].role == "assistant":
            self.view.turns.pop()
        self._run_answer(lambda token: self.session.regenerate(token))

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def _run_answer(self, make_job) -> None:
        self.view.add_turn(Turn("assistant", ""))
        self.speed_graph.answer_started()
        worker = JobWorker(make_job)
        worker.event.connect(self._on_event)
        self._start(worker, on_result=self._on_answer)

    def _on_event(self, ev) -> None:
        if isinstance(ev, TextPiece):
            self.view.append_to_last(ev.text)
            self.speed_graph.piece()
        elif isinstance(ev, Log):
            self.status.setText(ev.message)

    def _on_answer(self, answer) -> None:
        note = self.tr("stopped") if answer.finish_reason == "cancelled" else ""
        self.view.finish_last(answer.text, answer.stats.to_dict(), note)
        self.speed_graph.answer_finished(answer.stats.generation_tokens_per_s)
        self._refresh_conversations(select=self.session.conversation_id)
        self.answer_finished.emit(answer)

    # --- worker plumbing ---------------------------------------------------------------------
    def is_busy(self) -> bool:
        return self._worker is not None

    def _start(self, worker: JobWorker, on_result) -> None:
        self._worker = worker
        worker.result.connect(on_result)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._update_buttons()
        self.busy_changed.emit(True)
        worker.start()

    def _on_error(self, exc, tb) -> None:
        if self.backend is None:
            self.model_state.setText(self.tr("Could not load"))
            self._loaded_path = None
        if self.view.turns and self.view.turns[-1].role == "assistant" and not self.view.turns[-1].text:
            self.view.turns.pop()
            self.view.set_turns(self.view.turns)
        self.error_box = show_error(self, exc, tb)

    def _on_finished(self) -> None:
        self._worker = None
        self._update_buttons()
        self.busy_changed.emit(False)

    def _update_buttons(self) -> None:
        busy = self.is_busy()
        ready = self.session is not None and not busy
        self.send_button.setEnabled(ready)
        self.regen_button.setEnabled(ready and bool(self.session and self.session.messages))
        self.stop_button.setEnabled(busy and self.backend is not None)
        self.model_picker.setEnabled(not busy)
        self.conversations.setEnabled(not busy)

    # --- conversations -----------------------------------------------------------------------
    def _refresh_conversations(self, select: int | None = None) -> None:
        self.conversations.blockSignals(True)
        self.conversations.clear()
        for c in self.store.list_conversations():
            item = QListWidgetItem(c["title"])
            item.setData(Qt.UserRole, c["id"])
            self.conversations.addItem(item)
            if c["id"] == select:
                self.conversations.setCurrentItem(item)
        self.conversations.blockSignals(False)

    def _selected_id(self) -> int | None:
        item = self.conversations.currentItem()
        return item.data(Qt.UserRole) if item else None

    def new_conversation(self) -> None:
        if self.is_busy():
            return
        self.conversations.clearSelection()
        self.conversations.setCurrentItem(None)
        self.view.set_turns([])
        if self.backend is not None:
            self.session = self._new_session()
        self._update_buttons()

    def _open_conversation(self, item, _prev=None) -> None:
        if item is None or self.is_busy():
            return
        cid = item.data(Qt.UserRole)
        turns = [Turn(m["role"], m["content"], m["stats"]) for m in self.store.messages(cid)]
        self.view.set_turns(turns)
        conv = self.store.get_conversation(cid)
        self.system_prompt.setText(conv["system_prompt"])
        if self.backend is not None:
            self.session = self._new_session(cid)
        self._update_buttons()

    def _rename(self) -> None:
        cid = self._selected_id()
        if cid is None:
            return
        title, ok = QInputDialog.getText(self, self.tr("Rename conversation"), self.tr("Title:"),
                                         text=self.conversations.currentItem().text())
        if ok and title.strip():
            self.store.rename(cid, title)
            self._refresh_conversations(select=cid)

    def _delete(self) -> None:
        cid = self._selected_id()
        if cid is None:
            return
        title = self.conversations.currentItem().text()
        if QMessageBox.question(self, self.tr("Delete conversation"),
                                self.tr("Delete the conversation “%1”? This cannot be undone.").replace("%1", title)) == QMessageBox.Yes:
            self.store.delete(cid)
            self._refresh_conversations()
            self.new_conversation()

    def _export(self) -> None:
        cid = self._selected_id()
        if cid is None:
            return
        path, chosen = QFileDialog.getSaveFileName(self, self.tr("Export conversation"), "",
                                                   self.tr("Markdown (*.md);;JSON (*.json)"))
        if not path:
            return
        import json

        if path.endswith(".json") or "JSON" in chosen:
            text = json.dumps(self.store.export_json(cid), indent=2, ensure_ascii=False)
        else:
            text = self.store.export_markdown(cid)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    def shutdown(self) -> None:
        """Stop any answer and wait for the worker, so the app can quit cleanly."""
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait(30000)
