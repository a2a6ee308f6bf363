"""The online ADMS: state estimation, FLISR, reconfiguration and volt-VAR on live data.

Contract:
- :class:`AdmsService` is the control centre's ADMS (``cc.adms``), made only
  when the control centre has a network model; :meth:`AdmsService.start`
  after the FEP, :meth:`AdmsService.stop` before it. Everything it owns
  runs on the event loop; the applications' computations run in worker
  threads on their own copies of the model, never on live state.
- Every run works on a :class:`~server.adms_snapshot.Snapshot`: the bound
  points' values and quality read at one instant on the event loop
  (switch positions, trips, FPIs, taps, capacitor steps, measurements),
  written into the model copy (:mod:`server.adms_snapshot`). Estimation,
  reconfiguration and volt-VAR see the loads allocated to the measured
  feeder-head power; FLISR checks restoration with the model's own loads
  (its power-flow solver is built once at start, so a plan takes
  milliseconds).
- State estimation runs every ``adms.estimate_period_s``, after relevant
  changes (a switch, trip, tap or capacitor step moved; a measurement's
  quality went bad or good) at most every ``adms.estimate_min_interval_s``,
  and on demand. Measurements of bad quality are excluded and named. The
  latest result is kept (:attr:`AdmsService.latest_estimate`) and pushed.
- FLISR starts ``adms.flisr_delay_s`` after the last protection trip or FPI
  pickup: the protective devices showing a trip and open are the lockouts
  (a device that reclosed in the meantime is a transient fault); the fault
  is located from them and the FPIs, and a plan isolates and restores using
  only switches with a telecontrol (the others are never planned). A
  lockout already covered by a plan is not planned again until its trip
  resets. In ``automatic`` mode the plan executes at once as user ``adms``;
  in ``advisory`` mode it waits for an operator (approve / step / reject).
  A step whose switch does not operate (refused, no check-back) fails and
  FLISR plans again from the live state without that switch
  (:func:`adms.flisr.replan_flisr`), then carries on; the failed step stays
  in the plan, the steps it made obsolete are ``skipped``.
- Reconfiguration and volt-VAR run on demand and give a proposed plan;
  executed on approval. Switch steps go through
  :class:`~scada.control.ControlService` select-before-operate with
  check-back under the executing user's name; a volt-VAR step moves a tap
  changer or capacitor bank one step per command until its position reads
  the target (operations count against the day's limits; DER reactive
  power has no set-point in the binding and is left as it is). A step whose
  switch is already in place is ``skipped``.
- Failures reach the operator: an estimate carries its ``error``, a FLISR
  run that cannot plan gives a ``failed`` plan saying why, a proposal that
  cannot run raises the study's error (409 over the API), a step that
  raises counts as failed.
- Plans (:class:`Plan`) are JSON views per ``/work/notes/adms_api.md``;
  every plan change and every new estimate is published to consoles
  (:meth:`server.push.PushHub.publish_adms`). Every approve, step and reject
  is audited (user, action, plan id, result), also when refused; each
  command is audited by the control service.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import logging
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from adms.errors import AdmsError
from adms.estimation import EstimationError, EstimationResult, estimate
from adms.estimation.results import plain
from adms.flisr import FaultLocation, FlisrPlan, locate_fault, plan_flisr, replan_flisr
from adms.powerflow import GridSolver, Limits
from adms.reconfiguration import reconfigure
from adms.sections import SectionGraph
from adms.switching import order_from_reconfiguration, validate_order
from adms.voltvar import optimise_voltvar
from models.errors import ModelError
from models.network import NetworkModel
from protocols.base import CommandStatus
from scada.config import ScadaConfig
from scada.control import ControlService, Selection
from scada.pointdb import ChangeBatch, PointDB, Subscription
from server.adms_snapshot import (
    UNUSABLE,
    Accuracy,
    Allocation,
    LiveBinding,
    Snapshot,
    allocate_loads,
)
from server.interlocks import NetworkInterlocks
from server.push import PushHub
from server.settings import AdmsSettings

__all__ = [
    "AdmsService",
    "Plan",
    "PlanState",
    "PlanStateError",
    "PlanStep",
    "UnknownPlanError",
]

log = logging.getLogger(__name__)

#: the server-side user of automatic actions in the audit trail
ADMS_USER = "adms"
#: closed plans kept for consoles
KEEP_CLOSED = 50
#: re-plans after failed steps before FLISR gives up
MAX_REPLANS = 5

Audit = Callable[..., None]


class PlanState(StrEnum):
    PROPOSED = "proposed"
    EXECUTING = "executing"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"


_OPEN = (PlanState.PROPOSED, PlanState.EXECUTING)


class UnknownPlanError(KeyError):
    """No plan with that id."""


class PlanStateError(Exception):
    """The plan's state does not allow what was asked (the message says which state)."""


@dataclass
class PlanStep:
    """One step: operate a switch (open/close) or move a control to ``value`` (set)."""

    index: int
    element: str
    point: str | None
    action: str
    value: float | None = None
    reason: str = ""
    state: str = "pending"
    message: str = ""
    #: when its execution ended (done, failed, or skipped as already in place), epoch s
    finished: float | None = None

    def view(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "index": self.index,
            "element": self.element,
            "point": self.point,
            "action": self.action,
            "value": self.value,
            "state": self.state,
            "message": self.message,
            "reason": self.reason,
            "finished": self.finished,
        }


@dataclass
class Plan:
    """A FLISR plan, a reconfiguration or volt-VAR proposal: its steps and their outcome."""

    id: str
    app: str
    mode: str
    title: str
    summary: str
    details: dict[str, Any]
    steps: list[PlanStep]
    state: PlanState = PlanState.PROPOSED
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    approved_by: str | None = None
    #: FLISR: the plan the remaining steps come from (re-planned after failures)
    flisr: FlisrPlan | None = None
    #: FLISR: the lockouts it answers
    lockouts: tuple[str, ...] = ()
    #: a step is being executed (no other may start)
    busy: bool = False

    @property
    def open(self) -> bool:
        """Proposed or executing."""
        return self.state in _OPEN

    def pending(self) -> PlanStep | None:
        """The next step to execute."""
        return next((s for s in self.steps if s.state == "pending"), None)

    def view(self) -> dict[str, Any]:
        """JSON form (see ``/work/notes/adms_api.md``; NaN as null)."""
        view: dict[str, Any] = plain(
            {
                "id": self.id,
                "app": self.app,
                "state": self.state.value,
                "mode": self.mode,
                "created": self.created,
                "updated": self.updated,
                "title": self.title,
                "summary": self.summary,
                "details": self.details,
                "steps": [s.view() for s in self.steps],
                "approved_by": self.approved_by,
            }
        )
        return view


@dataclass
class _Workspace:
    """A private model copy with its section graph and solver (one user at a time)."""

    model: NetworkModel
    graph: SectionGraph
    solver: GridSolver | None
    #: the loads' and DER's own scaling, before allocation
    base: tuple[np.ndarray, np.ndarray]


def _workspace(model: NetworkModel, solver: bool) -> _Workspace:
    work = model.copy()
    net = work.net
    base = (net.load.scaling.to_numpy(float).copy(), net.sgen.scaling.to_numpy(float).copy())
    return _Workspace(work, SectionGraph(work), GridSolver(work) if solver else None, base)


class AdmsService:
    """The online ADMS of one control centre (see the module docstring)."""

    def __init__(
        self,
        model: NetworkModel,
        pointdb: PointDB,
        config: Callable[[], ScadaConfig | None],
        control: ControlService,
        push: PushHub,
        audit: Audit,
        settings: AdmsSettings | None = None,
        interlocks: NetworkInterlocks | None = None,
    ) -> None:
        self.model = model.copy()
        self._interlocks = interlocks
        self.pointdb = pointdb
        self._config = config
        self.control = control
        self.push = push
        self._audit = audit
        self.settings = s = settings or AdmsSettings()
        #: "advisory" or "automatic" (from the settings; may be changed at run time)
        self.flisr_mode: str = s.flisr_mode
        self.limits = Limits(s.vm_min_pu, s.vm_max_pu, s.max_loading_percent)
        self.accuracy = Accuracy(s.v_sigma_pct, s.pq_sigma_pct, s.i_sigma_pct)
        #: the latest estimate (JSON view), None before the first
        self.latest_estimate: dict[str, Any] | None = None
        self.plans: dict[str, Plan] = {}
        self._binding: LiveBinding | None = None
        self._flisr_ws: _Workspace | None = None
        self._estimate_ws: _Workspace | None = None
        self._solver_error = ""
        self._ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._estimate_lock = asyncio.Lock()
        self._flisr_lock = asyncio.Lock()
        self._model_lock = asyncio.Lock()
        self._study_lock = asyncio.Lock()
        self._plan_ids = itertools.count(1)
        self._estimate_ids = itertools.count(1)
        self._last_estimate = -math.inf
        self._flisr_timer: asyncio.TimerHandle | None = None
        #: lockouts a plan covers (until their trip resets)
        self._handled: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._subscription: Subscription | None = None
        self._watch: dict[int, str] = {}
        self._trip_of: dict[int, str] = {}
        self._analog_bad: dict[int, bool] = {}
        #: volt-VAR operations executed today per device, for the daily limits
        self._operations: dict[str, int] = {}
        self._operations_day = datetime.date.today()

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Bind to the running configuration, follow the point database, warm up."""
        self._rebind()
        self._subscription = self.pointdb.subscribe(self._on_points)
        self.push.adms_snapshot = self.push_view
        self._spawn(self._warm_up())
        self._spawn(self._estimator())

    async def stop(self) -> None:
        if self._flisr_timer is not None:
            self._flisr_timer.cancel()
        if self._subscription is not None:
            self._subscription.close()
        if self.push.adms_snapshot == self.push_view:
            self.push.adms_snapshot = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ADMS task failed", exc_info=task.exception())

    async def _warm_up(self) -> None:
        """Build the working models (and pay numba's compilation) off the loop."""

        def build() -> tuple[_Workspace, _Workspace]:
            estimation = _workspace(self.model, solver=False)
            try:
                return _workspace(self.model, solver=True), estimation
            except (AdmsError, ModelError) as exc:
                # FLISR plans then fail with this reason; estimation still runs
                self._solver_error = str(exc)
                log.error("ADMS: no power flow for FLISR on %s: %s", self.model.name, exc)
                return _workspace(self.model, solver=False), estimation

        try:
            self._flisr_ws, self._estimate_ws = await asyncio.to_thread(build)
        finally:
            self._ready.set()

    async def ready(self) -> None:
        """Wait until the working models are built."""
        await self._ready.wait()

    # -------------------------------------------------------------- binding
    def _rebind(self) -> LiveBinding:
        config = self._config()
        if config is None:
            raise RuntimeError("ADMS: the control centre has no running configuration")
        binding = LiveBinding(self.model, self.pointdb, config, self.accuracy)
        self._binding = binding
        watch: dict[int, str] = {}
        for kind, points in (
            ("status", binding.status_points),
            ("trip", binding.trip_points),
            ("fpi", binding.fpi_points),
            ("step", binding.step_points),
            ("analog", dict.fromkeys(binding.analog_points, "")),
        ):
            for point in points:
                watch[self.pointdb.handle(point)] = kind
        self._watch = watch
        self._trip_of = {self.pointdb.handle(p): s for p, s in binding.trip_points.items()}
        self._analog_bad = {}
        return binding

    @property
    def binding(self) -> LiveBinding:
        """The live binding (rebuilt after a configuration reload)."""
        if self._binding is None or self._binding.stale():
            return self._rebind()
        return self._binding

    def snapshot(self) -> Snapshot:
        """The bound points' state at this instant (call on the event loop)."""
        return self.binding.take()

    def _on_points(self, batch: ChangeBatch) -> None:
        """Point database changes (on the loop): arm FLISR, ask for an estimate."""
        if self._binding is not None and self._binding.stale():
            self._rebind()
        watch = self._watch
        relevant = pickup = False
        for h, v, q in zip(
            batch.handles.tolist(), batch.values.tolist(), batch.quality.tolist(), strict=True
        ):
            kind = watch.get(h)
            if kind is None:
                continue
            bad = bool(q & int(UNUSABLE))
            if kind == "analog":
                if self._analog_bad.get(h, False) != bad:
                    relevant = True
                self._analog_bad[h] = bad
                continue
            relevant = True
            if kind == "trip" and not bad:
                if v == 1:
                    pickup = True
                else:
                    self._handled.discard(self._trip_of[h])
            elif kind == "fpi" and not bad and v == 1:
                pickup = True
        if relevant:
            self._changed.set()
        if pickup:
            self._arm_flisr()

    # ----------------------------------------------------------- estimation
    async def _estimator(self) -> None:
        await self._ready.wait()
        s = self.settings
        trigger = "periodic"
        while True:
            wait = self._last_estimate + s.estimate_min_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.run_estimate(trigger)
            try:
                await asyncio.wait_for(self._changed.wait(), s.estimate_period_s)
                trigger = "change"
            except TimeoutError:
                trigger = "periodic"

    async def run_estimate(self, trigger: str = "demand") -> dict[str, Any]:
        """Estimate the state now from a fresh snapshot; store, push and return the result."""
        await self._ready.wait()
        async with self._estimate_lock:
            self._changed.clear()
            self._last_estimate = time.monotonic()
            started = time.perf_counter()
            snap = self.snapshot()
            try:
                result, allocation = await asyncio.to_thread(self._estimate, snap)
                error = None if result.converged else result.message
            except (EstimationError, AdmsError, ModelError, ValueError) as exc:
                log.warning("ADMS: state estimation failed: %s", exc)
                result, allocation, error = None, None, str(exc)
            except Exception as exc:  # the periodic service must survive; the error is shown
                log.exception("ADMS: state estimation failed")
                result, allocation, error = None, None, f"internal error: {exc!r}"
            view = _estimate_view(
                next(self._estimate_ids),
                snap,
                trigger,
                result,
                allocation,
                error,
                (time.perf_counter() - started) * 1e3,
            )
            self.latest_estimate = view
            self.push.publish_adms({"estimate": view})
            return view

    def _estimate(self, snap: Snapshot) -> tuple[EstimationResult, Allocation]:
        ws = self._estimate_ws
        if ws is None:
            raise AdmsError("the estimation model could not be built (see the server log)")
        snap.apply(ws.model)
        allocation = allocate_loads(ws.model, snap, ws.graph, ws.base)
        allocation.apply(ws.model, ws.base)
        return estimate(ws.model, snap.measurements), allocation

    # ---------------------------------------------------------------- FLISR
    def _arm_flisr(self) -> None:
        if self._flisr_timer is not None:
            self._flisr_timer.cancel()
        loop = asyncio.get_running_loop()
        self._flisr_timer = loop.call_later(self.settings.flisr_delay_s, self._flisr_due)

    def _flisr_due(self) -> None:
        self._flisr_timer = None
        self._spawn(self.run_flisr())

    async def run_flisr(self) -> Plan | None:
        """Plan (and in automatic mode execute) FLISR for the lockouts not yet covered."""
        await self._ready.wait()
        async with self._flisr_lock:
            started = time.perf_counter()
            snap = self.snapshot()
            lockouts = sorted(
                s
                for s, on in snap.trips.items()
                if on and snap.switches.get(s) is False and s not in self._handled
            )
            if not lockouts:
                return None
            self._handled.update(lockouts)
            fpis = dict(snap.fpis)
            mode = self.flisr_mode
            plan_id = self._next_id("flisr")
            blocked = self.binding.uncontrolled_switches()
            try:
                async with self._model_lock:
                    location, flisr, timings = await asyncio.to_thread(
                        self._plan_flisr, snap, lockouts, fpis, blocked
                    )
            except Exception as exc:  # the operator sees any failure as a failed plan
                if not isinstance(exc, AdmsError | ModelError):
                    log.exception("ADMS: FLISR for %s failed", lockouts)
                log.warning("ADMS: FLISR for %s failed: %s", lockouts, exc)
                plan = Plan(
                    plan_id,
                    "flisr",
                    mode,
                    f"FLISR: lockout of {', '.join(lockouts)}",
                    f"no plan: {exc}",
                    {"lockouts": lockouts, "fpis": fpis, "error": str(exc)},
                    [],
                    state=PlanState.FAILED,
                    lockouts=tuple(lockouts),
                )
                self._add(plan)
                return plan
            timings["trigger_to_plan_ms"] = (time.perf_counter() - started) * 1e3
            plan = self._flisr_plan(plan_id, mode, lockouts, fpis, location, flisr, timings)
            for other in self.plans.values():
                if (
                    other.app == "flisr"
                    and other.state == PlanState.PROPOSED
                    and set(other.lockouts) & set(lockouts)
                ):
                    self._close(other, PlanState.SUPERSEDED, f"superseded by {plan.id}")
            self._add(plan)
            log.info("ADMS: %s %s", plan.id, plan.summary)
            if mode == "automatic":
                plan.approved_by = ADMS_USER
                await self._execute(plan, ADMS_USER, single=False)
            return plan

    def _plan_flisr(
        self, snap: Snapshot, lockouts: list[str], fpis: dict[str, bool], blocked: list[str]
    ) -> tuple[FaultLocation, FlisrPlan, dict[str, float]]:
        ws = self._flisr_ws
        if ws is None or ws.solver is None:
            raise AdmsError(f"no power flow for FLISR on this network: {self._solver_error}")
        t0 = time.perf_counter()
        snap.apply(ws.model)
        known = {f: on for f, on in fpis.items() if f in ws.graph.fpi_edge}
        location = locate_fault(ws.model, lockouts, known, graph=ws.graph, solver=ws.solver)
        t1 = time.perf_counter()
        flisr = plan_flisr(
            ws.model,
            location,
            limits=self.limits,
            blocked=blocked,
            graph=ws.graph,
            solver=ws.solver,
        )
        t2 = time.perf_counter()
        return (
            location,
            flisr,
            {"locate_ms": (t1 - t0) * 1e3, "plan_ms": (t2 - t1) * 1e3},
        )

    def _flisr_plan(
        self,
        plan_id: str,
        mode: str,
        lockouts: list[str],
        fpis: dict[str, bool],
        location: FaultLocation,
        flisr: FlisrPlan,
        timings: dict[str, float],
    ) -> Plan:
        details: dict[str, Any] = {
            "fault": _where(location),
            "lockouts": lockouts,
            "fpis": {f: on for f, on in sorted(fpis.items()) if on},
            "location": location.to_dict(),
            "plan": _flisr_dict(flisr),
            "replans": [],
            "failed_switches": [],
            "timings_ms": {k: round(v, 3) for k, v in timings.items()},
        }
        details.update(_flisr_figures(flisr))
        plan = Plan(
            plan_id,
            "flisr",
            mode,
            f"FLISR: lockout of {', '.join(lockouts)}",
            _flisr_summary(_where(location), flisr),
            details,
            [],
            flisr=flisr,
            lockouts=tuple(lockouts),
        )
        self._add_switch_steps(plan, [(a.switch_id, a.action, a.reason) for a in flisr.steps])
        return plan

    async def _replan(self, plan: Plan, failed: str) -> bool:
        """FLISR again from the live state without ``failed``; False when it cannot."""
        assert plan.flisr is not None
        snap = self.snapshot()
        ws = self._flisr_ws
        assert ws is not None and ws.solver is not None
        current = plan.flisr

        def run() -> FlisrPlan:
            snap.apply(ws.model)
            return replan_flisr(
                ws.model, current, failed, limits=self.limits, graph=ws.graph, solver=ws.solver
            )

        try:
            async with self._model_lock:
                new = await asyncio.to_thread(run)
        except (AdmsError, ModelError) as exc:
            plan.details["replans"].append({"after": failed, "error": str(exc)})
            return False
        plan.flisr = new
        plan.details["failed_switches"].append(failed)
        plan.details["replans"].append({"after": failed, **_flisr_dict(new)})
        plan.details.update(_flisr_figures(new))
        for step in plan.steps:
            if step.state == "pending":
                step.state = "skipped"
                step.message = f"re-planned after {failed} failed"
        self._add_switch_steps(plan, [(a.switch_id, a.action, a.reason) for a in new.steps])
        plan.summary = _flisr_summary(plan.details["fault"], new, replanned=True)
        return True

    # ------------------------------------------------------- studies on demand
    async def propose_reconfiguration(self, user: str) -> Plan:
        """Reconfigure the live network for least losses: a proposed plan.

        Raises the study's :class:`~adms.errors.AdmsError` / ``ModelError`` (audited).
        """
        await self._ready.wait()
        async with self._study_lock:
            snap = self.snapshot()
            fixed = self.binding.uncontrolled_switches()
            plan_id = self._next_id("reconfiguration")

            def run() -> tuple[dict[str, Any], list[tuple[str, str, str]], list[Any]]:
                ws = _workspace(self.model, solver=False)
                snap.apply(ws.model)
                allocate_loads(ws.model, snap, ws.graph, ws.base).apply(ws.model, ws.base)
                result = reconfigure(ws.model, limits=self.limits, fixed=fixed)
                order = order_from_reconfiguration(result, order_id=plan_id)
                issues = validate_order(ws.model, order)
                steps = [(a.switch_id, a.action, a.reason) for a in result.steps]
                return result.to_dict(), steps, [i.to_dict() for i in issues]

            try:
                result, steps, issues = await asyncio.to_thread(run)
            except (AdmsError, ModelError) as exc:
                self._audit(user, "adms reconfigure", f"failed: {exc}")
                raise
        result.pop("steps", None)
        result["validation"] = issues
        before, after = result["loss_kw_before"], result["loss_kw_after"]
        summary = (
            f"losses {before:.1f} -> {after:.1f} kW with {len(steps) // 2} exchange(s)"
            if steps
            else f"already the best configuration found (losses {before:.1f} kW)"
        )
        plan = Plan(plan_id, "reconfiguration", "advisory", "Reconfiguration", summary, result, [])
        self._add_switch_steps(plan, steps)
        self._supersede_same_app(plan)
        self._add(plan)
        self._audit(user, "adms reconfigure", "proposed", target=plan.id, details=summary)
        return plan

    async def propose_voltvar(self, user: str, objective: str) -> Plan:
        """Volt-VAR optimisation of the live network (``losses`` or ``cvr``): a proposed plan.

        Raises the study's :class:`~adms.errors.AdmsError` / ``ModelError`` (audited).
        """
        await self._ready.wait()
        async with self._study_lock:
            snap = self.snapshot()
            controlled = self.binding.step_control
            plan_id = self._next_id("voltvar")
            used = self._operations_today()
            net = self.model.net
            fixed = {
                gid: 0
                for table in ("trafo", "shunt")
                for gid in self.model.ids(table)
                if gid not in controlled and len(net[table])
            }

            def run() -> dict[str, Any]:
                ws = _workspace(self.model, solver=False)
                snap.apply(ws.model)
                allocate_loads(ws.model, snap, ws.graph, ws.base).apply(ws.model, ws.base)
                # DER reactive power has no set-point in the binding: it stays as it is
                result = optimise_voltvar(
                    ws.model,
                    objective=objective,
                    limits=self.limits,
                    operations_used=used,
                    max_operations=fixed or None,
                    der_q_levels=1,
                )
                return result.to_dict()

            try:
                result = await asyncio.to_thread(run)
            except (AdmsError, ModelError) as exc:
                self._audit(user, "adms voltvar", f"failed: {exc}")
                raise
        changes: dict[str, list[float]] = result["changes"]
        key = "loss_kw" if objective == "losses" else "demand_kw"
        summary = (
            f"{objective}: {key} {result[f'{key}_before']:.1f} -> {result[f'{key}_after']:.1f}"
            f" with {len(changes)} control(s) moved"
            if changes
            else f"{objective}: present settings are the best found"
        )
        plan = Plan(plan_id, "voltvar", "advisory", f"Volt-VAR ({objective})", summary, result, [])
        for gid, (before, after) in sorted(changes.items()):
            plan.steps.append(
                PlanStep(
                    len(plan.steps),
                    gid,
                    controlled.get(gid),
                    "set",
                    float(after),
                    reason=f"from {before:g} to {after:g}",
                )
            )
        self._supersede_same_app(plan)
        self._add(plan)
        self._audit(user, "adms voltvar", "proposed", target=plan.id, details=summary)
        return plan

    def _operations_today(self) -> dict[str, int]:
        today = datetime.date.today()
        if today != self._operations_day:
            self._operations_day, self._operations = today, {}
        return dict(self._operations)

    # ---------------------------------------------------------------- plans
    def _next_id(self, app: str) -> str:
        return f"{app}-{next(self._plan_ids)}"

    def _add_switch_steps(self, plan: Plan, actions: list[tuple[str, str, str]]) -> None:
        control = self.binding.switch_control
        for switch, action, reason in actions:
            plan.steps.append(
                PlanStep(len(plan.steps), switch, control.get(switch), action, reason=reason)
            )

    def _supersede_same_app(self, plan: Plan) -> None:
        for other in list(self.plans.values()):
            if other.app == plan.app and other.state == PlanState.PROPOSED:
                self._close(other, PlanState.SUPERSEDED, f"superseded by {plan.id}")

    def _add(self, plan: Plan) -> None:
        self.plans[plan.id] = plan
        closed = [p for p in self.plans.values() if not p.open]
        for old in sorted(closed, key=lambda p: p.updated)[: max(0, len(closed) - KEEP_CLOSED)]:
            del self.plans[old.id]
        self._publish(plan)

    def _publish(self, plan: Plan) -> None:
        plan.updated = time.time()
        self.push.publish_adms({"plan": plan.view()})

    def _close(self, plan: Plan, state: PlanState, why: str) -> None:
        plan.state = state
        for step in plan.steps:
            if step.state == "pending":
                step.state = "skipped"
                step.message = why
        self._publish(plan)

    def plan_views(self) -> list[dict[str, Any]]:
        """Open plans and the last closed ones, newest first."""
        return [p.view() for p in sorted(self.plans.values(), key=lambda p: -p.created)]

    def plan(self, plan_id: str) -> Plan:
        try:
            return self.plans[plan_id]
        except KeyError:
            raise UnknownPlanError(f"no plan {plan_id!r}") from None

    def push_view(self) -> dict[str, Any]:
        """What a console's snapshot carries: the latest estimate and the open plans."""
        return {
            "estimate": self.latest_estimate,
            "plans": [p.view() for p in self.plans.values() if p.open],
        }

    def _checked(self, plan_id: str, user: str, action: str) -> Plan:
        """The plan, if it may be acted on (audited refusal otherwise)."""
        try:
            plan = self.plan(plan_id)
        except UnknownPlanError:
            self._audit(user, f"adms {action}", "refused: unknown plan", target=plan_id)
            raise
        reason = None
        if not plan.open:
            reason = f"plan {plan.id} is {plan.state.value}"
        elif plan.busy:
            reason = f"plan {plan.id} is executing a step"
        if reason is not None:
            self._audit(user, f"adms {action}", f"refused: {reason}", target=plan.id)
            raise PlanStateError(reason)
        return plan

    async def approve(self, plan_id: str, user: str) -> Plan:
        """Execute every remaining step (in the background) as ``user``."""
        plan = self._checked(plan_id, user, "approve")
        plan.approved_by = user
        plan.state = PlanState.EXECUTING
        plan.busy = True
        self._publish(plan)
        self._audit(user, "adms approve", "executing", target=plan.id, details=plan.title)
        self._spawn(self._execute(plan, user, single=False))
        return plan

    async def step(self, plan_id: str, user: str) -> Plan:
        """Execute the next step as ``user``; returns when it is done."""
        plan = self._checked(plan_id, user, "step")
        plan.busy = True
        step = plan.pending()
        await self._execute(plan, user, single=True)
        if step is None:
            outcome = "no step left"
        else:
            outcome = step.state + (f": {step.message}" if step.message else "")
        self._audit(
            user,
            "adms step",
            outcome,
            target=plan.id,
            details="" if step is None else f"step {step.index}: {step.action} {step.element}",
        )
        return plan

    async def reject(self, plan_id: str, user: str, reason: str | None = None) -> Plan:
        """Close a plan without executing its remaining steps."""
        plan = self._checked(plan_id, user, "reject")
        why = f"rejected by {user}" + (f": {reason}" if reason else "")
        plan.details["rejected"] = {"by": user, "reason": reason}
        self._close(plan, PlanState.REJECTED, why)
        self._audit(user, "adms reject", "rejected", target=plan.id, details=reason or "")
        return plan

    # ------------------------------------------------------------ execution
    async def _execute(self, plan: Plan, user: str, *, single: bool) -> None:
        """Run pending steps (one with ``single``); FLISR re-plans after a failed step."""
        plan.busy = True
        plan.state = PlanState.EXECUTING
        replans = 0
        try:
            while (step := plan.pending()) is not None:
                step.state = "executing"
                self._publish(plan)
                following = plan.steps[plan.steps.index(step) + 1 :]
                make_before_break = (
                    step.action == "close" and bool(following) and following[0].action == "open"
                )
                try:
                    ok, skipped, message = await self._run_step(step, user, make_before_break)
                except Exception as exc:  # a step that raised has failed
                    log.exception("ADMS: %s step %d raised", plan.id, step.index)
                    ok, skipped, message = False, False, f"internal error: {exc!r}"
                step.state = "skipped" if skipped else ("done" if ok else "failed")
                step.message = message
                step.finished = time.time()
                if not ok:
                    replanned = False
                    if plan.app == "flisr" and replans < MAX_REPLANS:
                        replans += 1
                        replanned = await self._replan(plan, step.element)
                    if not replanned:
                        why = f"step {step.index} failed: {message}"
                        self._close(plan, PlanState.FAILED, why)
                        self._audit(user, "adms execute", f"failed: {why}", target=plan.id)
                        return
                if single:
                    break
                self._publish(plan)
            if plan.pending() is None:
                plan.state = PlanState.DONE
                self._audit(user, "adms execute", "done", target=plan.id, details=plan.summary)
        finally:
            plan.busy = False
            self._publish(plan)

    async def _run_step(
        self, step: PlanStep, user: str, make_before_break: bool = False
    ) -> tuple[bool, bool, str]:
        """Execute one step: (ok, skipped, message).

        The close of a make-before-break pair runs under the interlocks'
        momentary paralleling permission (settings decide whether it counts).
        """
        if step.point is None:
            return False, False, f"{step.element} has no telecontrol point"
        if step.action == "set":
            return await self._set_position(step, user)
        close = step.action == "close"
        now = self.binding.switch_closed(step.element)
        if now is close:
            return True, True, f"already {'closed' if close else 'open'}"
        permit = (
            self._interlocks.momentary_parallel(step.element)
            if make_before_break and self._interlocks is not None
            else contextlib.nullcontext()
        )
        with permit:
            result = await self._command(step.point, 1.0 if close else 0.0, user)
        if result is None:
            return True, False, "confirmed by check-back"
        return False, False, result

    async def _command(self, point: str, value: float, user: str) -> str | None:
        """Select, then execute with check-back; None when confirmed, else why not."""
        sel = self.control.select(point, value, user)
        if not isinstance(sel, Selection):
            return f"{sel.status}: {sel.reason}"
        result = await self.control.execute(sel.id, user)
        if result.status == CommandStatus.CONFIRMED:
            return None
        return f"{result.status}" + (f": {result.reason}" if result.reason else "")

    async def _set_position(self, step: PlanStep, user: str) -> tuple[bool, bool, str]:
        """Move a tap changer / capacitor bank one step per command until it reads the target."""
        assert step.point is not None and step.value is not None
        target = round(step.value)
        moves = 0
        limit: int | None = None
        while True:
            pv = self.pointdb.get(step.point)
            if pv.quality & UNUSABLE or math.isnan(pv.value):
                names = ", ".join(pv.quality.names())
                return False, False, f"{step.point} has no usable value ({names})"
            now = round(pv.value)
            if now == target:
                return True, moves == 0, f"at {target}" if moves else f"already at {target}"
            if limit is None:
                limit = abs(target - now) + 1
            if moves >= limit:
                return False, False, f"stopped at {now} (target {target})"
            why = await self._command(step.point, 1.0 if target > now else -1.0, user)
            if why is not None:
                return False, False, f"at {now}: {why}"
            moves += 1
            self._operations_today()  # a new day starts the count afresh
            self._operations[step.element] = self._operations.get(step.element, 0) + 1


# ------------------------------------------------------------------ views
def _num(value: Any, digits: int = 6) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return round(x, digits) if math.isfinite(x) else None


def _estimate_view(
    estimate_id: int,
    snap: Snapshot,
    trigger: str,
    result: EstimationResult | None,
    allocation: Allocation | None,
    error: str | None,
    elapsed_ms: float,
) -> dict[str, Any]:
    """The contract's estimate result (``/work/notes/adms_api.md``; NaN as null)."""
    view: dict[str, Any] = {
        "id": estimate_id,
        "time": snap.time,
        "trigger": trigger,
        "converged": False,
        "iterations": 0,
        "elapsed_ms": round(elapsed_ms, 3),
        "buses": {},
        "branches": {},
        "chi2": {"value": None, "threshold": None, "passed": None},
        "bad_data": [],
        "excluded": list(snap.excluded),
        "unobservable": [],
        "error": error,
        "message": error or "",
        "allocation": None if allocation is None else allocation.to_dict(),
    }
    if result is None:
        return view
    buses = result.bus
    view.update(
        converged=result.converged,
        iterations=result.iterations,
        solve_ms=round(result.solve_time_ms, 3),
        message=result.message,
        counts=dict(result.counts),
        buses={
            str(gid): {
                "vm_pu": _num(vm),
                "va_degree": _num(va),
                "status": str(status),
            }
            for gid, vm, va, status in zip(
                buses.index, buses.vm_pu, buses.va_degree, buses.status, strict=True
            )
        },
        unobservable=[a.to_dict() for a in result.unobservable],
    )
    branches: dict[str, Any] = {}
    for frame, side in ((result.line, "from"), (result.trafo, "hv")):
        if not len(frame):
            continue
        for gid, p, q, loading, status in zip(
            frame.index,
            frame[f"p_{side}_mw"],
            frame[f"q_{side}_mvar"],
            frame["loading_percent"],
            frame["status"],
            strict=True,
        ):
            branches[str(gid)] = {
                "p_from_mw": _num(p),
                "q_from_mvar": _num(q),
                "loading_percent": _num(loading, 3),
                "status": str(status),
            }
    view["branches"] = branches
    if result.chi2 is not None:
        view["chi2"] = {
            "value": _num(result.chi2.statistic),
            "threshold": _num(result.chi2.threshold),
            "passed": result.chi2.passed,
            "dof": result.chi2.dof,
        }
    view["bad_data"] = [
        {
            "measurement": _describe(b.measurement),
            "point": b.measurement.id,
            "normalised_residual": _num(b.normalised_residual, 3),
            "value": _num(b.measurement.value),
            "estimate": _num(b.estimate),
        }
        for b in result.bad_data
    ]
    cleaned: dict[str, Any] = plain(view)
    return cleaned


def _describe(m: Any) -> str:
    parts = [m.kind.value, m.element, m.quantity.value]
    if m.side:
        parts.append(m.side)
    return " ".join(parts)


def _flisr_dict(flisr: FlisrPlan) -> dict[str, Any]:
    data = flisr.to_dict()
    # every switch without telecontrol is blocked: their number, not the list
    data["blocked"] = len(flisr.blocked)
    return data


def _flisr_figures(flisr: FlisrPlan) -> dict[str, int]:
    return {
        "customers_interrupted": flisr.customers_interrupted,
        "customers_in_fault_zone": flisr.customers_in_fault_zone,
        "customers_restored": flisr.customers_restored,
        "customers_unrestored": flisr.customers_unrestored,
        "customers_without_path": flisr.customers_unrestored - flisr.customers_in_fault_zone,
    }


def _where(location: FaultLocation) -> str:
    """The located zone in a few words: its first lines (or buses)."""
    names = location.lines or location.buses
    return ", ".join(names[:3]) + (f" (+{len(names) - 3})" if len(names) > 3 else "")


def _flisr_summary(where: str, flisr: FlisrPlan, *, replanned: bool = False) -> str:
    head = f"fault in {where}" + (" (re-planned)" if replanned else "")
    isolate = len(flisr.isolation)
    restore = len(flisr.steps) - isolate
    text = f"{head}: isolate {isolate}, restore {restore} ({flisr.customers_restored} customers)"
    left = flisr.customers_unrestored - flisr.customers_in_fault_zone
    if left > 0:
        text += f"; no restoration path for {left} customers"
    return text
