"""The estimation problem: bound measurements as arrays, rows, constraints, Gauss-Newton.

Contract:
- :class:`Bound` holds the usable measurements with where each lands in the
  grid, as parallel arrays (quantity code, bus, branch, end, value, sigma),
  so observability input, usability and row building are vector operations.
- :func:`build` turns a :class:`Bound` and the set of buses to estimate into
  a :class:`Problem`: measurement rows (V, then P/Q, then squared I) in
  per unit, weights, zero-injection equality constraints at every estimated
  bus without injecting elements whose neighbours are all estimated, and the
  conversion of row values back to measurement units.
- :func:`gauss_newton` iterates from the given start to ``max |dx| < tol``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from adms.estimation.functions import CurrentRows, PowerRows, RowStack, StateMap, VoltageRows
from adms.estimation.grid import Grid, Target
from adms.estimation.measurements import ElementKind, Measurement, Quantity
from adms.estimation.observability import ObservabilityInput
from adms.estimation.solvers import Solver

__all__ = [
    "Bound",
    "Problem",
    "Solution",
    "build",
    "gauss_newton",
    "interior",
    "observability_input",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

V, P, Q, I = 0, 1, 2, 3  # noqa: E741 - quantity codes
_CODE = {Quantity.V: V, Quantity.P: P, Quantity.Q: Q, Quantity.I: I}


@dataclass
class Bound:
    """Measurements bound to grid buses/branches, as parallel arrays."""

    measurements: list[Measurement]
    quantity: npt.NDArray[np.int8]
    bus: IntArray
    branch: IntArray
    at_from: BoolArray
    value: FloatArray
    sigma: FloatArray
    consumption: BoolArray
    pseudo: BoolArray

    @classmethod
    def of(cls, pairs: Sequence[tuple[Measurement, Target]]) -> Bound:
        """From (measurement, target) pairs."""
        ms = [m for m, _ in pairs]
        return cls(
            measurements=ms,
            quantity=np.array([_CODE[t.quantity] for _, t in pairs], dtype=np.int8),
            bus=np.array([t.bus for _, t in pairs], dtype=np.int64),
            branch=np.array([t.branch for _, t in pairs], dtype=np.int64),
            at_from=np.array([t.at_from for _, t in pairs], dtype=bool),
            value=np.array([m.value for m in ms], dtype=float),
            sigma=np.array([m.std_dev for m in ms], dtype=float),
            consumption=np.array([m.kind is ElementKind.BUS for m in ms], dtype=bool),
            pseudo=np.array([m.pseudo for m in ms], dtype=bool),
        )

    def __len__(self) -> int:
        return len(self.measurements)

    def take(self, index: IntArray) -> Bound:
        """The measurements at ``index``, in that order."""
        return Bound(
            measurements=[self.measurements[k] for k in index.tolist()],
            quantity=self.quantity[index],
            bus=self.bus[index],
            branch=self.branch[index],
            at_from=self.at_from[index],
            value=self.value[index],
            sigma=self.sigma[index],
            consumption=self.consumption[index],
            pseudo=self.pseudo[index],
        )

    @property
    def is_flow(self) -> BoolArray:
        """Branch quantities."""
        return self.branch >= 0

    def injections(self, n_bus: int, code: int) -> BoolArray:
        """Buses with a (pseudo-)measured injection of quantity ``code``."""
        flags = np.zeros(n_bus, dtype=bool)
        flags[self.bus[(self.quantity == code) & ~self.is_flow]] = True
        return flags


def observability_input(grid: Grid, bound: Bound) -> ObservabilityInput:
    """What ``bound`` tells the observability analysis (zero injections included)."""
    flow = bound.is_flow
    p_flow = np.zeros(grid.n_branch, dtype=bool)
    q_flow = np.zeros(grid.n_branch, dtype=bool)
    p_flow[bound.branch[flow & (bound.quantity == P)]] = True
    q_flow[bound.branch[flow & (bound.quantity == Q)]] = True
    voltage = np.zeros(grid.n_bus, dtype=bool)
    voltage[bound.bus[bound.quantity == V]] = True
    return ObservabilityInput(
        p_injection=bound.injections(grid.n_bus, P) | grid.zero_injection,
        q_injection=bound.injections(grid.n_bus, Q) | grid.zero_injection,
        p_flow=p_flow,
        q_flow=q_flow,
        voltage=voltage,
    )


def interior(grid: Grid, estimated: BoolArray) -> BoolArray:
    """Estimated buses whose neighbours are all estimated (their injection rows are usable)."""
    outside = ~estimated
    touches = np.zeros(grid.n_bus, dtype=bool)
    touches[grid.f_bus[outside[grid.t_bus]]] = True
    touches[grid.t_bus[outside[grid.f_bus]]] = True
    return estimated & ~touches


def usable(grid: Grid, bound: Bound, estimated: BoolArray) -> BoolArray:
    """Measurements whose function involves estimated buses only."""
    flow = bound.is_flow
    branch = np.where(flow, bound.branch, 0)
    flow_ok = (
        estimated[grid.f_bus[branch]] & estimated[grid.t_bus[branch]] if grid.n_branch else flow
    )
    bus_ok = np.where(
        bound.quantity == V, estimated[bound.bus], interior(grid, estimated)[bound.bus]
    )
    return np.where(flow, flow_ok, bus_ok)


@dataclass
class Problem:
    """Rows, weights, state map and constraints of one estimation."""

    bound: Bound
    stack: RowStack
    constraints: RowStack
    z: FloatArray
    w: FloatArray
    state: StateMap
    estimated: BoolArray
    n_constraints: int
    #: per row: factor from the row's unit (rooted for currents) to the measurement's
    to_unit: FloatArray
    squared: BoolArray

    def in_units(self, h: FloatArray) -> FloatArray:
        """Row values ``h`` in the measurements' units and signs."""
        return np.where(self.squared, np.sqrt(np.maximum(h, 0.0)), h) * self.to_unit


def _rows(grid: Grid, bound: Bound) -> sp.csr_matrix:
    """Admittance rows for ``bound`` (sorted: injections, from-end flows, to-end flows)."""
    flow = bound.is_flow
    parts = [
        grid.ybus[bound.bus[~flow]],
        grid.yf[bound.branch[flow & bound.at_from]],
        grid.yt[bound.branch[flow & ~bound.at_from]],
    ]
    return sp.csr_matrix(sp.vstack([p for p in parts if p.shape[0]], format="csr"))


def build(grid: Grid, bound: Bound, estimated: BoolArray) -> Problem:
    """The problem over the ``estimated`` buses; ``bound`` must be usable there."""
    state = StateMap.build(estimated, grid.ref_bus[estimated[grid.ref_bus]])
    q = bound.quantity
    flow = bound.is_flow
    rank = flow.astype(np.int64) + (flow & ~bound.at_from)  # injection, from end, to end
    volt = np.flatnonzero(q == V)
    power = np.flatnonzero((q == P) | (q == Q))
    power = power[np.argsort(rank[power], kind="stable")]
    current = np.flatnonzero(q == I)
    current = current[np.argsort(rank[current], kind="stable")]
    ordered = bound.take(np.concatenate([volt, power, current]))

    blocks: list[VoltageRows | PowerRows | CurrentRows] = []
    nv, npow = len(volt), len(power)
    if nv:
        blocks.append(VoltageRows(ordered.bus[:nv]))
    if npow:
        part = ordered.take(np.arange(nv, nv + npow))
        blocks.append(PowerRows(_rows(grid, part), part.bus, part.quantity == Q))
    if len(current):
        blocks.append(CurrentRows(_rows(grid, ordered.take(np.arange(nv + npow, len(ordered))))))

    zero = np.flatnonzero(grid.zero_injection & interior(grid, estimated))
    cblocks: list[VoltageRows | PowerRows | CurrentRows] = []
    if len(zero):
        both = np.concatenate([zero, zero])
        is_q = np.concatenate([np.zeros(len(zero), bool), np.ones(len(zero), bool)])
        cblocks.append(PowerRows(sp.csr_matrix(grid.ybus[both]), both, is_q))

    # Per unit: bus injections are measured as consumption, rows compute injection.
    sign = np.where(ordered.consumption, -1.0, 1.0)
    oq = ordered.quantity
    is_i = oq == I
    base = np.where(oq == V, 1.0, np.where(is_i, grid.base_ka(ordered.bus), grid.base_mva))
    to_unit = np.where((oq == P) | (oq == Q), sign * base, base)
    z = ordered.value / to_unit
    sigma = ordered.sigma / base
    # Squared current: Var(z^2) ~ 4 z^2 s^2 + 2 s^4 (exact for a Gaussian z).
    sigma = np.where(is_i, np.sqrt(4.0 * z * z * sigma * sigma + 2.0 * sigma**4), sigma)
    z = np.where(is_i, z * z, z)
    return Problem(
        bound=ordered,
        stack=RowStack(blocks, state),
        constraints=RowStack(cblocks, state),
        z=z,
        w=1.0 / (sigma * sigma),
        state=state,
        estimated=estimated,
        n_constraints=2 * len(zero),
        to_unit=to_unit,
        squared=is_i,
    )


@dataclass
class Solution:
    """Where Gauss-Newton ended."""

    vm: FloatArray
    va: FloatArray
    converged: bool
    iterations: int
    failure: str = ""


def gauss_newton(
    problem: Problem,
    vm: FloatArray,
    va: FloatArray,
    solver: Solver,
    tolerance: float,
    max_iterations: int,
) -> Solution:
    """Iterate the constrained WLS steps from ``(vm, va)``."""
    state = problem.state
    th_bus = np.flatnonzero(state.theta_col >= 0)
    th_col = state.theta_col[th_bus]
    vm_bus = np.flatnonzero(state.vm_col >= 0)
    vm_col = state.vm_col[vm_bus]
    vm = vm.copy()
    va = va.copy()
    if state.size == 0:
        return Solution(vm, va, False, 0, "nothing to estimate (no energised, observable bus)")
    for iteration in range(1, max_iterations + 1):
        v = vm * np.exp(1j * va)
        h, jac = problem.stack.evaluate(v)
        hc, cjac = problem.constraints.evaluate(v)
        try:
            dx = solver(jac, problem.z - h, problem.w, cjac, -hc)
        except RuntimeError:
            # SuperLU: exactly singular -- numerically unobservable at this point.
            return Solution(vm, va, False, iteration, "gain matrix singular")
        if not np.all(np.isfinite(dx)):
            return Solution(vm, va, False, iteration, "step not finite")
        va[th_bus] += dx[th_col]
        vm[vm_bus] += dx[vm_col]
        if np.max(np.abs(dx)) < tolerance:
            return Solution(vm, va, True, iteration)
        if np.any(vm[vm_bus] <= 0.0):
            return Solution(vm, va, False, iteration, "voltage magnitude went non-positive")
    return Solution(vm, va, False, max_iterations, f"no convergence in {max_iterations} iterations")
