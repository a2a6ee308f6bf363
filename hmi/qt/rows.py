"""A Qt table model over a list of rows under a fixed header.

Contract: :class:`RowTableModel` answers ``rowCount``, ``columnCount`` and
the horizontal ``headerData`` from :attr:`RowTableModel.rows` and the
class's :attr:`RowTableModel.columns`; subclasses fill ``rows`` and give
``data``. Index is the index type Qt passes to these methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

__all__ = ["Index", "RowTableModel"]

Index = QModelIndex | QPersistentModelIndex


class RowTableModel(QAbstractTableModel):
    """Rows of a list, one column per header label."""

    #: the header labels, one per column
    columns: Sequence[str] = ()
    rows: Sequence[Any]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return len(self.columns)

    def headerData(  # noqa: N802 - Qt override
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section]
        return None
