"""The chat pane: pick a model, talk to it, keep conversations. All model work runs in workers.

There is no dead end: the model shown in the picker is the one that answers. It is loaded when the
pane is first shown or the picker changes, a message sent while it loads waits for it, and a model
left unused for a while is unloaded and loaded again on the next message. A conversation belongs to
the model it was held with: switching models starts a new one, reopening an old one brings its
model back."""

from __future__ import annotations

import threading

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from bitsmith.engine import api
from bitsmith.engine.api import Log, SamplingSettings, TextPiece

from .chat_conversations import ConversationList
from .chat_view import ChatView, Turn
from .chat_widgets import ChatGraphs, MessageInput
from .errors import show_error
from .heap import release_model, settle_heap
from .icons import icon
from .serve_toggle import ServeToggle
from .terms import tip
from .workers import JobWorker, call_in_worker

#: A loaded model nobody has used for this long is unloaded (it is loaded again on the next message).
IDLE_UNLOAD_MS = 10 * 60 * 1000


class ChatPane(QWidget):
    answer_finished = Signal(object)  # engine.chat.session.Answer
    busy_changed = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.store = api.history()
        self.backend = None
        self.session = None  # a ChatSession once a model is loaded
        self._worker: JobWorker | None = None
        self._loaded_path: str | None = None
        self._loading_path: str | None = None
        self._pending: str | None = None  # a message typed while the model loads
        self._load_next = False  # the picker changed while a worker ran: load its model afterwards
        self._closed = False  # shut down: late signals from a worker are dropped
        self._resume_id: int | None = None  # a conversation to reopen once its model is loaded
        self._idle = QTimer(self, singleShot=True, interval=IDLE_UNLOAD_MS)
        self._idle.timeout.connect(self.unload)

        self.conversations = ConversationList(self.store)
        self.conversations.opened.connect(self.open_conversation)
        self.conversations.new_requested.connect(self.new_conversation)
        self.conversations.deleted.connect(lambda _cid: self.new_conversation())

        # model and settings
        self.model_picker = QComboBox()
        self.model_picker.setMinimumWidth(200)
        self.model_picker.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.model_picker.activated.connect(lambda _i: self.load_selected())
        self.model_state = QLabel(self.tr("No model loaded"))
        self.system_prompt = QLineEdit(placeholderText=self.tr("System prompt (optional)"))
        self.system_prompt.setToolTip(tip("system prompt"))
        defaults = SamplingSettings()
        self.temperature = QDoubleSpinBox(minimum=0.0, maximum=2.0, singleStep=0.1, value=defaults.temperature)
        self.temperature.setToolTip(tip("temperature"))
        self.max_tokens = QSpinBox(minimum=1, maximum=8192, value=defaults.max_new_tokens)
        self.max_tokens.setToolTip(tip("max tokens"))
        self.seed = QSpinBox(minimum=-1, maximum=999999, value=-1, specialValueText=self.tr("random"))
        self.seed.setToolTip(tip("seed"))
        # The loaded model can also answer other programs (an OpenAI-compatible endpoint on this
        # machine); one lock keeps the pane and the server from running it at once.
        self.backend_lock = threading.Lock()
        self.serve = ServeToggle()
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
        self.send_button = QPushButton(icon("send"), self.tr("Send"))
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton(icon("stop"), self.tr("Stop"))
        self.stop_button.clicked.connect(self.stop)
        self.regen_button = QPushButton(icon("regenerate"), self.tr("Regenerate"))
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
        graphs = self.graphs_box = ChatGraphs()
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
        status_row.addWidget(self.serve)
        rl.addLayout(status_row)

        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(self.conversations)
        self.splitter.addWidget(right)
        self.splitter.setSizes([240, 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self.conversations.refresh()
        self._update_buttons()

    # --- models ------------------------------------------------------------------------------
    def set_models(self, models: list) -> None:
        current = self.model_picker.currentData() or self._loaded_path or QSettings().value("chat/model", "", str)
        self.model_picker.blockSignals(True)
        self.model_picker.clear()
        for m in models:
            if m.ok and m.format is not None and m.format.value != "pickle":
                self.model_picker.addItem(m.name, m.path)
                self.model_picker.setItemData(self.model_picker.count() - 1, m.path, Qt.ToolTipRole)
        idx = self.model_picker.findData(current)
        self.model_picker.setCurrentIndex(max(idx, 0))
        self.model_picker.blockSignals(False)
        self._update_buttons()
        if self.isVisible():
            self.load_selected()

    @property
    def speed_graph(self):
        return self.graphs_box.speed_graph

    @property
    def memory_graph(self):
        return self.graphs_box.memory_graph

    def showEvent(self, event):
        super().showEvent(event)
        QTimer.singleShot(0, self.load_selected)  # the model shown is the one that answers

    def choose_model(self, path: str) -> None:
        idx = self.model_picker.findData(path)
        if idx >= 0:
            self.model_picker.setCurrentIndex(idx)
        self.load_selected()

    def load_selected(self) -> None:
        path = self.model_picker.currentData()
        if not path or path in (self._loaded_path, self._loading_path):
            return
        if self._worker is not None:  # another model is loading (or answering): this one comes next
            self._load_next = True
            return
        if self._loaded_path is not None and self.session is not None and self.session.messages \
                and self._resume_id is None:
            self.new_conversation()  # another model: its answers go into a conversation of their own
        self.unload()
        self._loading_path = path
        self.model_state.setText(self.tr("Loading %1…").replace("%1", self.model_picker.currentText()))
        self.status.clear()
        self._start(call_in_worker(lambda: api.load_model(path)), on_result=lambda b: self._loaded(path, b))

    def _loaded(self, path: str, backend) -> None:
        settle_heap()  # a model's runtime (transformers, for instance) may have just been imported
        self.backend, self._loaded_path = backend, path
        QSettings().setValue("chat/model", path)
        note = self.tr(" · no chat template: plain User/Assistant format") if backend.uses_fallback_template else ""
        self.model_state.setText(self.tr("Ready: %1 on %2").replace("%1", backend.kind).replace("%2", backend.device)
                                 + note)
        cid, self._resume_id = self._resume_id, None
        self.session = self._new_session(cid)
        self.serve.set_backend(backend, self.backend_lock)
        self._idle.start()

    def unload(self) -> None:
        """Close the loaded model (memory back to the system); the next message loads it again."""
        if self.backend is None or self._worker is not None or self.serve.server is not None:
            return  # busy, or other programs are using it through the server
        self.serve.set_backend(None)
        old, self.backend, self.session, self._loaded_path = self.backend, None, None, None
        old.close()
        del old
        release_model()
        self.model_state.setText(self.tr("Model unloaded to free memory; it loads again when you send a message"))
        self._update_buttons()

    def _settings(self) -> SamplingSettings:
        seed = self.seed.value()
        return SamplingSettings(temperature=self.temperature.value(), max_new_tokens=self.max_tokens.value(),
                                seed=None if seed < 0 else seed)

    def _new_session(self, conversation_id: int | None = None) -> ChatSession:  # noqa: F821
        from bitsmith.engine.api import ChatSession  # the chat engine loads with the first model, not at start-up

        if conversation_id is not None:
            return ChatSession.resume(self.backend, self.store, conversation_id)
        return ChatSession(self.backend, self.system_prompt.text(), self._settings(), self.store)

    # --- sending -----------------------------------------------------------------------------
    def send(self) -> None:
        text = self.input.toPlainText().strip()
        if not text or self._generating() or self._pending is not None:
            return
        if self.session is None:  # still loading, or unloaded: the message waits for the model
            if not self.model_picker.currentData():
                return
            self._pending = text
            self.input.clear()
            self.view.add_turn(Turn("user", text, note=self.tr("waiting for the model to load")))
            self.load_selected()
            self._update_buttons()
            return
        self.input.clear()
        self.view.add_turn(Turn("user", text))
        self._send_now(text)

    def _send_now(self, text: str) -> None:
        self.session.system_prompt = self.system_prompt.text()
        self.session.settings = self._settings()
        self._run_answer(lambda token: self.session.send(text, token))

    def regenerate(self) -> None:
        if self.session is None or self.is_busy() or not self.session.messages:
            return
        self.session.settings = self._settings()
        if self.view.turns and self.view.turns[-1].role == "assistant":
            self.view.turns.pop()
        self._run_answer(lambda token: self.session.regenerate(token))

    def stop(self) -> None:
        if self._generating():
            self._worker.cancel()

    def _generating(self) -> bool:
        return self._worker is not None and self.backend is not None

    def _run_answer(self, make_job) -> None:
        self._idle.stop()
        self.view.add_turn(Turn("assistant", ""))
        self.speed_graph.answer_started()
        def locked(token, make=make_job, lock=self.backend_lock):
            with lock:  # a request to the server waits for this answer, and the other way round
                yield from make(token)

        worker = JobWorker(locked)
        worker.event.connect(self._on_event)
        self._start(worker, on_result=self._on_answer)

    def _on_event(self, ev) -> None:
        if isinstance(ev, TextPiece):
            self.view.append_to_last(ev.text)
            self.speed_graph.piece()
        elif isinstance(ev, Log):
            self.status.setText(ev.message)

    def _on_answer(self, answer) -> None:
        notes = {"cancelled": self.tr("stopped"),
                 "length": self.tr("cut off at the token limit (raise Max tokens for longer answers)")}
        stats = answer.stats.to_dict()
        threads = getattr(self.backend, "threads", None)
        if threads:
            stats["threads"] = threads
        self.view.finish_last(answer.text, stats, notes.get(answer.finish_reason, ""))
        self.speed_graph.answer_finished(answer.stats.generation_tokens_per_s)
        self.conversations.refresh(select=self.session.conversation_id)
        self._idle.start()
        self.answer_finished.emit(answer)

    # --- worker plumbing ---------------------------------------------------------------------
    def is_busy(self) -> bool:
        return self._worker is not None

    def _start(self, worker: JobWorker, on_result) -> None:
        self._worker = worker
        # A worker's last signals are queued: after shutdown they may arrive when the widgets are
        # gone (a model load finishing as the window closes), so they are dropped then.
        live = (lambda slot: (lambda *a: None if self._closed else slot(*a)))
        worker.result.connect(live(on_result))
        worker.errored.connect(live(self._on_error))
        worker.finished.connect(live(self._on_finished))
        self._update_buttons()
        self.busy_changed.emit(True)
        worker.start()

    def _on_error(self, exc, tb) -> None:
        if self.backend is None:
            self.model_state.setText(self.tr("Could not load %1: choose it again to retry")
                                     .replace("%1", self.model_picker.currentText()))
            self._loading_path = None
            self._pending = None
        if self.view.turns and self.view.turns[-1].role == "assistant" and not self.view.turns[-1].text:
            self.view.turns.pop()
            self.view.set_turns(self.view.turns)
        self.error_box = show_error(self, exc, tb)

    def _on_finished(self) -> None:
        self._worker = None
        self._loading_path = None
        self._update_buttons()
        self.busy_changed.emit(False)
        if self._load_next:
            self._load_next = False
            if self.model_picker.currentData() != self._loaded_path:
                self.load_selected()
                return
        if self._pending is not None and self.session is not None:
            text, self._pending = self._pending, None
            if self.view.turns and self.view.turns[-1].role == "user":
                self.view.turns[-1].note = ""
            self._send_now(text)

    def _update_buttons(self) -> None:
        generating = self._generating()
        has_model = bool(self.model_picker.currentData())
        self.send_button.setEnabled(has_model and not generating and self._pending is None)
        self.regen_button.setEnabled(not self.is_busy() and bool(self.session and self.session.messages))
        self.stop_button.setEnabled(generating)
        self.model_picker.setEnabled(not self.is_busy())
        self.conversations.setEnabled(not self.is_busy())

    # --- conversations -----------------------------------------------------------------------
    def new_conversation(self) -> None:
        if self.is_busy():
            return
        self.conversations.clear_selection()
        self.view.set_turns([])
        self.status.clear()
        if self.backend is not None:
            self.session = self._new_session()
        self._update_buttons()

    def open_conversation(self, cid: int) -> None:
        """Show a saved conversation and continue it with the model it was held with."""
        if self.is_busy():
            return
        turns = [Turn(m["role"], m["content"], m["stats"]) for m in self.store.messages(cid)]
        self.view.set_turns(turns)
        self.status.clear()
        conv = self.store.get_conversation(cid)
        self.system_prompt.setText(conv["system_prompt"])
        model = conv["model_path"]
        if model != self._loaded_path and self.model_picker.findData(model) >= 0:
            self._resume_id = cid
            self.choose_model(model)
        elif self.backend is not None:
            self.session = self._new_session(cid)
        elif model != self._loaded_path:
            self.status.setText(self.tr("This conversation's model is no longer listed: %1").replace("%1", model))
        self._update_buttons()

    def shutdown(self) -> None:
        """Stop serving and any answer, and wait for the worker, so the app can quit cleanly."""
        self._closed = True
        self._idle.stop()
        self.serve.shutdown()
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait(30000)
