"""FLISR: fault location, isolation and service restoration, as a study over a model.

Contract:
- :func:`locate_fault` reads protection and FPI indications: the tripped
  breakers/reclosers (those in ``locked_out``, all of them by default, mark a
  permanent fault) and the FPIs that reported (``True``: saw fault current).
  The faulted zone is what lies downstream of the last FPI on the faulted
  path that saw fault current (or of the tripped device) up to the first
  reporting FPIs beyond it. FPIs that did not report are ignored. With a
  measured ``fault_current_ka``, the zone's buses are also ranked by how well
  their calculated three-phase fault current matches it.
- :func:`plan_flisr` isolates the zone (opening the closed switches around
  the switch-bounded sections it touches; a switch in ``blocked``, a fuse, or
  a disconnector on a live boundary widens the zone past it), re-closes
  normally-closed devices that the protection opened (the healthy upstream
  part), then restores each dead healthy island through normally-open points.
  Alternatives are checked by AC power flow (:class:`adms.powerflow.Limits`):
  a single tie when one can carry the island, else two ties with one
  sectionalising switch opened between them, else the largest part one tie
  can carry (the rest is tried again with the other ties).
- :func:`replan_flisr` plans again from the model's present state when a step
  failed (the switch did not operate), never using that switch again.
- :func:`study_flisr` simulates the protection for a fault on a line (the
  nearest upstream breaker/recloser trips and locks out, FPIs on the path see
  fault current), then locates, plans and executes on a copy of the model;
  switches named in ``stuck`` fail when operated, which triggers a re-plan.
- The model passed to locate/plan is read, never changed. Every result is a
  dataclass with ``to_dict()`` (JSON-ready).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adms.errors import FaultLocationError, StudyInputError
from adms.powerflow import FlowResult, GridSolver, Limits
from adms.sections import LOAD_BREAKING, PROTECTIVE, Attachment, FeedTree, SectionGraph
from models.network import NetworkModel

__all__ = [
    "Alternative",
    "FaultLocation",
    "FlisrPlan",
    "FlisrResult",
    "SwitchAction",
    "locate_fault",
    "plan_flisr",
    "replan_flisr",
    "simulate_protection",
    "study_flisr",
]

#: IEC 60909 voltage factor for maximum fault currents
_C_MAX = 1.1
#: islands with more internal switches than this are split/cut only at the busiest ones
_MAX_CUT_CANDIDATES = 40


@dataclass(frozen=True)
class SwitchAction:
    """One step of a plan: operate ``switch_id`` (``action`` "open" or "close")."""

    switch_id: str
    action: str
    reason: str

    @property
    def close(self) -> bool:
        """True for a close."""
        return self.action == "close"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"switch_id": self.switch_id, "action": self.action, "reason": self.reason}


@dataclass
class FaultLocation:
    """Where the indications put a fault."""

    permanent: bool
    device: str | None
    tripped: list[str]
    upstream_fpi: str | None
    downstream_fpis: list[str]
    buses: list[str]
    lines: list[str]
    candidates: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    locate_ms: float = 0.0

    @property
    def elements(self) -> list[str]:
        """Buses and lines of the faulted zone."""
        return self.buses + self.lines

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "permanent": self.permanent,
            "device": self.device,
            "tripped": list(self.tripped),
            "upstream_fpi": self.upstream_fpi,
            "downstream_fpis": list(self.downstream_fpis),
            "buses": list(self.buses),
            "lines": list(self.lines),
            "candidates": list(self.candidates),
            "warnings": list(self.warnings),
            "locate_ms": round(self.locate_ms, 3),
        }


@dataclass
class Alternative:
    """A restoration option that was checked by power flow."""

    closes: list[str]
    opens: list[str]
    feasible: bool
    customers: int
    vm_min_pu: float
    max_loading_percent: float
    loss_kw: float
    violations: list[str]
    chosen: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "closes": list(self.closes),
            "opens": list(self.opens),
            "feasible": self.feasible,
            "customers": self.customers,
            "vm_min_pu": _round(self.vm_min_pu, 5),
            "max_loading_percent": _round(self.max_loading_percent, 2),
            "loss_kw": _round(self.loss_kw, 3),
            "violations": list(self.violations),
            "chosen": self.chosen,
        }


@dataclass
class FlisrPlan:
    """Isolation and restoration steps with what they achieve."""

    zone: list[str]
    isolation: list[str]
    steps: list[SwitchAction]
    blocked: list[str]
    customers_interrupted: int
    customers_in_fault_zone: int
    customers_restored_upstream: int
    customers_restored_downstream: int
    customers_unrestored: int
    unrestored_loads: list[str]
    alternatives: list[Alternative]
    final: dict[str, Any]
    plan_ms: float

    @property
    def customers_restored(self) -> int:
        """Customers the plan brings back."""
        return self.customers_restored_upstream + self.customers_restored_downstream

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "zone": list(self.zone),
            "isolation": list(self.isolation),
            "steps": [s.to_dict() for s in self.steps],
            "blocked": list(self.blocked),
            "customers_interrupted": self.customers_interrupted,
            "customers_in_fault_zone": self.customers_in_fault_zone,
            "customers_restored_upstream": self.customers_restored_upstream,
            "customers_restored_downstream": self.customers_restored_downstream,
            "customers_restored": self.customers_restored,
            "customers_unrestored": self.customers_unrestored,
            "unrestored_loads": list(self.unrestored_loads),
            "alternatives": [a.to_dict() for a in self.alternatives],
            "final": dict(self.final),
            "plan_ms": round(self.plan_ms, 3),
        }


@dataclass
class FlisrResult:
    """A whole FLISR study: protection, location, plan, execution and re-plans."""

    fault_line: str
    tripped: list[str]
    fpi: dict[str, bool]
    location: FaultLocation
    plan: FlisrPlan
    replans: list[FlisrPlan]
    executed: list[dict[str, Any]]
    customers_interrupted: int
    customers_restored: int
    customers_unrestored: int
    final: dict[str, Any]
    timings_ms: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "fault_line": self.fault_line,
            "tripped": list(self.tripped),
            "fpi": dict(self.fpi),
            "location": self.location.to_dict(),
            "plan": self.plan.to_dict(),
            "replans": [p.to_dict() for p in self.replans],
            "executed": list(self.executed),
            "customers_interrupted": self.customers_interrupted,
            "customers_restored": self.customers_restored,
            "customers_unrestored": self.customers_unrestored,
            "final": dict(self.final),
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


# ---------------------------------------------------------------- location


def locate_fault(
    model: NetworkModel,
    tripped: Sequence[str],
    fpi: Mapping[str, bool],
    *,
    locked_out: Iterable[str] | None = None,
    fault_current_ka: float | None = None,
    graph: SectionGraph | None = None,
    solver: GridSolver | None = None,
    states: Mapping[str, bool] | None = None,
) -> FaultLocation:
    """Locate a fault from trips, lockouts and FPI states (see the module doc).

    ``tripped`` are breakers/reclosers that opened (they are open in the
    model now); ``locked_out`` those that stayed open (default: all tripped).
    ``states`` are the switch states the fault happened in (default: the
    model's now); the tripped devices count as closed either way.
    """
    t0 = time.perf_counter()
    g = graph or SectionGraph(model)
    if not tripped:
        raise FaultLocationError("no tripped device", field="tripped")
    for dev in tripped:
        g.switch(dev)
    for fid in fpi:
        if fid not in g.fpi_edge:
            raise StudyInputError("no such fault passage indicator", element=fid, field="fpi")
    lockouts = set(tripped if locked_out is None else locked_out)
    permanent = [d for d in tripped if d in lockouts]
    if not permanent:
        return FaultLocation(
            permanent=False,
            device=None,
            tripped=list(tripped),
            upstream_fpi=None,
            downstream_fpis=[],
            buses=[],
            lines=[],
            warnings=["every tripped device reclosed: transient fault, nothing to isolate"],
            locate_ms=(time.perf_counter() - t0) * 1e3,
        )
    prefault = g.states() if states is None else dict(states)
    for dev in tripped:
        prefault[dev] = True
    tree = g.feed_tree(prefault)
    warnings: list[str] = []

    def child(edge_index: int) -> int | None:
        return tree.child_of(g.edges[edge_index])

    fed = [(d, child(g.switch(d).edge)) for d in permanent]
    fed_nodes = [(d, c) for d, c in fed if c is not None]
    if not fed_nodes:
        raise FaultLocationError(
            "no tripped device feeds anything in the pre-fault state", element=permanent[0]
        )
    device, device_child = max(fed_nodes, key=lambda dc: tree.depth[dc[1]])
    device_edge = g.switch(device).edge
    region = g.downstream(tree, g.edges[device_edge])

    seen = [
        (fid, g.fpi_edge[fid])
        for fid, on in fpi.items()
        if on and (child(g.fpi_edge[fid]) in region or g.fpi_edge[fid] == device_edge)
    ]
    for fid, on in fpi.items():
        if on and (fid, g.fpi_edge[fid]) not in seen:
            warnings.append(f"FPI {fid} saw fault current outside the tripped device's zone")
    start_edge, upstream_fpi = device_edge, None
    if seen:
        upstream_fpi, start_edge = max(seen, key=lambda fe: tree.depth.get(child(fe[1]) or 0, 0))
        path = set(g.path_edges(tree, child(start_edge) or device_child))
        for fid, edge in seen:
            if edge not in path:
                warnings.append(f"FPI {fid} saw fault current off the faulted path")
    reported = {g.fpi_edge[fid] for fid in fpi}
    start = child(start_edge)
    assert start is not None
    zone = {start}
    queue = [start]
    bounds: list[str] = []
    while queue:
        node = queue.pop()
        for k in g.adjacent[node]:
            e = g.edges[k]
            other = e.bus if e.element == node else e.element
            if tree.parent_edge.get(other) != k or other in zone:
                continue
            if k in reported:
                bounds += [f for f in e.fpis if f in fpi]
                continue
            zone.add(other)
            queue.append(other)
    candidates = (
        _rank_by_fault_current(model, g, solver, tree, zone, fault_current_ka)
        if fault_current_ka is not None
        else []
    )
    return FaultLocation(
        permanent=True,
        device=device,
        tripped=list(tripped),
        upstream_fpi=upstream_fpi,
        downstream_fpis=sorted(bounds),
        buses=g.names(zone, "bus"),
        lines=g.names(zone, "line"),
        candidates=candidates,
        warnings=warnings,
        locate_ms=(time.perf_counter() - t0) * 1e3,
    )


def _rank_by_fault_current(
    model: NetworkModel,
    g: SectionGraph,
    solver: GridSolver | None,
    tree: FeedTree,
    zone: set[int],
    measured_ka: float,
) -> list[dict[str, Any]]:
    """Zone buses ranked by |calculated - measured| three-phase fault current."""
    s = solver or GridSolver(model)
    net = model.net
    z_source = 0j
    eg = net.ext_grid[net.ext_grid.in_service.to_numpy(bool)]
    if "s_sc_max_mva" in eg.columns and len(eg) and np.isfinite(eg.s_sc_max_mva.iloc[0]):
        zs = s.base_mva / float(eg.s_sc_max_mva.iloc[0]) * _C_MAX
        rx = float(eg.rx_max.iloc[0]) if "rx_max" in eg.columns else 0.1
        rx = rx if np.isfinite(rx) else 0.1
        z_source = complex(zs * rx / math.hypot(1, rx), zs / math.hypot(1, rx))
    out = []
    for node in zone:
        if g.node_kind[node] != "bus":
            continue
        z = z_source
        for k in g.path_edges(tree, node):
            reached = tree.child_of(g.edges[k])
            pos = s.branch_pos.get(g.node_ids[reached]) if reached is not None else None
            if pos is not None:
                z += s.z_series[pos]
        bus_index = model.index_of("bus", g.node_ids[node])
        i_ka = _C_MAX / abs(z) * s.base_mva / (math.sqrt(3) * s.base_kv[s.node_of_bus[bus_index]])
        out.append(
            {
                "bus": g.node_ids[node],
                "i_ka": round(i_ka, 4),
                "error_ka": round(abs(i_ka - measured_ka), 4),
            }
        )
    out.sort(key=lambda c: c["error_ka"])
    return out[:10]


# ----------------------------------------------------------------- planning


@dataclass
class _Ctx:
    """Shared state of one planning run."""

    g: SectionGraph
    solver: GridSolver
    limits: Limits
    blocked: set[str]
    zone: set[int]
    base_penalty: float
    alternatives: list[Alternative]


def plan_flisr(
    model: NetworkModel,
    fault: FaultLocation | str | Iterable[str],
    *,
    limits: Limits | None = None,
    blocked: Iterable[str] = (),
    graph: SectionGraph | None = None,
    solver: GridSolver | None = None,
) -> FlisrPlan:
    """Isolation and restoration plan from the model's present switch states.

    ``fault`` is a :class:`FaultLocation`, a faulted line id, or GIS ids of
    buses/branches known to be in the faulted zone. ``blocked`` switches are
    never operated (e.g. one that failed before).
    """
    t0 = time.perf_counter()
    g = graph or SectionGraph(model)
    solver = solver or GridSolver(model)
    lim = limits or Limits()
    zone_ids = _zone_ids(fault)
    if not zone_ids:
        raise StudyInputError("empty fault zone (transient fault?)", field="fault")
    seed = {g.node(gid) for gid in zone_ids}
    blocked_set = set(blocked)
    for sid in blocked_set:
        g.switch(sid)
    blocked_set |= {sid for sid, info in g.switches.items() if not info.operable}

    states = g.states()
    # depths as before the protection tripped: normally-closed open devices closed
    reference = {s: v or not g.switches[s].normal_open for s, v in states.items()}
    zone, isolation = _isolate(
        g, states, g.feed_tree(states), g.feed_tree(reference), g.section_closure(seed), blocked_set
    )
    steps = [SwitchAction(s, "open", "isolate the faulted zone") for s in isolation]
    after_iso = dict(states)
    for s in isolation:
        after_iso[s] = False
    iso_tree = g.feed_tree(after_iso)
    dead = set(range(len(g.node_ids))) - iso_tree.energised
    interrupted = g.customers(dead)
    base = solver.solve(solver.closed_mask(after_iso), limits=lim)
    ctx = _Ctx(g, solver, lim, blocked_set, zone, base.penalty(lim), [])

    state = dict(after_iso)
    state, up_steps = _reclose_upstream(ctx, state)
    steps += up_steps
    restored_up = g.customers(dead & g.feed_tree(state).energised)
    state, down_steps = _restore_islands(ctx, state)
    steps += down_steps
    final_tree = g.feed_tree(state)
    restored_all = g.customers(dead & final_tree.energised)
    result = solver.solve(solver.closed_mask(state), limits=lim)
    unrestored_loads = [
        g.load_ids[i]
        for i, node in enumerate(g.load_node)
        if node not in final_tree.energised and g.load_customers[i] + g.load_p_mw[i] > 0
    ]
    return FlisrPlan(
        zone=g.names(zone, "bus") + g.names(zone, "line"),
        isolation=list(isolation),
        steps=steps,
        blocked=sorted(set(blocked)),
        customers_interrupted=interrupted,
        customers_in_fault_zone=g.customers(zone),
        customers_restored_upstream=restored_up,
        customers_restored_downstream=restored_all - restored_up,
        customers_unrestored=interrupted - restored_all,
        unrestored_loads=unrestored_loads,
        alternatives=ctx.alternatives,
        final=_summary(result, lim),
        plan_ms=(time.perf_counter() - t0) * 1e3,
    )


def replan_flisr(
    model: NetworkModel,
    plan: FlisrPlan,
    failed_switch: str,
    *,
    limits: Limits | None = None,
    graph: SectionGraph | None = None,
    solver: GridSolver | None = None,
) -> FlisrPlan:
    """A new plan from the model's present state that never operates ``failed_switch``.

    Call it with the steps executed so far applied to ``model`` and the
    failed switch in the position it stayed in.
    """
    return plan_flisr(
        model,
        plan.zone,
        limits=limits,
        blocked=set(plan.blocked) | {failed_switch},
        graph=graph,
        solver=solver,
    )


def _zone_ids(fault: FaultLocation | str | Iterable[str]) -> list[str]:
    if isinstance(fault, FaultLocation):
        return fault.elements
    if isinstance(fault, str):
        return [fault]
    return list(fault)


def _isolate(
    g: SectionGraph,
    states: Mapping[str, bool],
    tree: FeedTree,
    reference: FeedTree,
    zone: set[int],
    blocked: set[str],
) -> tuple[set[int], list[str]]:
    """Widen ``zone`` past switches that cannot open; the switches to open, upstream first."""
    live_zone = bool(zone & tree.energised)
    while True:
        widened = False
        for k in g.boundary_edges(zone):
            e = g.edges[k]
            if not g.conducts(e, states):
                continue
            if not _opener(e, g, blocked, live_zone):
                zone = zone | g.section_closure([e.element, e.bus])
                widened = True
                break
        if not widened:
            break
    opens = []
    for k in g.boundary_edges(zone):
        e = g.edges[k]
        if g.conducts(e, states):
            switch = _opener(e, g, blocked, live_zone)
            assert switch is not None
            depth = min(reference.depth.get(e.element, 10**9), reference.depth.get(e.bus, 10**9))
            opens.append((depth, switch))
    opens.sort()
    return zone, [s for _, s in opens]


def _opener(e: Attachment, g: SectionGraph, blocked: set[str], live: bool) -> str | None:
    """A switch on ``e`` that may open it (load-breaking when the zone is live)."""
    for s in e.switches:
        info = g.switches[s]
        if s in blocked:
            continue
        if info.load_breaking or (not live and info.operable):
            return s
    return None


def _closers(
    e: Attachment, g: SectionGraph, state: Mapping[str, bool], blocked: set[str]
) -> list[str] | None:
    """The open switches that must close to make ``e`` conduct (None if one cannot)."""
    open_ones = [s for s in e.switches if not state[s]]
    if not open_ones or not g.node_in_service[e.element]:
        return None
    if any(s in blocked or g.switches[s].switch_type not in LOAD_BREAKING for s in open_ones):
        return None
    return open_ones


def _evaluate(ctx: _Ctx, state: Mapping[str, bool]) -> FlowResult:
    return ctx.solver.solve(ctx.solver.closed_mask(state), limits=ctx.limits)


def _feasible(ctx: _Ctx, result: FlowResult) -> tuple[bool, list[str]]:
    """Feasible when the option adds no limit violation to those present before."""
    if not result.converged:
        return False, ["power flow did not converge"]
    extra = result.penalty(ctx.limits) - ctx.base_penalty
    if extra > 1e-9:
        return False, result.violations(ctx.limits)
    return True, []


def _reclose_upstream(
    ctx: _Ctx, state: dict[str, bool]
) -> tuple[dict[str, bool], list[SwitchAction]]:
    """Re-close normally-closed open devices that feed a dead healthy island."""
    g = ctx.g
    steps: list[SwitchAction] = []
    changed = True
    while changed:
        changed = False
        tree = g.feed_tree(state)
        for sid, info in g.switches.items():
            if state[sid] or info.normal_open or sid in ctx.blocked:
                continue
            if info.switch_type not in LOAD_BREAKING:
                continue
            e = g.edges[info.edge]
            ends = (e.element, e.bus)
            if any(n in ctx.zone for n in ends):
                continue
            if sum(n in tree.energised for n in ends) != 1:
                continue
            closers = _closers(e, g, state, ctx.blocked)
            if closers is None:
                continue
            trial = dict(state)
            for s in closers:
                trial[s] = True
            result = _evaluate(ctx, trial)
            ok, why = _feasible(ctx, result)
            dead_side = next(n for n in ends if n not in tree.energised)
            customers = g.customers(g.component(dead_side, state))
            ctx.alternatives.append(_alternative(closers, [], ok, customers, result, why, ok))
            if ok:
                state = trial
                ctx.base_penalty = result.penalty(ctx.limits)
                steps += [
                    SwitchAction(s, "close", "restore the healthy upstream part") for s in closers
                ]
                changed = True
                break
    return state, steps


def _dead_islands(ctx: _Ctx, state: Mapping[str, bool]) -> list[set[int]]:
    g = ctx.g
    tree = g.feed_tree(state)
    seen: set[int] = set(tree.energised) | ctx.zone
    islands = []
    for node in range(len(g.node_ids)):
        if node in seen:
            continue
        comp = g.component(node, state)
        seen |= comp
        if g.customers(comp) > 0 or g.load_mw(comp) > 0:
            islands.append(comp)
    islands.sort(key=lambda c: -g.customers(c))
    return islands


def _ties(ctx: _Ctx, island: set[int], state: Mapping[str, bool]) -> list[tuple[int, list[str]]]:
    """Open attachments from ``island`` to an energised node outside the zone."""
    g = ctx.g
    tree = g.feed_tree(state)
    out = []
    for k in g.boundary_edges(island):
        e = g.edges[k]
        outside = e.bus if e.element in island else e.element
        if outside in ctx.zone or outside not in tree.energised:
            continue
        closers = _closers(e, g, state, ctx.blocked)
        if closers is not None:
            out.append((k, closers))
    return out


def _internal_openers(
    ctx: _Ctx, island: set[int], state: Mapping[str, bool]
) -> list[tuple[int, str]]:
    """Closed attachments inside ``island`` with a load-breaking switch to open."""
    g = ctx.g
    out = []
    for node in island:
        for k in g.adjacent[node]:
            e = g.edges[k]
            if e.element in island and e.bus in island and g.conducts(e, state):
                switch = _opener(e, g, ctx.blocked, live=True)
                if switch is not None:
                    out.append((k, switch))
    return sorted(set(out))


def _restore_islands(
    ctx: _Ctx, state: dict[str, bool]
) -> tuple[dict[str, bool], list[SwitchAction]]:
    """Restore dead healthy islands through ties (whole, split between two ties, or partly)."""
    steps: list[SwitchAction] = []
    hopeless: set[frozenset[int]] = set()
    while True:
        islands = [i for i in _dead_islands(ctx, state) if frozenset(i) not in hopeless]
        if not islands:
            break
        island = islands[0]
        option = _best_option(ctx, island, state)
        if option is None:
            hopeless.add(frozenset(island))
            continue
        opens, closes, customers = option
        for s in opens:
            state[s] = False
            steps.append(SwitchAction(s, "open", "split the dead section before re-energising it"))
        for s in closes:
            state[s] = True
            steps.append(SwitchAction(s, "close", f"restore {customers} customers through the tie"))
        ctx.base_penalty = _evaluate(ctx, state).penalty(ctx.limits)
    return state, steps


def _best_option(
    ctx: _Ctx, island: set[int], state: Mapping[str, bool]
) -> tuple[list[str], list[str], int] | None:
    g = ctx.g
    ties = _ties(ctx, island, state)
    if not ties:
        return None
    total = g.customers(island)

    def trial(opens: list[str], closes: list[str]) -> Alternative:
        t = dict(state)
        for s in opens:
            t[s] = False
        for s in closes:
            t[s] = True
        result = _evaluate(ctx, t)
        ok, why = _feasible(ctx, result)
        served = g.customers(island & g.feed_tree(t).energised)
        alt = _alternative(closes, opens, ok, served, result, why, False)
        ctx.alternatives.append(alt)
        return alt

    def pick(options: list[Alternative]) -> Alternative | None:
        good = [a for a in options if a.feasible and a.customers > 0]
        if not good:
            return None
        best = min(good, key=lambda a: (-a.customers, a.max_loading_percent, -a.vm_min_pu))
        best.chosen = True
        return best

    singles = [trial([], closers) for _, closers in ties]
    best = pick([a for a in singles if a.customers == total])
    if best:
        return best.opens, best.closes, best.customers

    cuts = _internal_openers(ctx, island, state)[:_MAX_CUT_CANDIDATES]
    if len(ties) >= 2:
        pairs = []
        for (ka, ca), (kb, cb) in itertools.combinations(ties, 2):
            path = _island_path(g, island, state, g.edges[ka], g.edges[kb])
            for k, switch in cuts:
                if k in path:
                    pairs.append(trial([switch], ca + cb))
        best = pick([a for a in pairs if a.customers == total])
        if best:
            return best.opens, best.closes, best.customers

    partial = [trial([switch], closers) for _, closers in ties for _, switch in cuts]
    best = pick(partial + singles)
    if best:
        return best.opens, best.closes, best.customers
    return None


def _island_path(
    g: SectionGraph, island: set[int], state: Mapping[str, bool], a: Attachment, b: Attachment
) -> set[int]:
    """Attachments on the conducting path inside ``island`` between two tie ends."""
    start = a.element if a.element in island else a.bus
    goal = b.element if b.element in island else b.bus
    parent: dict[int, int] = {start: -1}
    queue = [start]
    while queue:
        node = queue.pop(0)
        if node == goal:
            break
        for k in g.adjacent[node]:
            e = g.edges[k]
            other = e.bus if e.element == node else e.element
            if other in island and other not in parent and g.conducts(e, state):
                parent[other] = k
                queue.append(other)
    path: set[int] = set()
    node = goal
    while parent.get(node, -1) != -1:
        k = parent[node]
        path.add(k)
        e = g.edges[k]
        node = e.bus if e.element == node else e.element
    return path


def _alternative(
    closes: list[str],
    opens: list[str],
    ok: bool,
    customers: int,
    result: FlowResult,
    why: list[str],
    chosen: bool,
) -> Alternative:
    return Alternative(
        closes=list(closes),
        opens=list(opens),
        feasible=ok,
        customers=customers,
        vm_min_pu=result.vm_min_pu,
        max_loading_percent=result.max_loading_percent,
        loss_kw=result.loss_mw * 1e3,
        violations=why,
        chosen=chosen,
    )


def _summary(result: FlowResult, lim: Limits) -> dict[str, Any]:
    return {
        "converged": result.converged,
        "vm_min_pu": _round(result.vm_min_pu, 5),
        "vm_max_pu": _round(result.vm_max_pu, 5),
        "max_loading_percent": _round(result.max_loading_percent, 2),
        "loss_kw": _round(result.loss_mw * 1e3, 3),
        "violations": result.violations(lim),
    }


def _round(value: float, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


# -------------------------------------------------------------------- study


def simulate_protection(
    model: NetworkModel, fault_line_id: str, *, graph: SectionGraph | None = None
) -> tuple[str, dict[str, bool]]:
    """The device that trips for a fault on a line, and every FPI's indication.

    The nearest breaker/recloser upstream of the line trips; FPIs on the path
    from the source to the fault see fault current, all others do not.
    """
    g = graph or SectionGraph(model)
    ref = model.locate(fault_line_id)
    if ref.table != "line":
        raise StudyInputError(f"is a {ref.table}, not a line", element=fault_line_id)
    node = g.node(fault_line_id)
    tree = g.feed_tree(g.states())
    if node not in tree.energised:
        raise StudyInputError("the line is not energised", element=fault_line_id)
    path = g.path_edges(tree, node)
    device = None
    for k in path:
        for s in g.edges[k].switches:
            if g.switches[s].switch_type in PROTECTIVE:
                device = s
    if device is None:
        raise StudyInputError("no breaker or recloser upstream", element=fault_line_id)
    on_path = set(path)
    fpis = {fid: edge in on_path for fid, edge in sorted(g.fpi_edge.items())}
    return device, fpis


def study_flisr(
    model: NetworkModel,
    fault_line_id: str,
    *,
    limits: Limits | None = None,
    stuck: Iterable[str] = (),
    fault_current_ka: float | None = None,
) -> FlisrResult:
    """Simulate a permanent fault on a line and run FLISR on a copy of the model.

    Steps whose switch is in ``stuck`` fail when executed; FLISR then plans
    again from that state without the switch (see :func:`replan_flisr`).
    """
    t0 = time.perf_counter()
    work = model.copy()
    g = SectionGraph(work)
    solver = GridSolver(work)
    prefault_live = g.feed_tree(g.states()).energised
    device, fpis = simulate_protection(work, fault_line_id, graph=g)
    _operate(work, device, False)
    interrupted_nodes = prefault_live - g.feed_tree(g.states()).energised
    t1 = time.perf_counter()
    location = locate_fault(
        work, [device], fpis, fault_current_ka=fault_current_ka, graph=g, solver=solver
    )
    t2 = time.perf_counter()
    plan = plan_flisr(work, location, limits=limits, graph=g, solver=solver)
    t3 = time.perf_counter()
    stuck_set = set(stuck)
    replans: list[FlisrPlan] = []
    executed: list[dict[str, Any]] = []
    current = plan
    index = 0
    while index < len(current.steps):
        step = current.steps[index]
        if step.switch_id in stuck_set:
            executed.append({**step.to_dict(), "ok": False})
            current = replan_flisr(
                work, current, step.switch_id, limits=limits, graph=g, solver=solver
            )
            replans.append(current)
            index = 0
            continue
        _operate(work, step.switch_id, step.close)
        executed.append({**step.to_dict(), "ok": True})
        index += 1
    live = g.feed_tree(g.states()).energised
    interrupted = g.customers(interrupted_nodes)
    restored = g.customers(interrupted_nodes & live)
    final = solver.solve(solver.closed_mask(g.states()), limits=limits)
    return FlisrResult(
        fault_line=fault_line_id,
        tripped=[device],
        fpi=fpis,
        location=location,
        plan=plan,
        replans=replans,
        executed=executed,
        customers_interrupted=interrupted,
        customers_restored=restored,
        customers_unrestored=interrupted - restored,
        final=_summary(final, limits or Limits()),
        timings_ms={
            "protection_ms": (t1 - t0) * 1e3,
            "locate_ms": (t2 - t1) * 1e3,
            "plan_ms": (t3 - t2) * 1e3,
            "total_ms": (time.perf_counter() - t0) * 1e3,
        },
    )


def _operate(model: NetworkModel, switch_id: str, close: bool) -> None:
    model.net.switch.at[model.index_of("switch", switch_id), "closed"] = close
