"""A Qt table model over the engine catalog's `ModelInfo` list. The list is the store of truth."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QCoreApplication, QModelIndex, QSortFilterProxyModel, Qt

from bitsmith.engine.api import ModelInfo, human_bytes, human_count

from .icons import icon
from .terms import tip

SORT_ROLE = Qt.UserRole + 1
INFO_ROLE = Qt.UserRole + 2
#: Columns the details panel shows anyway; hidden at first so the rest fit a 1200 px window.
HIDDEN_BY_DEFAULT = (2, 7, 9)
HEADER_TERMS = {5: "bits/weight", 7: "context", 8: "ram to chat"}


class CatalogModel(QAbstractTableModel):
    COLUMNS = ("Name", "Format", "Architecture", "Parameters", "Type", "Bits/weight", "Size",
               "Context", "RAM to chat", "Found in")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._models: list[ModelInfo] = []

    def set_models(self, models: list[ModelInfo]) -> None:
        self.beginResetModel()
        self._models = list(models)
        self.endResetModel()

    def models(self) -> list[ModelInfo]:
        return list(self._models)

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._models)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return self.tr(self.COLUMNS[section])
        if orientation == Qt.Horizontal and role == Qt.ToolTipRole and section in HEADER_TERMS:
            return tip(HEADER_TERMS[section])
        return None

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        m = self._models[index.row()]
        col = index.column()
        if role == INFO_ROLE:
            return m
        if role == Qt.ToolTipRole:
            return m.error or "\n".join([m.path, *refusal_lines(m)])
        if role == Qt.DecorationRole and col == 0 and m.ok and m.unavailable:
            return icon("limited")  # a badge: some paths refuse this model's family (tooltip says which)
        if role == Qt.DisplayRole:
            return self._display(m, col)
        if role == SORT_ROLE:
            return self._sort_key(m, col)
        if role == Qt.TextAlignmentRole and col in (3, 5, 6, 7, 8):
            return int(Qt.AlignRight | Qt.AlignVCenter)
        return None

    def _display(self, m: ModelInfo, col: int):
        if m.error and col == 1:
            return self.tr("unusable")
        values = (
            m.name, m.format.value if m.format else "", m.architecture or "",
            human_count(m.parameters) if m.parameters else "", m.dtype or "",
            f"{m.bits_per_weight:.2f}" if m.bits_per_weight else "", human_bytes(m.size_bytes),
            f"{m.context_length:,}" if m.context_length else "",
            human_bytes(m.ram_to_chat_bytes) if m.ram_to_chat_bytes else "", m.origin.value,
        )
        return values[col]

    def _sort_key(self, m: ModelInfo, col: int):
        numeric = {3: m.parameters, 5: m.bits_per_weight, 6: m.size_bytes, 7: m.context_length,
                   8: m.ram_to_chat_bytes}
        if col in numeric:
            return float(numeric[col] or 0)
        return str(self._display(m, col)).lower()


def refusal_lines(m: ModelInfo) -> list[str]:
    """One line per path the model's family cannot take, with the engine's reason (the same refusal
    plan() and the CLI give), for the tooltip of the browser's badge."""
    head = QCoreApplication.translate("CatalogModel", "Not available for %1:").replace("%1", m.family or m.name)
    return [f"{head} {path}: {why}" for path, why in (m.unavailable or {}).items()]


class CatalogFilter(QSortFilterProxyModel):
    """Case-insensitive filter over name, format, architecture, type and path."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self._needle = ""

    def set_needle(self, text: str) -> None:
        self.beginFilterChange()
        self._needle = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row, parent):
        if not self._needle:
            return True
        m: ModelInfo = self.sourceModel().index(row, 0, parent).data(INFO_ROLE)
        hay = " ".join(str(x) for x in (m.name, m.format.value if m.format else "", m.architecture,
                                         m.dtype, m.path, m.origin.value)).lower()
        return all(word in hay for word in self._needle.split())
