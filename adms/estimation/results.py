"""What :func:`adms.estimation.estimate` returns, and how it is assembled.

Contract: :class:`EstimationResult` holds per-bus and per-branch tables
indexed by GIS id (pandapower's result names and units), the chi-square
test, the bad data removed, the measurements excluded and why, the
unobservable areas, iterations and timings. ``to_dict``/``to_json`` give plain
data (NaN as null) for the server API and study archives.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from adms.estimation.baddata import ChiSquare
from adms.estimation.grid import Grid
from adms.estimation.measurements import Measurement
from adms.estimation.observability import UnobservableArea
from adms.estimation.problem import Problem

__all__ = ["BadData", "EstimationResult", "Excluded", "build_result", "plain"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class BadData:
    """A measurement identified as bad and removed, with the evidence."""

    measurement: Measurement
    normalised_residual: float
    estimate: float
    chi2_statistic: float

    def to_dict(self) -> dict[str, object]:
        """Plain-data form."""
        return {
            "measurement": self.measurement.to_dict(),
            "label": self.measurement.label,
            "normalised_residual": self.normalised_residual,
            "estimate": self.estimate,
            "chi2_statistic": self.chi2_statistic,
        }


@dataclass(frozen=True)
class Excluded:
    """A measurement left out before estimation, and why."""

    measurement: Measurement
    reason: str

    def to_dict(self) -> dict[str, object]:
        """Plain-data form."""
        return {
            "measurement": self.measurement.to_dict(),
            "label": self.measurement.label,
            "reason": self.reason,
        }


@dataclass
class EstimationResult:
    """What :func:`estimate` found.

    Tables are indexed by GIS id: ``bus`` (``vm_pu``, ``va_degree``,
    ``status``: estimated / unobservable / deenergised), ``line``
    (``p_from_mw``, ``q_from_mvar``, ``p_to_mw``, ``q_to_mvar``,
    ``i_from_ka``, ``i_to_ka``, ``loading_percent``, ``status``) and
    ``trafo`` (``p_hv_mw``... ``i_lv_ka``, ``loading_percent``, ``status``).
    Unobservable values are NaN; de-energised branches carry zero flow.
    ``measurements`` lists every measurement used in the final estimate
    (pseudo ones included) with its estimate and residual. ``chi2`` is None
    when the estimate did not converge. ``iterations`` counts Gauss-Newton
    iterations over all bad-data rounds; ``solve_time_ms`` is the wall time
    of the whole call, ``timings_ms`` its phases; ``counts`` the sizes
    (measurements, pseudo-measurements, constraints, states). ``message``
    summarises the outcome in one line.
    """

    converged: bool
    iterations: int
    solve_time_ms: float
    bus: pd.DataFrame
    line: pd.DataFrame
    trafo: pd.DataFrame
    chi2: ChiSquare | None
    bad_data: list[BadData]
    excluded: list[Excluded]
    unobservable: list[UnobservableArea]
    deenergised_buses: list[str]
    measurements: pd.DataFrame
    message: str
    counts: dict[str, int] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (NaN as None), ready for ``json.dumps``."""
        return plain(
            {
                "converged": self.converged,
                "iterations": self.iterations,
                "solve_time_ms": self.solve_time_ms,
                "message": self.message,
                "chi2": self.chi2.to_dict() if self.chi2 else None,
                "bad_data": [b.to_dict() for b in self.bad_data],
                "excluded": [e.to_dict() for e in self.excluded],
                "unobservable": [a.to_dict() for a in self.unobservable],
                "deenergised_buses": list(self.deenergised_buses),
                "counts": dict(self.counts),
                "timings_ms": dict(self.timings_ms),
                "bus": _table(self.bus),
                "line": _table(self.line),
                "trafo": _table(self.trafo),
                "measurements": self.measurements.to_dict(orient="records"),
            }
        )

    def to_json(self, **kwargs: Any) -> str:
        """The result as JSON text (``kwargs`` go to ``json.dumps``)."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)


def _table(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {str(k): v for k, v in frame.to_dict(orient="index").items()}


def plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python ones and NaN/inf as None (for JSON)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_result(
    grid: Grid,
    problem: Problem,
    vm: FloatArray,
    va: FloatArray,
    *,
    converged: bool,
    iterations: int,
    chi: ChiSquare | None,
    bad: list[BadData],
    excluded: list[Excluded],
    areas: list[UnobservableArea],
    message: str,
) -> EstimationResult:
    """Assemble the result tables from the final state ``(vm, va)``.

    ``message`` (why it stopped, when there is more to say) follows the summary.
    """
    net = grid.model.net
    ok = problem.estimated & converged
    v = np.where(ok, vm * np.exp(1j * va), np.nan)

    pp_bus = net.bus.index.to_numpy(dtype=np.int64)
    g = grid.bus_lookup[pp_bus]
    alive = g >= 0
    # Index n_bus (one past the end) stands for "no grid bus": not estimated, NaN.
    g_safe = np.where(alive, g, grid.n_bus)
    bus_ok = alive & np.append(ok, False)[g_safe]
    v_bus = np.append(v, np.nan)[g_safe]
    status = np.where(~alive, "deenergised", np.where(bus_ok, "estimated", "unobservable"))
    bus = pd.DataFrame(
        {
            "vm_pu": np.where(bus_ok, np.abs(v_bus), np.nan),
            "va_degree": np.where(bus_ok, np.rad2deg(np.angle(v_bus)), np.nan),
            "status": status,
        },
        index=pd.Index(net.bus["gis_id"].astype(str).to_list(), name="gis_id"),
    )

    s_f = v[grid.f_bus] * np.conj(grid.yf @ np.nan_to_num(v)) * grid.base_mva
    s_t = v[grid.t_bus] * np.conj(grid.yt @ np.nan_to_num(v)) * grid.base_mva
    i_f = np.abs(s_f) / np.abs(v[grid.f_bus]) / (np.sqrt(3.0) * grid.base_kv[grid.f_bus])
    i_t = np.abs(s_t) / np.abs(v[grid.t_bus]) / (np.sqrt(3.0) * grid.base_kv[grid.t_bus])
    flows = _Flows(s_f, s_t, i_f, i_t, ok[grid.f_bus] & ok[grid.t_bus])
    line = _branch_table(net.line, grid.line_branch, flows, ("from", "to"), _line_loading)
    trafo = _branch_table(net.trafo, grid.trafo_branch, flows, ("hv", "lv"), _trafo_loading)

    if converged and problem.stack.count:
        h, _ = problem.stack.evaluate(vm * np.exp(1j * va))
        estimate_values = problem.in_units(h)
    else:
        estimate_values = np.full(problem.stack.count, np.nan)
    ms = problem.bound.measurements
    values = problem.bound.value
    measurements = pd.DataFrame(
        {
            "label": [m.label for m in ms],
            "kind": [m.kind.value for m in ms],
            "element": [m.element for m in ms],
            "quantity": [m.quantity.value for m in ms],
            "side": [m.side for m in ms],
            "value": values,
            "std_dev": problem.bound.sigma,
            "estimate": estimate_values,
            "residual": values - estimate_values,
            "pseudo": problem.bound.pseudo,
        }
    )
    deenergised = bus.index[bus["status"] == "deenergised"].to_list()
    summary = f"converged in {iterations} iterations" if converged else "not converged"
    if chi is not None and chi.passed is not None:
        summary += f"; chi-square {'passed' if chi.passed else 'failed'}"
    if bad:
        summary += f"; {len(bad)} bad measurement(s) removed"
    if areas:
        summary += f"; {len(areas)} unobservable area(s)"
    if message:
        summary += f": {message}"
    return EstimationResult(
        converged=converged,
        iterations=iterations,
        solve_time_ms=0.0,
        bus=bus,
        line=line,
        trafo=trafo,
        chi2=chi,
        bad_data=bad,
        excluded=excluded,
        unobservable=areas,
        deenergised_buses=deenergised,
        measurements=measurements,
        message=summary,
    )


@dataclass(frozen=True)
class _Flows:
    """Per grid branch: complex power (MVA) and current (kA) at both ends, and validity."""

    s_f: npt.NDArray[np.complex128]
    s_t: npt.NDArray[np.complex128]
    i_f: FloatArray
    i_t: FloatArray
    ok: BoolArray


def _line_loading(frame: pd.DataFrame, i_a: FloatArray, i_b: FloatArray) -> FloatArray:
    """Line loading as pandapower computes it: the larger end current over the derated rating."""
    rating = (frame["max_i_ka"] * frame["df"] * frame["parallel"]).to_numpy(float)
    return np.maximum(i_a, i_b) / rating * 100.0


def _trafo_loading(frame: pd.DataFrame, i_a: FloatArray, i_b: FloatArray) -> FloatArray:
    """Transformer loading as pandapower computes it: larger end current over rated current."""
    apparent = np.maximum(
        i_a * frame["vn_hv_kv"].to_numpy(float), i_b * frame["vn_lv_kv"].to_numpy(float)
    ) * np.sqrt(3.0)
    rating = (frame["sn_mva"] * frame["parallel"] * frame["df"]).to_numpy(float)
    return apparent / rating * 100.0


def _branch_table(
    frame: pd.DataFrame,
    branches: IntArray,
    flows: _Flows,
    sides: tuple[str, str],
    loading: Callable[[pd.DataFrame, FloatArray, FloatArray], FloatArray],
) -> pd.DataFrame:
    """One row per element: flows where estimated, NaN where unobservable, 0 where dead."""
    a, b = sides
    alive = branches >= 0
    k = np.where(alive, branches, 0)
    ok = alive & flows.ok[k] if len(flows.ok) else np.zeros(len(branches), bool)

    def pick(values: FloatArray) -> FloatArray:
        return np.where(alive, np.where(ok, values[k] if len(values) else 0.0, np.nan), 0.0)

    i_a = pick(flows.i_f)
    i_b = pick(flows.i_t)
    columns: dict[str, Any] = {
        f"p_{a}_mw": pick(flows.s_f.real),
        f"q_{a}_mvar": pick(flows.s_f.imag),
        f"p_{b}_mw": pick(flows.s_t.real),
        f"q_{b}_mvar": pick(flows.s_t.imag),
        f"i_{a}_ka": i_a,
        f"i_{b}_ka": i_b,
        "loading_percent": loading(frame, i_a, i_b) if len(frame) else np.zeros(0),
        "status": np.where(~alive, "deenergised", np.where(ok, "estimated", "unobservable")),
    }
    ids = frame["gis_id"].astype(str).to_list() if len(frame) else []
    return pd.DataFrame(columns, index=pd.Index(ids, name="gis_id"))
