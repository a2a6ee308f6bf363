"""Alarm summary (table with filters and operator acts) and the always-visible alarm banner.

Contract:
- :class:`AlarmTableModel` shows :meth:`hmi.model.AlarmStore.listed` under
  an :class:`~hmi.model.AlarmFilter`: priority colours, unacknowledged rows
  blinking (:meth:`AlarmTableModel.blink`), cleared ones in italics.
- :class:`AlarmSummary` acknowledges the selected alarms, the page (the
  unacknowledged rows in view) or one (double-click), shelves and
  unshelves, through the API; the list itself changes when the server
  pushes the transitions. Viewers see the buttons disabled.
- :class:`AlarmBanner` shows the counts and the most urgent unacknowledged
  alarms, blinking in the top priority's colour while any is unacknowledged.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QItemSelectionModel,
    QObject,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from hmi.client import ConsoleClient, Reply
from hmi.model.alarms import PRIORITY_NAMES, Alarm, AlarmFilter
from hmi.model.console import ConsoleModel
from hmi.model.points import format_time
from hmi.qt import style
from hmi.qt.rows import Index, RowTableModel

__all__ = ["AlarmBanner", "AlarmSummary", "AlarmTableModel"]

COLUMNS = ("Time", "Pri", "Area", "Device", "Source", "Message", "Value", "State", "Ack by")
SHELVE_CHOICES_S = {"15 min": 900.0, "1 h": 3600.0, "8 h": 8 * 3600.0}


class AlarmTableModel(RowTableModel):
    """The filtered alarm list as a Qt table model."""

    columns = COLUMNS

    def __init__(self, model: ConsoleModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.filter = AlarmFilter()
        self.rows: list[Alarm] = []
        self.phase = False
        self._italic = QFont()
        self._italic.setItalic(True)
        model.alarms.changed.connect(lambda _: self.refresh())
        model.network_changed.connect(lambda _: self.refresh())

    def set_filter(self, flt: AlarmFilter) -> None:
        self.filter = flt
        self.refresh()

    def refresh(self) -> None:
        self.beginResetModel()
        self.rows = self.model.alarms.listed(self.filter, self.model.area_of)
        self.endResetModel()

    def blink(self) -> None:
        """Toggle the blink phase of unacknowledged rows."""
        self.phase = not self.phase
        if self.rows:
            self.dataChanged.emit(
                self.index(0, 0),
                self.index(len(self.rows) - 1, len(COLUMNS) - 1),
                [Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole],
            )

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        a = self.rows[index.row()]
        col = index.column()
        colour = style.PRIORITY_COLOURS.get(a.priority, "#9e9e9e")
        blinking = not a.acknowledged and self.phase
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(a, col)
        if role == Qt.ItemDataRole.BackgroundRole:
            if blinking:
                return QBrush(style.qcolor(colour))
            return QBrush(style.qcolor("#1b2530" if a.acknowledged else "#2a1f1f"))
        if role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(style.qcolor("#000000" if blinking else colour))
        if role == Qt.ItemDataRole.FontRole and a.state == "cleared":
            return self._italic
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{a.message}\n{a.condition} {a.detail}".strip()
        return None

    def _text(self, a: Alarm, col: int) -> str:
        if col == 0:
            return format_time(a.raised_time, with_date=True)
        if col == 1:
            return f"{a.priority} {PRIORITY_NAMES.get(a.priority, '')}"
        if col == 2:
            return self.model.area_of(a)
        if col == 3:
            return a.device or ""
        if col == 4:
            return a.point or a.source
        if col == 5:
            return a.message
        if col == 6:
            return "" if a.value is None else f"{a.value:g}"
        if col == 7:
            flags = [a.state]
            if a.shelved():
                flags.append("shelved")
            if a.suppressed:
                flags.append("suppressed")
            return ", ".join(flags)
        return a.ack_operator or ""


class AlarmSummary(QWidget):
    """The alarm list with filters, acknowledge and shelve; see the module docstring."""

    #: a message for the operator (results of acts)
    message = Signal(str)

    def __init__(self, model: ConsoleModel, client: ConsoleClient, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.client = client
        self.table_model = AlarmTableModel(model, self)
        self.table = QTableView()
        self.table.setModel(self.table_model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(20)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        for col, width in enumerate((165, 75, 80, 80, 120, 0, 60, 110, 70)):
            if width:
                self.table.setColumnWidth(col, width)
        self.table.doubleClicked.connect(
            lambda index: self.acknowledge([self.table_model.rows[index.row()]])
        )

        self.area = QComboBox()
        self.area.addItem("All areas")
        self.priority = QComboBox()
        self.priority.addItems(
            ["All priorities", *(f"<= {p} {n}" for p, n in PRIORITY_NAMES.items())]
        )
        self.shelved = QCheckBox("Shelved/suppressed")
        self.unacked = QCheckBox("Unacked only")
        for w in (self.area, self.priority):
            w.currentIndexChanged.connect(lambda _: self._apply_filter())
        for c in (self.shelved, self.unacked):
            c.toggled.connect(lambda _: self._apply_filter())
        self.ack_selected = QPushButton("Ack selected")
        self.ack_selected.clicked.connect(lambda: self.acknowledge(self.selected()))
        self.ack_page = QPushButton("Ack page")
        self.ack_page.clicked.connect(lambda: self.acknowledge(self.page()))
        self.shelved.setToolTip("show shelved and suppressed alarms too")
        self.ack_selected.setToolTip("acknowledge the selected alarms (double-click: one)")
        self.ack_page.setToolTip("acknowledge the unacknowledged alarms in view")
        self.shelve_for = QComboBox()
        self.shelve_for.addItems(list(SHELVE_CHOICES_S))
        self.shelve = QPushButton("Shelve")
        self.shelve.clicked.connect(self._shelve)
        self.unshelve = QPushButton("Unshelve")
        self.unshelve.clicked.connect(self._unshelve)
        self.result = QLabel("")
        bar = QHBoxLayout()
        for choice in (self.area, self.priority, self.shelved, self.unacked):
            bar.addWidget(choice)
        bar.addStretch(1)
        for act in (self.ack_selected, self.ack_page, self.shelve_for, self.shelve, self.unshelve):
            bar.addWidget(act)
        box = QVBoxLayout(self)
        box.setContentsMargins(2, 2, 2, 2)
        box.addLayout(bar)
        box.addWidget(self.table, 1)
        box.addWidget(self.result)
        # the list is rebuilt on every change: keep the operator's selection across it
        self._selected_ids: set[int] = set()
        self.table_model.modelAboutToBeReset.connect(self._remember_selection)
        self.table_model.modelReset.connect(self._restore_selection)
        model.alarms.changed.connect(lambda _: self._update_areas())
        model.network_changed.connect(lambda _: self._update_areas())
        model.session_changed.connect(lambda _: self._update_enabled())
        self._update_enabled()

    def _update_enabled(self) -> None:
        allowed = self.model.can_command
        for w in (self.ack_selected, self.ack_page, self.shelve, self.unshelve):
            w.setEnabled(allowed)
            w.setToolTip("" if allowed else "viewers cannot acknowledge or shelve")

    def _update_areas(self) -> None:
        areas = self.model.areas()
        current = self.area.currentText()
        have = [self.area.itemText(i) for i in range(1, self.area.count())]
        if have != areas:
            self.area.blockSignals(True)
            self.area.clear()
            self.area.addItem("All areas")
            self.area.addItems(areas)
            self.area.setCurrentText(current if current in areas else "All areas")
            self.area.blockSignals(False)

    def _apply_filter(self) -> None:
        self.table_model.set_filter(
            AlarmFilter(
                area=None if self.area.currentIndex() <= 0 else self.area.currentText(),
                max_priority=self.priority.currentIndex() or None,
                show_shelved=self.shelved.isChecked(),
                unacknowledged_only=self.unacked.isChecked(),
            )
        )

    def _remember_selection(self) -> None:
        self._selected_ids = {a.id for a in self.selected()}

    def _restore_selection(self) -> None:
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        selection = self.table.selectionModel()
        for row, alarm in enumerate(self.table_model.rows):
            if alarm.id in self._selected_ids:
                selection.select(self.table_model.index(row, 0), flags)

    def selected(self) -> list[Alarm]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.table_model.rows[r] for r in rows if r < len(self.table_model.rows)]

    def page(self) -> list[Alarm]:
        """The alarms in the rows now in view."""
        rows = self.table_model.rows
        if not rows:
            return []
        top = max(0, self.table.rowAt(0))
        bottom = self.table.rowAt(self.table.viewport().height() - 1)
        bottom = len(rows) - 1 if bottom < 0 else bottom
        return rows[top : bottom + 1]

    def acknowledge(self, alarms: list[Alarm]) -> None:
        """Acknowledge the unacknowledged ones of ``alarms`` on the server."""
        ids = [a.id for a in alarms if not a.acknowledged]
        if not ids or not self.model.can_command:
            return
        if len(ids) == 1:
            self.client.request(
                "POST", f"/api/alarms/{ids[0]}/ack", on_done=self._done("acknowledged")
            )
        else:
            self.client.request(
                "POST", "/api/alarms/ack", json={"ids": ids}, on_done=self._done("acknowledged")
            )

    def _shelve(self) -> None:
        duration = SHELVE_CHOICES_S[self.shelve_for.currentText()]
        for a in self.selected():
            self.client.request(
                "POST",
                f"/api/alarms/{a.id}/shelve",
                json={"duration_s": duration},
                on_done=self._done("shelved"),
            )

    def _unshelve(self) -> None:
        for a in self.selected():
            self.client.request(
                "POST", f"/api/alarms/{a.id}/unshelve", on_done=self._done("unshelved")
            )

    def _done(self, what: str) -> Any:
        def report(reply: Reply) -> None:
            if reply.ok:
                n = len(reply.data) if isinstance(reply.data, list) else 1
                text = f"{n} alarm{'s' if n != 1 else ''} {what}"
            else:
                text = f"refused: {reply.error}"
            self.result.setText(text)
            self.message.emit(text)

        return report


class AlarmBanner(QFrame):
    """Counts and the most urgent unacknowledged alarms, always in view."""

    LINES = 3

    def __init__(self, model: ConsoleModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.phase = False
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.counts = QLabel()
        self.counts.setMinimumWidth(220)
        font = self.counts.font()
        font.setBold(True)
        self.counts.setFont(font)
        self.lines = [QLabel() for _ in range(self.LINES)]
        box = QHBoxLayout(self)
        box.setContentsMargins(6, 2, 6, 2)
        box.addWidget(self.counts)
        column = QVBoxLayout()
        column.setSpacing(0)
        for line in self.lines:
            column.addWidget(line)
        box.addLayout(column, 1)
        model.alarms.changed.connect(lambda _: self.refresh())
        self.refresh()

    def blink(self) -> None:
        self.phase = not self.phase
        self.refresh()

    def refresh(self) -> None:
        counts = self.model.alarms.counts()
        top = counts.top_unacknowledged
        colour = style.PRIORITY_COLOURS.get(top, "#2e7d32") if top else "#2e7d32"
        lit = top is not None and self.phase
        self.counts.setText(
            f"UNACK {counts.unacknowledged}  ACK {counts.acknowledged}  "
            f"CLEARED {counts.cleared}  SHELVED {counts.shelved}"
        )
        self.counts.setStyleSheet(
            f"background:{colour if lit or top is None else '#202a34'};"
            f"color:{'#000' if lit else colour if top else '#fff'};padding:4px;"
        )
        for label, alarm in zip(
            self.lines, [*self.model.alarms.banner(self.LINES), None, None, None], strict=False
        ):
            if alarm is None:
                label.setText("")
                continue
            c = style.PRIORITY_COLOURS.get(alarm.priority, "#fff")
            label.setText(
                f"<span style='color:{c}'><b>P{alarm.priority}</b> "
                f"{format_time(alarm.raised_time)} {alarm.device or ''} {alarm.message}</span>"
            )
