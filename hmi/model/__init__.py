"""The console's Qt-free models: plain Python, evented by callbacks (:class:`Event`).

Contract:
- Everything an operator display shows lives here as data: points with
  quality and staleness, the alarm list with filters, the network drawing
  model with its layouts and point bindings, the live topology, tags, the
  latest state estimate and the ADMS plans, the session and the connection
  state (:class:`ConsoleModel` holds them all).
- Models change only through their methods, on the GUI thread (the API
  client hands pushed data over there), and fire their events after their
  state is consistent. Views connect to the events and hold no business
  logic; tests drive the models directly.
- No Qt, no network I/O, no server imports.
"""

from hmi.model.adms import AdmsStore, Estimate, Figure, Plan, PlanStep
from hmi.model.alarms import Alarm, AlarmCounts, AlarmFilter, AlarmStore
from hmi.model.console import (
    ConnectionState,
    ConsoleModel,
    Session,
    SwitchView,
    Tag,
    Updates,
)
from hmi.model.events import Event
from hmi.model.network import Binding, Element, Layout, NetworkGraph
from hmi.model.points import PointState, PointStore
from hmi.model.topology import ElementState, TopologyStore

__all__ = [
    "AdmsStore",
    "Alarm",
    "AlarmCounts",
    "AlarmFilter",
    "AlarmStore",
    "Binding",
    "ConnectionState",
    "ConsoleModel",
    "Element",
    "ElementState",
    "Estimate",
    "Event",
    "Figure",
    "Layout",
    "NetworkGraph",
    "Plan",
    "PlanStep",
    "PointState",
    "PointStore",
    "Session",
    "SwitchView",
    "Tag",
    "TopologyStore",
    "Updates",
]
