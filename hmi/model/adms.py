"""The ADMS applications as the console sees them: the latest state estimate and the plans.

Contract:
- :class:`Estimate` reads a state-estimation result of ``/api/adms/estimate``
  (or the push channel's); :class:`Plan` a FLISR plan, reconfiguration or
  volt-VAR proposal or switch order of ``/api/adms/plans``. Both keep the
  JSON they came from (``raw``) and answer display questions without Qt.
- :class:`AdmsStore` holds the latest estimate and the plans by id. An
  estimate replaces the one held when its ``id`` is newer (or the same id
  brings the buses and branches a push summary left out); a plan replaces
  the one held unless it is older (``updated``). So REST replies and pushed
  updates may arrive in any order and the store keeps the newest of each.
  :meth:`AdmsStore.reset` takes the push snapshot's ``adms`` member,
  :meth:`AdmsStore.apply` a changes batch's ``adms`` list.
- :data:`AdmsStore.estimate_changed` fires with the new estimate,
  :data:`AdmsStore.plans_changed` with the ids of the plans that changed,
  each once per call and only after the store is consistent.
- The overlay's bands (:data:`VOLTAGE_BANDS`, :data:`LOADING_BANDS`,
  :func:`voltage_band`, :func:`loading_band`) are data here; the views give
  each band its colour.
- What an operator may do with a plan follows its state (:meth:`Plan.can_approve`,
  :meth:`Plan.can_step`, :meth:`Plan.can_reject`); the server decides and
  answers 409 when the plan moved on meanwhile.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hmi.model.events import Event
from hmi.model.points import format_time

__all__ = [
    "LOADING_BANDS",
    "OPEN_STATES",
    "VOLTAGE_BANDS",
    "AdmsStore",
    "BranchFlow",
    "BusVoltage",
    "Estimate",
    "Figure",
    "Plan",
    "PlanStep",
    "loading_band",
    "voltage_band",
]

#: (upper bound, band, legend text), lowest first: bus voltage in per unit
VOLTAGE_BANDS: tuple[tuple[float, str, str], ...] = (
    (0.95, "under", "< 0.95 pu"),
    (0.97, "low", "0.95-0.97 pu"),
    (1.03, "normal", "0.97-1.03 pu"),
    (1.05, "high", "1.03-1.05 pu"),
    (math.inf, "over", "> 1.05 pu"),
)
#: (upper bound, band, legend text), lowest first: branch loading in percent of rating
LOADING_BANDS: tuple[tuple[float, str, str], ...] = (
    (50.0, "light", "< 50 %"),
    (80.0, "medium", "50-80 %"),
    (100.0, "heavy", "80-100 %"),
    (math.inf, "overload", "> 100 %"),
)
#: plan states in which a plan still waits for, or is in, execution
OPEN_STATES = frozenset({"proposed", "executing"})
#: units of the suffixes ADMS figures carry in their names (pandapower's convention)
_UNITS = {
    "kw": "kW",
    "mw": "MW",
    "kvar": "kvar",
    "mvar": "Mvar",
    "pu": "pu",
    "percent": "%",
    "ka": "kA",
    "a": "A",
    "kv": "kV",
    "s": "s",
    "degree": "deg",
}
#: detail entries longer than this (as text) are shortened in the facts list
_FACT_CHARS = 160


def _band(value: float, bands: tuple[tuple[float, str, str], ...]) -> str:
    return next(name for upper, name, _ in bands if value < upper)


def voltage_band(vm_pu: float) -> str:
    """The band of a bus voltage (see :data:`VOLTAGE_BANDS`)."""
    return _band(vm_pu, VOLTAGE_BANDS)


def loading_band(loading_percent: float) -> str:
    """The band of a branch loading (see :data:`LOADING_BANDS`)."""
    return _band(loading_percent, LOADING_BANDS)


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class BusVoltage:
    vm_pu: float
    va_degree: float


@dataclass(frozen=True, slots=True)
class BranchFlow:
    p_from_mw: float
    q_from_mvar: float
    loading_percent: float | None


@dataclass(frozen=True)
class Estimate:
    """One state-estimation result (see ``notes/adms_api.md``)."""

    id: int
    time: float
    trigger: str
    converged: bool
    iterations: int
    elapsed_ms: float
    buses: dict[str, BusVoltage]
    branches: dict[str, BranchFlow]
    chi2: dict[str, Any]
    bad_data: list[dict[str, Any]]
    excluded: list[str]
    unobservable: list[dict[str, Any]]
    error: str | None
    #: a summary without buses and branches (the push snapshot may send one)
    partial: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Estimate:
        """Read a result; ValueError naming the field when one is missing or malformed."""
        try:
            # a bus the estimator could not resolve has no value (None): not estimated
            buses = {
                str(gid): BusVoltage(float(v["vm_pu"]), float(v.get("va_degree") or 0.0))
                for gid, v in (d.get("buses") or {}).items()
                if v.get("vm_pu") is not None
            }
            branches = {
                str(gid): BranchFlow(
                    float(v.get("p_from_mw") or 0.0),
                    float(v.get("q_from_mvar") or 0.0),
                    _float(v.get("loading_percent")),
                )
                for gid, v in (d.get("branches") or {}).items()
            }
            return cls(
                id=int(d["id"]),
                time=float(d.get("time") or 0.0),
                trigger=str(d.get("trigger") or ""),
                converged=bool(d.get("converged")),
                iterations=int(d.get("iterations") or 0),
                elapsed_ms=float(d.get("elapsed_ms") or 0.0),
                buses=buses,
                branches=branches,
                chi2=dict(d.get("chi2") or {}),
                bad_data=list(d.get("bad_data") or []),
                excluded=[str(p) for p in d.get("excluded") or []],
                unobservable=list(d.get("unobservable") or []),
                error=d.get("error"),
                partial="buses" not in d,
                raw=dict(d),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"state estimate {d.get('id', '?')}: bad field: {exc!r}") from exc

    def newer_than(self, other: Estimate | None) -> bool:
        """Whether this result should replace ``other`` in a store."""
        if other is None or self.id > other.id:
            return True
        return self.id == other.id and other.partial and not self.partial

    def bad_points(self) -> dict[str, float]:
        """Point name -> normalised residual of the measurements found bad."""
        return {
            str(b["point"]): float(b.get("normalised_residual") or 0.0)
            for b in self.bad_data
            if b.get("point")
        }

    def summary(self, now: float | None = None) -> str:
        """One line for the operator: when, whether it converged, the chi-squared test, bad data."""
        now = time.time() if now is None else now
        age = max(0.0, now - self.time)
        head = f"estimate #{self.id} at {format_time(self.time)} ({self.trigger}, {age:.0f} s ago)"
        if self.error:
            return f"{head}: {self.error}"
        parts = [
            f"{'converged' if self.converged else 'NOT converged'} in {self.iterations} "
            f"iterations, {self.elapsed_ms:.0f} ms"
        ]
        value, threshold = _float(self.chi2.get("value")), _float(self.chi2.get("threshold"))
        if value is not None and threshold is not None:
            passed = "passed" if self.chi2.get("passed") else "FAILED"
            parts.append(f"chi2 {value:.1f} / {threshold:.1f} {passed}")
        if self.buses:
            vm = [b.vm_pu for b in self.buses.values()]
            parts.append(f"V {min(vm):.3f}..{max(vm):.3f} pu")
        loadings = [b.loading_percent for b in self.branches.values() if b.loading_percent]
        if loadings:
            parts.append(f"max loading {max(loadings):.0f} %")
        if self.bad_data:
            parts.append(f"{len(self.bad_data)} bad data")
        if self.excluded:
            parts.append(f"{len(self.excluded)} excluded")
        if self.unobservable:
            parts.append(f"{len(self.unobservable)} unobservable islands")
        return f"{head}: " + "; ".join(parts)


@dataclass(frozen=True, slots=True)
class PlanStep:
    index: int
    element: str
    point: str | None
    action: str
    value: float | None
    state: str
    message: str
    #: why the plan takes this step (the server may say)
    reason: str = ""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PlanStep:
        return cls(
            int(d["index"]),
            str(d["element"]),
            d.get("point"),
            str(d["action"]),
            _float(d.get("value")),
            str(d.get("state") or "pending"),
            str(d.get("message") or ""),
            str(d.get("reason") or ""),
        )

    def describe(self) -> str:
        """``open SW3``, ``set TR1 tap = 2``."""
        value = "" if self.value is None else f" = {self.value:g}"
        return f"{self.action} {self.element}{value}"


@dataclass(frozen=True, slots=True)
class Figure:
    """A quantity before and after a plan (from its details)."""

    name: str
    unit: str
    before: float
    after: float

    @property
    def change(self) -> float:
        return self.after - self.before

    @property
    def change_percent(self) -> float | None:
        return None if self.before == 0 else 100.0 * self.change / abs(self.before)


def _label(key: str) -> tuple[str, str]:
    """``loss_kw`` -> (``loss``, ``kW``): a detail key as words and its unit."""
    words = key.split("_")
    unit = _UNITS.get(words[-1], "") if len(words) > 1 else ""
    if unit:
        words = words[:-1]
    return " ".join(words), unit


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _flat(value: Any) -> bool:
    """A detail worth a line: a scalar, a list of scalars, or a mapping of those."""
    if isinstance(value, Mapping):
        return all(_scalar(v) or _flat_list(v) for v in value.values())
    return _scalar(value) or _flat_list(value)


def _flat_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(_scalar(v) for v in value)


def _text(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, Mapping):
        text = ", ".join(f"{k}: {_text(v)}" for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        text = ", ".join(_text(v) for v in value) or "-"
    else:
        text = str(value)
    return text if len(text) <= _FACT_CHARS else text[: _FACT_CHARS - 3] + "..."


@dataclass(frozen=True)
class Plan:
    """One plan (see ``notes/adms_api.md``)."""

    id: str
    app: str
    state: str
    mode: str
    created: float
    updated: float
    title: str
    summary: str
    details: dict[str, Any]
    steps: tuple[PlanStep, ...]
    approved_by: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Plan:
        """Read a plan; ValueError naming the plan and the field when malformed."""
        try:
            return cls(
                id=str(d["id"]),
                app=str(d["app"]),
                state=str(d["state"]),
                mode=str(d.get("mode") or "advisory"),
                created=float(d.get("created") or 0.0),
                updated=float(d.get("updated") or d.get("created") or 0.0),
                title=str(d.get("title") or ""),
                summary=str(d.get("summary") or ""),
                details=dict(d.get("details") or {}),
                steps=tuple(PlanStep.from_json(s) for s in d.get("steps") or ()),
                approved_by=d.get("approved_by"),
                raw=dict(d),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"plan {d.get('id', '?')}: bad field: {exc!r}") from exc

    # ---------------------------------------------------------------- state
    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def running_step(self) -> PlanStep | None:
        """The step being executed now, if any."""
        return next((s for s in self.steps if s.state == "executing"), None)

    @property
    def next_step(self) -> PlanStep | None:
        """The first step still pending."""
        return next((s for s in self.steps if s.state == "pending"), None)

    @property
    def failed_step(self) -> PlanStep | None:
        return next((s for s in self.steps if s.state == "failed"), None)

    @property
    def progress(self) -> tuple[int, int]:
        """(steps finished: done or skipped, steps in all)."""
        finished = sum(1 for s in self.steps if s.state in ("done", "skipped"))
        return finished, len(self.steps)

    def can_approve(self) -> bool:
        """Approve = execute every remaining step (also after steps taken one by one)."""
        return self.can_step()

    def can_step(self) -> bool:
        """Execute the next step: open, a step pending, none running."""
        return self.open and self.next_step is not None and self.running_step is None

    def can_reject(self) -> bool:
        """Close without executing (the rest): open and no step running."""
        return self.open and self.running_step is None

    # -------------------------------------------------------------- details
    def figures(self) -> list[Figure]:
        """Every ``<name>_before``/``<name>_after`` pair of numbers in the details.

        A pair of mappings (``feeder_loading_before``/``_after``) gives one
        figure per key they share, named ``<name> <key>``.
        """
        found: list[Figure] = []
        for key, before in self.details.items():
            if not key.endswith("_before"):
                continue
            stem = key[: -len("_before")]
            after = self.details.get(f"{stem}_after")
            name, unit = _label(stem)
            b, a = _float(before), _float(after)
            if b is not None and a is not None:
                found.append(Figure(name, unit, b, a))
            elif isinstance(before, Mapping) and isinstance(after, Mapping):
                for sub, value in before.items():
                    b, a = _float(value), _float(after.get(sub))
                    if b is not None and a is not None:
                        found.append(Figure(f"{name} {sub}", unit, b, a))
        return found

    def facts(self) -> list[tuple[str, str]]:
        """The other details worth a line each, as (label, text).

        Scalars, lists of scalars and mappings of those; a before/after pair
        of lists as one line ``before -> after``. Nested structures (a
        study's full result) are left to :attr:`raw`.
        """
        details = self.details
        out = []
        for key, value in details.items():
            stem = key.removesuffix("_before")
            has_after = stem != key and f"{stem}_after" in details
            if has_after and _flat_list(value) and _flat_list(details[f"{stem}_after"]):
                out.append(
                    (_label(stem)[0], f"{_text(value)} -> {_text(details[f'{stem}_after'])}")
                )
                continue
            paired = has_after or (
                key.endswith("_after") and f"{key.removesuffix('_after')}_before" in details
            )
            if paired or value is None or value == [] or value == {} or not _flat(value):
                continue
            name, unit = _label(key)
            out.append((f"{name} ({unit})" if unit else name, _text(value)))
        return out

    def describe_state(self) -> str:
        """``executing 2/5``, ``done 5/5``, ``failed at step 3: <message>``."""
        done, total = self.progress
        failed = self.failed_step
        if failed is not None:
            return f"{self.state} at step {failed.index}: {failed.message or 'failed'}"
        return f"{self.state} {done}/{total}" if total else self.state


class AdmsStore:
    """The latest estimate and the plans; see the module docstring."""

    def __init__(self) -> None:
        self.estimate: Estimate | None = None
        self.plans: dict[str, Plan] = {}
        self.estimate_changed: Event[Estimate | None] = Event()
        self.plans_changed: Event[frozenset[str]] = Event()

    def ordered(self) -> list[Plan]:
        """Open plans first, then closed ones; newest first within each."""
        return sorted(self.plans.values(), key=lambda p: (not p.open, -p.created, p.id))

    def reset(self, view: Mapping[str, Any] | None) -> None:
        """Take the push snapshot's ``adms`` (``{"estimate", "plans"}``; None: no ADMS)."""
        view = view or {}
        estimate = view.get("estimate")
        new = Estimate.from_json(estimate) if estimate else None
        held = self.estimate
        if new is not None and held is not None and new.id == held.id and not held.partial:
            new = held  # the same result, held in full
        # taken as it is otherwise: a restarted server counts estimates from 1 again
        changed_estimate = new is not held
        self.estimate = new
        # the snapshot lists the open plans only: the ones that closed meanwhile come
        # with the plan list (GET /api/adms/plans) asked for on every connection
        changed = self._merge([Plan.from_json(p) for p in view.get("plans") or ()])
        if changed_estimate:
            self.estimate_changed.emit(self.estimate)
        if changed:
            self.plans_changed.emit(changed)

    def apply(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Apply a changes batch's ``adms`` items (``{"estimate": ...}`` or ``{"plan": ...}``)."""
        estimate: Estimate | None = None
        plans: list[Plan] = []
        for item in items:
            if item.get("estimate") is not None:
                e = Estimate.from_json(item["estimate"])
                if e.newer_than(estimate):
                    estimate = e
            if item.get("plan") is not None:
                plans.append(Plan.from_json(item["plan"]))
        changed = self._merge(plans)
        if estimate is not None:
            self._set_estimate(estimate)
        if changed:
            self.plans_changed.emit(changed)

    def set_estimate(self, result: Mapping[str, Any]) -> Estimate | None:
        """A result from ``GET``/``POST /api/adms/estimate``; the estimate held afterwards."""
        self._set_estimate(Estimate.from_json(result))
        return self.estimate

    def set_plan(self, plan: Mapping[str, Any]) -> Plan:
        """A plan from a REST reply; the plan held afterwards (a newer one may be held)."""
        p = Plan.from_json(plan)
        changed = self._merge([p])
        if changed:
            self.plans_changed.emit(changed)
        return self.plans[p.id]

    def set_plans(self, plans: Iterable[Mapping[str, Any]]) -> None:
        """The list of ``GET /api/adms/plans``: merged by id (newest state wins)."""
        changed = self._merge([Plan.from_json(p) for p in plans])
        if changed:
            self.plans_changed.emit(changed)

    def _set_estimate(self, estimate: Estimate) -> None:
        if estimate.newer_than(self.estimate):
            self.estimate = estimate
            self.estimate_changed.emit(estimate)

    def _merge(self, plans: Iterable[Plan]) -> frozenset[str]:
        changed: set[str] = set()
        for p in plans:
            held = self.plans.get(p.id)
            if held is None or (p.updated >= held.updated and p != held):
                self.plans[p.id] = p
                changed.add(p.id)
        return frozenset(changed)
