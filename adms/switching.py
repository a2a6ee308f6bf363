"""Switch orders: create, validate against topology and interlocks, store, execute.

Contract:
- A :class:`SwitchOrder` is plain data (``to_dict``/``from_dict``, JSON):
  ordered :class:`OrderStep` s, a status and an execution log. A step
  operates a switch or an earthing switch (``action`` "open"/"close"), or
  asks the operator to confirm a manual action (``action`` "confirm",
  e.g. portable earths, work finished).
- :func:`validate_order` simulates every step on a copy of the model with
  :class:`models.topology.TopologyProcessor` and reports :class:`Issue` s:
  errors for a step that de-energises customers (unless the step says
  ``expect_interruption``), closes a loop or parallels feeders (unless
  ``expect_parallel``), energises an earthed bus or earths a live one,
  operates a fuse, or makes/breaks load with a disconnector; errors from the
  interlock callbacks passed in (``(step, state) -> reason or None``);
  warnings for a switch already in the target state.
- :class:`OrderExecutor` runs an order step by step through an injected
  async ``operate(switch_id, close) -> bool`` (the control layer) and an
  optional async ``confirm(step) -> bool`` for manual steps (without it the
  executor pauses at a manual step until :meth:`OrderExecutor.resume`).
  ``pause``/``resume``/``abort`` act between steps; a step that fails stops
  the order (status ``failed``, ``position`` at that step).
- Builders: :func:`order_from_flisr`, :func:`order_from_reconfiguration`,
  :func:`planned_outage` (transfer load through ties, isolate, earth, work,
  unearth, restore to normal).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from adms.errors import StudyInputError, SwitchOrderError
from adms.flisr import FlisrPlan
from adms.powerflow import GridSolver, Limits, ids_of
from adms.reconfiguration import ReconfigurationResult
from adms.sections import LOAD_BREAKING, SectionGraph
from models.errors import UnknownElementError
from models.network import NetworkModel
from models.topology import TopologyProcessor, TopologyState

__all__ = [
    "ACTIONS",
    "Interlock",
    "Issue",
    "OrderExecutor",
    "OrderStatus",
    "OrderStep",
    "SwitchOrder",
    "order_from_flisr",
    "order_from_reconfiguration",
    "planned_outage",
    "validate_order",
]

ACTIONS = ("open", "close", "confirm")


class OrderStatus(StrEnum):
    """Where an order is in its life."""

    DRAFT = "draft"
    VALIDATED = "validated"
    EXECUTING = "executing"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"


@dataclass(frozen=True)
class OrderStep:
    """One step: operate ``switch_id`` (open/close) or confirm a manual action."""

    action: str
    switch_id: str | None = None
    reason: str = ""
    expect_interruption: bool = False
    expect_parallel: bool = False

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise SwitchOrderError(
                f"unknown action (one of {', '.join(ACTIONS)})",
                element=self.switch_id,
                field="action",
            )
        if (self.action == "confirm") != (self.switch_id is None):
            raise SwitchOrderError(
                "open/close need a switch_id, confirm takes none",
                element=self.switch_id,
                field="switch_id",
            )

    @property
    def close(self) -> bool:
        """True for a close."""
        return self.action == "close"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "action": self.action,
            "switch_id": self.switch_id,
            "reason": self.reason,
            "expect_interruption": self.expect_interruption,
            "expect_parallel": self.expect_parallel,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrderStep:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                action=str(data["action"]),
                switch_id=data.get("switch_id"),
                reason=str(data.get("reason", "")),
                expect_interruption=bool(data.get("expect_interruption", False)),
                expect_parallel=bool(data.get("expect_parallel", False)),
            )
        except KeyError as err:
            raise SwitchOrderError("step without an action", field=str(err)) from None


@dataclass(frozen=True)
class Issue:
    """A validation finding for step ``step`` (0-based)."""

    step: int
    severity: str
    message: str
    switch_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "step": self.step,
            "severity": self.severity,
            "message": self.message,
            "switch_id": self.switch_id,
        }


@dataclass
class SwitchOrder:
    """A switching order as data; ``position`` is the next step to execute."""

    id: str
    title: str
    steps: list[OrderStep]
    status: OrderStatus = OrderStatus.DRAFT
    position: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "position": self.position,
            "steps": [s.to_dict() for s in self.steps],
            "log": list(self.log),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SwitchOrder:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                id=str(data["id"]),
                title=str(data.get("title", "")),
                steps=[OrderStep.from_dict(s) for s in data["steps"]],
                status=OrderStatus(data.get("status", "draft")),
                position=int(data.get("position", 0)),
                log=list(data.get("log", [])),
            )
        except KeyError as err:
            raise SwitchOrderError("order without a required key", field=str(err)) from None
        except ValueError as err:
            raise SwitchOrderError(str(err), element=str(data.get("id")), field="status") from None

    def to_json(self) -> str:
        """Serialised form for storage."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> SwitchOrder:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


#: an interlock check: a reason to refuse the step in the topology state before it, or None
Interlock = Callable[[OrderStep, TopologyState], str | None]


def validate_order(
    model: NetworkModel,
    order: SwitchOrder,
    *,
    interlocks: Iterable[Interlock] = (),
    start: int = 0,
) -> list[Issue]:
    """Simulate ``order`` from step ``start`` on a copy of the model (see the module doc).

    An order without errors becomes ``validated`` (when still a draft).
    """
    work = model.copy()
    proc = TopologyProcessor(work)
    checks = list(interlocks)
    types = _switch_types(work)
    issues: list[Issue] = []
    for i, step in enumerate(order.steps[start:], start=start):
        if step.switch_id is None:
            continue
        sid = step.switch_id
        try:
            closed_now = proc.is_closed(sid)
        except UnknownElementError:
            issues.append(Issue(i, "error", "no such switch", sid))
            continue
        for check in checks:
            reason = check(step, proc.state)
            if reason:
                issues.append(Issue(i, "error", f"interlock: {reason}", sid))
        if closed_now == step.close:
            issues.append(Issue(i, "warning", f"already {'closed' if closed_now else 'open'}", sid))
            continue
        kind = types.get(sid)
        if kind == "fuse":
            issues.append(Issue(i, "error", "a fuse cannot be operated", sid))
        paralleled_before = set(proc.state.paralleled_feeders)
        change = proc.set_switch(sid, step.close)
        if change.customers_interrupted and not step.expect_interruption:
            issues.append(
                Issue(
                    i,
                    "error",
                    f"de-energises {change.customers_interrupted} customers "
                    f"({len(change.deenergised_loads)} loads) unexpectedly",
                    sid,
                )
            )
        elif change.deenergised_loads and not step.expect_interruption:
            issues.append(
                Issue(
                    i,
                    "error",
                    f"de-energises {len(change.deenergised_loads)} loads unexpectedly",
                    sid,
                )
            )
        new_parallel = set(proc.state.paralleled_feeders) - paralleled_before
        if (change.loop_formed or new_parallel) and not step.expect_parallel:
            what = f"parallels feeders {sorted(new_parallel)}" if new_parallel else "closes a loop"
            issues.append(Issue(i, "error", what, sid))
        if change.energised_and_earthed:
            issues.append(
                Issue(
                    i,
                    "error",
                    f"energised and earthed at {list(change.energised_and_earthed)[:5]}",
                    sid,
                )
            )
        if kind == "disconnector" and (
            change.energised_buses
            or change.deenergised_buses
            or change.loops_after != change.loops_before
        ):
            issues.append(Issue(i, "error", "a disconnector cannot make or break load", sid))
    if order.status == OrderStatus.DRAFT and not any(x.severity == "error" for x in issues):
        order.status = OrderStatus.VALIDATED
    return issues


def _switch_types(model: NetworkModel) -> dict[str, str]:
    net = model.net
    out: dict[str, str] = {}
    if "switch_type" in net.switch.columns:
        out.update(
            {
                gid: str(t)
                for gid, t in zip(ids_of(net, "switch"), net.switch.switch_type, strict=True)
                if isinstance(t, str)
            }
        )
    if "earthing_switch" in net and len(net.earthing_switch):
        out.update({gid: "earthing_switch" for gid in ids_of(net, "earthing_switch")})
    return out


Operate = Callable[[str, bool], Awaitable[bool]]
Confirm = Callable[[OrderStep], Awaitable[bool]]


class OrderExecutor:
    """Runs a switch order through injected callbacks (see the module doc)."""

    def __init__(
        self,
        order: SwitchOrder,
        operate: Operate,
        *,
        confirm: Confirm | None = None,
        on_step: Callable[[int, OrderStep, bool], None] | None = None,
    ) -> None:
        """Bind an order to the control layer's ``operate`` (and ``confirm``) callbacks."""
        self.order = order
        self._operate = operate
        self._confirm = confirm
        self._on_step = on_step
        self._running = asyncio.Event()
        self._running.set()
        self._abort = False

    def pause(self) -> None:
        """Stop before the next step until :meth:`resume`."""
        self._running.clear()

    def resume(self) -> None:
        """Carry on (also: the operator confirms a manual step when no ``confirm`` was given)."""
        self._running.set()

    def abort(self) -> None:
        """Stop before the next step for good."""
        self._abort = True
        self._running.set()

    async def run(self) -> SwitchOrder:
        """Execute from ``order.position`` to the end, a failure, or an abort."""
        order = self.order
        if order.status in (OrderStatus.COMPLETED, OrderStatus.ABORTED):
            raise SwitchOrderError(
                f"order is {order.status.value}", element=order.id, field="status"
            )
        while order.position < len(order.steps):
            if not self._running.is_set():
                order.status = OrderStatus.PAUSED
                await self._running.wait()
            if self._abort:
                order.status = OrderStatus.ABORTED
                self._log("abort", None, True)
                return order
            order.status = OrderStatus.EXECUTING
            step = order.steps[order.position]
            if step.switch_id is None:
                if self._confirm is not None:
                    ok = await self._confirm(step)
                else:
                    # the operator confirms by resuming
                    self.pause()
                    order.status = OrderStatus.PAUSED
                    await self._running.wait()
                    ok = not self._abort
                    if self._abort:
                        continue
            else:
                ok = await self._operate(step.switch_id, step.close)
            self._log(step.action, step.switch_id, ok)
            if self._on_step is not None:
                self._on_step(order.position, step, ok)
            if not ok:
                order.status = OrderStatus.FAILED
                return order
            order.position += 1
        order.status = OrderStatus.COMPLETED
        return order

    def _log(self, action: str, switch_id: str | None, ok: bool) -> None:
        self.order.log.append(
            {
                "time": time.time(),
                "position": self.order.position,
                "action": action,
                "switch_id": switch_id,
                "ok": ok,
            }
        )


# ----------------------------------------------------------------- builders


def order_from_flisr(plan: FlisrPlan, *, order_id: str, title: str = "FLISR") -> SwitchOrder:
    """A switch order from a FLISR plan (isolation opens interrupt the zone by design)."""
    steps = [
        OrderStep(
            action=s.action,
            switch_id=s.switch_id,
            reason=s.reason,
            expect_interruption=s.action == "open",
        )
        for s in plan.steps
    ]
    return SwitchOrder(order_id, title, steps)


def order_from_reconfiguration(
    result: ReconfigurationResult, *, order_id: str, title: str = "Reconfiguration"
) -> SwitchOrder:
    """A switch order from a reconfiguration: each tie closes (in parallel) before the open."""
    steps = [
        OrderStep(
            action=s.action,
            switch_id=s.switch_id,
            reason=s.reason,
            expect_parallel=s.action == "close",
        )
        for s in result.steps
    ]
    return SwitchOrder(order_id, title, steps)


def planned_outage(
    model: NetworkModel,
    elements: Sequence[str],
    *,
    order_id: str,
    title: str | None = None,
    limits: Limits | None = None,
) -> SwitchOrder:
    """Isolate and earth the sections holding ``elements`` for work, then restore to normal.

    Healthy parts that isolation would cut off are first transferred through
    a normally-open tie (closed in parallel before the isolation opens) when
    a power flow shows the tie can carry them. Earthing uses the earthing
    switches at the isolated buses, or manual confirm steps for portable
    earths where there are none.
    """
    if not elements:
        raise StudyInputError("nothing to isolate", field="elements")
    g = SectionGraph(model)
    solver = GridSolver(model)
    lim = limits or Limits()
    zone = g.section_closure(g.node(e) for e in elements)
    states = g.states()
    tree = g.feed_tree(states)
    openers: list[tuple[int, str]] = []
    for k in g.boundary_edges(zone):
        e = g.edges[k]
        if not g.conducts(e, states):
            continue
        switch = next((s for s in e.switches if g.switches[s].switch_type in LOAD_BREAKING), None)
        if switch is None:
            raise StudyInputError(
                "no load-breaking switch on the boundary",
                element=g.node_ids[e.element],
                field="switch",
            )
        depth = min(tree.depth.get(e.element, 10**9), tree.depth.get(e.bus, 10**9))
        openers.append((depth, switch))
    openers.sort()
    isolated = dict(states)
    for _, s in openers:
        isolated[s] = False
    live_after = g.feed_tree(isolated).energised
    transfers: list[str] = []
    trial = dict(isolated)
    base_penalty = solver.solve(solver.closed_mask(isolated), limits=lim).penalty(lim)
    for node in sorted(tree.energised - live_after - zone):
        if node in g.feed_tree(trial).energised:
            continue
        island = g.component(node, trial)
        for k in g.boundary_edges(island):
            e = g.edges[k]
            other = e.bus if e.element in island else e.element
            open_ones = [s for s in e.switches if not trial[s]]
            if other in zone or not open_ones or other not in g.feed_tree(trial).energised:
                continue
            if any(g.switches[s].switch_type not in LOAD_BREAKING for s in open_ones):
                continue
            attempt = dict(trial)
            for s in open_ones:
                attempt[s] = True
            result = solver.solve(solver.closed_mask(attempt), limits=lim)
            if result.converged and result.penalty(lim) <= base_penalty + 1e-9:
                trial, base_penalty = attempt, result.penalty(lim)
                transfers += open_ones
                break
    steps = [
        OrderStep(
            "close", s, "transfer load through the tie before isolating", expect_parallel=True
        )
        for s in transfers
    ]
    # with ties closed, open the far boundary first (breaks the loops), the feeding side last
    for _, s in sorted(openers, reverse=True):
        steps.append(OrderStep("open", s, "isolate for work", expect_interruption=True))
    buses = [g.node_ids[n] for n in sorted(zone) if g.node_kind[n] == "bus"]
    earths = _earthing_switches(model, buses)
    if earths:
        steps += [OrderStep("close", s, "earth the isolated section") for s in earths]
    else:
        steps.append(
            OrderStep(
                "confirm", None, f"apply portable earths at {', '.join(buses) or 'the work site'}"
            )
        )
    steps.append(OrderStep("confirm", None, "work finished, staff clear, permit returned"))
    if earths:
        steps += [OrderStep("open", s, "remove earths") for s in earths]
    else:
        steps.append(OrderStep("confirm", None, "portable earths removed"))
    for _, s in openers:
        steps.append(OrderStep("close", s, "restore the normal state", expect_parallel=True))
    steps += [OrderStep("open", s, "restore the normal open point") for s in transfers]
    return SwitchOrder(order_id, title or f"Planned outage {', '.join(elements)}", steps)


def _earthing_switches(model: NetworkModel, buses: Sequence[str]) -> list[str]:
    net = model.net
    if "earthing_switch" not in net or not len(net.earthing_switch):
        return []
    wanted = {model.index_of("bus", b) for b in buses}
    return [
        gid
        for gid, bus, on in zip(
            ids_of(net, "earthing_switch"),
            net.earthing_switch.bus,
            net.earthing_switch.in_service,
            strict=True,
        )
        if int(bus) in wanted and bool(on)
    ]
