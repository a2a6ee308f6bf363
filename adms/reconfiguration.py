"""Feeder reconfiguration: which switches to open for minimum losses or balanced feeders.

Contract:
- :func:`reconfigure` chooses the open branches among the *switchable* ones
  (lines/transformers with a load-breaking switch that is not a feeder-head
  breaker, nor in ``fixed``) so that the network stays radial, every load
  stays supplied and, as far as possible, no branch is overloaded and every
  voltage stays within :class:`adms.powerflow.Limits`; it minimises losses
  (``objective="losses"``) or the highest feeder-head loading
  (``objective="balance"``, losses break ties).
- Limits: a configuration within every limit beats any that is not. When
  the present configuration already breaks a limit (Baran & Wu's feeder is
  below 0.95 pu in every radial configuration), the search first minimises
  the objective among configurations no worse than the present one (lowest
  voltage no lower, highest voltage and loading no higher), then descends
  from that optimum with every violation of the limits penalised; a
  configuration within the limits found so wins, else the no-worse optimum
  stays (``feasible`` false, ``violations`` against the limits).
- Method: two starting points, the present configuration and the
  sequential switch-opening configuration of Shirmohammadi & Hong (close
  every switch, open the branch carrying the least current in the resistive
  meshed flow, repeat until radial); from each, steepest-descent branch
  exchange (close an open branch, open a switchable branch of the loop it
  forms). Each step evaluates, with an exact AC power flow
  (:class:`adms.powerflow.GridSolver`), the few exchanges a loss-change
  estimate from the present flow ranks first (Civanlar et al.: the moved
  load as a constant current) and takes the best improvement; the best
  local optimum is then checked against every exchange, exactly, and the
  descent goes on if one improves. Optional iterated local search
  (``perturbations``) for large cases. ``solve_s`` times the search from the
  per-unit model; ``setup_s`` building that model (including pandapower's
  one-time compilation in a fresh process), 0 when ``solver`` is given.
- :func:`switching_sequence` turns a target configuration into
  close-before-open exchanges that never de-energise a customer; before each
  open the meshed state (tie closed) is checked by power flow against the
  limits (``loop_ok``), and each exchange is ordered to keep those checks
  passing where possible.
- The model is never changed; the result is a dataclass with ``to_dict()``.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adms.errors import StudyInputError
from adms.flisr import SwitchAction
from adms.powerflow import BoolArray, FlowResult, GridSolver, Limits
from adms.sections import LOAD_BREAKING, SectionGraph
from models.network import NetworkModel
from models.topology import TopologyProcessor

__all__ = [
    "OBJECTIVES",
    "Exchange",
    "ReconfigurationResult",
    "reconfigure",
    "switching_sequence",
]

OBJECTIVES = ("losses", "balance")
#: cost added per unit of limit violation (pu voltage, loading fraction): dominates losses
_PENALTY_MW = 1e3
#: exchanges tried exactly per descent step, the best estimated first (see _Search.moves)
_SCREENED = 4
_METHOD = (
    "branch exchange (AC power flow) screened by loss-change estimates and checked "
    "exhaustively, from the present and the sequential switch-opening configurations"
)


@dataclass
class Exchange:
    """One close-before-open step pair and the meshed-state check between them."""

    close: str
    open: str
    loop_vm_min_pu: float
    loop_max_loading_percent: float
    loop_ok: bool
    loss_kw_after: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "close": self.close,
            "open": self.open,
            "loop_vm_min_pu": _r(self.loop_vm_min_pu, 5),
            "loop_max_loading_percent": _r(self.loop_max_loading_percent, 2),
            "loop_ok": self.loop_ok,
            "loss_kw_after": _r(self.loss_kw_after, 3),
        }


@dataclass
class ReconfigurationResult:
    """A reconfiguration study: configurations before/after, figures and the sequence."""

    network: str
    objective: str
    method: str
    open_branches_before: list[str]
    open_branches_after: list[str]
    open_switches_before: list[str]
    open_switches_after: list[str]
    loss_kw_before: float
    loss_kw_after: float
    vm_min_pu_before: float
    vm_min_pu_after: float
    max_loading_percent_before: float
    max_loading_percent_after: float
    feeder_loading_before: dict[str, float]
    feeder_loading_after: dict[str, float]
    feasible: bool
    violations: list[str]
    evaluations: int
    solve_s: float
    exchanges: list[Exchange] = field(default_factory=list)
    sequence_s: float = 0.0
    setup_s: float = 0.0

    @property
    def steps(self) -> list[SwitchAction]:
        """The switching sequence as plan steps (close the tie, then open)."""
        out = []
        for ex in self.exchanges:
            out.append(
                SwitchAction(ex.close, "close", f"close-before-open: parallel, then open {ex.open}")
            )
            out.append(SwitchAction(ex.open, "open", f"complete the exchange with {ex.close}"))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "network": self.network,
            "objective": self.objective,
            "method": self.method,
            "open_branches_before": list(self.open_branches_before),
            "open_branches_after": list(self.open_branches_after),
            "open_switches_before": list(self.open_switches_before),
            "open_switches_after": list(self.open_switches_after),
            "loss_kw_before": _r(self.loss_kw_before, 3),
            "loss_kw_after": _r(self.loss_kw_after, 3),
            "loss_reduction_percent": _r(
                100.0 * (1 - self.loss_kw_after / self.loss_kw_before)
                if self.loss_kw_before
                else 0.0,
                2,
            ),
            "vm_min_pu_before": _r(self.vm_min_pu_before, 5),
            "vm_min_pu_after": _r(self.vm_min_pu_after, 5),
            "max_loading_percent_before": _r(self.max_loading_percent_before, 2),
            "max_loading_percent_after": _r(self.max_loading_percent_after, 2),
            "feeder_loading_before": {k: _r(v, 2) for k, v in self.feeder_loading_before.items()},
            "feeder_loading_after": {k: _r(v, 2) for k, v in self.feeder_loading_after.items()},
            "feasible": self.feasible,
            "violations": list(self.violations),
            "evaluations": self.evaluations,
            "solve_s": round(self.solve_s, 4),
            "exchanges": [e.to_dict() for e in self.exchanges],
            "steps": [s.to_dict() for s in self.steps],
            "sequence_s": round(self.sequence_s, 4),
            "setup_s": round(self.setup_s, 4),
        }


class _Search:
    """Configurations as sets of open switchable branches, with cached power flows."""

    def __init__(
        self,
        model: NetworkModel,
        solver: GridSolver,
        graph: SectionGraph,
        objective: str,
        limits: Limits,
        fixed: set[str],
    ) -> None:
        self.solver = solver
        self.limits = limits
        self.objective = objective
        states = graph.states()
        heads = set(TopologyProcessor(model.copy(), normal_state=True).feeder_heads.values())
        self.heads = heads
        self.base = solver.closed_mask(states)
        self.operator: dict[int, str] = {}
        for k, switches in enumerate(solver.branch_switches):
            if not solver.in_service[k]:
                continue
            usable = [
                s
                for s in switches
                if graph.switches[s].switch_type in LOAD_BREAKING
                and s not in heads
                and s not in fixed
            ]
            if usable and all(states[s] for s in switches if s not in usable):
                # the switch to operate: one that is open now, else a normally-open one
                usable.sort(key=lambda s: (states[s], not graph.switches[s].normal_open))
                self.operator[k] = usable[0]
        self.switchable = np.zeros(solver.n_branch, bool)
        self.switchable[list(self.operator)] = True
        self.fixed_closed = self.base & ~self.switchable
        self.start_open = frozenset(int(k) for k in np.flatnonzero(self.switchable & ~self.base))
        self.head_branches = {
            s: solver.switch_branch[s] for s in heads if s in solver.switch_branch
        }
        y_series = -solver.y.yft
        self.r_series = np.real(1.0 / np.where(np.abs(y_series) > 0, y_series, np.inf))
        self.penalised = limits
        self.flows: dict[frozenset[int], FlowResult | None] = {}
        self.costs: dict[frozenset[int], float] = {}
        self.v_start: np.ndarray[Any, np.dtype[np.complex128]] | None = None
        self.evaluations = 0
        self.adj: list[list[int]] = [[] for _ in range(solver.n_node)]
        for k in range(solver.n_branch):
            if self.switchable[k] or self.fixed_closed[k]:
                self.adj[int(solver.f[k])].append(k)
                self.adj[int(solver.t[k])].append(k)
        self.n_loads_live = int(solver.energised(self.base)[solver.load_node].sum())

    def mask(self, open_set: Iterable[int]) -> BoolArray:
        closed = self.fixed_closed | self.switchable
        closed[list(open_set)] = False
        return closed

    def flow(self, open_set: frozenset[int]) -> FlowResult | None:
        """AC flow of a radial configuration supplying every load (None for any other)."""
        if open_set in self.flows:
            return self.flows[open_set]
        closed = self.mask(open_set)
        topology = self.solver.topology(closed)
        live = topology[1]
        result = None
        if self.solver.is_radial(closed, live) and int(live[self.solver.load_node].sum()) >= (
            self.n_loads_live
        ):
            self.evaluations += 1
            result = self.solver.solve(
                closed, limits=self.limits, tol=1e-7, topology=topology, v_start=self.v_start
            )
        self.flows[open_set] = result
        return result

    def penalise(self, limits: Limits) -> None:
        """Penalise violations of ``limits`` in :meth:`cost` from now on."""
        if limits != self.penalised:
            self.penalised = limits
            self.costs.clear()

    def cost(self, open_set: frozenset[int]) -> float:
        """Objective plus penalised violations; infinite when not radial or not converged."""
        value = self.costs.get(open_set)
        if value is None:
            result = self.flow(open_set)
            if result is None or not result.converged:
                value = math.inf
            else:
                if self.objective == "balance":
                    value = max(self.feeder_loading(result).values(), default=0.0)
                    value += 1e-3 * result.loss_mw
                else:
                    value = result.loss_mw
                value += result.penalty(self.penalised) * _PENALTY_MW
            self.costs[open_set] = value
        return value

    def feasible(self, open_set: frozenset[int]) -> bool:
        """Radial, every load supplied and within the study limits."""
        result = self.flow(open_set)
        return result is not None and result.limits_ok

    def feeder_loading(self, result: FlowResult) -> dict[str, float]:
        return {s: float(result.loading_percent[k]) for s, k in sorted(self.head_branches.items())}

    def tree_parent(self, open_set: frozenset[int]) -> dict[int, tuple[int, int]]:
        """Node -> (parent node, branch) in the radial configuration."""
        closed = self.mask(open_set)
        parent: dict[int, tuple[int, int]] = {}
        seen = set(int(n) for n in self.solver.source_node)
        queue = deque(seen)
        while queue:
            node = queue.popleft()
            for k in self.adj[node]:
                if not closed[k]:
                    continue
                other = (
                    int(self.solver.t[k])
                    if int(self.solver.f[k]) == node
                    else int(self.solver.f[k])
                )
                if other in seen:
                    continue
                seen.add(other)
                parent[other] = (node, k)
                queue.append(other)
        return parent

    def sides(self, branch: int, parent: dict[int, tuple[int, int]]) -> tuple[list[int], list[int]]:
        """The tree paths from each end of open ``branch`` up to where they meet.

        When the ends hang off different sources each path runs up to its
        source (the loop closes through them).
        """

        def up(node: int) -> list[tuple[int, int]]:
            out = []
            while node in parent:
                above, k = parent[node]
                out.append((node, k))
                node = above
            out.append((node, -1))
            return out

        a = up(int(self.solver.f[branch]))
        b = up(int(self.solver.t[branch]))
        index_a = {n: i for i, (n, _) in enumerate(a)}
        for j, (n, _) in enumerate(b):
            if n in index_a:
                return [k for _, k in a[: index_a[n]]], [k for _, k in b[:j]]
        return [k for _, k in a if k >= 0], [k for _, k in b if k >= 0]

    def loop(
        self,
        open_set: frozenset[int],
        branch: int,
        parent: dict[int, tuple[int, int]] | None = None,
    ) -> list[int]:
        """Branches of the loop that closing ``branch`` forms in the radial configuration."""
        a, b = self.sides(branch, parent if parent is not None else self.tree_parent(open_set))
        return a + b

    def sequential_opening(self) -> frozenset[int]:
        """Shirmohammadi & Hong: open least-current branches of the resistive meshed flow."""
        open_set: set[int] = set()
        while True:
            closed = self.mask(open_set)
            if self.solver.is_radial(closed):
                return frozenset(open_set)
            result = self.solver.solve(closed, limits=self.limits, resistive=True, tol=1e-7)
            self.evaluations += 1
            order = np.argsort(np.where(self.switchable & closed, result.i_ka, np.inf))
            for k in order:
                k = int(k)
                if not (self.switchable[k] and closed[k]):
                    return frozenset(open_set)
                trial = closed.copy()
                trial[k] = False
                live = self.solver.energised(trial)
                if int(live[self.solver.load_node].sum()) == self.n_loads_live and bool(
                    live[self.solver.f[k]] and live[self.solver.t[k]]
                ):
                    open_set.add(k)
                    break
            else:
                return frozenset(open_set)

    def descend(self, start: frozenset[int], *, exhaustive: bool = True) -> frozenset[int]:
        """Steepest-descent branch exchange from ``start`` to a local optimum.

        For losses each step tries, exactly, the exchanges that
        :meth:`moves` ranks first and takes the best improvement; with
        ``exhaustive``, a local optimum of those is checked against every
        exchange, and the descent goes on from the best if one improves.
        Other objectives try every exchange at each step.
        """
        current, value = start, self.cost(start)
        if not math.isfinite(value):
            return start
        screened = _SCREENED if self.objective == "losses" else None
        while True:
            moves = self.moves(current)
            move = self.best_move(current, value, moves[:screened])
            if move is None and exhaustive and screened is not None:
                move = self.best_move(current, value, moves[screened:])
            if move is None:
                return current
            current, value = move, self.cost(move)

    def moves(self, current: frozenset[int]) -> list[tuple[int, int]]:
        """Every exchange (close ``o``, open ``c`` in its loop), the most promising first.

        For losses the order is the loss change estimated from the present
        flow with the transferred load as a constant current (Civanlar et
        al.): moving the load ``I`` fed through ``c`` from loop side A to
        side B changes the losses by ``2 Re(I* (S_B - S_A)) + R_loop |I|^2``,
        ``S`` being the sum of ``R I`` along a side. Otherwise in index order.
        """
        parent = self.tree_parent(current)
        result = self.flow(current)
        if self.objective != "losses" or result is None:
            return [
                (o, c)
                for o in sorted(current)
                for c in self.loop(current, o, parent)
                if self.switchable[c]
            ]
        ranked: list[tuple[float, int, int]] = []
        solver, v, y = self.solver, result.v, self.solver.y
        i_from = y.yff * v[solver.f] + y.yft * v[solver.t]
        i_to = y.ytf * v[solver.f] + y.ytt * v[solver.t]
        down = np.zeros(solver.n_branch, complex)
        for above, k in parent.values():
            down[k] = i_from[k] if int(solver.f[k]) == above else i_to[k]
        rd = self.r_series * down
        for o in sorted(current):
            a, b = self.sides(o, parent)
            s_a, s_b = rd[a].sum(), rd[b].sum()
            r_loop = float(self.r_series[a].sum() + self.r_series[b].sum() + self.r_series[o])
            for side, gain in ((a, s_b - s_a), (b, s_a - s_b)):
                for c in side:
                    if self.switchable[c]:
                        i = down[c]
                        ranked.append(
                            (2 * float(np.real(np.conj(i) * gain)) + r_loop * abs(i) ** 2, o, c)
                        )
        ranked.sort()
        return [(o, c) for _, o, c in ranked]

    def best_move(
        self, current: frozenset[int], value: float, moves: Iterable[tuple[int, int]]
    ) -> frozenset[int] | None:
        """The exchange (close ``o``, open ``c``) that lowers the cost most, if any does."""
        result = self.flow(current)
        self.v_start = result.v if result is not None else None
        best: frozenset[int] | None = None
        for o, c in moves:
            cand = (current - {o}) | {c}
            cost = self.cost(cand)
            if cost < value - 1e-12:
                best, value = cand, cost
        return best

    def iterated(
        self, best: frozenset[int], rounds: int, deadline: float, seed: int
    ) -> frozenset[int]:
        """Iterated local search: perturb the best by two random exchanges, descend again."""
        rng = random.Random(seed)
        best_cost = self.cost(best)
        for _ in range(rounds):
            if time.perf_counter() > deadline:
                break
            cand = best
            for _ in range(2):
                o = rng.choice(sorted(cand))
                loop = [c for c in self.loop(cand, o) if self.switchable[c]]
                if loop:
                    cand = (cand - {o}) | {rng.choice(loop)}
            if self.flow(cand) is None:
                continue
            cand = self.descend(cand, exhaustive=False)
            value = self.cost(cand)
            if value < best_cost - 1e-12:
                best, best_cost = cand, value
        return best


def reconfigure(
    model: NetworkModel,
    *,
    objective: str = "losses",
    limits: Limits | None = None,
    fixed: Iterable[str] = (),
    sequence: bool = True,
    perturbations: int = 0,
    time_limit_s: float = 60.0,
    seed: int = 0,
    solver: GridSolver | None = None,
) -> ReconfigurationResult:
    """Best radial configuration from the model's present state (see the module doc).

    ``fixed`` switches keep their state. With ``sequence`` the result carries
    the close-before-open exchanges from the present to the new configuration.
    ``perturbations`` > 0 adds an iterated local search: that many random
    double exchanges of the best configuration (``seed``), each followed by
    branch exchange, stopping early at ``time_limit_s``.
    """
    if objective not in OBJECTIVES:
        raise StudyInputError(
            f"unknown objective (one of {', '.join(OBJECTIVES)})", field="objective"
        )
    lim = limits or Limits()
    t_setup = time.perf_counter()
    solver = solver or GridSolver(model)
    t0 = time.perf_counter()
    graph = SectionGraph(model)
    fixed_set = set(fixed)
    for sid in fixed_set:
        graph.switch(sid)
    search = _Search(model, solver, graph, objective, lim, fixed_set)
    start = search.start_open
    before = search.flow(start)
    if before is None:
        before = solver.solve(search.mask(start), limits=lim)
    # first the best configuration no worse than the present one, then the limits themselves
    relaxed = _no_worse_than(before, lim)
    search.penalise(relaxed)
    starts = dict.fromkeys([start, search.sequential_opening()])
    best = min((search.descend(s, exhaustive=False) for s in starts), key=search.cost)
    best = search.descend(best)
    best = search.iterated(best, perturbations, t0 + time_limit_s, seed)
    if relaxed != lim and not search.feasible(best):
        search.penalise(lim)
        within = search.descend(best, exhaustive=False)
        if search.feasible(within):
            best = search.descend(within)
        else:
            search.penalise(relaxed)
    after = search.flow(best)
    if after is None or search.cost(best) >= search.cost(start):
        best, after = start, before
    solve_s = time.perf_counter() - t0

    def switch_names(open_set: Iterable[int]) -> list[str]:
        return sorted(search.operator[k] for k in open_set)

    result = ReconfigurationResult(
        network=model.name,
        objective=objective,
        method=_METHOD,
        open_branches_before=sorted(solver.branch_ids[k] for k in start),
        open_branches_after=sorted(solver.branch_ids[k] for k in best),
        open_switches_before=switch_names(start),
        open_switches_after=switch_names(best),
        loss_kw_before=before.loss_mw * 1e3,
        loss_kw_after=after.loss_mw * 1e3,
        vm_min_pu_before=before.vm_min_pu,
        vm_min_pu_after=after.vm_min_pu,
        max_loading_percent_before=before.max_loading_percent,
        max_loading_percent_after=after.max_loading_percent,
        feeder_loading_before=search.feeder_loading(before),
        feeder_loading_after=search.feeder_loading(after),
        feasible=after.limits_ok,
        violations=after.violations(lim),
        evaluations=search.evaluations,
        solve_s=solve_s,
        setup_s=t0 - t_setup,
    )
    if sequence and best != start:
        t1 = time.perf_counter()
        result.exchanges = _sequence(search, start, best)
        result.sequence_s = time.perf_counter() - t1
    return result


def switching_sequence(
    model: NetworkModel,
    open_switches: Sequence[str],
    *,
    limits: Limits | None = None,
    solver: GridSolver | None = None,
) -> list[Exchange]:
    """Close-before-open exchanges from the present state to one with ``open_switches`` open.

    Every switch not named stays or becomes closed, among the switchable
    ones (see :func:`reconfigure`).
    """
    lim = limits or Limits()
    solver = solver or GridSolver(model)
    graph = SectionGraph(model)
    search = _Search(model, solver, graph, "losses", lim, set())
    target: set[int] = set()
    for sid in open_switches:
        graph.switch(sid)
        k = solver.switch_branch.get(sid)
        if k is None or not search.switchable[k]:
            raise StudyInputError("not a switchable branch switch", element=sid)
        target.add(k)
    goal = frozenset(target)
    if search.flow(goal) is None:
        raise StudyInputError(
            "target configuration is not radial with every load supplied", field="open_switches"
        )
    return _sequence(search, search.start_open, goal)


def _sequence(search: _Search, start: frozenset[int], goal: frozenset[int]) -> list[Exchange]:
    """Greedy close-before-open pairs, each keeping the configuration radial."""
    solver, lim = search.solver, search.limits
    current = start
    out: list[Exchange] = []
    while current != goal:
        options = []
        parent = search.tree_parent(current)
        for a in sorted(current - goal):
            loop = search.loop(current, a, parent)
            meshed = search.mask(current - {a})
            mesh_result = solver.solve(meshed, limits=lim, tol=1e-8)
            for b in loop:
                if b not in goal - current:
                    continue
                nxt = (current - {a}) | {b}
                after = search.flow(nxt)
                if after is None:
                    continue
                key = (not mesh_result.limits_ok, search.cost(nxt))
                options.append((key, a, b, mesh_result, after, nxt))
        if not options:
            break
        _, a, b, mesh, after, nxt = min(options, key=lambda o: o[0])
        out.append(
            Exchange(
                close=search.operator[a],
                open=search.operator[b],
                loop_vm_min_pu=mesh.vm_min_pu,
                loop_max_loading_percent=mesh.max_loading_percent,
                loop_ok=mesh.limits_ok,
                loss_kw_after=after.loss_mw * 1e3,
            )
        )
        current = nxt
    return out


def _no_worse_than(present: FlowResult, lim: Limits) -> Limits:
    """``lim`` widened to what the present configuration already breaks."""
    if not present.converged or not present.energised.any():
        return lim
    return Limits(
        vm_min_pu=min(lim.vm_min_pu, present.vm_min_pu),
        vm_max_pu=max(lim.vm_max_pu, present.vm_max_pu),
        max_loading_percent=max(lim.max_loading_percent, present.max_loading_percent),
    )


def _r(value: float, digits: int) -> float | None:
    return round(float(value), digits) if value is not None and math.isfinite(value) else None
