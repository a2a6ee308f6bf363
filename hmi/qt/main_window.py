"""The console's main window: banner, diagram and tables, alarms, trends and the ADMS panel.

Contract:
- :class:`MainWindow` shows one :class:`~hmi.model.ConsoleModel` fed by one
  :class:`~hmi.client.ConsoleClient`. Pushed data is applied at most once
  per frame: the client's ``updatesPending`` starts a single-shot
  :data:`MainWindow.FRAME_MS` timer, whose timeout drains and applies every
  message that arrived meanwhile (:attr:`MainWindow.frame_ms` records how
  long each apply took, views included).
- The alarm banner and the connection state stay in view above everything;
  while not connected the state reads DISCONNECTED in red and every value
  is shown stale.
- Default layout: the diagram (tabbed with the point list, breakers,
  reliability and events) in the centre, the alarm list and the trends side
  by side below it, the ADMS panel on the right; all in view at once. The
  docks can be moved and floated; trends and ADMS closed too (the View menu
  opens them again), the alarm list not.
- On each (re)connection the window loads the network once, the tags, the
  ADMS plans and the latest state estimate (pushed updates follow); tags
  are polled every :data:`MainWindow.TAGS_MS` (the push channel does not
  carry them).
- Double-clicking a switch opens its control dialog; a context menu on an
  element offers control, its device's points, trends of its values and its
  properties. A newly proposed ADMS plan brings the ADMS panel forward; a
  step double-clicked there is shown on the diagram.
"""

from __future__ import annotations

import html
import time
from collections import deque
from functools import partial
from typing import Any

from PySide6.QtCore import QPoint, Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hmi.client import ConsoleClient, Reply
from hmi.model.console import ConnectionState, ConsoleModel
from hmi.qt import style
from hmi.qt.adms import AdmsPanel
from hmi.qt.alarms import AlarmBanner, AlarmSummary
from hmi.qt.control import ControlDialog
from hmi.qt.diagram import DiagramPanel
from hmi.qt.events import EventPanel
from hmi.qt.tables import BreakerPanel, PointListPanel, ReliabilityPanel
from hmi.qt.trends import TrendPanel

__all__ = ["MainWindow"]

_STATE_STYLE = {
    ConnectionState.CONNECTED: ("CONNECTED", "#1b5e20", "#ffffff"),
    ConnectionState.CONNECTING: ("CONNECTING", "#8d6e00", "#ffffff"),
    ConnectionState.DISCONNECTED: ("DISCONNECTED", "#b71c1c", "#ffffff"),
}


class MainWindow(QMainWindow):
    """The operator console; see the module docstring."""

    FRAME_MS = 50
    BLINK_MS = 500
    TAGS_MS = 5000

    def __init__(self, model: ConsoleModel, client: ConsoleClient) -> None:
        super().__init__()
        self.model = model
        self.client = client
        self.frame_ms: deque[float] = deque(maxlen=10_000)
        self.frames = 0
        self.dialogs: dict[str, ControlDialog] = {}
        #: why the server gave no network (None: loaded or not asked yet)
        self.network_error: str | None = None
        self.setWindowTitle("pyadms console")
        self.resize(1600, 1000)

        self.banner = AlarmBanner(model)
        self.connection = QLabel()
        self.connection.setMinimumWidth(150)
        self.connection.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.user = QLabel("not logged in")
        top = QWidget()
        row = QHBoxLayout(top)
        row.setContentsMargins(2, 2, 2, 2)
        row.addWidget(self.banner, 1)
        column = QVBoxLayout()
        column.addWidget(self.connection)
        column.addWidget(self.user)
        row.addLayout(column)

        self.diagram = DiagramPanel(model)
        self.points = PointListPanel(model)
        self.breakers = BreakerPanel(model, client)
        self.reliability = ReliabilityPanel(client)
        self.events = EventPanel(model, client)
        self.tabs = QTabWidget()
        for widget, title in (
            (self.diagram, "Diagram"),
            (self.points, "Points"),
            (self.breakers, "Breakers"),
            (self.reliability, "Reliability"),
            (self.events, "Events / SOE"),
        ):
            self.tabs.addTab(widget, title)
        central = QWidget()
        box = QVBoxLayout(central)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(0)
        box.addWidget(top)
        box.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.alarms = AlarmSummary(model, client)
        self.trends = TrendPanel(model, client)
        self.adms = AdmsPanel(model, client)
        # the alarm list and trends take the whole width below; ADMS sits beside the diagram
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.alarm_dock = self._dock(
            "Alarms", self.alarms, Qt.DockWidgetArea.BottomDockWidgetArea, closable=False
        )
        self.trend_dock = self._dock("Trends", self.trends, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.splitDockWidget(self.alarm_dock, self.trend_dock, Qt.Orientation.Horizontal)
        self.adms_dock = self._dock("ADMS", self.adms, Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([self.alarm_dock], [330], Qt.Orientation.Vertical)
        self.resizeDocks(
            [self.alarm_dock, self.trend_dock, self.adms_dock],
            [820, 780, 440],
            Qt.Orientation.Horizontal,
        )
        view = self.menuBar().addMenu("View")
        for dock in (self.trend_dock, self.adms_dock):
            view.addAction(dock.toggleViewAction())
        self._properties: QMessageBox | None = None
        self.setStyleSheet(
            f"QMainWindow, QWidget {{ background:{style.BACKGROUND}; color:{style.TEXT}; }}"
            # the background rule hides check boxes' indicators: draw them
            "QCheckBox::indicator { width:11px; height:11px; border:1px solid #8aa0b8; }"
            "QCheckBox::indicator:checked { background:#4ea8ff; }"
        )

        self._frame = QTimer(self)
        self._frame.setSingleShot(True)
        self._frame.setInterval(self.FRAME_MS)
        self._frame.timeout.connect(self.apply_frame)
        self._blink = QTimer(self)
        self._blink.setInterval(self.BLINK_MS)
        self._blink.timeout.connect(self._on_blink)
        self._blink.start()
        self._tags = QTimer(self)
        self._tags.setInterval(self.TAGS_MS)
        self._tags.timeout.connect(self.refresh_tags)

        client.updatesPending.connect(self._schedule_frame)
        client.connectionChanged.connect(self._on_connection)
        self.diagram.view.elementActivated.connect(self._element_activated)
        self.diagram.view.elementContext.connect(self._element_menu)
        self.points.pointAction.connect(self._point_action)
        self.alarms.message.connect(lambda text: self.statusBar().showMessage(text, 10_000))
        self.adms.message.connect(lambda text: self.statusBar().showMessage(text, 10_000))
        self.adms.planProposed.connect(self._plan_proposed)
        self.adms.elementSelected.connect(self.show_element)
        model.session_changed.connect(lambda _: self._show_user())
        self._show_connection(model.connection, model.connection_detail)
        self._show_user()

    def _dock(
        self, title: str, widget: QWidget, area: Qt.DockWidgetArea, closable: bool = True
    ) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower())
        dock.setWidget(widget)
        if not closable:
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            )
        self.addDockWidget(area, dock)
        return dock

    # --------------------------------------------------------------- frames
    @Slot()
    def _schedule_frame(self) -> None:
        if not self._frame.isActive():
            self._frame.start()

    @Slot()
    def apply_frame(self) -> None:
        """Apply everything pushed since the last frame (once per frame)."""
        updates = self.client.take_updates()
        if not updates:
            return
        t0 = time.perf_counter()
        self.model.apply(updates)
        self.frame_ms.append((time.perf_counter() - t0) * 1e3)
        self.frames += 1

    @Slot()
    def _on_blink(self) -> None:
        self.banner.blink()
        self.alarms.table_model.blink()
        if self.model.connection != ConnectionState.CONNECTED:
            self._show_connection(
                self.model.connection, self.model.connection_detail, self.banner.phase
            )

    # ----------------------------------------------------------- connection
    @Slot(str, str)
    def _on_connection(self, state: str, detail: str) -> None:
        st = ConnectionState(state)
        if st == ConnectionState.CONNECTED:
            self.apply_frame()  # what arrived with the connection, before values turn current
        self.model.set_connection(st, detail)
        self._show_connection(st, detail)
        if st == ConnectionState.CONNECTED:
            if self.model.network is None:
                self.load_network()
            self.refresh_tags()
            self.load_adms()
            self._tags.start()
            self.trends.set_completions()
        else:
            self._tags.stop()

    def _show_connection(self, state: ConnectionState, detail: str, dim: bool = False) -> None:
        text, bg, fg = _STATE_STYLE[state]
        if dim:
            bg = style.BACKGROUND
        self.connection.setText(f"<b>{text}</b>")
        self.connection.setToolTip(detail)
        self.connection.setStyleSheet(f"background:{bg};color:{fg};padding:6px;border-radius:3px;")
        title = "pyadms console" + ("" if state == ConnectionState.CONNECTED else f" [{text}]")
        self.setWindowTitle(title)
        self.statusBar().showMessage(f"{text.lower()}: {detail}" if detail else text.lower())

    def _show_user(self) -> None:
        s = self.model.session
        self.user.setText(f"{s.username} ({s.role})" if s else "not logged in")

    # ---------------------------------------------------------------- loads
    def load_network(self) -> None:
        self.client.request("GET", "/api/network", on_done=self._network_loaded)

    def _network_loaded(self, reply: Reply) -> None:
        if reply.ok:
            self.network_error = None
            self.model.set_network(reply.data)
        else:
            self.network_error = reply.error or "no answer"
            self.diagram.status.setText(f"no network diagram: {self.network_error}")

    def load_adms(self) -> None:
        """The plans and the latest estimate (pushed updates keep them current afterwards)."""
        self.client.request("GET", "/api/adms/plans", on_done=self._plans_loaded)
        self.client.request("GET", "/api/adms/estimate", on_done=self._estimate_loaded)

    def _plans_loaded(self, reply: Reply) -> None:
        if reply.ok:
            self.model.adms.set_plans(reply.data)
        else:
            self.adms.show_unavailable(f"ADMS plans: {reply.status or 'no answer'} {reply.error}")

    def _estimate_loaded(self, reply: Reply) -> None:
        if reply.ok:
            self.model.adms.set_estimate(reply.data)

    def refresh_tags(self) -> None:
        self.client.request("GET", "/api/tags", on_done=self._tags_loaded)

    def _tags_loaded(self, reply: Reply) -> None:
        if reply.ok:
            self.model.set_tags(reply.data)

    # -------------------------------------------------------------- actions
    def open_control(self, point: str) -> ControlDialog:
        """The control dialog of ``point`` (one per point: raised if open, else shown afresh)."""
        dialog = self.dialogs.get(point)
        if dialog is None:
            dialog = ControlDialog(self.model, self.client, point, self)
            self.dialogs[point] = dialog
        elif not dialog.isVisible():
            dialog.prepare()
        dialog.show()
        dialog.raise_()
        return dialog

    def show_element(self, gid: str) -> None:
        """Bring the diagram forward, centred on an element."""
        self.tabs.setCurrentWidget(self.diagram)
        if not self.diagram.view.zoom_to(gid):
            self.statusBar().showMessage(f"{gid} is not on the diagram", 10_000)

    def show_properties(self, gid: str) -> QMessageBox | None:
        """An element's model properties in a window of their own (not modal)."""
        net = self.model.network
        if net is None or gid not in net:
            return None
        e = net.elements[gid]
        rows = "".join(
            f"<tr><td><b>{html.escape(str(k))}</b></td><td>{html.escape(str(v))}</td></tr>"
            for k, v in sorted(e.props.items())
        )
        if self._properties is not None:
            self._properties.close()
        box = QMessageBox(QMessageBox.Icon.NoIcon, f"{e.name} ({gid})", "", parent=self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(f"<table>{rows}</table>")
        box.setModal(False)
        box.show()
        self._properties = box
        return box

    def _plan_proposed(self, plan_id: str) -> None:
        self.adms_dock.show()
        self.adms_dock.raise_()
        p = self.model.adms.plans.get(plan_id)
        if p is not None:
            self.statusBar().showMessage(f"ADMS {p.app} plan {plan_id} proposed: {p.summary}")

    def _element_activated(self, gid: str) -> None:
        net = self.model.network
        if net is None:
            return
        point = net.status_point(gid)
        if point is not None:
            self.open_control(point)
        elif net.points_of(gid):
            self._show_points(net.points_of(gid)[0].point)

    def _show_points(self, point: str) -> None:
        p = self.model.points.get(point)
        if p is not None:
            self.points.show_device(p.device)
            self.tabs.setCurrentWidget(self.points)

    def _element_menu(self, gid: str, where: QPoint) -> None:
        net = self.model.network
        if net is None:
            return
        menu = QMenu(self)
        bindings = net.points_of(gid)
        status = net.status_point(gid)
        if status is not None:
            menu.addAction(f"Control {status} ...", lambda: self.open_control(status))
        for b in bindings:
            if b.point != status:
                menu.addAction(f"Trend {b.point}", partial(self._point_action, "trend", b.point))
        if bindings:
            menu.addAction("Device points", lambda: self._show_points(bindings[0].point))
        menu.addAction(f"Properties of {gid}", lambda: self.show_properties(gid))
        menu.exec(where)

    def _point_action(self, action: str, point: str) -> None:
        if action == "control":
            self.open_control(point)
        elif action == "trend":
            self.trends.add_point(point)
            self.trend_dock.show()
            self.trend_dock.raise_()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        for dialog in list(self.dialogs.values()):
            dialog.close()
        super().closeEvent(event)
