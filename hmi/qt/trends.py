"""Trends with pyqtgraph: several points on one chart, live or historical, with a cursor readout.

Contract:
- :class:`TrendPanel` plots any number of points against time. *Live*:
  the last window of values from the historian (``GET /api/history``),
  then every pushed value as it arrives, the time axis following now.
  *Historical*: the archived values between two times (the time range
  controls show in this mode only). Zoom and pan are
  pyqtgraph's (wheel, drag, right-drag); the vertical cursor follows the
  mouse and the readout gives each point's value at that time (the last
  sample at or before it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QDateTime, QPointF, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QDateTimeEdit,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from hmi.client import ConsoleClient, Reply
from hmi.model.console import ConsoleModel
from hmi.model.points import format_time
from hmi.qt import style

__all__ = ["TrendPanel"]

WINDOWS_S = {"1 min": 60, "5 min": 300, "15 min": 900, "1 h": 3600, "8 h": 8 * 3600}
#: live samples kept per point
MAX_SAMPLES = 50_000


@dataclass
class _Series:
    point: str
    curve: pg.PlotDataItem
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)

    def redraw(self) -> None:
        self.curve.setData(np.asarray(self.xs, float), np.asarray(self.ys, float), connect="finite")

    def value_at(self, t: float) -> float | None:
        i = int(np.searchsorted(np.asarray(self.xs), t, side="right")) - 1
        if i < 0 or not self.xs:
            return None
        v = self.ys[i]
        return None if math.isnan(v) else v


class TrendPanel(QWidget):
    """Live and historical trends of several points; see the module docstring."""

    def __init__(self, model: ConsoleModel, client: ConsoleClient, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.client = client
        self.series: dict[str, _Series] = {}
        self.live = True
        pg.setConfigOptions(antialias=True)
        self.plot = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
        self.plot.setBackground(style.BACKGROUND)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.addLegend(offset=(10, 10))
        self.cursor_line = pg.InfiniteLine(
            angle=90, movable=False, pen=pg.mkPen("#ffe000", width=1)
        )
        self.plot.addItem(self.cursor_line, ignoreBounds=True)
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)
        self.readout = QLabel("move the mouse over the chart for values")
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.readout.setWordWrap(True)

        self.point_edit = QLineEdit()
        self.point_edit.setPlaceholderText("point name")
        self.point_edit.returnPressed.connect(
            lambda: self.add_point(self.point_edit.text().strip())
        )
        add = QPushButton("Add")
        add.clicked.connect(lambda: self.add_point(self.point_edit.text().strip()))
        self.points_list = QListWidget()
        self.points_list.setMaximumWidth(160)
        remove = QPushButton("Remove selected")
        remove.clicked.connect(self._remove_selected)
        self.mode = QComboBox()
        self.mode.addItems(["live", "historical"])
        self.mode.currentTextChanged.connect(self._mode_changed)
        self.window_box = QComboBox()
        self.window_box.addItems(list(WINDOWS_S))
        self.window_box.setCurrentText("5 min")
        self.window_box.currentTextChanged.connect(lambda _: self._reload())
        now = QDateTime.currentDateTime()
        self.start = QDateTimeEdit(now.addSecs(-3600))
        self.end = QDateTimeEdit(now)
        for w in (self.start, self.end):
            w.setCalendarPopup(True)
            w.setDisplayFormat("yyyy-MM-dd HH:mm:ss")
        load = QPushButton("Load")
        load.clicked.connect(self._reload)
        self.note = QLabel("")

        bar = QHBoxLayout()
        for widget in (self.point_edit, add, self.mode, QLabel("window"), self.window_box):
            bar.addWidget(widget)
        bar.addWidget(self.note, 1)
        # the time range of historical mode, shown in that mode only
        self.range_bar = QWidget()
        rng = QHBoxLayout(self.range_bar)
        rng.setContentsMargins(0, 0, 0, 0)
        for part in (QLabel("from"), self.start, QLabel("to"), self.end, load):
            rng.addWidget(part)
        rng.addStretch(1)
        self.range_bar.setVisible(False)
        side = QVBoxLayout()
        side.addWidget(self.points_list, 1)
        side.addWidget(remove)
        body = QHBoxLayout()
        body.addLayout(side)
        body.addWidget(self.plot, 1)
        box = QVBoxLayout(self)
        box.setContentsMargins(2, 2, 2, 2)
        box.addLayout(bar)
        box.addWidget(self.range_bar)
        box.addLayout(body, 1)
        box.addWidget(self.readout)
        model.points.changed.connect(self._on_points)

    # -------------------------------------------------------------- points
    def set_completions(self) -> None:
        names = [
            p.name
            for p in self.model.points.points.values()
            if p.kind in ("analog", "counter", "double", "single", "setpoint")
        ]
        completer = QCompleter(sorted(names), self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.point_edit.setCompleter(completer)

    def add_point(self, point: str) -> bool:
        """Trend ``point`` (loads its recent or chosen history)."""
        if not point or point in self.series:
            return False
        if point not in self.model.points:
            self.note.setText(f"unknown point {point!r}")
            return False
        colour = style.FEEDER_PALETTE[len(self.series) % len(style.FEEDER_PALETTE)]
        p = self.model.points.points[point]
        curve = self.plot.plot(
            name=f"{point} [{p.unit}]" if p.unit else point,
            pen=pg.mkPen(colour, width=1.6),
        )
        self.series[point] = _Series(point, curve)
        self.points_list.addItem(point)
        self.point_edit.clear()
        self._load(point)
        return True

    def remove_point(self, point: str) -> None:
        s = self.series.pop(point, None)
        if s is not None:
            self.plot.removeItem(s.curve)
            for item in self.points_list.findItems(point, Qt.MatchFlag.MatchExactly):
                self.points_list.takeItem(self.points_list.row(item))

    def _remove_selected(self) -> None:
        item = self.points_list.currentItem()
        if item is not None:
            self.remove_point(item.text())

    # ---------------------------------------------------------------- data
    def _mode_changed(self, mode: str) -> None:
        self.live = mode == "live"
        self.range_bar.setVisible(not self.live)
        self.window_box.setEnabled(self.live)
        self._reload()

    def _range(self) -> tuple[float, float]:
        if self.live:
            now = time.time()
            return now - WINDOWS_S[self.window_box.currentText()], now + 1
        return float(self.start.dateTime().toSecsSinceEpoch()), float(
            self.end.dateTime().toSecsSinceEpoch()
        )

    def _reload(self) -> None:
        for point in self.series:
            self._load(point)

    def _load(self, point: str) -> None:
        start, end = self._range()
        self.client.request(
            "GET",
            f"/api/history/{point}",
            params={"start_s": start, "end_s": end, "limit": 100_000},
            on_done=lambda reply: self._loaded(point, reply),
        )

    def _loaded(self, point: str, reply: Reply) -> None:
        s = self.series.get(point)
        if s is None:
            return
        if not reply.ok:
            self.note.setText(f"{point}: {reply.error}")
            return
        xs = [r["time_s"] for r in reply.data]
        ys = [math.nan if r["value"] is None else r["value"] for r in reply.data]
        if self.live:
            # keep what arrived live while the history was on its way
            newer = [(x, y) for x, y in zip(s.xs, s.ys, strict=True) if not xs or x > xs[-1]]
            xs += [x for x, _ in newer]
            ys += [y for _, y in newer]
        s.xs, s.ys = xs, ys
        s.redraw()
        self._follow()
        self.note.setText(f"{len(self.series)} points")

    def _on_points(self, names: frozenset[str]) -> None:
        if not self.live or not self.series:
            return
        for point in names & self.series.keys():
            p = self.model.points.points.get(point)
            if p is None:
                continue
            s = self.series[point]
            s.xs.append(p.receive_time or time.time())
            s.ys.append(math.nan if p.value is None else p.value)
            if len(s.xs) > MAX_SAMPLES:
                del s.xs[: len(s.xs) - MAX_SAMPLES]
                del s.ys[: len(s.ys) - MAX_SAMPLES]
            s.redraw()
        self._follow()

    def _follow(self) -> None:
        if self.live:
            start, end = self._range()
            self.plot.setXRange(start, end, padding=0)

    # -------------------------------------------------------------- cursor
    def _mouse_moved(self, pos: QPointF) -> None:
        vb = self.plot.getPlotItem().vb
        if not self.plot.sceneBoundingRect().contains(pos):
            return
        t = vb.mapSceneToView(pos).x()
        self.cursor_line.setPos(t)
        self.readout.setText(self.readout_at(t))

    def readout_at(self, t: float) -> str:
        """Each trended point's value at time ``t`` (the last sample at or before it)."""
        parts = [f"<b>{format_time(t, with_date=True)}</b>"]
        for i, s in enumerate(self.series.values()):
            v = s.value_at(t)
            colour = style.FEEDER_PALETTE[i % len(style.FEEDER_PALETTE)]
            text = "-" if v is None else f"{v:.4g}"
            parts.append(f"<span style='color:{colour}'>{s.point} = {text}</span>")
        return " &nbsp; ".join(parts)

    def sample_count(self, point: str) -> int:
        s = self.series.get(point)
        return len(s.xs) if s else 0

    def data(self, point: str) -> tuple[list[float], list[float]]:
        s = self.series[point]
        return s.xs, s.ys
