"""The quantization wizard: source → method → settings → plan → run → result."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWizard

from bitsmith.engine.api import ModelInfo

from ..conversion_queue import ConversionQueue
from .choose_pages import MethodPage, SourcePage
from .plan_page import PlanPage
from .run_pages import ResultPage, RunPage
from .settings_page import SettingsPage
from .state import WizardState


class ConvertWizard(QWizard):
    chat_requested = Signal(str)

    def __init__(self, queue: ConversionQueue, models: list[ModelInfo], source: ModelInfo | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle(self.tr("Convert a model"))
        self.setWizardStyle(QWizard.ModernStyle)
        self.setOption(QWizard.NoBackButtonOnLastPage, True)
        self.setOption(QWizard.NoCancelButtonOnLastPage, True)
        self.state = WizardState(source=source)
        self.page_source = SourcePage(self.state, models)
        self.page_method = MethodPage(self.state)
        self.page_settings = SettingsPage(self.state)
        self.page_plan = PlanPage(self.state)
        self.page_run = RunPage(self.state, queue)
        self.page_result = ResultPage(self.state)
        for page in (self.page_source, self.page_method, self.page_settings, self.page_plan, self.page_run,
                     self.page_result):
            self.addPage(page)
        self.page_result.chat_requested.connect(self.chat_requested)
        self.resize(820, 640)
