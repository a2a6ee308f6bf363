"""The live network state for the online ADMS: one consistent snapshot of the point database.

Contract:
- :class:`LiveBinding` maps the monitored points of the running configuration
  that are bound to the network model (``element``, :mod:`models.binding`) to
  what the applications read: switch positions (``switch:<id>``), protection
  trips (``switch:<id>:trip``), FPIs (``fpi:<id>``), tap positions and
  capacitor steps, and the analog measurements of state estimation (bus V;
  line/transformer P, Q, I at a side; load/DER P, Q as the injection at
  their bus where that element is the bus's only load/DER). A point whose
  element is not in the model, or whose quantity the estimator cannot use,
  is listed in :attr:`LiveBinding.unused` with the reason (and logged once).
  It also knows each switch's command point (the status point with a
  control), so a plan step names the point it operates.
- :meth:`LiveBinding.take` (on the event loop, where the point database is
  updated) reads every bound point's value and quality in one call: the
  states and measurements of one instant (:class:`Snapshot`). A switch
  state, trip or FPI of bad quality (invalid, comm-fail, never received,
  old) or an intermediate double point is unknown and left out; a bad
  analog becomes a measurement with ``quality_ok`` False (the estimator
  excludes it and names it).
- :meth:`Snapshot.apply` writes the switch positions, tap positions and
  capacitor steps into a model (unknown ones keep the model's value).
- A measurement's standard deviation is the accuracy of its quantity
  (percent of the value, :class:`Accuracy`), at least the point's deadband
  (the field does not report smaller changes) and a small floor.
- :func:`allocate_loads` is the load allocation for pseudo-measurements and
  plans: unmetered DER run at the capacity factor the metered DER report
  (their rating ``p_mw`` times that factor; without metered DER the model's
  own scaling stays), and unmetered loads are scaled by one factor so that
  the energised loads match the measured feeder-head power (factor 1
  without a feeder-head measurement). :meth:`Allocation.apply` writes it
  into a model.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from adms.estimation import ElementKind, Measurement
from adms.estimation import Quantity as EQ
from adms.sections import SectionGraph
from models.binding import BindingError, Measurand, Quantity, measurand, switch_state
from models.network import NetworkModel
from models.topology import find_feeder_heads
from protocols.base import PointKind, Quality
from scada.config import ScadaConfig
from scada.pointdb import PointDB

__all__ = [
    "Accuracy",
    "Allocation",
    "LiveBinding",
    "Snapshot",
    "allocate_loads",
]

log = logging.getLogger(__name__)

#: quality flags that make a value unusable for the applications
UNUSABLE = Quality.INVALID | Quality.COMM_FAIL | Quality.NOT_INIT | Quality.OLD

_FLOOR = {EQ.V: 1e-3, EQ.P: 1e-3, EQ.Q: 1e-3, EQ.I: 5e-4}
_QUANTITY = {Quantity.P: EQ.P, Quantity.Q: EQ.Q, Quantity.I: EQ.I}
_INJECTORS = ("load", "sgen", "storage")
#: allocation factors are kept within these bounds (a bad head measurement must not run away)
_LOAD_FACTOR = (0.05, 3.0)


@dataclass(frozen=True)
class Accuracy:
    """Measurement accuracy, one standard deviation in percent of the value."""

    v_pct: float = 0.5
    pq_pct: float = 1.0
    i_pct: float = 1.0

    def pct(self, quantity: EQ) -> float:
        """The percentage for an estimator quantity."""
        return {EQ.V: self.v_pct, EQ.P: self.pq_pct, EQ.Q: self.pq_pct, EQ.I: self.i_pct}[quantity]


@dataclass(frozen=True)
class _Analog:
    """How one analog point becomes a measurement: ``value / scale`` in the estimator's unit."""

    point: str
    kind: ElementKind
    element: str
    quantity: EQ
    side: str | None
    scale: float
    sign: float
    deadband: float
    #: the load/sgen it meters (injection measurements), for the load allocation
    injector: tuple[str, str] | None = None


@dataclass
class Snapshot:
    """Switch states, protection, FPIs, controls and measurements at one instant."""

    time: float
    #: switch GIS id -> closed (switches with a good status only)
    switches: dict[str, bool]
    #: protective switch -> trip indication (good quality only)
    trips: dict[str, bool]
    #: FPI GIS id -> fault passage indicated (good quality only)
    fpis: dict[str, bool]
    #: transformer GIS id -> tap position; shunt GIS id -> steps in service
    taps: dict[str, int]
    steps: dict[str, int]
    measurements: list[Measurement]
    #: analog points left out for bad quality
    excluded: list[str]
    #: injection measurements: (table, GIS id) -> measured P in MW (good quality)
    metered_p: dict[tuple[str, str], float] = field(default_factory=dict)
    #: feeder-head P in MW (good quality), by head switch
    head_p: dict[str, float] = field(default_factory=dict)

    def apply(self, model: NetworkModel) -> None:
        """Write switch positions, taps and capacitor steps into ``model``."""
        net = model.net
        if self.switches:
            index = [model.index_of("switch", s) for s in self.switches]
            net.switch.loc[index, "closed"] = list(self.switches.values())
        for trafo, tap in self.taps.items():
            net.trafo.at[model.index_of("trafo", trafo), "tap_pos"] = tap
        for shunt, step in self.steps.items():
            net.shunt.at[model.index_of("shunt", shunt), "step"] = step


class LiveBinding:
    """The running configuration's points as the ADMS applications see them (module doc)."""

    def __init__(
        self,
        model: NetworkModel,
        pointdb: PointDB,
        config: ScadaConfig,
        accuracy: Accuracy | None = None,
    ) -> None:
        self.model = model
        self.pointdb = pointdb
        self.accuracy = accuracy or Accuracy()
        self.generation = pointdb.generation
        #: point -> why the applications do not use it
        self.unused: dict[str, str] = {}
        self._status: list[tuple[str, str, PointKind]] = []
        self._trips: list[tuple[str, str]] = []
        self._fpis: list[tuple[str, str]] = []
        self._taps: list[tuple[str, str]] = []
        self._steps: list[tuple[str, str]] = []
        self._analogs: list[_Analog] = []
        #: switch GIS id -> the point that commands it
        self.switch_control: dict[str, str] = {}
        #: transformer / shunt GIS id -> its tap / step point (with a control)
        self.step_control: dict[str, str] = {}
        self._bind(config)
        names = [
            *(p for p, _, _ in self._status),
            *(p for p, _ in self._trips),
            *(p for p, _ in self._fpis),
            *(p for p, _ in self._taps),
            *(p for p, _ in self._steps),
            *(a.point for a in self._analogs),
        ]
        self._names = names
        self._handles = np.array([pointdb.handle(n) for n in names], dtype=np.int64)
        #: (line GIS id, side) of each feeder head breaker -> the breaker
        self._head_of: dict[tuple[str, str], str] = {}
        for head in find_feeder_heads(model.net):
            at_from = int(model.net.line.at[head.line_index, "from_bus"]) == head.bus_index
            key = (model.gis_id_of("line", head.line_index), "from" if at_from else "to")
            self._head_of[key] = head.switch_id
        for reason in sorted(set(self.unused.values())):
            points = sorted(p for p, r in self.unused.items() if r == reason)
            log.info("ADMS: %d point(s) not used (%s): %s", len(points), reason, points[:10])

    # ---------------------------------------------------------------- binding
    def _bind(self, config: ScadaConfig) -> None:
        model = self.model
        injectors = _injectors_per_bus(model)
        for dp in config.expand():
            if not dp.device.enabled:
                continue
            for p in dp.points:
                t = p.template
                if t.element is None or p.name not in self.pointdb:
                    continue
                try:
                    m = measurand(p)
                except BindingError as exc:
                    self.unused[p.name] = str(exc)
                    continue
                gid = m.element.gis_id
                if gid not in model or model.locate(gid).table != m.element.table:
                    self.unused[p.name] = f"element {t.element} is not in the network model"
                    continue
                if t.control is not None and m.quantity is Quantity.STATUS:
                    self.switch_control.setdefault(gid, p.name)
                if t.control is not None and m.quantity in (Quantity.TAP, Quantity.STEP):
                    self.step_control[gid] = p.name
                if t.address < 0:
                    continue
                q = m.quantity
                if q is Quantity.STATUS and p.kind in (PointKind.SINGLE, PointKind.DOUBLE):
                    self._status.append((p.name, gid, p.kind))
                elif q is Quantity.TRIP:
                    self._trips.append((p.name, gid))
                elif q is Quantity.FPI:
                    self._fpis.append((p.name, gid))
                elif q is Quantity.TAP:
                    self._taps.append((p.name, gid))
                elif q is Quantity.STEP:
                    self._steps.append((p.name, gid))
                else:
                    analog = self._analog(m, t.deadband, injectors)
                    if isinstance(analog, str):
                        self.unused[p.name] = analog
                    else:
                        self._analogs.append(analog)

    def _analog(
        self,
        m: Measurand,
        deadband: float,
        injectors: Mapping[str, tuple[str, str, int]],
    ) -> _Analog | str:
        el, q = m.element, m.quantity
        if q in (Quantity.V, Quantity.VM_PU) and el.table == "bus":
            vn = float(self.model.net.bus.at[self.model.index_of("bus", el.gis_id), "vn_kv"])
            scale = m.factor * (vn if q is Quantity.V else 1.0)
            return _Analog(m.point, ElementKind.BUS, el.gis_id, EQ.V, None, scale, 1.0, deadband)
        if q not in _QUANTITY:
            return f"the estimator takes no {q} measurement"
        quantity = _QUANTITY[q]
        if el.table in ("line", "trafo"):
            kind = ElementKind.LINE if el.table == "line" else ElementKind.TRAFO
            return _Analog(
                m.point, kind, el.gis_id, quantity, el.qualifier, m.factor, 1.0, deadband
            )
        if el.table in ("load", "sgen") and q in (Quantity.P, Quantity.Q):
            entry = injectors.get(el.gis_id)
            if entry is None:
                return f"{el.table} {el.gis_id} is out of service"
            _, bus, count = entry
            if count != 1:
                return f"{el.table} {el.gis_id} shares its bus with other loads/DER"
            sign = 1.0 if el.table == "load" else -1.0
            return _Analog(
                m.point,
                ElementKind.BUS,
                bus,
                quantity,
                None,
                m.factor,
                sign,
                deadband,
                injector=(el.table, el.gis_id),
            )
        return f"the estimator takes no {q} measurement at a {el.table}"

    # ---------------------------------------------------------------- reading
    def stale(self) -> bool:
        """Whether the point database's points changed since this binding was made."""
        return self.pointdb.generation != self.generation

    def take(self) -> Snapshot:
        """Every bound point's value and quality at this instant (call on the event loop)."""
        now = time.time()
        values, quality = self.pointdb.values(self._handles)
        bad = (quality & int(UNUSABLE)) != 0
        vals = values.tolist()
        flags = bad.tolist()
        k = 0
        switches: dict[str, bool] = {}
        for _, gid, kind in self._status:
            state = None if flags[k] else switch_state(kind, vals[k])
            if state is not None:
                switches[gid] = state
            k += 1
        trips: dict[str, bool] = {}
        for _, gid in self._trips:
            if not flags[k] and not math.isnan(vals[k]):
                trips[gid] = bool(vals[k])
            k += 1
        fpis: dict[str, bool] = {}
        for _, gid in self._fpis:
            if not flags[k] and not math.isnan(vals[k]):
                fpis[gid] = bool(vals[k])
            k += 1
        taps: dict[str, int] = {}
        for _, gid in self._taps:
            if not flags[k] and not math.isnan(vals[k]):
                taps[gid] = round(vals[k])
            k += 1
        steps: dict[str, int] = {}
        for _, gid in self._steps:
            if not flags[k] and not math.isnan(vals[k]):
                steps[gid] = round(vals[k])
            k += 1
        measurements: list[Measurement] = []
        excluded: list[str] = []
        metered: dict[tuple[str, str], float] = {}
        head_p: dict[str, float] = {}
        acc = self.accuracy
        for a in self._analogs:
            raw, is_bad = vals[k], flags[k] or math.isnan(vals[k])
            k += 1
            value = 0.0 if math.isnan(raw) else raw / a.scale * a.sign
            if is_bad:
                excluded.append(a.point)
            elif a.quantity is EQ.P:
                if a.injector is not None:
                    metered[a.injector] = value * a.sign
                head = self._head_of.get((a.element, a.side or ""))
                if head is not None and a.kind is ElementKind.LINE:
                    head_p[head] = value
            sigma = max(
                acc.pct(a.quantity) / 100.0 * abs(value),
                a.deadband / abs(a.scale),
                _FLOOR[a.quantity],
            )
            measurements.append(
                Measurement(
                    a.kind,
                    a.element,
                    a.quantity,
                    abs(value) if a.quantity is EQ.I else value,
                    sigma,
                    side=a.side,
                    quality_ok=not is_bad,
                    id=a.point,
                )
            )
        return Snapshot(
            now, switches, trips, fpis, taps, steps, measurements, excluded, metered, head_p
        )

    # ------------------------------------------------------------- look-ups
    @property
    def trip_points(self) -> dict[str, str]:
        """Trip point -> protective switch."""
        return dict(self._trips)

    @property
    def fpi_points(self) -> dict[str, str]:
        """FPI point -> FPI."""
        return dict(self._fpis)

    @property
    def status_points(self) -> dict[str, str]:
        """Switch status point -> switch."""
        return {p: gid for p, gid, _ in self._status}

    @property
    def step_points(self) -> dict[str, str]:
        """Tap/step point -> transformer/shunt."""
        return dict(self._taps + self._steps)

    @property
    def analog_points(self) -> list[str]:
        """The points that become measurements."""
        return [a.point for a in self._analogs]

    def switch_closed(self, switch: str) -> bool | None:
        """A switch's position now (None: no status point, bad quality or intermediate)."""
        for point, gid, kind in self._status:
            if gid == switch:
                pv = self.pointdb.get(point)
                return None if pv.quality & UNUSABLE else switch_state(kind, pv.value)
        return None

    def uncontrolled_switches(self) -> list[str]:
        """Switches of the model that no point commands (the applications never plan them)."""
        return [s for s in self.model.ids("switch") if s not in self.switch_control]


def _injectors_per_bus(model: NetworkModel) -> dict[str, tuple[str, str, int]]:
    """Load/DER GIS id -> (table, bus GIS id, loads+DER in service at that bus)."""
    net = model.net
    rows: list[tuple[str, str, int]] = []
    for table in _INJECTORS:
        if table not in net or not len(net[table]):
            continue
        frame = net[table]
        on = frame.in_service.to_numpy(bool)
        for gid, bus, ok in zip(model.ids(table), frame.bus.tolist(), on, strict=True):
            if ok:
                rows.append((table, gid, int(bus)))
    per_bus: dict[int, int] = {}
    for _, _, bus in rows:
        per_bus[bus] = per_bus.get(bus, 0) + 1
    return {gid: (table, model.gis_id_of("bus", bus), per_bus[bus]) for table, gid, bus in rows}


@dataclass(frozen=True)
class Allocation:
    """Unmetered loads run at ``p_mw * scaling * load_factor``, DER at ``p_mw * der_factor``."""

    load_factor: float
    #: None: no metered DER, the model's own DER scaling stays
    der_factor: float | None
    #: measured feeder-head P the loads were matched to (MW)
    head_p_mw: float | None

    def apply(self, model: NetworkModel, base: tuple[np.ndarray, np.ndarray]) -> None:
        """Scale ``model``'s loads and DER from their own scaling ``base`` (loads, DER)."""
        net = model.net
        if len(net.load):
            net.load["scaling"] = base[0] * self.load_factor
        if len(net.sgen):
            net.sgen["scaling"] = base[1] if self.der_factor is None else self.der_factor

    def to_dict(self) -> dict[str, float | None]:
        """JSON form."""
        return {
            "load_factor": round(self.load_factor, 4),
            "der_factor": None if self.der_factor is None else round(self.der_factor, 4),
            "head_p_mw": None if self.head_p_mw is None else round(self.head_p_mw, 4),
        }


def allocate_loads(
    model: NetworkModel,
    snapshot: Snapshot,
    graph: SectionGraph,
    base: tuple[np.ndarray, np.ndarray],
) -> Allocation:
    """Allocation factors from the snapshot (module doc); ``model`` holds its switch states.

    ``base`` are the loads' and the DER's own scaling factors (the model's,
    before any allocation).
    """
    net = model.net
    live = graph.feed_tree(graph.states()).energised

    def energised(table: str) -> list[tuple[str, int, bool]]:
        if table not in net or not len(net[table]):
            return []
        frame = net[table]
        out = []
        for pos, (gid, bus, on) in enumerate(
            zip(model.ids(table), frame.bus.tolist(), frame.in_service.tolist(), strict=True)
        ):
            node = graph.node(model.gis_id_of("bus", int(bus)))
            out.append((gid, pos, bool(on) and node in live))
        return out

    metered = snapshot.metered_p
    rating = net.sgen.p_mw.to_numpy(float) if len(net.sgen) else np.zeros(0)
    der_measured = der_rating = 0.0
    der_unmetered = 0.0
    for gid, pos, on in energised("sgen"):
        if not on:
            continue
        if ("sgen", gid) in metered:
            der_measured += metered[("sgen", gid)]
            der_rating += float(rating[pos])
    der_factor = min(max(der_measured / der_rating, 0.0), 1.0) if der_rating > 0 else None
    der_scaling = base[1].tolist()
    for gid, pos, on in energised("sgen"):
        if on and ("sgen", gid) not in metered:
            der_unmetered += float(rating[pos]) * (
                der_factor if der_factor is not None else der_scaling[pos]
            )
    if not snapshot.head_p:
        return Allocation(1.0, der_factor, None)
    scaling = base[0].tolist()
    p_mw = net.load.p_mw.to_numpy(float) if len(net.load) else np.zeros(0)
    load_metered = load_unmetered = 0.0
    for gid, pos, on in energised("load"):
        if not on:
            continue
        if ("load", gid) in metered:
            load_metered += metered[("load", gid)]
        else:
            load_unmetered += float(p_mw[pos]) * scaling[pos]
    head = sum(snapshot.head_p.values())
    if load_unmetered <= 0:
        return Allocation(1.0, der_factor, head)
    factor = (head + der_measured + der_unmetered - load_metered) / load_unmetered
    lo, hi = _LOAD_FACTOR
    return Allocation(min(max(factor, lo), hi), der_factor, head)
