"""Event and sequence-of-events lists from the historian, with filters and a time range.

Contract: :class:`EventPanel` queries ``GET /api/events`` (device, kind,
maximum priority) or ``GET /api/soe`` (device) over a time range (a recent
period, or from/to), shows the records newest first (events) or in time
order (SOE, device time stamps to the millisecond), and with *follow*
re-queries every few seconds.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QDateTime, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hmi.client import ConsoleClient, Reply
from hmi.model.console import ConsoleModel
from hmi.model.points import format_time
from hmi.qt.tables import fill_table, record_table

__all__ = ["EventPanel"]

PERIODS_S = {
    "last 15 min": 900,
    "last hour": 3600,
    "last 24 h": 86400,
    "last 7 days": 7 * 86400,
    "from/to": 0,
}
ANY_DEVICE = "(any device)"


class EventPanel(QWidget):
    """Events and SOE with filters; see the module docstring."""

    FOLLOW_MS = 3000

    def __init__(self, model: ConsoleModel, client: ConsoleClient, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.client = client
        self.period = QComboBox()
        self.period.addItems(list(PERIODS_S))
        self.period.setCurrentText("last hour")
        now = QDateTime.currentDateTime()
        self.start = QDateTimeEdit(now.addSecs(-3600))
        self.end = QDateTimeEdit(now.addSecs(60))
        for w in (self.start, self.end):
            w.setCalendarPopup(True)
            w.setDisplayFormat("yyyy-MM-dd HH:mm:ss")
        self.period.currentTextChanged.connect(self._period_changed)
        self._period_changed(self.period.currentText())
        self.device = QComboBox()
        self.device.setEditable(True)
        self.device.addItem(ANY_DEVICE)
        self.kind = QLineEdit()
        self.kind.setPlaceholderText("event kind")
        self.kind.setMaximumWidth(120)
        self.priority = QComboBox()
        self.priority.addItems(["any priority", "<= 1", "<= 2", "<= 3", "<= 4"])
        self.limit = QSpinBox()
        self.limit.setRange(1, 100_000)
        self.limit.setValue(1000)
        self.follow = QCheckBox("follow")
        self.follow.toggled.connect(self._follow)
        query = QPushButton("Query")
        query.clicked.connect(self.refresh)
        bar = QHBoxLayout()
        for widget in (
            self.period,
            self.start,
            QLabel("to"),
            self.end,
            self.device,
            self.kind,
            self.priority,
            QLabel("limit"),
            self.limit,
            query,
            self.follow,
        ):
            bar.addWidget(widget)
        bar.addStretch(1)
        self.tabs = QTabWidget()
        self.events = record_table()
        self.soe = record_table()
        self.tabs.addTab(self.events, "Events")
        self.tabs.addTab(self.soe, "SOE")
        self.tabs.currentChanged.connect(lambda _: self.refresh())
        self.note = QLabel("")
        box = QVBoxLayout(self)
        box.setContentsMargins(2, 2, 2, 2)
        box.addLayout(bar)
        box.addWidget(self.tabs, 1)
        box.addWidget(self.note)
        self._timer = QTimer(self)
        self._timer.setInterval(self.FOLLOW_MS)
        self._timer.timeout.connect(self.refresh)
        model.points.changed.connect(self._devices)

    def _devices(self, _: frozenset[str]) -> None:
        devices = self.model.points.devices()
        if self.device.count() != len(devices) + 1:
            current = self.device.currentText()
            self.device.clear()
            self.device.addItems([ANY_DEVICE, *devices])
            self.device.setCurrentText(current)

    def _period_changed(self, text: str) -> None:
        custom = PERIODS_S[text] == 0
        self.start.setEnabled(custom)
        self.end.setEnabled(custom)

    def _follow(self, on: bool) -> None:
        if on:
            self.refresh()
            self._timer.start()
        else:
            self._timer.stop()

    def time_range(self) -> tuple[float, float]:
        """The queried time range, POSIX seconds."""
        period = PERIODS_S[self.period.currentText()]
        if period:
            now = time.time()
            return now - period, now + 1
        return float(self.start.dateTime().toSecsSinceEpoch()), float(
            self.end.dateTime().toSecsSinceEpoch()
        )

    def params(self) -> dict[str, Any]:
        start, end = self.time_range()
        params: dict[str, Any] = {"start_s": start, "end_s": end, "limit": self.limit.value()}
        device = self.device.currentText().strip()
        if device and device != ANY_DEVICE:
            params["device"] = device
        return params

    def refresh(self) -> None:
        params = self.params()
        if self.tabs.currentIndex() == 0:
            if self.kind.text().strip():
                params["kind"] = self.kind.text().strip()
            if self.priority.currentIndex():
                params["max_priority"] = self.priority.currentIndex()
            self.client.request("GET", "/api/events", params=params, on_done=self._events)
        else:
            self.client.request("GET", "/api/soe", params=params, on_done=self._soe)

    def _events(self, reply: Reply) -> None:
        if not reply.ok:
            self.note.setText(f"events: {reply.error}")
            return
        rows = [
            [
                format_time(e["time_s"], with_date=True),
                e["priority"],
                e["kind"],
                e["device"],
                e["point"],
                e["message"],
            ]
            for e in reply.data
        ]
        fill_table(self.events, ["Time", "Pri", "Kind", "Device", "Point", "Message"], rows)
        self.note.setText(f"{len(rows)} events")

    def _soe(self, reply: Reply) -> None:
        if not reply.ok:
            self.note.setText(f"SOE: {reply.error}")
            return
        rows = [
            [
                ""
                if s["source_time_ms"] is None
                else format_time(s["source_time_ms"] / 1000, with_date=True),
                format_time(s["receive_time_s"], with_date=True),
                s["device"],
                s["point"],
                s["text"],
                f"{s['previous']:g} -> {s['value']:g}",
                "commanded" if s["commanded"] else "",
            ]
            for s in reply.data
        ]
        fill_table(
            self.soe, ["Device time", "Received", "Device", "Point", "Text", "Change", ""], rows
        )
        self.note.setText(f"{len(rows)} SOE records")
