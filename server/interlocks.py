"""Network interlocks: no closing onto a faulted (locked-out) section, no paralleling of feeders.

Contract:
- :class:`NetworkInterlocks` gives two :class:`scada.control.Interlock` rules
  (:attr:`NetworkInterlocks.rules`) that the composition root registers on
  the control service when the server has a network model, and starts with
  the live topology (:meth:`NetworkInterlocks.start`; before that, every
  close is refused). Both judge only a command that *closes* an open switch;
  every other command passes.
- The switch a command operates: the ``element: switch:<id>`` of the
  commanded point, else of its check-back point. A command closes it when
  its value is non-zero (the FEP's meaning for single and double controls).
- The two *ends* of the switch, each with the buses its terminal meets with
  the switch open (the bus itself, or the other ends of the branch it sits
  on), over :class:`adms.sections.SectionGraph` and the model's switch
  states, which the control centre's :class:`~server.topology.TopologyFeed`
  keeps live. An end is energised when the live topology energises one of
  those buses, and its feeders are their live feeders (a feeder head
  breaker's source end counts as its own feeder). What a close would
  energise is everything connected to a de-energised end.

Rule ``locked-out section``:
- A breaker or recloser is *tripped out* while its status point reports open
  and its protection-trip point (``switch:<id>:trip``) is set: protection
  opened it and it has not closed since (reclose dead time and lockout
  alike). Last known good values count; a point that lost quality keeps its
  last good value.
- When a device trips out, the switching state of that moment with the
  device closed is kept as the *pre-fault state*. Its *faulted section* is
  located as FLISR locates it (:func:`adms.flisr.locate_fault` with the kept
  pre-fault state and the FPIs' last good values): the buses and lines
  downstream of the deepest FPI that saw fault current, up to the next FPIs
  (downstream of the device itself when no FPI indicates). It is located
  anew when asked, so later FPI reports refine it while the operator's
  isolation switching does not move it.
- Its *evidence* is every FPI downstream of the device (pre-fault) that has
  indicated fault passage since the trip. The section stays locked out
  until every evidence FPI has reset (the fault was repaired; a device
  closed again meanwhile does not end it: the isolated section stays locked
  out while power is restored around it); without evidence, until the device
  is no longer tripped out (closed, or its trip indication reset in the
  field); or until an operator releases it (:meth:`NetworkInterlocks.release`,
  audited by the API). A released device needs a new trip to lock out again.
- Refused: closing a switch with one end energised when what it would
  energise holds a bus or line of a locked-out section. Closing between two
  de-energised parts energises nothing and is allowed.

Rule ``feeder paralleling``:
- Refused: closing a switch whose ends are both energised by different
  feeders (the close runs them in parallel, whether from one substation or
  from two), unless every feeder pair it joins is allowed: listed in
  ``allow_parallel`` (settings ``control.allow_parallel``, order-free), or of
  one substation when ``allow_same_substation`` (settings
  ``control.allow_parallel_same_substation``), or the close is the first half
  of a switch order's make-before-break transfer made under
  :meth:`NetworkInterlocks.momentary_parallel` (settings
  ``control.allow_parallel_in_orders``; the order opens the loop in its next
  step). Closing a loop within one feeder is allowed. Unknown feeder names
  raise :class:`scada.config.ConfigError` naming the settings key.

Everything runs on the point database's thread (the FEP's event loop), where
the control service checks commands too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from adms.errors import AdmsError
from adms.flisr import locate_fault
from adms.sections import PROTECTIVE, SectionGraph
from models.binding import BindingError, parse_element, switch_state
from protocols.base import PointKind
from scada.config import ConfigError, ConfigIssue
from scada.pointdb import BAD, ChangeBatch, PointDB, Subscription, UnknownPointError
from server.topology import TopologyFeed

__all__ = ["FaultedSection", "NetworkInterlocks"]

log = logging.getLogger(__name__)

_STATUS = (PointKind.SINGLE, PointKind.DOUBLE)
#: elements named in a refusal before "and N more"
_NAMED = 3


@dataclass
class _Trip:
    """One device's trip-out: the pre-fault state and the FPIs that have indicated since."""

    device: str
    since: float
    prefault: dict[str, bool]
    #: FPIs downstream of the device in the pre-fault state
    region_fpis: frozenset[str]
    evidence: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class FaultedSection:
    """A locked-out section as :meth:`NetworkInterlocks.faults` reports it."""

    device: str
    since: float
    tripped_out: bool
    evidence_fpis: tuple[str, ...]
    indicating_fpis: tuple[str, ...]
    upstream_fpi: str | None
    buses: tuple[str, ...]
    lines: tuple[str, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _Sides:
    """A close command's switch and what meets at it, bus end first, then element end.

    Per end: its node, whether it is energised, and its feeders.
    """

    switch: str
    #: the model's switch states with this switch open
    states: dict[str, bool]
    ends: tuple[int, int]
    energised: tuple[bool, bool]
    feeders: tuple[frozenset[str], frozenset[str]]


class _NotStarted(Exception):
    """A close was checked before :meth:`NetworkInterlocks.start`."""


class _Rule:
    def __init__(self, name: str, check: Callable[[str, float], str | None]) -> None:
        self.name = name
        self.check = check


class NetworkInterlocks:
    """The network's interlock rules and the locked-out sections they protect (module doc)."""

    def __init__(
        self,
        graph: SectionGraph,
        pointdb: PointDB,
        *,
        allow_parallel: Iterable[Sequence[str]] = (),
        allow_same_substation: bool = False,
        allow_in_orders: bool = False,
    ) -> None:
        """Check the rules' settings; :meth:`start` begins following the live topology."""
        self.graph = graph
        self.pointdb = pointdb
        self.topology: TopologyFeed | None = None
        model = graph.model
        known = ", ".join(sorted(model.feeders))
        issues = [
            ConfigIssue(
                "server settings",
                f"unknown feeder {name!r} (the network's feeders: {known})",
                key=f"control.allow_parallel.{i}",
            )
            for i, pair in enumerate(allow_parallel)
            for name in pair
            if name not in model.feeders
        ]
        if issues:
            raise ConfigError(issues)
        self._allowed = {frozenset(pair) for pair in allow_parallel}
        self._same_substation = allow_same_substation
        self._in_orders = allow_in_orders
        #: the switch a switch order is closing make-before-break right now
        self._momentary: str | None = None
        self._protective = frozenset(
            s for s, info in graph.switches.items() if info.switch_type in PROTECTIVE
        )
        #: last good values: protective switch closed, trip set, FPI indicating
        self._closed: dict[str, bool] = {}
        self._trip: dict[str, bool] = {}
        self._fpi: dict[str, bool] = {}
        self._tripped_out: set[str] = set()
        self._trips: dict[str, _Trip] = {}
        self._generation = -1
        self._watched = np.zeros(0, np.int64)
        #: handle -> (role: status / trip / fpi, GIS id, point kind)
        self._what: dict[int, tuple[str, str, PointKind]] = {}
        self.rules = [
            _Rule("locked-out section", self._check_lockout),
            _Rule("feeder paralleling", self._check_parallel),
        ]
        self._subscription: Subscription | None = None

    def start(self, topology: TopologyFeed) -> None:
        """Follow the point database and ``topology`` (over the graph's model); rules apply."""
        if topology.processor.model is not self.graph.model:
            raise ValueError("the interlocks' section graph and the topology share no model")
        self.topology = topology
        self._subscription = self.pointdb.subscribe(self._on_batch)
        self._update()

    @contextlib.contextmanager
    def momentary_parallel(self, switch: str) -> Iterator[None]:
        """Within this block closing ``switch`` may parallel feeders, if settings allow it.

        For the close step of a switch order whose next step opens the loop
        (make-before-break); the locked-out section rule still applies.
        """
        self._momentary = switch if self._in_orders else None
        try:
            yield
        finally:
            self._momentary = None

    def close(self) -> None:
        """Stop following the point database."""
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    # ------------------------------------------------------------ tracking
    def _index(self) -> None:
        """Which points report protective switches, their trips and the FPIs."""
        self._generation = self.pointdb.generation
        what: dict[int, tuple[str, str, PointKind]] = {}
        for name, h in self.pointdb.handles().items():
            t = self.pointdb.config(name).template
            if t.element is None or t.address < 0 or t.kind not in _STATUS:
                continue
            try:
                el = parse_element(t.element)
            except BindingError:
                continue
            if el.table == "fpi" and el.gis_id in self.graph.fpi_edge:
                what[h] = ("fpi", el.gis_id, t.kind)
            elif el.table == "switch" and el.gis_id in self._protective:
                if el.qualifier is None:
                    what[h] = ("status", el.gis_id, t.kind)
                elif el.qualifier == "trip":
                    what[h] = ("trip", el.gis_id, t.kind)
        self._what = what
        self._watched = np.fromiter(what, np.int64, len(what))

    def _on_batch(self, batch: ChangeBatch) -> None:
        if (
            self.pointdb.generation != self._generation
            or np.isin(batch.handles, self._watched).any()
        ):
            self._update()

    def _update(self) -> None:
        if self.pointdb.generation != self._generation:
            self._index()
        values, quality = self.pointdb.values(self._watched)
        for h, v, q in zip(self._watched.tolist(), values.tolist(), quality.tolist(), strict=True):
            if q & int(BAD):
                continue
            role, gid, kind = self._what[h]
            on = switch_state(kind, v)
            if on is None:
                continue
            if role == "status":
                self._closed[gid] = on
            elif role == "trip":
                self._trip[gid] = on
            else:
                self._fpi[gid] = on
        now_out = {
            s for s in self._protective if self._closed.get(s) is False and self._trip.get(s)
        }
        for device in sorted(now_out - self._tripped_out):
            if device not in self._trips:
                self._trips[device] = self._new_trip(device)
                log.info("interlocks: %s tripped out; its faulted section is locked out", device)
        self._tripped_out = now_out
        for trip in list(self._trips.values()):
            trip.evidence |= {f for f in trip.region_fpis if self._fpi.get(f)}
            if trip.evidence:
                ended = not any(self._fpi.get(f) for f in trip.evidence)
                why = "its fault passage indicators reset"
            else:
                ended = trip.device not in now_out
                why = "it is no longer tripped out"
            if ended:
                del self._trips[trip.device]
                log.info(
                    "interlocks: the section behind %s is no longer locked out: %s",
                    trip.device,
                    why,
                )

    def _new_trip(self, device: str) -> _Trip:
        g = self.graph
        prefault = g.states()
        prefault[device] = True
        tree = g.feed_tree(prefault)
        edge = g.switch(device).edge
        region = g.downstream(tree, g.edges[edge])
        fpis = frozenset(
            f for f, k in g.fpi_edge.items() if k == edge or tree.child_of(g.edges[k]) in region
        )
        return _Trip(device, time.time(), prefault, fpis)

    # ------------------------------------------------------ faulted sections
    def faults(self) -> list[FaultedSection]:
        """The locked-out sections, one per tripped-out device, located now."""
        out = []
        for trip in sorted(self._trips.values(), key=lambda t: t.since):
            known = dict(self._fpi)
            try:
                loc = locate_fault(
                    self.graph.model, [trip.device], known, graph=self.graph, states=trip.prefault
                )
                buses, lines = tuple(loc.buses), tuple(loc.lines)
                upstream, warnings = loc.upstream_fpi, tuple(loc.warnings)
            except AdmsError as exc:
                buses, lines, upstream, warnings = (), (), None, (f"not located: {exc}",)
            out.append(
                FaultedSection(
                    device=trip.device,
                    since=trip.since,
                    tripped_out=trip.device in self._tripped_out,
                    evidence_fpis=tuple(sorted(trip.evidence)),
                    indicating_fpis=tuple(sorted(f for f in trip.evidence if self._fpi.get(f))),
                    upstream_fpi=upstream,
                    buses=buses,
                    lines=lines,
                    warnings=warnings,
                )
            )
        return out

    def release(self, device: str) -> bool:
        """An operator declares the fault behind ``device`` repaired (False: none locked out)."""
        return self._trips.pop(device, None) is not None

    # --------------------------------------------------------------- rules
    def _sides(self, point: str, value: float) -> _Sides | None:
        """The ends of the open switch a command would close, or None if it closes none."""
        if not value:
            return None
        switch = self._switch_of(point)
        g = self.graph
        if switch is None or switch not in g.switches:
            return None
        if self.topology is None:
            raise _NotStarted
        if self.topology.processor.is_closed(switch):
            return None
        edge = g.switch(switch).edge
        e = g.edges[edge]
        states = g.states()
        states[switch] = False
        topo = self.topology.processor.state
        live = topo.energised_buses

        def end(node: int) -> tuple[bool, frozenset[str]]:
            # the buses the switch terminal meets: the node itself, or a branch's other ends
            if g.node_kind[node] == "bus":
                buses = [node]
            else:
                buses = [
                    g.edges[k].bus
                    for k in g.adjacent[node]
                    if k != edge and g.conducts(g.edges[k], states)
                ]
            on = [g.node_ids[b] for b in buses if g.node_ids[b] in live]
            return bool(on), frozenset(f for f in (topo[bus].feeder for bus in on) if f)

        (ea, fa), (eb, fb) = end(e.bus), end(e.element)
        heads = {head: feeder for feeder, head in self.topology.processor.feeder_heads.items()}
        if ea and switch in heads:
            fa = frozenset({heads[switch]})  # a head breaker's source side is its feeder's
        return _Sides(switch, states, (e.bus, e.element), (ea, eb), (fa, fb))

    def _switch_of(self, point: str) -> str | None:
        try:
            cfg = self.pointdb.config(point)
        except UnknownPointError:
            return None
        element = cfg.template.element
        if element is None and cfg.template.checkback:
            target = f"{cfg.device}.{cfg.template.checkback}"
            if target in self.pointdb:
                element = self.pointdb.config(target).template.element
        if element is None or not element.startswith("switch:"):
            return None
        try:
            el = parse_element(element)
        except BindingError:
            return None
        return el.gis_id if el.qualifier is None else None

    def _check_lockout(self, point: str, value: float) -> str | None:
        if not self._trips and self.topology is not None:
            return None
        try:
            sides = self._sides(point, value)
        except _NotStarted:
            return "the network topology is not known yet (interlocks not started)"
        if sides is None or sides.energised[0] == sides.energised[1]:
            return None
        g = self.graph
        dead = g.component(sides.ends[1] if sides.energised[0] else sides.ends[0], sides.states)
        for fault in self.faults():
            zone = {g.node(x) for x in (*fault.lines, *fault.buses)}
            if dead & zone:
                hit = [g.node_ids[n] for n in sorted(dead & zone)]
                named = ", ".join(hit[:_NAMED]) + (
                    f" and {len(hit) - _NAMED} more" if len(hit) > _NAMED else ""
                )
                located = (
                    f"FPI {fault.upstream_fpi}"
                    if fault.upstream_fpi
                    else f"the trip of {fault.device}"
                )
                return (
                    f"closing {sides.switch} would energise the faulted section behind "
                    f"{fault.device} ({named}; located by {located})"
                )
        return None

    def _check_parallel(self, point: str, value: float) -> str | None:
        try:
            sides = self._sides(point, value)
        except _NotStarted:
            return "the network topology is not known yet (interlocks not started)"
        if sides is None or not all(sides.energised) or sides.switch == self._momentary:
            return None
        a, b = sides.feeders
        pairs = sorted(tuple(sorted((fa, fb))) for fa in a for fb in b if fa != fb)
        refused = [p for p in dict.fromkeys(pairs) if not self._parallel_allowed(*p)]
        if not refused:
            return None
        joined = "; ".join(f"{x} and {y}" for x, y in refused)
        return (
            f"closing {sides.switch} would parallel feeders {joined} "
            "(not allowed by control.allow_parallel)"
        )

    def _parallel_allowed(self, a: str, b: str) -> bool:
        if frozenset((a, b)) in self._allowed:
            return True
        if not self._same_substation:
            return False
        feeders = self.graph.model.feeders
        sub_a = feeders[a].substation if a in feeders else None
        sub_b = feeders[b].substation if b in feeders else None
        return sub_a is not None and sub_a == sub_b
