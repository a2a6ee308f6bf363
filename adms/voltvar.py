"""Volt-VAR optimisation: tap changers, switched capacitors and DER reactive power.

Contract:
- Controls are read from the model as pandapower holds them: transformers
  with a tap changer (``tap_changer_type`` set, ``tap_pos``, ``tap_min``,
  ``tap_max``), shunts with steps (``step``, ``max_step``; capacitors have
  ``q_mvar`` < 0) and DER (``sgen``) reactive power between ``min_q_mvar``
  and ``max_q_mvar`` (or +-sqrt(sn_mva^2 - p_mw^2) without them).
- Device operation limits: each tap or capacitor step moved counts as one
  operation; ``operations_used`` (already used today) and ``max_operations``
  (per device id, defaults in :data:`DEFAULT_MAX_OPERATIONS`) bound how far a
  device may move from its present position.
- DER reactive power is searched on a grid of ``der_q_levels`` values:
  either one common fraction of every DER's range (``der_mode="common"``)
  or one variable per DER (``"individual"``).
- Objectives: ``"losses"`` (network losses) or ``"cvr"`` (conservation
  voltage reduction: the active power drawn from the supply points, i.e.
  ZIP-load demand plus losses less DER output), subject to the voltage band
  and branch loading of :class:`adms.powerflow.Limits`.
- Search: the whole discrete space is enumerated when it has at most
  ``exhaustive_limit`` settings (one admittance factorisation per tap
  combination, every capacitor/DER scenario solved as one batch), which
  gives the discrete optimum; otherwise discrete coordinate descent from
  the present settings (``method`` says which ran). Ties go to the setting
  with fewer operations. When no setting meets the limits the one with the
  smallest violation is returned with ``feasible`` False.
- The model is never changed (:func:`apply_settings` writes a result into a
  model when the caller wants it).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandapower as pp

from adms.errors import StudyInputError
from adms.powerflow import BatchResult, BranchAdmittance, FloatArray, GridSolver, Limits, ids_of
from models.network import NetworkModel

__all__ = [
    "DEFAULT_MAX_OPERATIONS",
    "OBJECTIVES",
    "Control",
    "VoltVarResult",
    "apply_settings",
    "find_controls",
    "optimise_voltvar",
]

OBJECTIVES = ("losses", "cvr")
#: operations per day a device may make, by control kind
DEFAULT_MAX_OPERATIONS: dict[str, int] = {"tap": 30, "capacitor": 6}
_COMMON_DER = "DER"


@dataclass(frozen=True)
class Control:
    """One discrete control variable: its candidate values and present value."""

    id: str
    kind: str
    values: tuple[float, ...]
    current: float
    operations_left: int | None

    def operations(self, value: float) -> int:
        """Operations needed to move to ``value`` (DER: none counted)."""
        return 0 if self.kind == "der" else round(abs(value - self.current))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "kind": self.kind,
            "values": list(self.values),
            # a DER's reactive power has no discrete present setting (NaN): null
            "current": None if math.isnan(self.current) else self.current,
            "operations_left": self.operations_left,
        }


@dataclass
class VoltVarResult:
    """Settings chosen and the figures before and after."""

    objective: str
    method: str
    controls: list[Control]
    settings: dict[str, float]
    changes: dict[str, tuple[float, float]]
    operations: dict[str, int]
    der_q_mvar: dict[str, float]
    loss_kw_before: float
    loss_kw_after: float
    demand_kw_before: float
    demand_kw_after: float
    source_kw_before: float
    source_kw_after: float
    vm_min_pu_before: float
    vm_min_pu_after: float
    vm_max_pu_before: float
    vm_max_pu_after: float
    feasible: bool
    violations: list[str]
    evaluations: int
    solve_s: float
    verification: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "objective": self.objective,
            "method": self.method,
            "controls": [c.to_dict() for c in self.controls],
            "settings": dict(self.settings),
            "changes": {k: list(v) for k, v in self.changes.items()},
            "operations": dict(self.operations),
            "der_q_mvar": {k: round(v, 6) for k, v in self.der_q_mvar.items()},
            "loss_kw_before": _r(self.loss_kw_before),
            "loss_kw_after": _r(self.loss_kw_after),
            "demand_kw_before": _r(self.demand_kw_before),
            "demand_kw_after": _r(self.demand_kw_after),
            "source_kw_before": _r(self.source_kw_before),
            "source_kw_after": _r(self.source_kw_after),
            "vm_min_pu_before": _r(self.vm_min_pu_before, 5),
            "vm_min_pu_after": _r(self.vm_min_pu_after, 5),
            "vm_max_pu_before": _r(self.vm_max_pu_before, 5),
            "vm_max_pu_after": _r(self.vm_max_pu_after, 5),
            "feasible": self.feasible,
            "violations": list(self.violations),
            "evaluations": self.evaluations,
            "solve_s": round(self.solve_s, 4),
            "verification": self.verification,
        }


def find_controls(
    model: NetworkModel,
    *,
    operations_used: Mapping[str, int] | None = None,
    max_operations: Mapping[str, int] | None = None,
    der_q_levels: int = 5,
    der_mode: str = "common",
) -> list[Control]:
    """The model's controls with the values each may take today (see the module doc)."""
    if der_mode not in ("common", "individual"):
        raise StudyInputError("der_mode is 'common' or 'individual'", field="der_mode")
    if der_q_levels < 1:
        raise StudyInputError("needs at least one level", field="der_q_levels")
    used = dict(operations_used or {})
    limits = dict(max_operations or {})
    net = model.net
    out: list[Control] = []

    def left(gid: str, kind: str) -> int:
        cap = limits.get(gid, DEFAULT_MAX_OPERATIONS[kind])
        return max(0, int(cap) - int(used.get(gid, 0)))

    trafo = net.trafo
    if len(trafo) and "tap_changer_type" in trafo.columns:
        for gid, (_, row) in zip(ids_of(net, "trafo"), trafo.iterrows(), strict=True):
            if not (isinstance(row.tap_changer_type, str) and bool(row.in_service)):
                continue
            if any(not np.isfinite(row[c]) for c in ("tap_pos", "tap_min", "tap_max")):
                continue
            pos, ops = int(row.tap_pos), left(gid, "tap")
            lo, hi = int(min(row.tap_min, row.tap_max)), int(max(row.tap_min, row.tap_max))
            values = tuple(float(p) for p in range(max(lo, pos - ops), min(hi, pos + ops) + 1))
            out.append(Control(gid, "tap", values, float(pos), ops))
    shunt = net.shunt
    if len(shunt) and "max_step" in shunt.columns:
        for gid, (_, row) in zip(ids_of(net, "shunt"), shunt.iterrows(), strict=True):
            if not bool(row.in_service) or not np.isfinite(row.max_step) or row.max_step < 1:
                continue
            step, ops = int(row.step), left(gid, "capacitor")
            values = tuple(
                float(s) for s in range(max(0, step - ops), min(int(row.max_step), step + ops) + 1)
            )
            out.append(Control(gid, "capacitor", values, float(step), ops))
    ranges = _der_ranges(model)
    if ranges:
        fractions = (
            tuple(float(f) for f in np.linspace(-1.0, 1.0, der_q_levels))
            if (der_q_levels > 1)
            else (0.0,)
        )
        if der_mode == "common":
            out.append(Control(_COMMON_DER, "der", fractions, math.nan, None))
        else:
            for gid in ranges:
                out.append(Control(gid, "der", fractions, math.nan, None))
    return out


def _der_ranges(model: NetworkModel) -> dict[str, tuple[float, float]]:
    """DER id -> (q_min, q_max) in Mvar, for DER whose reactive power can move."""
    net = model.net
    out: dict[str, tuple[float, float]] = {}
    for gid, (_, row) in zip(ids_of(net, "sgen"), net.sgen.iterrows(), strict=True):
        if not bool(row.in_service):
            continue
        lo = float(row.get("min_q_mvar", math.nan))
        hi = float(row.get("max_q_mvar", math.nan))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            sn = float(row.get("sn_mva", math.nan))
            p = float(row.p_mw) * float(row.scaling)
            if not np.isfinite(sn) or sn <= abs(p):
                continue
            hi = math.sqrt(sn * sn - p * p)
            lo = -hi
        if hi > lo:
            out[gid] = (lo, hi)
    return out


def _q_of_fraction(fraction: float, lo: float, hi: float) -> float:
    return fraction * hi if fraction >= 0 else -fraction * lo


class _Evaluator:
    """Batched power flows over settings; settings are tuples of control values."""

    def __init__(self, model: NetworkModel, solver: GridSolver, controls: list[Control]) -> None:
        self.model = model
        self.solver = solver
        self.controls = controls
        self.closed = solver.closed_mask()
        self.evaluations = 0
        net = model.net
        self.taps = [c for c in controls if c.kind == "tap"]
        self.caps = [c for c in controls if c.kind == "capacitor"]
        self.ders = [c for c in controls if c.kind == "der"]
        self.trafo_index = {
            gid: int(model.index_of("trafo", gid)) for gid in (c.id for c in self.taps)
        }
        self.trafo_branch = {gid: solver.branch_pos[gid] for gid in self.trafo_index}
        self.shunt_pos = {gid: ids_of(net, "shunt").index(gid) for gid in (c.id for c in self.caps)}
        self.der_range = _der_ranges(model)
        self.sgen_pos = {gid: k for k, gid in enumerate(ids_of(net, "sgen"))}
        self._tap_rows = self._tap_table()

    def _tap_table(self) -> dict[tuple[str, float], tuple[complex, complex, complex, complex]]:
        """Each transformer's branch admittances at each candidate position."""
        table: dict[tuple[str, float], tuple[complex, complex, complex, complex]] = {}
        depth = max((len(c.values) for c in self.taps), default=0)
        for k in range(depth):
            setting = {
                self.trafo_index[c.id]: int(c.values[min(k, len(c.values) - 1)]) for c in self.taps
            }
            y = self.solver.admittance_for_taps(setting)
            for c in self.taps:
                b = self.trafo_branch[c.id]
                value = c.values[min(k, len(c.values) - 1)]
                table[(c.id, value)] = (y.yff[b], y.yft[b], y.ytf[b], y.ytt[b])
        return table

    def admittance(self, taps: tuple[float, ...]) -> BranchAdmittance:
        y = self.solver.y
        yff, yft, ytf, ytt = y.yff.copy(), y.yft.copy(), y.ytf.copy(), y.ytt.copy()
        for c, value in zip(self.taps, taps, strict=True):
            b = self.trafo_branch[c.id]
            yff[b], yft[b], ytf[b], ytt[b] = self._tap_rows[(c.id, value)]
        return BranchAdmittance(yff, yft, ytf, ytt)

    def injections(self, rest: list[tuple[float, ...]]) -> tuple[FloatArray, FloatArray]:
        """Shunt steps (n_shunt, B) and DER q (n_sgen, B) for capacitor+DER settings."""
        s = self.solver
        width = len(rest)
        steps = np.repeat(s.shunt_step[:, None], width, axis=1)
        q = np.repeat(s.sgen_q_mvar[:, None], width, axis=1)
        ncap = len(self.caps)
        for j, values in enumerate(rest):
            for c, v in zip(self.caps, values[:ncap], strict=True):
                steps[self.shunt_pos[c.id], j] = v
            for c, frac in zip(self.ders, values[ncap:], strict=True):
                targets = list(self.der_range) if c.id == _COMMON_DER else [c.id]
                for gid in targets:
                    lo, hi = self.der_range[gid]
                    q[self.sgen_pos[gid], j] = _q_of_fraction(frac, lo, hi)
        return steps, q

    def batch(self, taps: tuple[float, ...], rest: list[tuple[float, ...]]) -> BatchResult:
        steps, q = self.injections(rest)
        self.evaluations += len(rest)
        return self.solver.solve_batch(
            self.closed, admittance=self.admittance(taps), shunt_step=steps, sgen_q_mvar=q
        )


def optimise_voltvar(
    model: NetworkModel,
    *,
    objective: str = "losses",
    limits: Limits | None = None,
    operations_used: Mapping[str, int] | None = None,
    max_operations: Mapping[str, int] | None = None,
    der_q_levels: int = 5,
    der_mode: str = "common",
    method: str = "auto",
    exhaustive_limit: int = 200_000,
    verify: bool = False,
    solver: GridSolver | None = None,
) -> VoltVarResult:
    """Best discrete settings for ``objective`` within limits (see the module doc).

    ``method`` is ``"auto"``, ``"exhaustive"`` or ``"coordinate"``. With
    ``verify`` the chosen settings are applied to a copy of the model and
    checked with pandapower's own power flow (``verification``).
    """
    if objective not in OBJECTIVES:
        raise StudyInputError(
            f"unknown objective (one of {', '.join(OBJECTIVES)})", field="objective"
        )
    if method not in ("auto", "exhaustive", "coordinate"):
        raise StudyInputError("method is 'auto', 'exhaustive' or 'coordinate'", field="method")
    t0 = time.perf_counter()
    lim = limits or Limits()
    solver = solver or GridSolver(model)
    controls = find_controls(
        model,
        operations_used=operations_used,
        max_operations=max_operations,
        der_q_levels=der_q_levels,
        der_mode=der_mode,
    )
    ev = _Evaluator(model, solver, controls)
    ordered = ev.taps + ev.caps + ev.ders
    size = math.prod(len(c.values) for c in ordered) if ordered else 1
    use_exhaustive = method == "exhaustive" or (method == "auto" and size <= exhaustive_limit)

    def score(result: BatchResult, settings: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
        value = result.loss_mw if objective == "losses" else result.source_p_mw
        pen = (
            np.clip(lim.vm_min_pu - result.vm_min_pu, 0, None)
            + np.clip(result.vm_max_pu - lim.vm_max_pu, 0, None)
            + np.clip(result.max_loading_percent - lim.max_loading_percent, 0, None) / 100.0
        )
        out: list[tuple[float, ...]] = []
        for j, setting in enumerate(settings):
            ops = sum(c.operations(v) for c, v in zip(ordered, setting, strict=True))
            ok = bool(result.converged[j]) and pen[j] <= 1e-9
            out.append(
                (0.0 if ok else 1.0, float(pen[j]) if not ok else 0.0, float(value[j]), float(ops))
            )
        return out

    ntap = len(ev.taps)
    present = tuple(c.current if c.kind != "der" else _nearest_fraction(c, ev) for c in ordered)
    best: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    if use_exhaustive:
        rest_space = list(itertools.product(*[c.values for c in ordered[ntap:]])) or [()]
        for taps in itertools.product(*[c.values for c in ev.taps]):
            settings = [tuple(taps) + r for r in rest_space]
            for key, setting in zip(
                score(ev.batch(tuple(taps), list(rest_space)), settings), settings, strict=True
            ):
                if best is None or key < best[0]:
                    best = (key, setting)
        method_used = "exhaustive"
    else:
        current = present
        current_key = score(ev.batch(current[:ntap], [current[ntap:]]), [current])[0]
        improved = True
        while improved:
            improved = False
            for i, c in enumerate(ordered):
                cands = [current[:i] + (v,) + current[i + 1 :] for v in c.values]
                if i < ntap:
                    keys = [score(ev.batch(s[:ntap], [s[ntap:]]), [s])[0] for s in cands]
                else:
                    keys = score(ev.batch(current[:ntap], [s[ntap:] for s in cands]), cands)
                k = min(range(len(keys)), key=keys.__getitem__)
                if keys[k] < current_key:
                    current, current_key, improved = cands[k], keys[k], True
        best = (current_key, current)
        method_used = "coordinate_descent"
    assert best is not None
    chosen = best[1]
    solve_s = time.perf_counter() - t0

    before = _single(ev, present, lim)
    after = _single(ev, chosen, lim)
    chosen_settings = {c.id: v for c, v in zip(ordered, chosen, strict=True)}
    changes = {
        c.id: (c.current, v)
        for c, v in zip(ordered, chosen, strict=True)
        if c.kind != "der" and v != c.current
    }
    steps, q = ev.injections([chosen[ntap:]])
    der_q = {gid: float(q[ev.sgen_pos[gid], 0]) for gid in ev.der_range}
    result = VoltVarResult(
        objective=objective,
        method=method_used,
        controls=controls,
        settings=chosen_settings,
        changes=changes,
        operations={
            c.id: c.operations(v) for c, v in zip(ordered, chosen, strict=True) if c.kind != "der"
        },
        der_q_mvar=der_q,
        loss_kw_before=before.loss_mw * 1e3,
        loss_kw_after=after.loss_mw * 1e3,
        demand_kw_before=before.demand_mw * 1e3,
        demand_kw_after=after.demand_mw * 1e3,
        source_kw_before=before.source_p_mw * 1e3,
        source_kw_after=after.source_p_mw * 1e3,
        vm_min_pu_before=before.vm_min_pu,
        vm_min_pu_after=after.vm_min_pu,
        vm_max_pu_before=before.vm_max_pu,
        vm_max_pu_after=after.vm_max_pu,
        feasible=after.limits_ok,
        violations=after.violations(lim),
        evaluations=ev.evaluations,
        solve_s=solve_s,
    )
    if verify:
        result.verification = _verify(model, result)
    return result


def _nearest_fraction(c: Control, ev: _Evaluator) -> float:
    """The grid fraction closest to the DER's present reactive power."""
    targets = list(ev.der_range) if c.id == _COMMON_DER else [c.id]
    fracs = []
    for gid in targets:
        lo, hi = ev.der_range[gid]
        q = float(ev.solver.sgen_q_mvar[ev.sgen_pos[gid]])
        fracs.append(q / hi if q >= 0 else -q / lo)
    mean = float(np.mean(fracs)) if fracs else 0.0
    return min(c.values, key=lambda v: abs(v - mean))


def _single(ev: _Evaluator, setting: tuple[float, ...], lim: Limits) -> Any:
    ntap = len(ev.taps)
    steps, q = ev.injections([setting[ntap:]])
    return ev.solver.solve(
        ev.closed,
        limits=lim,
        admittance=ev.admittance(setting[:ntap]),
        shunt_step=steps[:, 0],
        sgen_q_mvar=q[:, 0],
    )


def apply_settings(model: NetworkModel, result: VoltVarResult) -> None:
    """Write a result's tap positions, capacitor steps and DER reactive power into ``model``."""
    net = model.net
    for c in result.controls:
        value = result.settings[c.id]
        if c.kind == "tap":
            net.trafo.at[model.index_of("trafo", c.id), "tap_pos"] = value
        elif c.kind == "capacitor":
            net.shunt.at[model.index_of("shunt", c.id), "step"] = int(value)
    for gid, q in result.der_q_mvar.items():
        index = model.index_of("sgen", gid)
        net.sgen.at[index, "q_mvar"] = q / float(net.sgen.at[index, "scaling"] or 1.0)


def _verify(model: NetworkModel, result: VoltVarResult) -> dict[str, float]:
    """Pandapower's figures for the chosen settings (on a copy)."""
    work = model.copy()
    apply_settings(work, result)
    pp.runpp(work.net, calculate_voltage_angles=False, numba=False)
    net = work.net
    loss = float(net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum())
    return {
        "loss_kw": round(loss * 1e3, 3),
        "vm_min_pu": round(float(net.res_bus.vm_pu.min()), 5),
        "vm_max_pu": round(float(net.res_bus.vm_pu.max()), 5),
        "source_kw": round(float(net.res_ext_grid.p_mw.sum()) * 1e3, 3),
    }


def _r(value: float, digits: int = 3) -> float | None:
    return round(float(value), digits) if math.isfinite(value) else None
