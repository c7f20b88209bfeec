"""The main window: a sidebar that switches between Models, Convert and Chat, and a status bar."""

from __future__ import annotations

from PySide6.QtCore import QSettings, QSize
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QMainWindow, QMessageBox, QStackedWidget, QWidget

from .browser import ModelBrowser
from .conversion_queue import ConversionQueue
from .convert_area import ConvertArea
from .icons import icon
from .notify import Notifier
from .status_bar import AppStatusBar


class MainWindow(QMainWindow):
    AREAS = ("models", "convert", "chat", "compare")

    def __init__(self, initial_model: str | None = None, scan: bool = True):
        super().__init__()
        self.setWindowTitle(self.tr("Bitsmith"))
        self.browser = ModelBrowser()
        self.queue = ConversionQueue(self)
        self.convert_page = ConvertArea(self.queue)
        self.convert_page.new_requested.connect(lambda: self.open_wizard(self.browser.selected_model()))
        self.convert_page.chat_requested.connect(self.chat_with_path)
        self.queue.finished.connect(self._on_conversion_finished)
        # Chat and Compare are built when first shown or used (their modules, the chat history and the
        # chart stay out of start-up); until then a placeholder holds each one's place in the stack.
        self._lazy: dict[str, QWidget] = {}
        self._models: list = []
        self.stack = QStackedWidget()
        for page in (self.browser, self.convert_page, QWidget(), QWidget()):
            self.stack.addWidget(page)

        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setIconSize(QSize(22, 22))
        self.sidebar.setFixedWidth(150)
        self.sidebar.setStyleSheet("#sidebar { font-size: 11pt; } #sidebar::item { padding: 8px 6px; }")
        for label, name in zip((self.tr("Models"), self.tr("Convert"), self.tr("Chat"), self.tr("Compare")), self.AREAS):
            QListWidgetItem(icon(name), label, self.sidebar)
        self.sidebar.currentRowChanged.connect(self._show_row)

        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(4, 4, 4, 0)
        row.addWidget(self.sidebar)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.setStatusBar(AppStatusBar(self))
        self.notifier = Notifier(self)
        self._quitting = False
        self._add_shortcuts()

        self.browser.chat_requested.connect(self.chat_with)
        self.browser.models_changed.connect(self._models_changed)
        self.browser.compare_requested.connect(self.compare_family)
        self.browser.convert_requested.connect(self.open_wizard)
        self.browser.models_changed.connect(self._select_remembered_model)
        self._initial_model = initial_model
        self._restore()
        if scan:  # the app starts the scan once the window is painted (app.run_app)
            self.browser.refresh()

    @property
    def chat_page(self):
        return self._page("chat")

    @property
    def compare_page(self):
        return self._page("compare")

    def _page(self, name: str):
        """The area `name`, built the first time it is asked for."""
        if name not in self._lazy:
            if name == "chat":
                from .chat_pane import ChatPane

                page = ChatPane()
            else:
                from .compare_area import CompareArea

                page = CompareArea()
                page.evaluate_requested.connect(self.evaluate_path)
            page.set_models(self._models)
            if (state := QSettings().value(f"{name}/splitter")) is not None:
                page.splitter.restoreState(state)
            index = self.AREAS.index(name)
            placeholder = self.stack.widget(index)
            current = self.stack.currentIndex()
            self.stack.insertWidget(index, page)
            self.stack.removeWidget(placeholder)
            placeholder.deleteLater()
            self.stack.setCurrentIndex(current)
            self._lazy[name] = page
        return self._lazy[name]

    def _show_row(self, row: int) -> None:
        if self.AREAS[row] in ("chat", "compare"):
            self._page(self.AREAS[row])
        self.stack.setCurrentIndex(row)

    def _models_changed(self, models: list) -> None:
        self._models = models
        for page in self._lazy.values():
            page.set_models(models)

    def chat_with(self, model) -> None:
        self.chat_with_path(model.path)

    def chat_with_path(self, path: str) -> None:
        """Chat with a model by path; a new output is added to the catalog first so the picker has it."""
        if self.chat_page.model_picker.findData(path) < 0:
            from bitsmith.engine import api

            try:
                self.chat_page.set_models(self.browser.model.models() + [api.inspect(path)])
            except Exception as exc:  # an unusable file: say why instead of failing silently
                self.statusBar().showMessage(str(exc), 8000)
                return
        picker = self.chat_page.model_picker
        picker.setCurrentIndex(picker.findData(path))  # before the area shows: it loads what it shows
        self.show_area("chat")
        self.chat_page.choose_model(path)

    def _on_conversion_finished(self, entry) -> None:
        """A finished output joins the model list (and so the chat picker and the Compare view)."""
        from bitsmith.engine.api import output_of

        from .conversion_queue import DONE

        self.notifier.conversion_finished(entry)
        out = output_of(entry.result)
        if entry.status == DONE and out is not None:
            listed = {m.path for m in self.browser.model.models()}
            if str(out) not in listed:
                try:
                    from bitsmith.engine import api

                    api.add_model_path(out)
                except Exception as exc:  # an output that vanished meanwhile: say so, keep going
                    self.statusBar().showMessage(str(exc), 8000)
        self.browser.refresh()

    def compare_family(self, model) -> None:
        self.show_area("compare")
        self.compare_page.show_family_of(model)

    def evaluate_path(self, path: str):
        """The evaluation dialog for any listed model (the Compare view asks for its unevaluated ones)."""
        self.browser.select_path(path)
        return self.browser.evaluate_selected()

    def open_wizard(self, source=None):
        from .wizard import ConvertWizard

        self.show_area("convert")
        wizard = ConvertWizard(self.queue, self.browser.model.models(), source, self)
        wizard.chat_requested.connect(self.chat_with_path)
        wizard.setModal(False)
        wizard.show()
        self.wizard = wizard
        return wizard

    def show_area(self, name: str) -> None:
        self.sidebar.setCurrentRow(self.AREAS.index(name))

    def current_area(self) -> str:
        return self.AREAS[self.stack.currentIndex()]

    def _add_shortcuts(self) -> None:
        for i, name in enumerate(self.AREAS):
            act = QAction(self)
            act.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            act.triggered.connect(lambda _=False, n=name: self.show_area(n))
            self.addAction(act)
        refresh = QAction(self.tr("Refresh models"), self)
        refresh.setShortcut(QKeySequence.Refresh)
        refresh.triggered.connect(self.browser.refresh)
        self.addAction(refresh)
        find = QAction(self.tr("Filter models"), self)
        find.setShortcut(QKeySequence.Find)
        find.triggered.connect(lambda: (self.show_area("models"), self.browser.filter_box.setFocus()))
        self.addAction(find)
        convert = QAction(self.tr("New conversion"), self)
        convert.setShortcut(QKeySequence.New)
        convert.triggered.connect(lambda: self.open_wizard(self.browser.selected_model()))
        self.addAction(convert)
        quit_ = QAction(self.tr("Quit"), self)
        quit_.setShortcut(QKeySequence.Quit)
        quit_.triggered.connect(self.close)
        self.addAction(quit_)

    def _select_remembered_model(self, models: list) -> None:
        """Once, after the first scan: the model of the last session (or --model). Later rescans keep
        whatever the user has selected since."""
        self.browser.models_changed.disconnect(self._select_remembered_model)
        wanted = self._initial_model or QSettings().value("browser/last_model", "", str)
        self._initial_model = None
        if wanted:
            self.browser.select_path(wanted)

    def _restore(self) -> None:
        s = QSettings()
        if (geo := s.value("window/geometry")) is not None:
            self.restoreGeometry(geo)
        else:
            self.resize(1200, 760)
        if (state := s.value("browser/splitter")) is not None:
            self.browser.splitter.restoreState(state)
        self.sidebar.setCurrentRow(min(int(s.value("window/area", 0)), len(self.AREAS) - 1))

    def confirm_quit(self, entry) -> bool:
        """Ask before a quit cancels a conversion (tests replace this)."""
        text = (self.tr("“%1” is still converting. Quitting stops it; its finished blocks are kept, and the same "
                        "conversion started again continues from them. Quit anyway?") if entry.resumable  # paused
                else self.tr("“%1” is still converting. Quitting cancels it and removes its unfinished output. "
                             "Quit anyway?"))
        return QMessageBox.question(self, self.tr("Quit Bitsmith?"), text.replace("%1", entry.title),
                                    QMessageBox.Yes | QMessageBox.No, QMessageBox.No) == QMessageBox.Yes

    def closeEvent(self, event):
        running = self.queue.running()
        if running is not None or not self.queue.is_idle():
            # Never wait for the conversion here (the window froze for up to a minute): ask, cancel,
            # and close once the queue reports it stopped; the window keeps painting meanwhile.
            if not self._quitting:
                if running is not None and not self.confirm_quit(running):
                    event.ignore()
                    return
                self._quitting = True
                self.queue.cancel_all()
                self.statusBar().showMessage(self.tr("Stopping the conversion before quitting…"))
                self.queue.idle.connect(self.close)
            event.ignore()
            return
        for page in self._lazy.values():
            page.shutdown()
        self.queue.shutdown()
        self.browser.shutdown()
        self.statusBar().shutdown()
        s = QSettings()
        for name, page in self._lazy.items():
            s.setValue(f"{name}/splitter", page.splitter.saveState())
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("browser/splitter", self.browser.splitter.saveState())
        s.setValue("window/area", self.stack.currentIndex())
        if (m := self.browser.selected_model()) is not None:
            s.setValue("browser/last_model", m.path)
        super().closeEvent(event)
