"""``estimate``: weighted least squares state estimation with bad-data processing.

Contract:
- Input: a :class:`NetworkModel` in its live switching state and a sequence of
  :class:`Measurement` s. The model is not modified.
- Steps: measurements with ``quality_ok=False`` are excluded; the rest are
  bound to the energised network (measurements on de-energised elements are
  excluded with the reason); pseudo-measurements are added for unmetered
  loads and generators (``pseudo_loads``); buses with no injecting element
  become exact zero-injection constraints; observability is analysed and
  unobservable areas are reported (or refused, ``on_unobservable="raise"``);
  Gauss-Newton iterates in polar coordinates with the chosen sparse solver
  (:data:`adms.estimation.solvers.SOLVERS`); then, with ``bad_data``, while
  the chi-square test fails, the measurement with the largest normalised
  residual above ``rn_threshold`` is removed and the state re-estimated.
- Output: an :class:`EstimationResult` with per-bus and per-branch tables
  indexed by GIS id, the chi-square test, the bad data removed, the excluded
  measurements, the unobservable areas, iterations and timings; it
  serialises to JSON (:meth:`EstimationResult.to_json`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from adms.estimation.baddata import ChiSquare, chi_square, normalised_residuals
from adms.estimation.errors import UnobservableError
from adms.estimation.grid import Grid, Target, compile_grid
from adms.estimation.measurements import Measurement
from adms.estimation.observability import UnobservableArea, determine, explain
from adms.estimation.problem import (
    Bound,
    P,
    Q,
    build,
    gauss_newton,
    observability_input,
    usable,
)
from adms.estimation.pseudo import PseudoOptions, pseudo_for_grid
from adms.estimation.results import BadData, EstimationResult, Excluded, build_result
from adms.estimation.solvers import get_solver
from models.network import NetworkModel

__all__ = ["check_observability", "estimate", "pseudo_measurements"]

BoolArray = npt.NDArray[np.bool_]

_BAD_QUALITY = "quality flag not OK (invalid, comm-fail or old)"
_UNOBSERVABLE = "in an unobservable area"


def _bind_all(
    grid: Grid, measurements: Sequence[Measurement]
) -> tuple[list[tuple[Measurement, Target]], list[Excluded]]:
    """Measurements with where they land; the others with the reason they are left out."""
    bound: list[tuple[Measurement, Target]] = []
    excluded: list[Excluded] = []
    for m in measurements:
        if not m.quality_ok:
            excluded.append(Excluded(m, _BAD_QUALITY))
            continue
        target = grid.bind(m)
        if isinstance(target, str):
            excluded.append(Excluded(m, target))
        else:
            bound.append((m, target))
    return bound, excluded


def _with_pseudo(
    grid: Grid, bound: list[tuple[Measurement, Target]], options: PseudoOptions
) -> list[tuple[Measurement, Target]]:
    real = Bound.of(bound)
    pseudo = pseudo_for_grid(
        grid, real.injections(grid.n_bus, P), real.injections(grid.n_bus, Q), options
    )
    return [*bound, *((m, Target(m.quantity, bus)) for bus, m in pseudo)]


def pseudo_measurements(
    model: NetworkModel,
    measurements: Sequence[Measurement] = (),
    options: PseudoOptions | None = None,
) -> list[Measurement]:
    """The pseudo-measurements :func:`estimate` adds to these measurements.

    One bus ``p``/``q`` per energised bus with loads or generators and no
    real injection measurement (see :mod:`adms.estimation.pseudo`).
    """
    grid = compile_grid(model)
    bound, _ = _bind_all(grid, measurements)
    return [m for m, _ in _with_pseudo(grid, bound, options or PseudoOptions())[len(bound) :]]


def _observable_part(grid: Grid, bound: Bound) -> tuple[BoolArray, list[UnobservableArea]]:
    """Buses to estimate and the unobservable areas (explained).

    Leaving out an unobservable bus also leaves out the injections of its
    neighbours; that can take observability from others, so the analysis is
    repeated on what remains until it stands.
    """
    full = observability_input(grid, bound)
    estimated = np.ones(grid.n_bus, dtype=bool)
    info = full
    while True:
        p_ok, q_ok = determine(grid, info, estimated)
        observable = p_ok & q_ok
        if np.array_equal(observable, estimated):
            break
        estimated = observable
        info = observability_input(grid, bound.take(np.flatnonzero(usable(grid, bound, estimated))))
    return estimated, explain(grid, full, estimated)


def check_observability(
    model: NetworkModel,
    measurements: Sequence[Measurement],
    *,
    pseudo_loads: bool = True,
    pseudo: PseudoOptions | None = None,
) -> list[UnobservableArea]:
    """The unobservable areas :func:`estimate` would report, without estimating.

    Empty when every energised bus is observable. Raises
    :class:`MeasurementError` as :func:`estimate` does.
    """
    grid = compile_grid(model)
    real, _ = _bind_all(grid, measurements)
    pairs = _with_pseudo(grid, real, pseudo or PseudoOptions()) if pseudo_loads else real
    return _observable_part(grid, Bound.of(pairs))[1]


def estimate(
    model: NetworkModel,
    measurements: Sequence[Measurement],
    *,
    pseudo_loads: bool = True,
    pseudo: PseudoOptions | None = None,
    bad_data: bool = True,
    confidence: float = 0.99,
    rn_threshold: float = 3.0,
    max_bad_data: int = 5,
    solver: str = "normal",
    tolerance: float = 1e-6,
    max_iterations: int = 20,
    on_unobservable: Literal["report", "raise"] = "report",
) -> EstimationResult:
    """Estimate the state of ``model`` from ``measurements`` (see the module contract).

    ``pseudo`` sets how pseudo-measurements are derived (profiles, sigma);
    ``confidence`` is the chi-square test level; ``rn_threshold`` the
    normalised residual above which a measurement is named bad; at most
    ``max_bad_data`` are removed. ``solver`` names an entry of
    :data:`adms.estimation.solvers.SOLVERS`.

    Raises :class:`MeasurementError` for a measurement that does not fit the
    model (unknown element, wrong kind), :class:`UnobservableError` when
    ``on_unobservable="raise"`` and part of the energised network is
    unobservable, :class:`UnknownSolverError` for an unknown ``solver``.
    """
    started = time.perf_counter()
    step = get_solver(solver)
    grid = compile_grid(model)
    real, excluded = _bind_all(grid, measurements)
    options = pseudo or PseudoOptions()

    def measured(real: list[tuple[Measurement, Target]]) -> Bound:
        # Pseudo-measurements fill in wherever no real injection is (still) measured.
        return Bound.of(_with_pseudo(grid, real, options) if pseudo_loads else real)

    bound = measured(real)
    timings = {"compile_ms": (time.perf_counter() - started) * 1e3}

    def add_time(key: str, since: float) -> float:
        now = time.perf_counter()
        timings[key] = timings.get(key, 0.0) + (now - since) * 1e3
        return now

    vm0 = np.ones(grid.n_bus)
    va0 = grid.va_init_rad
    bad: list[BadData] = []
    iterations = 0
    chi: ChiSquare | None = None
    message = ""
    while True:
        t0 = time.perf_counter()
        estimated, areas = _observable_part(grid, bound)
        if areas and on_unobservable == "raise":
            raise UnobservableError(areas)
        t1 = add_time("observability_ms", t0)
        ok = usable(grid, bound, estimated)
        problem = build(grid, bound.take(np.flatnonzero(ok)), estimated)
        t1 = add_time("rows_ms", t1)
        # Every round starts afresh: a state warped by a bad value can sit in the
        # mirror basin of a current-magnitude measurement and stay there.
        solution = gauss_newton(problem, vm0, va0, step, tolerance, max_iterations)
        t2 = add_time("solve_ms", t1)
        iterations += solution.iterations
        vm, va = solution.vm, solution.va
        if not solution.converged:
            message = solution.failure
            chi = None
            break
        v = vm * np.exp(1j * va)
        h, jac = problem.stack.evaluate(v)
        r = problem.z - h
        chi = chi_square(r, problem.w, problem.state.size, problem.n_constraints, confidence)
        if not bad_data or chi.passed is not False:
            break
        if len(bad) >= max_bad_data:
            message = (
                f"chi-square test still failed after removing {len(bad)} measurement(s): "
                "suspect the topology (switch states) or the pseudo-measurements"
            )
            break
        candidates = np.flatnonzero(~problem.bound.pseudo)
        _, cjac = problem.constraints.evaluate(v)
        rn = normalised_residuals(jac, r, problem.w, cjac, candidates)
        add_time("bad_data_ms", t2)
        if not np.any(rn > rn_threshold):
            message = (
                "chi-square test failed but no measurement has a normalised residual above "
                f"{rn_threshold:g}: suspect the pseudo-measurements or the topology"
            )
            break
        worst = int(candidates[int(np.nanargmax(rn))])
        culprit = problem.bound.measurements[worst]
        bad.append(
            BadData(
                culprit,
                float(np.nanmax(rn)),
                float(problem.in_units(h[worst : worst + 1])[0]),
                chi.statistic,
            )
        )
        real = [(m, t) for m, t in real if m is not culprit]
        bound = measured(real)

    excluded.extend(
        Excluded(m, _UNOBSERVABLE)
        for m, keep in zip(bound.measurements, ok, strict=True)
        if not keep
    )
    t3 = time.perf_counter()
    result = build_result(
        grid,
        problem,
        vm,
        va,
        converged=solution.converged,
        iterations=iterations,
        chi=chi,
        bad=bad,
        excluded=excluded,
        areas=areas,
        message=message,
    )
    used = problem.bound.pseudo
    result.counts = {
        "buses": len(model.net.bus),
        "grid_buses": grid.n_bus,
        "measurements": int((~used).sum()),
        "pseudo_measurements": int(used.sum()),
        "zero_injection_constraints": problem.n_constraints,
        "states": problem.state.size,
    }
    add_time("results_ms", t3)
    result.timings_ms = timings
    result.solve_time_ms = (time.perf_counter() - started) * 1e3
    return result
