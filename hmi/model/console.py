"""The console's whole state: session, connection, points, alarms, network, topology, tags, ADMS.

Contract:
- :class:`Updates` accumulates pushed messages between two frames: a
  snapshot supersedes everything before it, later changes keep only each
  point's latest state, alarm transitions, topology deltas and ADMS items
  (estimates, plans) keep their order. :meth:`ConsoleModel.apply` applies
  one :class:`Updates` at once, so views see one event per store per frame
  however many messages arrived.
- The connection state is the console's: while not connected every point
  value is stale (:meth:`PointStore.set_connected`).
- Derived, display-ready answers for views (no Qt here):
  :meth:`ConsoleModel.switch_view` (position from telemetry when there is a
  status point, else from the server's topology; quality; off-normal; tags),
  :meth:`ConsoleModel.area_of` (an alarm's feeder, else its device),
  :meth:`ConsoleModel.customers_off` and
  :meth:`ConsoleModel.feeder_head_points` (what to trend by default).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from hmi.model.adms import AdmsStore
from hmi.model.alarms import Alarm, AlarmStore
from hmi.model.events import Event
from hmi.model.network import NetworkGraph, natural_key
from hmi.model.points import PointStore
from hmi.model.topology import TopologyStore

__all__ = [
    "ROLES",
    "ConnectionState",
    "ConsoleModel",
    "Session",
    "SwitchView",
    "Tag",
    "Updates",
]

#: roles from least to most privileged, as the server ranks them
ROLES = ("viewer", "operator", "engineer", "admin")
#: tag kinds that block commands, most restrictive first
BLOCKING_TAGS = ("do_not_operate", "hold")


class ConnectionState(enum.StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"


@dataclass(frozen=True)
class Session:
    """Who is logged in, where."""

    server_url: str
    username: str
    role: str

    @property
    def can_command(self) -> bool:
        """Operators and above may command, acknowledge, tag and substitute."""
        return self.role in ROLES and ROLES.index(self.role) >= ROLES.index("operator")


@dataclass(frozen=True, slots=True)
class Tag:
    id: int
    target: str
    kind: str
    owner: str
    reason: str
    time: float

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Tag:
        return cls(d["id"], d["target"], d["kind"], d["owner"], d["reason"], d["time"])


@dataclass
class Updates:
    """Pushed messages accumulated between frames; see the module docstring."""

    snapshot: dict[str, Any] | None = None
    points: dict[str, dict[str, Any]] = field(default_factory=dict)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    topology: list[dict[str, Any]] = field(default_factory=list)
    adms: list[dict[str, Any]] = field(default_factory=list)
    #: pushed messages merged in
    messages: int = 0

    def merge(self, message: dict[str, Any]) -> None:
        self.messages += 1
        if message.get("type") == "snapshot":
            self.snapshot = message
            self.points.clear()
            self.alarms.clear()
            self.topology.clear()
            self.adms.clear()
            return
        for p in message.get("points", ()):
            self.points[p["name"]] = p
        self.alarms.extend(message.get("alarms", ()))
        self.topology.extend(message.get("topology", ()))
        self.adms.extend(message.get("adms", ()))

    def __bool__(self) -> bool:
        return bool(self.snapshot or self.points or self.alarms or self.topology or self.adms)


@dataclass(frozen=True)
class SwitchView:
    """How to draw a switch now."""

    #: True closed, False open, None unknown (intermediate/indeterminate, no value)
    closed: bool | None
    #: a status point reports it (else the position is the server's model state)
    telemetered: bool
    point: str | None
    #: quality condition to show (see :func:`hmi.model.points.quality_severity`)
    severity: str | None
    marks: str
    #: not in its normal (planned) position
    abnormal: bool
    #: the most restrictive tag kind on its point or device, if any
    tag: str | None


class ConsoleModel:
    """Everything a console shows; Qt-free and evented (see the module docstring)."""

    def __init__(self) -> None:
        self.points = PointStore()
        self.alarms = AlarmStore()
        self.topology = TopologyStore()
        self.adms = AdmsStore()
        self.network: NetworkGraph | None = None
        self.session: Session | None = None
        self.connection = ConnectionState.DISCONNECTED
        self.connection_detail = ""
        self.tags: list[Tag] = []
        self.connection_changed: Event[ConnectionState] = Event()
        self.session_changed: Event[Session | None] = Event()
        self.network_changed: Event[NetworkGraph] = Event()
        self.tags_changed: Event[list[Tag]] = Event()
        self._device_area: dict[str, str] = {}

    # --------------------------------------------------------------- input
    def set_session(self, session: Session | None) -> None:
        self.session = session
        self.session_changed.emit(session)

    @property
    def can_command(self) -> bool:
        return self.session is not None and self.session.can_command

    def set_connection(self, state: ConnectionState, detail: str = "") -> None:
        self.connection = state
        self.connection_detail = detail
        self.points.set_connected(state == ConnectionState.CONNECTED)
        self.connection_changed.emit(state)

    def apply(self, updates: Updates) -> None:
        """Apply one frame's worth of pushed messages."""
        snap = updates.snapshot
        if snap is not None:
            self.points.reset(snap.get("points", ()))
            self.alarms.reset(snap.get("alarms", ()))
            if snap.get("topology") is not None:
                self.topology.reset(snap["topology"])
            self.adms.reset(snap.get("adms"))
            self._device_area = {}
        if updates.points:
            self.points.update(updates.points.values())
        if updates.alarms:
            self.alarms.apply(updates.alarms)
        for delta in updates.topology:
            self.topology.apply(delta)
        if updates.adms:
            self.adms.apply(updates.adms)

    def set_network(self, collection: dict[str, Any]) -> NetworkGraph:
        self.network = NetworkGraph.from_collection(collection)
        self._device_area = {}
        self.network_changed.emit(self.network)
        return self.network

    def set_tags(self, tags: list[dict[str, Any]]) -> None:
        new = [Tag.from_json(t) for t in tags]
        if new != self.tags:
            self.tags = new
            self.tags_changed.emit(new)

    # ------------------------------------------------------------- derived
    def tags_on(self, point: str) -> list[Tag]:
        """Tags on a point or on its device."""
        p = self.points.get(point)
        targets = {point, p.device} if p else {point}
        return [t for t in self.tags if t.target in targets]

    def switch_view(self, gid: str) -> SwitchView:
        net = self.network
        element = net.elements.get(gid) if net else None
        point = net.status_point(gid) if net else None
        closed: bool | None = self.topology.switches.get(gid)
        if closed is None and element is not None:
            closed = not element.normal_open
        severity: str | None = None
        marks = ""
        tag: str | None = None
        p = self.points.get(point) if point else None
        if point is not None and p is not None:
            severity = self.points.severity(point)
            marks = self.points.marks(point)
            if p.value is not None:
                if p.kind == "double":
                    closed = {2: True, 1: False}.get(int(p.value))
                else:
                    closed = bool(p.value)
            kinds = {t.kind for t in self.tags_on(point)}
            tag = next((k for k in (*BLOCKING_TAGS, "caution") if k in kinds), None)
        abnormal = element is not None and closed is not None and closed == element.normal_open
        return SwitchView(closed, p is not None, point, severity, marks, abnormal, tag)

    def area_of(self, alarm: Alarm) -> str:
        """The alarm's feeder (from its point's element), else its device's, else its device."""
        net = self.network
        if net is not None and alarm.point is not None:
            bound = net.element_of_point.get(alarm.point)
            if bound is not None:
                feeder = net.elements[bound[0]].feeder
                if feeder:
                    return feeder
        device = alarm.device or alarm.source
        return self.device_area(device)

    def device_area(self, device: str) -> str:
        """The one feeder every bound point of a device lies on, else the device itself."""
        if device not in self._device_area:
            feeders: set[str] = set()
            net = self.network
            if net is not None:
                for p in self.points.of_device(device):
                    bound = net.element_of_point.get(p.name)
                    feeder = net.elements[bound[0]].feeder if bound is not None else None
                    if feeder:
                        feeders.add(feeder)
            self._device_area[device] = feeders.pop() if len(feeders) == 1 else device
        return self._device_area[device]

    def areas(self) -> list[str]:
        """Areas to filter alarms by: every feeder and every area an alarm has."""
        found = set(self.network.feeders()) if self.network else set()
        found.update(self.area_of(a) for a in self.alarms.alarms.values())
        return sorted(found, key=natural_key)

    def feeder_head_points(self, units: tuple[str, ...] = ("MW", "A")) -> list[str]:
        """Each feeder head's measured quantity: a point bound to its breaker or breaker's branch.

        The first unit in ``units`` a head measures wins (active power, else
        current); heads in feeder order, without the ones measuring none.
        """
        net = self.network
        if net is None:
            return []
        found = []
        for feeder in sorted(net.feeder_heads, key=natural_key):
            head = net.elements.get(net.feeder_heads[feeder])
            if head is None:
                continue
            # a breaker on a line or transformer: its measurements are bound to that branch
            branch = str(head.props.get("element")) if head.props.get("et") != "bus" else ""
            bound = [
                p
                for gid in (head.id, branch)
                for b in net.points_of(gid)
                if (p := self.points.get(b.point)) is not None and p.kind == "analog"
            ]
            for unit in units:
                match = next((p.name for p in bound if p.unit == unit), None)
                if match is not None:
                    found.append(match)
                    break
        return found

    def customers_off(self) -> int:
        """Customers of loads the topology shows de-energised."""
        if self.network is None or not self.topology.loaded:
            return 0
        return sum(
            int(e.props.get("customers") or 0)
            for e in self.network.of_kind("load")
            if not self.topology.state(e.id).energised
        )
