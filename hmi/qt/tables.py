"""Tabular displays: the point list of a device, the circuit-breaker table, reliability indices.

Contract:
- :class:`PointTableModel` lists the points of one device (or every point)
  with value, unit, quality flags and both timestamps; rows follow the
  model's point changes (one ``dataChanged`` per frame), values of bad or
  stale quality are coloured by :data:`hmi.qt.style.QUALITY_COLOURS`.
- :class:`BreakerPanel` shows ``GET /api/breakers`` (state, last trip,
  cause, expected outage), refreshed on demand, every few seconds while
  shown, and soon after a breaker's status point changes.
- :class:`ReliabilityPanel` computes ``GET /api/reliability`` over a chosen
  window and lists the outages in progress (``GET /api/outages?current``).
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import (
    QDateTime,
    QModelIndex,
    QObject,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateTimeEdit,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSpinBox,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hmi.client import ConsoleClient, Reply
from hmi.model.console import ConsoleModel
from hmi.model.points import PointState, format_time
from hmi.qt import style
from hmi.qt.rows import Index, RowTableModel

__all__ = [
    "BreakerPanel",
    "PointListPanel",
    "PointTableModel",
    "ReliabilityPanel",
    "fill_table",
    "record_table",
]

POINT_COLUMNS = ("Point", "Description", "Value", "Quality", "Source time", "Receive time")
ALL_DEVICES = "(all devices)"


def fill_table(table: QTableWidget, columns: list[str], rows: list[list[Any]]) -> None:
    """Replace a QTableWidget's contents (sorting off while filling)."""
    table.setSortingEnabled(False)
    table.clear()
    table.setColumnCount(len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.setItem(r, c, QTableWidgetItem("" if value is None else str(value)))
    table.resizeColumnsToContents()
    table.setSortingEnabled(True)


def record_table() -> QTableWidget:
    """A read-only, row-selecting table for query results."""
    t = QTableWidget()
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.verticalHeader().setVisible(False)
    t.verticalHeader().setDefaultSectionSize(20)
    return t


class PointTableModel(RowTableModel):
    """Points of one device (None: all) with live values and quality."""

    columns = POINT_COLUMNS

    def __init__(self, model: ConsoleModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.device: str | None = None
        self.rows: list[PointState] = []
        self._row_of: dict[str, int] = {}
        self._generation = -1
        model.points.changed.connect(self._on_points)

    def set_device(self, device: str | None) -> None:
        self.beginResetModel()
        self.device = device
        pts = self.model.points
        self.rows = pts.of_device(device) if device else [pts.points[n] for n in sorted(pts.points)]
        self._row_of = {p.name: i for i, p in enumerate(self.rows)}
        self._generation = pts.generation
        self.endResetModel()

    def _on_points(self, names: frozenset[str]) -> None:
        if self._generation != self.model.points.generation:
            self.set_device(self.device)  # a snapshot replaced the points
            return
        rows = [self._row_of[n] for n in names if n in self._row_of]
        if rows:
            self.dataChanged.emit(
                self.index(min(rows), 2), self.index(max(rows), len(POINT_COLUMNS) - 1)
            )

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        p = self.rows[index.row()]
        col = index.column()
        pts = self.model.points
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return p.name
            if col == 1:
                return p.description
            if col == 2:
                return p.value_text()
            if col == 3:
                flags = list(p.flags)
                if not pts.connected:
                    flags.append("stale")
                return ", ".join(flags) or "good"
            if col == 4:
                return format_time(p.source_time, with_date=True)
            return format_time(p.receive_time, with_date=True)
        if role == Qt.ItemDataRole.ForegroundRole and col in (2, 3):
            severity = pts.severity(p.name)
            if severity:
                return QBrush(style.qcolor(style.QUALITY_COLOURS[severity]))
        return None


class PointListPanel(QWidget):
    """Point list per device, with a name filter; context menu to control or trend."""

    #: (action, point): action is "control" or "trend"
    pointAction = Signal(str, str)  # noqa: N815 - Qt naming

    def __init__(self, model: ConsoleModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.table_model = PointTableModel(model, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.table_model)
        self.proxy.setFilterKeyColumn(0)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.device = QComboBox()
        self.device.currentTextChanged.connect(self._device_chosen)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter point names")
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, 170)
        self.table.setColumnWidth(2, 110)
        self.table.setColumnWidth(3, 170)
        self.table.setColumnWidth(4, 185)
        self.table.setColumnWidth(5, 185)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._menu)
        self.table.doubleClicked.connect(lambda i: self._act("control", i))
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Device"))
        bar.addWidget(self.device, 1)
        bar.addWidget(self.filter, 2)
        box = QVBoxLayout(self)
        box.setContentsMargins(2, 2, 2, 2)
        box.addLayout(bar)
        box.addWidget(self.table, 1)
        #: the devices listed in the choice (after "all devices")
        self._devices: list[str] = []
        model.points.changed.connect(self._devices_maybe_changed)

    def _devices_maybe_changed(self, _: frozenset[str]) -> None:
        devices = self.model.points.devices()
        if devices != self._devices:
            self._devices = devices
            current = self.device.currentText()
            self.device.blockSignals(True)
            self.device.clear()
            self.device.addItems([ALL_DEVICES, *devices])
            self.device.setCurrentText(current if current in devices else ALL_DEVICES)
            self.device.blockSignals(False)
            self._device_chosen(self.device.currentText())

    def show_device(self, device: str) -> None:
        self.device.setCurrentText(device)

    def _device_chosen(self, text: str) -> None:
        self.table_model.set_device(None if text in (ALL_DEVICES, "") else text)

    def _point_at(self, index: QModelIndex) -> str | None:
        if not index.isValid():
            return None
        return self.table_model.rows[self.proxy.mapToSource(index).row()].name

    def _act(self, action: str, index: QModelIndex) -> None:
        point = self._point_at(index)
        if point is not None:
            self.pointAction.emit(action, point)

    def _menu(self, pos: Any) -> None:
        index = self.table.indexAt(pos)
        point = self._point_at(index)
        if point is None:
            return
        menu = QMenu(self)
        menu.addAction(
            "Control / tag / substitute ...", lambda: self.pointAction.emit("control", point)
        )
        menu.addAction("Add to trend", lambda: self.pointAction.emit("trend", point))
        menu.exec(self.table.viewport().mapToGlobal(pos))


class BreakerPanel(QWidget):
    """The circuit-breaker status table."""

    COLUMNS = [
        "Point",
        "Device",
        "Element",
        "State",
        "Quality",
        "Changed",
        "Last trip",
        "Trip cause",
        "Expected outage",
    ]
    REFRESH_MS = 5000

    def __init__(self, model: ConsoleModel, client: ConsoleClient, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.client = client
        self.table = record_table()
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.note = QLabel("")
        bar = QHBoxLayout()
        bar.addWidget(refresh)
        bar.addWidget(self.note, 1)
        box = QVBoxLayout(self)
        box.setContentsMargins(2, 2, 2, 2)
        box.addLayout(bar)
        box.addWidget(self.table, 1)
        self._points: set[str] = set()
        self._timer = QTimer(self)
        self._timer.setInterval(self.REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._soon = QTimer(self)
        self._soon.setSingleShot(True)
        self._soon.setInterval(500)  # the historian records the change shortly after it is pushed
        self._soon.timeout.connect(self.refresh)
        model.points.changed.connect(self._on_points)

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.refresh()
        self._timer.start()

    def hideEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().hideEvent(event)
        self._timer.stop()

    def _on_points(self, names: frozenset[str]) -> None:
        if self.isVisible() and not self._soon.isActive() and names & self._points:
            self._soon.start()

    def refresh(self) -> None:
        self.client.request("GET", "/api/breakers", on_done=self._loaded)

    def _loaded(self, reply: Reply) -> None:
        if not reply.ok:
            self.note.setText(f"breakers: {reply.error}")
            return
        self._points = {b["point"] for b in reply.data}
        rows = [
            [
                b["point"],
                b["device"],
                b["element"],
                b["state"],
                self.model.points.marks(b["point"]) or "good",
                format_time(b["changed_s"], with_date=True),
                format_time(b["last_trip_s"], with_date=True),
                b["last_trip_cause"],
                "" if b["expected_outage_s"] is None else f"{b['expected_outage_s'] / 60:.0f} min",
            ]
            for b in reply.data
        ]
        fill_table(self.table, self.COLUMNS, rows)
        self.note.setText(f"{len(rows)} breakers, {time.strftime('%H:%M:%S')}")


class ReliabilityPanel(QWidget):
    """SAIFI, SAIDI, CAIDI, MAIFI over a window, and the outages in progress."""

    def __init__(self, client: ConsoleClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        now = QDateTime.currentDateTime()
        self.start = QDateTimeEdit(now.addDays(-30))
        self.end = QDateTimeEdit(now.addSecs(3600))
        for w in (self.start, self.end):
            w.setCalendarPopup(True)
            w.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.customers = QSpinBox()
        self.customers.setRange(0, 2**31 - 1)
        self.customers.setSpecialValueText("server setting")
        compute = QPushButton("Compute")
        compute.clicked.connect(self.refresh)
        self.indices = QTableWidget()
        self.indices.verticalHeader().setVisible(False)
        self.indices.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.outages = record_table()
        self.note = QLabel("")
        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.start)
        row.addWidget(QLabel("to"))
        row.addWidget(self.end)
        row.addWidget(QLabel("customers served"))
        row.addWidget(self.customers)
        row.addWidget(compute)
        row.addStretch(1)
        form.addRow("Window", row)
        box = QVBoxLayout(self)
        box.setContentsMargins(2, 2, 2, 2)
        box.addLayout(form)
        box.addWidget(self.indices)
        box.addWidget(QLabel("Outages in progress"))
        box.addWidget(self.outages, 1)
        box.addWidget(self.note)

    def refresh(self) -> None:
        params: dict[str, Any] = {
            "start_s": self.start.dateTime().toSecsSinceEpoch(),
            "end_s": self.end.dateTime().toSecsSinceEpoch(),
        }
        if self.customers.value():
            params["customers_served"] = self.customers.value()
        self.client.request("GET", "/api/reliability", params=params, on_done=self._indices)
        self.client.request(
            "GET", "/api/outages", params={"current": "true"}, on_done=self._outages
        )

    def _indices(self, reply: Reply) -> None:
        if not reply.ok:
            self.note.setText(f"reliability: {reply.error}")
            fill_table(self.indices, [], [])
            return
        d = reply.data
        names = [
            "SAIFI",
            "SAIDI (min)",
            "CAIDI (min)",
            "MAIFI",
            "Sustained",
            "Momentary",
            "Customer-minutes",
            "Customers served",
        ]
        values = [
            f"{d['saifi']:.4f}",
            f"{d['saidi_min']:.2f}",
            "-" if d["caidi_min"] is None else f"{d['caidi_min']:.2f}",
            f"{d['maifi']:.4f}",
            d["sustained_interruptions"],
            d["momentary_interruptions"],
            f"{d['customer_minutes']:.1f}",
            d["customers_served"],
        ]
        fill_table(self.indices, names, [values])
        self.indices.setMaximumHeight(60)
        self.note.setText(f"computed {time.strftime('%H:%M:%S')}")

    def _outages(self, reply: Reply) -> None:
        if not reply.ok:
            return
        rows = [
            [
                o["device"],
                o["feeder"],
                o["cause"],
                format_time(o["start_s"], with_date=True),
                o["customers"],
                "planned" if o["planned"] else "",
            ]
            for o in reply.data
        ]
        fill_table(self.outages, ["Device", "Feeder", "Cause", "Start", "Customers", ""], rows)
