"""Point binding: the SCADA configuration of a network model, and what each point measures.

Contract:
- :func:`bind` turns a :class:`~models.network.NetworkModel` into a SCADA
  configuration document (the ``templates`` + ``devices`` mapping
  :func:`scada.config.parse_config` takes) from built-in device templates:

  - a substation RTU per primary substation: per feeder-head breaker its
    status + control, protection trip, FPI (where the model has one) and
    P/Q/I at the feeder head; every other breaker of the substation (status +
    control); each busbar's V; each transformer's LV-side P/Q and, where the
    model has a tap changer, tap position + raise/lower control;
  - an FRTU per automated switch: reclosers (and breakers outside
    substations), and load-break switches with an FPI or normally open:
    status + control, trip (reclosers, breakers), FPI, current;
  - a capacitor-bank controller per shunt (step position + raise/lower, Q),
    a regulator controller per step-voltage regulator outside substations,
    a DER controller per ``sgen`` of at least ``der_min_mw`` (P, Q, active
    power limit setpoint) and, optionally, a meter per load of at least
    ``meter_min_mw`` (P, Q).

  Protocols default per device kind (:data:`DEFAULT_PROTOCOLS`); a map
  keyed by device kind, feeder id or device name overrides them. Addresses
  are allocated per protocol (IEC IOAs, DNP3 indexes per type, Modbus tables).
  Ports are 0 (OS-assigned) or ``base_port + n``.
- Every point names the model element it measures or controls in
  ``element``: ``<table>:<gis id>[:<qualifier>]`` with the pandapower table
  name (``switch``, ``line``, ``trafo``, ``bus``, ``load``, ``sgen``,
  ``shunt``, ``fpi``) and qualifiers ``from``/``to`` (line end), ``hv``/``lv``
  (transformer side), ``tap`` (transformer tap position), ``step``
  (capacitor steps), ``trip`` (protection operated at a switch) and
  ``p_limit`` (DER active power limit). What is measured there follows from
  the point's unit (MW/kW: P, Mvar/kvar: Q, MVA: S, A/kA: I, kV/V/pu: V);
  :func:`measurand` resolves it and :func:`resolve_bindings` checks a whole
  configuration against a model, so an engineer-edited file is validated too.
- Devices share templates (R-ACQ-4): a device's points name their elements
  through placeholders (``switch:{switch1}``, ``line:{line1}:from``) that
  the device fills with its ``elements`` mapping, so every device with the
  same point shapes, protocol addresses, limits and deadbands uses one
  template. A template used by one device is named like it; a shared one
  after its device kind (``frtu-lbs-1``, ...).
- :func:`switch_status_points` and :func:`switch_state` map status points to
  switch states for a :class:`~models.topology.TopologyProcessor`.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import pandas as pd
import yaml

from models.errors import ModelError
from models.network import NetworkModel
from models.topology import derive_feeders
from protocols.base import DoubleState, PointKind
from scada.config import PointConfig, ScadaConfig, parse_config

__all__ = [
    "DEFAULT_PROTOCOLS",
    "DEVICE_KINDS",
    "BindingError",
    "BindingOptions",
    "BindingValidationError",
    "DeviceKind",
    "ElementBinding",
    "Measurand",
    "Quantity",
    "bind",
    "bind_config",
    "config_document",
    "dump_yaml",
    "measurand",
    "parse_element",
    "parse_protocol_map",
    "resolve_bindings",
    "switch_state",
    "switch_status_points",
]

Protocol = Literal["iec104", "dnp3", "modbus"]
DeviceKind = Literal["substation", "frtu", "capacitor", "regulator", "der", "meter"]
DEVICE_KINDS: tuple[DeviceKind, ...] = (
    "substation",
    "frtu",
    "capacitor",
    "regulator",
    "der",
    "meter",
)
#: the protocol each device kind is served on unless the protocol map says otherwise
DEFAULT_PROTOCOLS: dict[DeviceKind, Protocol] = {
    "substation": "iec104",
    "frtu": "iec104",
    "capacitor": "iec104",
    "regulator": "iec104",
    "der": "modbus",
    "meter": "modbus",
}
_PROTOCOLS: tuple[Protocol, ...] = ("iec104", "dnp3", "modbus")
#: scada.config's device ``kind`` for each device kind
_CONFIG_KIND = {
    "substation": "rtu",
    "frtu": "frtu",
    "capacitor": "frtu",
    "regulator": "frtu",
    "der": "rtu",
    "meter": "meter",
}
#: the highest port a generated configuration may use (ephemeral ports start above)
MAX_PORT = 32767
_IEC_CONTROL_BASE = 5001
_NAME_OK = re.compile(r"[^A-Za-z0-9_\-]")


class BindingError(ModelError):
    """A point's ``element`` does not name a model element it can bind to, or bad options."""


class BindingValidationError(BindingError):
    """Several binding errors found in one configuration; ``errors`` lists them all."""

    def __init__(self, errors: Sequence[BindingError]) -> None:
        self.errors = tuple(errors)
        lines = [f"{len(self.errors)} binding error(s)", *(f"  - {e}" for e in self.errors)]
        super().__init__("\n".join(lines))


# ------------------------------------------------------------ element binding
class Quantity(enum.StrEnum):
    """What a bound point reports or drives."""

    STATUS = "status"  # switch position
    TRIP = "trip"  # protection operated at a switch
    FPI = "fpi"  # fault passage indicated
    P = "p"  # active power, MW base
    Q = "q"  # reactive power, Mvar base
    S = "s"  # apparent power, MVA base
    I = "i"  # noqa: E741 - current, kA base
    V = "v"  # voltage, kV base
    VM_PU = "vm_pu"  # voltage, per unit
    TAP = "tap"  # transformer tap position
    STEP = "step"  # capacitor steps in service
    P_LIMIT = "p_limit"  # DER active power limit, MW base


#: unit (lower case) -> quantity and factor from the base unit (MW, Mvar, MVA, kA, kV)
_UNITS: dict[str, tuple[Quantity, float]] = {
    "mw": (Quantity.P, 1.0),
    "kw": (Quantity.P, 1e3),
    "w": (Quantity.P, 1e6),
    "mvar": (Quantity.Q, 1.0),
    "kvar": (Quantity.Q, 1e3),
    "var": (Quantity.Q, 1e6),
    "mva": (Quantity.S, 1.0),
    "kva": (Quantity.S, 1e3),
    "ka": (Quantity.I, 1.0),
    "a": (Quantity.I, 1e3),
    "kv": (Quantity.V, 1.0),
    "v": (Quantity.V, 1e3),
    "pu": (Quantity.VM_PU, 1.0),
}
_FLOWS = frozenset({Quantity.P, Quantity.Q, Quantity.S, Quantity.I})
#: table -> qualifier -> quantities it allows (None: the unit decides among them)
_ALLOWED: dict[str, dict[str | None, frozenset[Quantity]]] = {
    "switch": {None: frozenset({Quantity.STATUS}), "trip": frozenset({Quantity.TRIP})},
    "fpi": {None: frozenset({Quantity.FPI})},
    "line": {"from": _FLOWS, "to": _FLOWS},
    "trafo": {"hv": _FLOWS, "lv": _FLOWS, "tap": frozenset({Quantity.TAP})},
    "bus": {None: frozenset({Quantity.V, Quantity.VM_PU})},
    "load": {None: frozenset({Quantity.P, Quantity.Q, Quantity.S})},
    "sgen": {
        None: frozenset({Quantity.P, Quantity.Q, Quantity.S}),
        "p_limit": frozenset({Quantity.P_LIMIT}),
    },
    "shunt": {None: frozenset({Quantity.Q}), "step": frozenset({Quantity.STEP})},
}
_QUALIFIED = {q: Quantity(q) for q in ("trip", "tap", "step", "p_limit")}


@dataclass(frozen=True, slots=True)
class ElementBinding:
    """A parsed ``element``: pandapower table, GIS id and optional qualifier."""

    table: str
    gis_id: str
    qualifier: str | None = None

    def __str__(self) -> str:
        tail = f":{self.qualifier}" if self.qualifier else ""
        return f"{self.table}:{self.gis_id}{tail}"


@dataclass(frozen=True, slots=True)
class Measurand:
    """What one point is bound to: its element, the quantity and the unit factor.

    The point's engineering value is ``base value * factor`` (base units MW,
    Mvar, MVA, kA, kV; per unit, positions and flags as they are).
    """

    point: str
    element: ElementBinding
    quantity: Quantity
    factor: float = 1.0


def parse_element(text: str) -> ElementBinding:
    """Split ``<table>:<gis id>[:<qualifier>]``; raise :class:`BindingError` if malformed."""
    table, sep, rest = text.partition(":")
    if not sep or not rest or table not in _ALLOWED:
        raise BindingError(
            f"element {text!r} is not <table>:<gis id>[:<qualifier>] with table one of "
            f"{', '.join(sorted(_ALLOWED))}",
            field="element",
        )
    head, sep, tail = rest.rpartition(":")
    if sep and tail in _ALLOWED[table]:
        return ElementBinding(table, head, tail)
    return ElementBinding(table, rest, None)


def measurand(point: PointConfig) -> Measurand:
    """The measurand of a point with an ``element``; :class:`BindingError` names the point."""
    t = point.template
    if t.element is None:
        raise BindingError("no element", feature_id=point.name, kind="point", field="element")
    try:
        el = parse_element(t.element)
    except BindingError as exc:
        raise BindingError(
            exc.detail, feature_id=point.name, kind="point", field="element"
        ) from None
    allowed = _ALLOWED[el.table].get(el.qualifier)
    if allowed is None:
        need = " or ".join(repr(q) for q in _ALLOWED[el.table] if q)
        raise BindingError(
            f"element {t.element!r} needs a qualifier ({need})",
            feature_id=point.name,
            kind="point",
            field="element",
        )
    factor = 1.0
    if el.qualifier in _QUALIFIED:
        quantity = _QUALIFIED[el.qualifier]
        if quantity is Quantity.P_LIMIT:
            unit = _UNITS.get(t.unit.strip().lower())
            if unit is None or unit[0] is not Quantity.P:
                raise BindingError(
                    f"unit {t.unit!r} is not a power unit (MW, kW, W)",
                    feature_id=point.name,
                    kind="point",
                    field="unit",
                )
            factor = unit[1]
    elif allowed == {Quantity.STATUS} or allowed == {Quantity.FPI}:
        (quantity,) = allowed
    else:
        unit = _UNITS.get(t.unit.strip().lower())
        if unit is None or unit[0] not in allowed:
            expected = sorted(u for u, (q, _) in _UNITS.items() if q in allowed)
            raise BindingError(
                f"unit {t.unit!r} does not say what {t.element!r} measures "
                f"(one of {', '.join(expected)})",
                feature_id=point.name,
                kind="point",
                field="unit",
            )
        quantity, factor = unit
    binary = quantity in (Quantity.STATUS, Quantity.TRIP, Quantity.FPI)
    is_binary_kind = t.kind in (PointKind.SINGLE, PointKind.DOUBLE)
    if binary != is_binary_kind and not (binary and t.kind == PointKind.COMMAND):
        raise BindingError(
            f"a {t.kind} point cannot report {quantity}",
            feature_id=point.name,
            kind="point",
            field="kind",
        )
    return Measurand(point.name, el, quantity, factor)


def resolve_bindings(config: ScadaConfig, model: NetworkModel) -> dict[str, Measurand]:
    """Every bound point's measurand, checked against ``model``.

    Points without ``element`` are left out. Raises
    :class:`BindingValidationError` listing every point whose element is
    malformed, missing from the model or of another kind.
    """
    out: dict[str, Measurand] = {}
    errors: list[BindingError] = []
    for dp in config.expand():
        for p in dp.points:
            if p.template.element is None:
                continue
            try:
                m = measurand(p)
            except BindingError as exc:
                errors.append(exc)
                continue
            ref = model.locate(m.element.gis_id) if m.element.gis_id in model else None
            if ref is None or ref.table != m.element.table:
                found = "no such element" if ref is None else f"it is a {ref.table}"
                errors.append(
                    BindingError(
                        f"element {p.template.element!r}: {found}",
                        feature_id=p.name,
                        kind="point",
                        field="element",
                    )
                )
                continue
            out[p.name] = m
    if errors:
        raise BindingValidationError(errors)
    return out


def switch_status_points(config: ScadaConfig) -> dict[str, str]:
    """Monitored switch status points -> the switch GIS id they report."""
    out: dict[str, str] = {}
    for dp in config.expand():
        for p in dp.points:
            t = p.template
            if t.element is None or t.address < 0 or not t.element.startswith("switch:"):
                continue
            el = parse_element(t.element)
            if el.qualifier is None and t.kind in (PointKind.SINGLE, PointKind.DOUBLE):
                out[p.name] = el.gis_id
    return out


def switch_state(kind: PointKind, value: float) -> bool | None:
    """Closed (True), open (False) or unknown (None: intermediate, indeterminate, no value)."""
    if math.isnan(value):
        return None
    if kind == PointKind.DOUBLE:
        if value == DoubleState.ON:
            return True
        if value == DoubleState.OFF:
            return False
        return None
    return bool(value)


# ----------------------------------------------------------------- options
@dataclass(frozen=True)
class BindingOptions:
    """How :func:`bind` builds the configuration.

    ``protocols`` maps a device kind (:data:`DEVICE_KINDS`), a feeder id or a
    device name to a protocol; the most specific key wins (device name, then
    feeder, then kind), then :data:`DEFAULT_PROTOCOLS`.
    """

    protocols: Mapping[str, Protocol] = field(default_factory=dict)
    #: 0: every port OS-assigned; else device n listens on ``base_port + n``
    base_port: int = 0
    host: str = "127.0.0.1"
    scan_period_s: float = 2.0
    timeout_s: float = 1.0
    integrity_period_s: float = 300.0
    #: DER of at least this rating (sn_mva, else p_mw) get a controller
    der_min_mw: float = 0.3
    #: loads of at least this p_mw get a meter; None: no meters
    meter_min_mw: float | None = None
    #: seconds the control centre waits for a command's check-back
    checkback_timeout_s: float = 10.0


def parse_protocol_map(items: Sequence[str]) -> dict[str, Protocol]:
    """Parse ``KEY=PROTOCOL`` items (also comma-separated), e.g. ``frtu=dnp3,SS2-F1=dnp3``."""
    out: dict[str, Protocol] = {}
    for item in (part for raw in items for part in raw.split(",") if part.strip()):
        key, sep, value = item.partition("=")
        proto = value.strip().lower()
        if not sep or not key.strip() or proto not in _PROTOCOLS:
            raise BindingError(
                f"protocol map item {item!r} is not KEY=PROTOCOL with PROTOCOL one of "
                f"{', '.join(_PROTOCOLS)}",
                field="protocols",
            )
        out[key.strip()] = proto
    return out


# ------------------------------------------------------------- point shapes
@dataclass(frozen=True)
class _Point:
    """A point before address allocation: what the built-in templates define."""

    name: str
    kind: str
    element: str
    unit: str = ""
    description: str = ""
    deadband: float = 0.0
    limits: dict[str, float] | None = None
    #: control kind (double, step, setpoint) or None
    control: str | None = None
    mode: str = "direct"


class _Addresses:
    """Allocates protocol addresses for one device's points."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self._next: dict[str, int] = {}

    def _take(self, space: str, width: int = 1, start: int = 0) -> int:
        address = self._next.get(space, start)
        self._next[space] = address + width
        return address

    def monitored(self, p: _Point) -> dict[str, Any]:
        if self.protocol == "iec104":
            return {"address": self._take("ioa", start=1)}
        if self.protocol == "dnp3":
            space = {"single": "binary", "double": "double", "counter": "counter"}
            return {"address": self._take(space.get(p.kind, "analog"))}
        if p.kind == "single":
            return {"address": self._take("di"), "table": "discrete_input", "dtype": "bool"}
        if p.kind == "double":
            return {"address": self._take("ir"), "table": "input_register", "dtype": "uint16"}
        if p.kind == "counter":
            return {"address": self._take("ir", 2), "table": "input_register", "dtype": "uint32"}
        return {"address": self._take("ir", 2), "table": "input_register", "dtype": "float32"}

    def control(self, p: _Point, checkback_timeout_s: float) -> dict[str, Any]:
        assert p.control is not None
        out: dict[str, Any] = {"kind": p.control}
        if self.protocol == "iec104":
            out["address"] = self._take("ioa_out", start=_IEC_CONTROL_BASE)
        elif self.protocol == "dnp3":
            if p.control == "setpoint":
                out["address"] = self._take("ao")
            else:
                out["address"] = self._take("crob")
                if p.control == "step":
                    out["address_lower"] = self._take("crob")
        elif p.control == "setpoint":
            out.update(address=self._take("hr", 2), table="holding_register", dtype="float32")
        else:
            out.update(address=self._take("coil"), table="coil")
            if p.control == "step":
                out["address_lower"] = self._take("coil")
        out.update(mode=p.mode, checkback_timeout_s=checkback_timeout_s)
        return out


def _render(p: _Point, alloc: _Addresses, checkback_timeout_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name, "kind": p.kind, **alloc.monitored(p)}
    if p.unit:
        out["unit"] = p.unit
    if p.deadband:
        out["deadband"] = p.deadband
    if p.limits:
        out["limits"] = p.limits
    if p.control is not None:
        out["control"] = alloc.control(p, checkback_timeout_s)
    out["element"] = p.element
    if p.description:
        out["description"] = p.description
    return out


def _generalise(
    dev: _Device, points: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A device's template with its model ids as placeholders, and the ids that fill them.

    Ids are numbered per table in order of appearance (``switch1``, ``line1``,
    ``line2``); descriptions name them through the same placeholders.
    """
    elements: dict[str, str] = {}
    slot_of: dict[str, str] = {}
    per_table: dict[str, int] = {}
    for p in points:
        table, gid, *rest = str(p["element"]).split(":")
        if gid not in slot_of:
            per_table[table] = per_table.get(table, 0) + 1
            slot_of[gid] = f"{table}{per_table[table]}"
            elements[slot_of[gid]] = gid
        p["element"] = ":".join([table, "{" + slot_of[gid] + "}", *rest])
    # longest ids first, so an id inside another (SW1 in SW12) is not replaced within it
    by_length = sorted(slot_of, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(g) for g in by_length)) if by_length else None

    def generic(text: str) -> str:
        text = text.replace("{", "{{").replace("}", "}}")
        return text if pattern is None else pattern.sub(lambda m: "{" + slot_of[m[0]] + "}", text)

    for p in points:
        if "description" in p:
            p["description"] = generic(p["description"])
    return {"description": generic(dev.description), "points": points}, elements


# ------------------------------------------------------------------ binding
@dataclass
class _Device:
    name: str
    kind: DeviceKind
    feeder: str | None
    description: str
    points: list[_Point]


def _safe(text: str) -> str:
    return _NAME_OK.sub("_", text)


def _missing(value: Any) -> bool:
    """None, NaN or pandas NA."""
    return value is None or bool(pd.isna(value))


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class _Binder:
    """Builds the devices of one model (see the module docstring for what each gets)."""

    def __init__(self, model: NetworkModel, options: BindingOptions) -> None:
        self.model = model
        self.net = model.net
        self.options = options
        self.feeders = model.feeders or derive_feeders(model)[0]
        self.bound_switches: set[int] = set()
        net = self.net
        self.fpi_at_switch: dict[int, list[str]] = {}
        self.fpi_on_line: dict[int, list[tuple[str, int | None]]] = {}
        if "fpi" in net and len(net.fpi):
            for gid, et, element, bus in zip(
                model.ids("fpi"), net.fpi.et, net.fpi.element, net.fpi.bus, strict=True
            ):
                if et == "switch":
                    self.fpi_at_switch.setdefault(int(element), []).append(gid)
                else:
                    at = None if _missing(bus) else int(bus)
                    self.fpi_on_line.setdefault(int(element), []).append((gid, at))
        self.bus_substation: dict[int, str] = {}
        if "substation" in net.bus.columns and "substation" in net and len(net.substation):
            sub_ids = dict(zip(net.substation.index, model.ids("substation"), strict=True))
            for index, sub in zip(net.bus.index, net.bus.substation, strict=True):
                if not _missing(sub) and int(sub) in sub_ids:
                    self.bus_substation[int(index)] = sub_ids[int(sub)]

    # -- helpers
    def sid(self, table: str, index: int) -> str:
        return self.model.gis_id_of(table, index)

    def fpis_of_switch(self, index: int) -> list[str]:
        """FPIs at a switch, and line FPIs at the switch's end of its line."""
        out = list(self.fpi_at_switch.get(index, []))
        sw = self.net.switch.loc[index]
        if sw.et == "l":
            out += [g for g, at in self.fpi_on_line.get(int(sw.element), []) if at == sw.bus]
        return out

    def flow_element(self, index: int) -> tuple[str, float] | None:
        """Element string of the flow through a switch, and its branch rating in A."""
        sw = self.net.switch.loc[index]
        if sw.et == "l":
            line = self.net.line.loc[sw.element]
            end = "from" if line.from_bus == sw.bus else "to"
            rating = float(line.max_i_ka) * float(line.parallel) * float(line.df) * 1e3
            return f"line:{self.sid('line', int(sw.element))}:{end}", rating
        if sw.et == "t":
            trafo = self.net.trafo.loc[sw.element]
            side = "hv" if trafo.hv_bus == sw.bus else "lv"
            kv = trafo.vn_hv_kv if side == "hv" else trafo.vn_lv_kv
            rating = float(trafo.sn_mva) / (math.sqrt(3) * float(kv)) * 1e3
            return f"trafo:{self.sid('trafo', int(sw.element))}:{side}", rating
        return None

    def switch_points(
        self, index: int, prefix: str, *, trip: bool, flows: Sequence[str], label: str
    ) -> list[_Point]:
        gid = self.sid("switch", index)
        points = [
            _Point(
                f"{prefix}CB" if label == "breaker" else f"{prefix}SW",
                "double",
                f"switch:{gid}",
                description=f"{label} {gid} position",
                control="double",
                mode="sbo",
            )
        ]
        if trip:
            points.append(
                _Point(
                    f"{prefix}TRIP",
                    "single",
                    f"switch:{gid}:trip",
                    description=f"{label} {gid} protection trip",
                )
            )
        fpis = self.fpis_of_switch(index)
        for n, fpi in enumerate(fpis):
            suffix = "FPI" if len(fpis) == 1 else f"FPI{n + 1}"
            points.append(
                _Point(f"{prefix}{suffix}", "single", f"fpi:{fpi}", description=f"FPI {fpi}")
            )
        flow = self.flow_element(index)
        if flow is not None:
            element, rating_a = flow
            for q in flows:
                points.append(_flow_point(prefix, q, element, rating_a))
        self.bound_switches.add(index)
        return points

    def is_tap_changer(self, index: int) -> bool:
        t = self.net.trafo.loc[index]
        kind = t.get("tap_changer_type")
        return (
            isinstance(kind, str)
            and bool(kind)
            and not any(_missing(t[c]) for c in ("tap_pos", "tap_min", "tap_max"))
            and t.tap_min < t.tap_max
        )

    # -- devices
    def substations(self) -> Iterator[_Device]:
        net = self.net
        heads: dict[str, list[tuple[str, int]]] = {}
        for feeder in sorted(self.feeders.values(), key=lambda f: f.id):
            index = self.model.index_of("switch", feeder.head_switch)
            bus = int(net.switch.at[index, "bus"])
            sub = feeder.substation or self.bus_substation.get(bus) or f"SS-{feeder.head_bus}"
            heads.setdefault(sub, []).append((feeder.id, index))
        subs = sorted({*self.bus_substation.values(), *heads})
        types = net.switch["switch_type"] if "switch_type" in net.switch.columns else None
        for sub in subs:
            points: list[_Point] = []
            for feeder_id, index in heads.get(sub, []):
                bay = _safe(feeder_id.removeprefix(f"{sub}-"))
                points += self.switch_points(
                    index, f"{bay}.", trip=True, flows=("P", "Q", "I"), label="breaker"
                )
            buses = sorted(b for b, s in self.bus_substation.items() if s == sub)
            for index in net.switch.index:
                if (
                    types is not None
                    and index not in self.bound_switches
                    and types[index] == "breaker"
                    and int(net.switch.at[index, "bus"]) in buses
                ):
                    points += self.switch_points(
                        int(index),
                        f"{_safe(self.sid('switch', int(index)))}.",
                        trip=False,
                        flows=(),
                        label="breaker",
                    )
            for bus in buses:
                if net.bus.at[bus, "type"] == "b":
                    points.append(
                        _voltage_point(self.sid("bus", bus), float(net.bus.at[bus, "vn_kv"]))
                    )
            for index in net.trafo.index:
                t = net.trafo.loc[index]
                if int(t.lv_bus) in buses or int(t.hv_bus) in buses:
                    points += self.trafo_points(int(index))
            if points:
                yield _Device(
                    _safe(sub), "substation", None, f"Primary substation {sub} RTU", points
                )

    def trafo_points(self, index: int) -> list[_Point]:
        t = self.net.trafo.loc[index]
        gid = self.sid("trafo", index)
        prefix = f"{_safe(gid)}."
        rating = float(t.sn_mva) / (math.sqrt(3) * float(t.vn_lv_kv)) * 1e3
        points = [_flow_point(prefix, q, f"trafo:{gid}:lv", rating) for q in ("P", "Q")]
        if self.is_tap_changer(index):
            points.append(
                _Point(
                    f"{prefix}TAP",
                    "analog",
                    f"trafo:{gid}:tap",
                    description=f"transformer {gid} tap position "
                    f"({int(t.tap_min)}..{int(t.tap_max)})",
                    control="step",
                )
            )
        return points

    def frtus(self) -> Iterator[_Device]:
        net = self.net
        types = net.switch["switch_type"] if "switch_type" in net.switch.columns else None
        for index in net.switch.index:
            if index in self.bound_switches or types is None:
                continue
            sw = net.switch.loc[index]
            stype = sw.switch_type
            protective = stype in ("recloser", "breaker")
            automated = protective or (
                stype == "load_break_switch"
                and (bool(sw.get("normal_open", False)) or bool(self.fpis_of_switch(int(index))))
            )
            if not automated:
                continue
            gid = self.sid("switch", int(index))
            points = self.switch_points(
                int(index), "", trip=protective, flows=("I",), label=str(stype).replace("_", " ")
            )
            yield _Device(
                f"FR-{_safe(gid)}",
                "frtu",
                _str_or_none(sw.get("feeder")),
                f"FRTU at {str(stype).replace('_', ' ')} {gid}",
                points,
            )

    def capacitors(self) -> Iterator[_Device]:
        net = self.net
        for index, gid in zip(net.shunt.index, self.model.ids("shunt"), strict=True):
            sh = net.shunt.loc[index]
            points = [
                _Point(
                    "STEP",
                    "analog",
                    f"shunt:{gid}:step",
                    description=f"capacitor {gid} steps in service (0..{int(sh.max_step)})",
                    control="step",
                ),
                _Point("Q", "analog", f"shunt:{gid}", unit="Mvar", deadband=0.01),
            ]
            yield _Device(
                f"CAP-{_safe(gid)}",
                "capacitor",
                _str_or_none(sh.get("feeder")),
                f"capacitor bank {gid} controller",
                points,
            )

    def regulators(self, substation_trafos: set[str]) -> Iterator[_Device]:
        net = self.net
        if "regulator" not in net.trafo.columns:
            return
        for index in net.trafo.index:
            gid = self.sid("trafo", int(index))
            if gid in substation_trafos or not bool(net.trafo.at[index, "regulator"]):
                continue
            t = net.trafo.loc[index]
            points = self.trafo_points(int(index))
            points.append(
                _voltage_point(self.sid("bus", int(t.lv_bus)), float(net.bus.at[t.lv_bus, "vn_kv"]))
            )
            yield _Device(
                f"REG-{_safe(gid)}",
                "regulator",
                _str_or_none(t.get("feeder")),
                f"voltage regulator {gid} controller",
                points,
            )

    def ders(self) -> Iterator[_Device]:
        net = self.net
        for index, gid in zip(net.sgen.index, self.model.ids("sgen"), strict=True):
            g = net.sgen.loc[index]
            rating = float(g.p_mw) if _missing(g.sn_mva) else float(g.sn_mva)
            if rating < self.options.der_min_mw:
                continue
            points = [
                _Point("P", "analog", f"sgen:{gid}", unit="MW", deadband=0.005),
                _Point("Q", "analog", f"sgen:{gid}", unit="Mvar", deadband=0.005),
                _Point(
                    "PSET",
                    "setpoint",
                    f"sgen:{gid}:p_limit",
                    unit="MW",
                    description=f"DER {gid} active power limit (0..{rating:g} MW)",
                    control="setpoint",
                ),
            ]
            yield _Device(
                f"DER-{_safe(gid)}",
                "der",
                _str_or_none(g.get("feeder")),
                f"DER {gid} ({g.get('type') or 'sgen'}) controller",
                points,
            )

    def meters(self) -> Iterator[_Device]:
        threshold = self.options.meter_min_mw
        if threshold is None:
            return
        net = self.net
        for index, gid in zip(net.load.index, self.model.ids("load"), strict=True):
            load = net.load.loc[index]
            if float(load.p_mw) < threshold:
                continue
            points = [
                _Point("P", "analog", f"load:{gid}", unit="MW", deadband=0.005),
                _Point("Q", "analog", f"load:{gid}", unit="Mvar", deadband=0.005),
            ]
            yield _Device(
                f"M-{_safe(gid)}",
                "meter",
                _str_or_none(load.get("feeder")),
                f"meter at load {gid}",
                points,
            )

    def devices(self) -> list[_Device]:
        subs = list(self.substations())
        in_subs = {
            p.element.split(":")[1]
            for d in subs
            for p in d.points
            if p.element.startswith("trafo:")
        }
        out = [
            *subs,
            *self.frtus(),
            *self.capacitors(),
            *self.regulators(in_subs),
            *self.ders(),
            *self.meters(),
        ]
        seen: set[str] = set()
        for dev in out:
            base, n = dev.name, 1
            while dev.name in seen:
                n += 1
                dev.name = f"{base}-{n}"
            seen.add(dev.name)
        return out


def _flow_point(prefix: str, quantity: str, element: str, rating_a: float) -> _Point:
    if quantity == "I":
        limits = None
        if rating_a > 0 and math.isfinite(rating_a):
            limits = {"high": round(0.9 * rating_a, 1), "high_high": round(rating_a, 1)}
        return _Point(f"{prefix}I", "analog", element, unit="A", deadband=1.0, limits=limits)
    unit = {"P": "MW", "Q": "Mvar"}[quantity]
    return _Point(f"{prefix}{quantity}", "analog", element, unit=unit, deadband=0.01)


def _voltage_point(bus_id: str, vn_kv: float) -> _Point:
    return _Point(
        f"{_safe(bus_id)}.V",
        "analog",
        f"bus:{bus_id}",
        unit="kV",
        description=f"busbar {bus_id} voltage",
        deadband=round(0.001 * vn_kv, 6),
        limits={
            "low_low": round(0.9 * vn_kv, 4),
            "low": round(0.95 * vn_kv, 4),
            "high": round(1.05 * vn_kv, 4),
            "high_high": round(1.1 * vn_kv, 4),
        },
    )


def _protocol(dev: _Device, options: BindingOptions) -> Protocol:
    m = options.protocols
    for key in (dev.name, dev.feeder, dev.kind):
        if key is not None and key in m:
            return m[key]
    return DEFAULT_PROTOCOLS[dev.kind]


def bind(model: NetworkModel, options: BindingOptions | None = None) -> dict[str, Any]:
    """The SCADA configuration document of ``model`` (see the module docstring).

    The result is validated with :func:`scada.config.parse_config` and
    :func:`resolve_bindings` before it is returned; a :class:`BindingError`
    names a bad option.
    """
    opts = options or BindingOptions()
    unknown = [k for k, v in opts.protocols.items() if v not in _PROTOCOLS]
    if unknown:
        raise BindingError(f"unknown protocol for {', '.join(unknown)}", field="protocols")
    devices = _Binder(model, opts).devices()
    if opts.base_port and not 0 < opts.base_port <= MAX_PORT - len(devices) + 1:
        raise BindingError(
            f"base_port {opts.base_port} + {len(devices)} devices must stay within 1..{MAX_PORT}",
            field="base_port",
        )
    shapes: dict[str, list[int]] = {}  # template document (JSON) -> devices using it
    generic: list[tuple[dict[str, Any], dict[str, str]]] = []
    for n, dev in enumerate(devices):
        alloc = _Addresses(_protocol(dev, opts))
        rendered = [_render(p, alloc, opts.checkback_timeout_s) for p in dev.points]
        template, elements = _generalise(dev, rendered)
        generic.append((template, elements))
        shapes.setdefault(json.dumps([_protocol(dev, opts), template], sort_keys=True), []).append(
            n
        )
    template_of: dict[int, str] = {}
    templates: dict[str, Any] = {}
    per_kind: dict[str, int] = {}
    for users in shapes.values():
        first = devices[users[0]]
        if len(users) == 1:
            name = first.name
        else:
            per_kind[first.kind] = per_kind.get(first.kind, 0) + 1
            name = f"{first.kind}-{per_kind[first.kind]}"
        templates[name] = generic[users[0]][0]
        template_of.update(dict.fromkeys(users, name))
    device_docs: list[dict[str, Any]] = []
    for n, dev in enumerate(devices):
        protocol = _protocol(dev, opts)
        device_docs.append(
            {
                "name": dev.name,
                "template": template_of[n],
                "protocol": protocol,
                "host": opts.host,
                "port": opts.base_port + n if opts.base_port else 0,
                "address": 1 if protocol == "modbus" else 10 + n,
                "kind": _CONFIG_KIND[dev.kind],
                "scan_period_s": opts.scan_period_s,
                "timeout_s": opts.timeout_s,
                "integrity_period_s": opts.integrity_period_s,
                "elements": generic[n][1],
            }
        )
    doc = {"templates": templates, "devices": device_docs}
    resolve_bindings(parse_config([(f"binding of {model.name}", doc)]), model)
    return doc


def bind_config(model: NetworkModel, options: BindingOptions | None = None) -> ScadaConfig:
    """:func:`bind`, parsed into a :class:`~scada.config.ScadaConfig`."""
    return parse_config([(f"binding of {model.name}", bind(model, options))])


# ------------------------------------------------------------ serialisation
def config_document(config: ScadaConfig) -> dict[str, Any]:
    """Any configuration as a document :func:`scada.config.parse_config` takes back.

    Keys at their default value are left out; devices are written expanded
    (one entry per device), e.g. to hand the rig's resolved ports to a server.
    """
    return {
        "templates": {
            name: t.model_dump(mode="json", exclude_defaults=True)
            for name, t in config.templates.items()
        },
        "devices": [
            d.model_dump(mode="json", exclude_defaults=True) | {"port": d.port}
            for d in config.devices.values()
        ],
    }


class _Dumper(yaml.SafeDumper):
    """Block style at the top, one line per point and per device (flow style)."""


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    flow = "name" in data and ("kind" in data or "template" in data)
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_Dumper.add_representer(dict, _represent_dict)


def dump_yaml(doc: Mapping[str, Any], out: str | Path | IO[str], header: str = "") -> None:
    """Write a configuration document as YAML that :func:`scada.config.load_config` reads."""
    text = yaml.dump(dict(doc), Dumper=_Dumper, sort_keys=False, width=200)
    if header:
        text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + text
    if isinstance(out, (str, Path)):
        Path(out).write_text(text, encoding="utf-8")
    else:
        out.write(text)
