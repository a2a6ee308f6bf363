"""Observability analysis before estimation: which buses the measurements determine.

Contract:
- Decoupled and structural, as is usual for distribution networks: the
  P-theta part is observable where active-power measurements (flows, bus
  injections, pseudo-measurements, zero injections) fix every bus angle
  relative to the island's reference; the Q-V part likewise with reactive
  power, its references being the buses with a voltage-magnitude
  measurement. Current magnitudes carry no sign and count for neither.
- Method: measured flows merge their ends; an injection known at a bus whose
  branches all but one have known flows gives that one (leaf peeling; exact
  for radial networks). Anything left in a meshed part is decided exactly on
  the reduced linear system (null space of the remaining injection rows over
  the merged islands).
- :func:`determine` says, per grid bus, whether it is observable (P-theta
  and Q-V); :func:`explain` groups the unobservable buses into
  :class:`UnobservableArea` s, each with a sentence naming its buses, the
  switch (or branch) it lies behind and what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from adms.estimation.grid import Grid

__all__ = [
    "ObservabilityInput",
    "UnobservableArea",
    "determine",
    "explain",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_NAMED_BUSES = 6


@dataclass(frozen=True)
class UnobservableArea:
    """Connected buses the measurements do not determine, and why."""

    buses: tuple[str, ...]
    behind: tuple[str, ...]
    missing_p: tuple[str, ...]
    missing_q: tuple[str, ...]
    no_voltage_reference: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        """Plain-data form."""
        return {
            "buses": list(self.buses),
            "behind": list(self.behind),
            "missing_p": list(self.missing_p),
            "missing_q": list(self.missing_q),
            "no_voltage_reference": self.no_voltage_reference,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ObservabilityInput:
    """What the measurement set tells, per grid bus and branch."""

    p_injection: BoolArray
    q_injection: BoolArray
    p_flow: BoolArray
    q_flow: BoolArray
    voltage: BoolArray


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, a: int) -> int:
        parent = self.parent
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def _components(n_bus: int, a: IntArray, b: IntArray, ground: IntArray) -> IntArray:
    """Connected components over edges ``a``-``b`` plus the ground buses tied to node ``n_bus``."""
    rows = np.concatenate([a, ground])
    cols = np.concatenate([b, np.full(len(ground), n_bus)])
    graph = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_bus + 1, n_bus + 1))
    return connected_components(graph, directed=False)[1]


def _all_determined(
    n_bus: int,
    ends: IntArray,
    known_flow: BoolArray,
    known_injection: BoolArray,
    ground: IntArray,
    within: BoolArray,
) -> bool:
    """Vectorised sufficient test that every bus ``within`` is determined.

    Merge measured flows; if every merged island but the ground's has all its
    injections known and all connect to ground, the grounded Laplacian of the
    merged graph is regular. That is the usual case with pseudo-measurements
    everywhere; peeling is needed only when this fails.
    """
    label = _components(n_bus, ends[known_flow, 0], ends[known_flow, 1], ground)
    lacking = np.zeros(int(label.max()) + 1, dtype=bool)
    lacking[label[:n_bus][within & ~known_injection]] = True
    lacking[label[n_bus]] = False
    if lacking[label[:n_bus][within]].any():
        return False
    reach = _components(n_bus, ends[:, 0], ends[:, 1], ground)
    return bool(np.all(reach[:n_bus][within] == reach[n_bus]))


def _determined(
    n_bus: int,
    ends: IntArray,
    known_flow: BoolArray,
    known_injection: BoolArray,
    ground: IntArray,
    within: BoolArray,
) -> BoolArray:
    """Buses whose state (angle or magnitude) the flows/injections fix relative to ``ground``.

    ``ends`` holds one row per branch group (parallel branches merged): the
    two buses it joins. Virtual node ``n_bus`` ties the ground buses together.
    """
    if _all_determined(n_bus, ends, known_flow, known_injection, ground, within):
        return within.copy()
    uf = _UnionFind(n_bus + 1)
    for bus in ground.tolist():
        uf.union(n_bus, bus)
    known = known_flow.copy()
    a_end = ends[:, 0].tolist()
    b_end = ends[:, 1].tolist()
    for k in np.flatnonzero(known).tolist():
        uf.union(a_end[k], b_end[k])
    incident: list[list[int]] = [[] for _ in range(n_bus)]
    for k, (a, b) in enumerate(zip(a_end, b_end, strict=True)):
        incident[a].append(k)
        incident[b].append(k)
    candidates = np.flatnonzero(known_injection).tolist()

    def peel(bus: int) -> int:
        """Resolve the one unknown branch at ``bus``; return it, or -1."""
        unknown = -1
        for k in incident[bus]:
            if known[k]:
                continue
            if uf.find(a_end[k]) == uf.find(b_end[k]):
                known[k] = True  # both ends already fixed: the flow follows
                continue
            if unknown >= 0:
                return -1
            unknown = k
        if unknown >= 0:
            known[unknown] = True
            uf.union(a_end[unknown], b_end[unknown])
        return unknown

    progress = True
    while progress:
        progress = False
        queue = list(candidates)
        while queue:
            resolved = peel(queue.pop())
            if resolved >= 0:
                progress = True
                queue.extend(
                    end for end in (a_end[resolved], b_end[resolved]) if known_injection[end]
                )

    roots = np.array([uf.find(b) for b in range(n_bus + 1)], dtype=np.int64)
    open_edges = np.flatnonzero(~known & (roots[ends[:, 0]] != roots[ends[:, 1]]))
    ground_root = roots[n_bus]
    if not len(open_edges):
        return roots[:n_bus] == ground_root
    # Is the graph of merged islands over the unresolved branches a forest? Then
    # peeling was exact and every island other than the ground's is undetermined.
    nodes, node_of = np.unique(roots, return_inverse=True)
    a = node_of[ends[open_edges, 0]]
    b = node_of[ends[open_edges, 1]]
    graph = sp.csr_matrix((np.ones(len(a)), (a, b)), shape=(len(nodes), len(nodes)))
    touched = np.unique(np.concatenate([a, b]))
    n_comp, _ = connected_components(graph[touched][:, touched], directed=False)
    if len(open_edges) == len(touched) - n_comp:
        return roots[:n_bus] == ground_root
    return _determined_numerically(n_bus, ends, open_edges, roots, known_injection)


def _determined_numerically(
    n_bus: int,
    ends: IntArray,
    open_edges: IntArray,
    roots: IntArray,
    known_injection: BoolArray,
) -> BoolArray:
    """Exact check on the reduced system: one unknown per merged island, one row per injection.

    Generic (seeded random) branch weights stand in for susceptances: the
    rank is that of almost every parameter set.
    """
    ground_root = roots[n_bus]
    nodes = np.unique(roots[:n_bus][roots[:n_bus] != ground_root])
    column = {int(r): k for k, r in enumerate(nodes.tolist())}
    weight = np.random.default_rng(0).uniform(0.5, 1.5, len(ends))
    entries: dict[tuple[int, int], float] = {}
    row_of: dict[int, int] = {}
    for k in open_edges.tolist():
        a, b = int(ends[k, 0]), int(ends[k, 1])
        for bus, sign in ((a, 1.0), (b, -1.0)):
            if not known_injection[bus]:
                continue
            row = row_of.setdefault(bus, len(row_of))
            for end, s in ((a, sign), (b, -sign)):
                col = column.get(int(roots[end]))
                if col is not None:
                    entries[(row, col)] = entries.get((row, col), 0.0) + s * weight[k]
    matrix = np.zeros((len(row_of), len(nodes)))
    for (row, col), value in entries.items():
        matrix[row, col] = value
    null = scipy.linalg.null_space(matrix) if len(row_of) else np.eye(len(nodes))
    fixed_node = np.linalg.norm(null, axis=1) < 1e-8
    fixed_roots = {int(r) for r, ok in zip(nodes.tolist(), fixed_node.tolist(), strict=True) if ok}
    fixed_roots.add(int(ground_root))
    return np.array([int(r) in fixed_roots for r in roots[:n_bus].tolist()], dtype=bool)


def _branch_groups(grid: Grid, inside: BoolArray) -> tuple[IntArray, IntArray]:
    """Unique bus pairs of the ``inside`` branches (parallel ones merged), each one's group."""
    pairs = np.sort(np.column_stack([grid.f_bus[inside], grid.t_bus[inside]]), axis=1)
    if not len(pairs):
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    ends, group = np.unique(pairs, axis=0, return_inverse=True)
    return ends.astype(np.int64), group.ravel().astype(np.int64)


def determine(
    grid: Grid, info: ObservabilityInput, within: BoolArray
) -> tuple[BoolArray, BoolArray]:
    """P-theta and Q-V observability of the buses ``within`` (others and their branches ignored).

    An island whose angle reference is not determined is wholly unobservable.
    """
    n_bus = grid.n_bus
    inside = within[grid.f_bus] & within[grid.t_bus]
    ends, group = _branch_groups(grid, inside)

    def per_group(flags: BoolArray) -> BoolArray:
        out = np.zeros(len(ends), dtype=bool)
        out[group[flags[inside]]] = True
        return out

    refs = grid.ref_bus[within[grid.ref_bus]]
    p_ok = _determined(n_bus, ends, per_group(info.p_flow), info.p_injection & within, refs, within)
    q_ok = _determined(
        n_bus,
        ends,
        per_group(info.q_flow),
        info.q_injection & within,
        np.flatnonzero(info.voltage & within),
        within,
    )
    ok = p_ok & q_ok & within
    anchored = np.zeros(int(grid.island.max()) + 1 if n_bus else 0, dtype=bool)
    anchored[grid.island[grid.ref_bus[ok[grid.ref_bus]]]] = True
    keep = anchored[grid.island]
    return p_ok & within & keep, q_ok & within & keep


def explain(grid: Grid, info: ObservabilityInput, observable: BoolArray) -> list[UnobservableArea]:
    """Group the unobservable buses into connected areas and say why each is unobservable.

    ``info`` is the full measurement information (before anything was left out).
    """
    if observable.all():
        return []
    bad = ~observable
    inside = bad[grid.f_bus] & bad[grid.t_bus]
    n_bus = grid.n_bus
    graph = sp.csr_matrix(
        (np.ones(int(inside.sum())), (grid.f_bus[inside], grid.t_bus[inside])),
        shape=(n_bus, n_bus),
    )
    _, label = connected_components(graph, directed=False)
    areas = []
    for area_label in np.unique(label[bad]).tolist():
        buses = np.flatnonzero(bad & (label == area_label))
        areas.append(_explain(grid, info, buses, observable))
    return areas


def _names(grid: Grid, buses: IntArray) -> tuple[str, ...]:
    names: list[str] = []
    for bus in buses.tolist():
        names.extend(grid.bus_ids(bus))
    return tuple(names)


def _summary(names: tuple[str, ...]) -> str:
    if len(names) <= _NAMED_BUSES:
        return ", ".join(names)
    return f"{', '.join(names[:_NAMED_BUSES])} ... ({len(names)} buses)"


def _explain(
    grid: Grid,
    info: ObservabilityInput,
    buses: IntArray,
    observable: BoolArray,
) -> UnobservableArea:
    in_area = np.zeros(grid.n_bus, dtype=bool)
    in_area[buses] = True
    boundary = np.flatnonzero(
        (in_area[grid.f_bus] & observable[grid.t_bus])
        | (in_area[grid.t_bus] & observable[grid.f_bus])
    )
    behind = _boundary_names(grid, boundary)
    names = _names(grid, buses)
    missing_p = _names(grid, buses[~info.p_injection[buses] & ~grid.unknown_injection[buses]])
    missing_q = _names(grid, buses[~info.q_injection[buses] & ~grid.unknown_injection[buses]])
    unknown = _names(grid, buses[grid.unknown_injection[buses]])
    no_reference = not bool(info.voltage[grid.island == grid.island[buses[0]]].any())
    where = f"buses {_summary(names)}" if names else "auxiliary buses"
    if behind:
        where += f" behind {', '.join(behind)}"
    why: list[str] = []
    if no_reference:
        why.append("no voltage magnitude measurement in their island")
    if missing_p or missing_q:
        lacking = tuple(dict.fromkeys(missing_p + missing_q))
        why.append(f"no P/Q measurement and no pseudo-measurement at {_summary(lacking)}")
    if unknown:
        why.append(f"unknown injection (source or unmodelled element) at {_summary(unknown)}")
    if not why:
        why.append("too few flow or injection measurements to fix their voltages")
    return UnobservableArea(
        buses=names,
        behind=behind,
        missing_p=missing_p,
        missing_q=missing_q,
        no_voltage_reference=no_reference,
        reason=f"{where}: {'; '.join(why)}",
    )


def _boundary_names(grid: Grid, branches: IntArray) -> tuple[str, ...]:
    """Switches on the boundary branches (else the branches themselves), by GIS id."""
    net = grid.model.net
    names: list[str] = []
    switches = net.switch
    for k in branches.tolist():
        table, pos = grid.branch_element[k]
        if not table:
            continue
        index = int(net[table].index[pos])
        gis_id = str(net[table]["gis_id"].iloc[pos])
        et = "l" if table == "line" else "t"
        on_branch = switches[(switches["et"] == et) & (switches["element"] == index)]
        if len(on_branch) and "gis_id" in on_branch.columns:
            for sw in on_branch["gis_id"].tolist():
                names.append(f"switch {sw} ({table} {gis_id})")
        else:
            names.append(f"{table} {gis_id}")
    return tuple(dict.fromkeys(names))
