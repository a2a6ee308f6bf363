"""Topology processor: energisation, earthing, islands, feeders and loops from switch states.

Contract:
- :class:`TopologyProcessor` is built once from a :class:`NetworkModel`; it
  precomputes the bus-branch graph (buses, plus a star node per three-winding
  transformer; an edge per line, transformer winding, impedance and
  bus-bus switch). Line and transformer switches open their branch at one end.
- ``set_switch(gis_id, closed)`` (or ``apply`` for several) updates the switch
  in the processor *and* in ``model.net`` so power flows and exports see the
  live state, recomputes connected components on the small graph (scipy) and
  returns a :class:`TopologyChange` naming what changed.
- A bus is *energised* when a closed path joins it to an in-service source
  (``ext_grid``, or a ``gen`` with ``slack``); *earthed* when a closed path
  joins it to a closed earthing switch. Its *feeder* is the feeder head
  breaker whose line the supply comes through.
- A feeder head is a breaker on a line at a *source-zone* bus: a bus tied to a
  source through transformers, impedances and bus-bus switches only (no line),
  the line leading out of that zone. Feeder ids come from ``model.feeders``;
  a head without one gets ``F-<breaker id>``.
- Loops count independent cycles of the closed graph with all sources joined
  (so a path between two substations counts as a loop).

Element state outside buses is derived on request, not per update.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt
from pandapower.auxiliary import pandapowerNet
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from models.errors import UnknownElementError
from models.network import Feeder, NetworkModel

__all__ = [
    "BusState",
    "FeederHead",
    "Loop",
    "TopologyChange",
    "TopologyProcessor",
    "TopologyState",
    "benchmark",
    "derive_feeders",
    "find_feeder_heads",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_BREAKER_PP_TYPES = frozenset({"CB"})
_SINGLE_BUS_TABLES = (
    "load",
    "sgen",
    "shunt",
    "ext_grid",
    "gen",
    "storage",
    "ward",
    "xward",
    "motor",
    "earthing_switch",
    "switch",
    "asymmetric_load",
    "asymmetric_sgen",
    "svc",
    "ssc",
)
_NO_FEEDER = -1


@dataclass(frozen=True)
class FeederHead:
    """A feeder head breaker: the switch, its line and the buses either side."""

    switch_index: int
    switch_id: str
    line_index: int
    bus_index: int
    far_bus_index: int


@dataclass(frozen=True)
class BusState:
    """One bus in one topology state. ``island`` numbers the galvanic island."""

    energised: bool
    earthed: bool
    feeder: str | None
    island: int


@dataclass(frozen=True)
class Loop:
    """An independent closed cycle: its buses and branches (GIS ids)."""

    buses: tuple[str, ...]
    branches: tuple[str, ...]
    via_sources: bool
    energised: bool


@dataclass(frozen=True)
class TopologyChange:
    """What one update changed. Bus and load lists hold GIS ids."""

    switches: tuple[tuple[str, bool], ...]
    changed: bool
    energised_buses: tuple[str, ...]
    deenergised_buses: tuple[str, ...]
    earthed_buses: tuple[str, ...]
    unearthed_buses: tuple[str, ...]
    feeder_changes: dict[str, tuple[str | None, str | None]]
    energised_loads: tuple[str, ...]
    deenergised_loads: tuple[str, ...]
    customers_restored: int
    customers_interrupted: int
    loops_before: int
    loops_after: int
    energised_and_earthed: tuple[str, ...]
    elapsed_ms: float

    @property
    def loop_formed(self) -> bool:
        """True when the update closed a loop."""
        return self.loops_after > self.loops_before


def _bus_positions(net: pandapowerNet, values: Any) -> IntArray:
    """Positions in ``net.bus`` of pandapower bus indices (-1 where unknown)."""
    return np.asarray(net.bus.index.get_indexer(np.asarray(values, dtype=np.int64)), np.int64)


def _gis_ids(net: pandapowerNet, table: str) -> list[str]:
    frame = net[table]
    if "gis_id" in frame.columns:
        return [
            v if isinstance(v, str) else f"{table}-{i}"
            for i, v in zip(frame.index, frame["gis_id"], strict=True)
        ]
    return [f"{table}-{i}" for i in frame.index]


def _switch_is_breaker(net: pandapowerNet) -> BoolArray:
    sw = net.switch
    if "switch_type" in sw.columns:
        by_gis = sw["switch_type"].isin(["breaker"]).to_numpy(bool)
        known = sw["switch_type"].notna().to_numpy(bool)
        by_pp = sw["type"].isin(_BREAKER_PP_TYPES).to_numpy(bool)
        return np.where(known, by_gis, by_pp)
    return np.asarray(sw["type"].isin(_BREAKER_PP_TYPES).to_numpy(bool))


def _source_zone(net: pandapowerNet) -> BoolArray:
    """Buses joined to a source by non-line branches (ignoring switch states)."""
    nb = len(net.bus)
    rows: list[IntArray] = []
    cols: list[IntArray] = []

    def add(a: Any, b: Any) -> None:
        pa, pb = _bus_positions(net, a), _bus_positions(net, b)
        ok = (pa >= 0) & (pb >= 0)
        rows.append(pa[ok])
        cols.append(pb[ok])

    if len(net.trafo):
        add(net.trafo.hv_bus, net.trafo.lv_bus)
    if len(net.trafo3w):
        add(net.trafo3w.hv_bus, net.trafo3w.mv_bus)
        add(net.trafo3w.hv_bus, net.trafo3w.lv_bus)
    if len(net.impedance):
        add(net.impedance.from_bus, net.impedance.to_bus)
    if len(net.switch):
        bb = net.switch[net.switch.et == "b"]
        add(bb.bus, bb.element)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    graph = csr_matrix((np.ones(len(r), np.int8), (r, c)), shape=(nb, nb))
    _, labels = connected_components(graph, directed=False)
    src = _source_positions(net)
    zone_comps = np.zeros(labels.max() + 1 if nb else 0, bool)
    zone_comps[labels[src]] = True
    return np.asarray(zone_comps[labels], bool)


def _source_positions(net: pandapowerNet) -> IntArray:
    buses: list[Any] = []
    if len(net.ext_grid):
        buses += net.ext_grid.bus[net.ext_grid.in_service].tolist()
    if len(net.gen) and "slack" in net.gen.columns:
        gen = net.gen[net.gen.in_service & net.gen.slack.fillna(False).astype(bool)]
        buses += gen.bus.tolist()
    pos = _bus_positions(net, buses)
    return np.unique(pos[pos >= 0])


def find_feeder_heads(net: pandapowerNet) -> list[FeederHead]:
    """Feeder head breakers: breakers on lines leaving the source zone (see module doc)."""
    if not len(net.switch) or not len(net.line):
        return []
    zone = _source_zone(net)
    sw = net.switch
    breaker = _switch_is_breaker(net)
    ids = _gis_ids(net, "switch")
    heads = []
    for pos, (index, row) in enumerate(sw.iterrows()):
        if not breaker[pos] or row.et != "l" or row.element not in net.line.index:
            continue
        line = net.line.loc[row.element]
        if not line.in_service:
            continue
        far = line.to_bus if line.from_bus == row.bus else line.from_bus
        bus_pos, far_pos = _bus_positions(net, [row.bus, far])
        if bus_pos < 0 or far_pos < 0 or not zone[bus_pos] or zone[far_pos]:
            continue
        heads.append(FeederHead(int(index), ids[pos], int(row.element), int(row.bus), int(far)))
    return heads


@dataclass
class _Solution:
    labels: IntArray
    energised: BoolArray
    earthed: BoolArray
    feeder: IntArray
    island: IntArray
    loops: int
    paralleled: tuple[tuple[int, int], ...]
    #: the switch-open counts the solution was computed from (a copy: snapshots stay valid)
    side_open: IntArray


class _Graph:
    """The static bus-branch graph of a net, with per-switch edge bookkeeping."""

    def __init__(
        self, net: pandapowerNet, feeder_ids: Mapping[str, str], closed: BoolArray
    ) -> None:
        self.net = net
        nb = len(net.bus)
        n3w = len(net.trafo3w)
        self.n_bus = nb
        self.n_nodes = nb + n3w
        self.bus_ids = np.array(_gis_ids(net, "bus"), dtype=object)
        self.node_in_service = np.concatenate(
            [net.bus.in_service.to_numpy(bool), net.trafo3w.in_service.to_numpy(bool)]
        )
        us: list[int] = []
        vs: list[int] = []
        in_service: list[bool] = []
        self.edge_owner: list[tuple[str, int]] = []
        #: (table, index) -> edge positions in side order
        self.branch_edges: dict[tuple[str, int], list[int]] = {}

        def add_edge(table: str, index: int, u: int, v: int, on: bool) -> int:
            us.append(u)
            vs.append(v)
            ok = on and u >= 0 and v >= 0
            in_service.append(bool(ok and self.node_in_service[u] and self.node_in_service[v]))
            self.edge_owner.append((table, index))
            self.branch_edges.setdefault((table, index), []).append(len(us) - 1)
            return len(us) - 1

        for table, a, b in (
            ("line", "from_bus", "to_bus"),
            ("trafo", "hv_bus", "lv_bus"),
            ("impedance", "from_bus", "to_bus"),
        ):
            frame = net[table]
            pa, pb = _bus_positions(net, frame[a]), _bus_positions(net, frame[b])
            for i, (index, on) in enumerate(zip(frame.index, frame.in_service, strict=True)):
                add_edge(table, int(index), int(pa[i]), int(pb[i]), bool(on))
        t3 = net.trafo3w
        for i, (index, on) in enumerate(zip(t3.index, t3.in_service, strict=True)):
            star = nb + i
            hv, mv, lv = _bus_positions(
                net, [t3.at[index, "hv_bus"], t3.at[index, "mv_bus"], t3.at[index, "lv_bus"]]
            )
            add_edge("trafo3w", int(index), int(hv), star, bool(on))
            add_edge("trafo3w", int(index), star, int(mv), bool(on))
            add_edge("trafo3w", int(index), star, int(lv), bool(on))

        # Switches: each maps to (edge, side); bus-bus switches get their own edge.
        sw = net.switch
        self.switch_ids = _gis_ids(net, "switch")
        self.switch_pos = {gid: i for i, gid in enumerate(self.switch_ids)}
        self.switch_edge = np.full(len(sw), -1, np.int64)
        self.switch_side = np.zeros(len(sw), np.int64)
        sw_bus = _bus_positions(net, sw.bus) if len(sw) else np.zeros(0, np.int64)
        for i, (index, row) in enumerate(sw.iterrows()):
            if row.et == "b":
                other = _bus_positions(net, [row.element])[0]
                self.switch_edge[i] = add_edge(
                    "switch", int(index), int(sw_bus[i]), int(other), True
                )
                continue
            branch = {"l": "line", "t": "trafo", "t3": "trafo3w"}.get(str(row.et))
            if branch is None:
                continue
            owned = self.branch_edges.get((branch, int(row.element)))
            if not owned:
                continue
            frame = net[branch]
            if branch == "line":
                sides = [frame.at[row.element, "from_bus"], frame.at[row.element, "to_bus"]]
            elif branch == "trafo":
                sides = [frame.at[row.element, "hv_bus"], frame.at[row.element, "lv_bus"]]
            else:
                sides = [frame.at[row.element, c] for c in ("hv_bus", "mv_bus", "lv_bus")]
            if row.bus not in sides:
                continue
            side = sides.index(row.bus)
            if branch == "trafo3w":
                self.switch_edge[i] = owned[side]
                self.switch_side[i] = 0 if side == 0 else 1
            else:
                self.switch_edge[i] = owned[0]
                self.switch_side[i] = side

        self.edge_u = np.asarray(us, np.int64)
        self.edge_v = np.asarray(vs, np.int64)
        self.edge_in_service = np.asarray(in_service, bool)
        # Both directions of every edge, sorted by (row, column), for _components.
        rows = np.concatenate([self.edge_u, self.edge_v])
        cols = np.concatenate([self.edge_v, self.edge_u])
        edge_of = np.concatenate([np.arange(len(us)), np.arange(len(us))])
        valid = (rows >= 0) & (cols >= 0)
        order = np.lexsort((cols[valid], rows[valid]))
        self.sym_row = rows[valid][order]
        self.sym_col = cols[valid][order].astype(np.int32)
        self.sym_edge = edge_of[valid][order]
        self.side_open = np.zeros((len(us), 2), np.int64)
        self.switch_closed = closed.copy()
        for pos in np.flatnonzero(~closed):
            if self.switch_edge[pos] >= 0:
                self.side_open[self.switch_edge[pos], self.switch_side[pos]] += 1

        self.source_nodes = _source_positions(net)

        es = net["earthing_switch"] if "earthing_switch" in net else None
        if es is not None and len(es):
            self.earth_ids = _gis_ids(net, "earthing_switch")
            self.earth_node = _bus_positions(net, es.bus)
            self.earth_closed = (es.closed.to_numpy(bool) & es.in_service.to_numpy(bool)).copy()
        else:
            self.earth_ids = []
            self.earth_node = np.zeros(0, np.int64)
            self.earth_closed = np.zeros(0, bool)
        self.earth_pos = {gid: i for i, gid in enumerate(self.earth_ids)}

        heads = find_feeder_heads(net)
        self.heads = heads
        self.head_edge = np.asarray(
            [self.branch_edges[("line", h.line_index)][0] for h in heads], np.int64
        )
        self.head_bus = _bus_positions(net, [h.bus_index for h in heads])
        self.head_far = _bus_positions(net, [h.far_bus_index for h in heads])
        self.is_head_edge = np.zeros(len(us), bool)
        self.is_head_edge[self.head_edge] = True
        self.feeder_names = [feeder_ids.get(h.switch_id, f"F-{h.switch_id}") for h in heads]

        self.load_node = (
            _bus_positions(net, net.load.bus) if len(net.load) else np.zeros(0, np.int64)
        )
        self.load_in_service = (
            net.load.in_service.to_numpy(bool) if len(net.load) else np.zeros(0, bool)
        )
        self.load_ids = np.array(_gis_ids(net, "load"), dtype=object)
        if "customers" in net.load.columns and len(net.load):
            self.load_customers = net.load.customers.fillna(0).to_numpy(np.int64)
        else:
            self.load_customers = np.zeros(len(net.load), np.int64)

    def edge_closed(self) -> BoolArray:
        return np.asarray(
            self.edge_in_service & (self.side_open[:, 0] == 0) & (self.side_open[:, 1] == 0)
        )

    def _components(self, mask: BoolArray) -> tuple[int, IntArray]:
        """Connected components of the graph restricted to the edges in ``mask``.

        Builds the symmetric CSR directly from arrays sorted once (no COO
        conversion, no transpose): strong components of a symmetric graph are
        its connected components. Duplicates (parallel branches) must be
        summed first, scipy's strong-components pass miscounts them.
        """
        keep = mask[self.sym_edge]
        counts = np.bincount(self.sym_row[keep], minlength=self.n_nodes)
        indptr = np.zeros(self.n_nodes + 1, np.int32)
        np.cumsum(counts, out=indptr[1:])
        graph = csr_matrix(
            (np.ones(int(indptr[-1])), self.sym_col[keep], indptr),
            shape=(self.n_nodes, self.n_nodes),
        )
        graph.sum_duplicates()
        n, labels = connected_components(graph, directed=True, connection="strong")
        return int(n), np.asarray(labels, np.int64)

    def solve(self) -> _Solution:
        closed = self.edge_closed()
        ncomp, labels = self._components(closed)
        has_source = np.zeros(ncomp, bool)
        has_source[labels[self.source_nodes]] = True
        energised = has_source[labels] & self.node_in_service
        has_earth = np.zeros(ncomp, bool)
        has_earth[labels[self.earth_node[self.earth_closed]]] = True
        earthed = has_earth[labels] & self.node_in_service

        feeder = np.full(self.n_nodes, _NO_FEEDER, np.int64)
        paralleled: list[tuple[int, int]] = []
        if len(self.heads):
            ncut, cut_labels = self._components(closed & ~self.is_head_edge)
            owner = np.full(ncut, _NO_FEEDER, np.int64)
            active = closed[self.head_edge] & energised[self.head_bus]
            for h in np.flatnonzero(active):
                comp = cut_labels[self.head_far[h]]
                if owner[comp] == _NO_FEEDER:
                    owner[comp] = h
                else:
                    paralleled.append((int(owner[comp]), int(h)))
            feeder = np.where(energised, owner[cut_labels], _NO_FEEDER)

        first = np.full(ncomp, self.n_nodes, np.int64)
        np.minimum.at(first, labels, np.arange(self.n_nodes))
        island = first[labels]

        n_sources = len(self.source_nodes)
        source_comps = len(np.unique(labels[self.source_nodes])) if n_sources else 0
        loops = int(closed.sum()) - self.n_nodes + ncomp + (n_sources - source_comps)
        return _Solution(
            labels,
            energised,
            earthed,
            feeder,
            island,
            loops,
            tuple(paralleled),
            self.side_open.copy(),
        )


class TopologyState:
    """A snapshot of the topology: per-bus state and element queries by GIS id.

    It does not change when the processor is updated later; take
    ``processor.state`` again for the new topology.
    """

    def __init__(self, graph: _Graph, model: NetworkModel, solution: _Solution) -> None:
        self._graph = graph
        self._model = model
        self._sol = solution
        self._bus_pos = {gid: i for i, gid in enumerate(graph.bus_ids)}

    def __getitem__(self, bus_id: str) -> BusState:
        i = self._bus(bus_id)
        f = int(self._sol.feeder[i])
        return BusState(
            energised=bool(self._sol.energised[i]),
            earthed=bool(self._sol.earthed[i]),
            feeder=self._graph.feeder_names[f] if f != _NO_FEEDER else None,
            island=int(self._sol.island[i]),
        )

    def __len__(self) -> int:
        return self._graph.n_bus

    def buses(self) -> dict[str, BusState]:
        """Every bus's state, by GIS id."""
        return {str(gid): self[str(gid)] for gid in self._graph.bus_ids}

    def _bus(self, bus_id: str) -> int:
        try:
            return self._bus_pos[bus_id]
        except KeyError:
            raise UnknownElementError("no such bus", feature_id=bus_id, kind="bus") from None

    def _bus_mask(self, mask: BoolArray) -> frozenset[str]:
        return frozenset(
            self._graph.bus_ids[: self._graph.n_bus][mask[: self._graph.n_bus]].tolist()
        )

    @property
    def energised_buses(self) -> frozenset[str]:
        """GIS ids of energised buses."""
        return self._bus_mask(self._sol.energised)

    @property
    def deenergised_buses(self) -> frozenset[str]:
        """GIS ids of buses not energised."""
        return self._bus_mask(~self._sol.energised)

    @property
    def earthed_buses(self) -> frozenset[str]:
        """GIS ids of earthed buses."""
        return self._bus_mask(self._sol.earthed)

    @property
    def loop_count(self) -> int:
        """Independent closed loops (paths between sources included)."""
        return self._sol.loops

    @property
    def paralleled_feeders(self) -> tuple[tuple[str, str], ...]:
        """Feeder pairs that a closed tie connects (both supply the same buses)."""
        names = self._graph.feeder_names
        return tuple((names[a], names[b]) for a, b in self._sol.paralleled)

    def islands(self) -> dict[int, frozenset[str]]:
        """Galvanic islands (closed-switch connectivity): island number -> bus ids."""
        out: dict[int, set[str]] = {}
        for i in range(self._graph.n_bus):
            out.setdefault(int(self._sol.island[i]), set()).add(str(self._graph.bus_ids[i]))
        return {k: frozenset(v) for k, v in out.items()}

    def feeder_buses(self, feeder_id: str) -> frozenset[str]:
        """Buses the feeder supplies now."""
        try:
            h = self._graph.feeder_names.index(feeder_id)
        except ValueError:
            raise UnknownElementError("no such feeder", feature_id=feeder_id) from None
        return self._bus_mask(self._sol.feeder == h)

    def _element_sides(self, gis_id: str) -> list[tuple[int, bool]]:
        """(bus position, side closed) for each terminal of an element."""
        ref = self._model.locate(gis_id)
        g = self._graph
        net = self._model.net
        if ref.table in ("line", "trafo", "impedance", "trafo3w"):
            edges = g.branch_edges[(ref.table, ref.index)]
            out = []
            for k, e in enumerate(edges):
                if ref.table == "trafo3w":
                    # the hv edge's hv side is side 0, the others' bus side is side 1
                    node, side = (g.edge_u[e], 0) if k == 0 else (g.edge_v[e], 1)
                    out.append(
                        (
                            int(node),
                            bool(g.edge_in_service[e] and self._sol.side_open[e, side] == 0),
                        )
                    )
                else:
                    for side, node in ((0, g.edge_u[e]), (1, g.edge_v[e])):
                        out.append(
                            (
                                int(node),
                                bool(g.edge_in_service[e] and self._sol.side_open[e, side] == 0),
                            )
                        )
            return out
        if ref.table == "switch" and net.switch.at[ref.index, "et"] == "b":
            e = g.branch_edges[("switch", ref.index)][0]
            closed = bool(g.edge_in_service[e] and self._sol.side_open[e, 0] == 0)
            return [(int(g.edge_u[e]), True), (int(g.edge_v[e]), closed)]
        if ref.table == "fpi":
            fpi = net.fpi.loc[ref.index]
            table = "line" if fpi.et == "line" else "switch"
            return self._element_sides(self._model.gis_id_of(table, int(fpi.element)))
        if ref.table == "substation":
            buses = (
                net.bus.index[net.bus["substation"].eq(ref.index).fillna(False).to_numpy(bool)]
                if "substation" in net.bus
                else []
            )
            return [(int(p), True) for p in _bus_positions(net, list(buses))]
        if ref.table == "bus":
            return [(self._bus(gis_id), True)]
        if ref.table in _SINGLE_BUS_TABLES:
            frame = net[ref.table]
            on = bool(frame.at[ref.index, "in_service"]) if "in_service" in frame.columns else True
            return [(int(_bus_positions(net, [frame.at[ref.index, "bus"]])[0]), on)]
        raise UnknownElementError(f"no topology for table {ref.table}", feature_id=gis_id)

    def is_energised(self, gis_id: str) -> bool:
        """Whether any connected terminal of the element is energised."""
        return any(on and self._sol.energised[node] for node, on in self._element_sides(gis_id))

    def is_earthed(self, gis_id: str) -> bool:
        """Whether any connected terminal of the element is earthed."""
        return any(on and self._sol.earthed[node] for node, on in self._element_sides(gis_id))

    def deenergised_elements(
        self, tables: Iterable[str] = ("line", "load", "sgen", "trafo", "shunt")
    ) -> list[str]:
        """GIS ids of in-service elements of ``tables`` that are not energised."""
        out = []
        for table in tables:
            if table not in self._model.net:
                continue
            frame = self._model.net[table]
            for gid, on in zip(
                self._model.ids(table), frame.get("in_service", [True] * len(frame)), strict=True
            ):
                if on and not self.is_energised(gid):
                    out.append(gid)
        return out


class TopologyProcessor:
    """Live topology of a model; see the module docstring for the contract."""

    def __init__(self, model: NetworkModel, *, normal_state: bool = False) -> None:
        """Build the graph from ``model.net``'s switch states.

        With ``normal_state`` the processor starts from ``normal_open`` instead
        and is a study copy: it never writes switch states into ``model.net``.
        """
        self.model = model
        net = model.net
        self._write_through = not normal_state
        closed = net.switch.closed.to_numpy(bool) if len(net.switch) else np.zeros(0, bool)
        if normal_state and len(net.switch) and "normal_open" in net.switch.columns:
            closed = ~net.switch["normal_open"].to_numpy(bool)
        feeder_ids = {f.head_switch: f.id for f in model.feeders.values()}
        if len(net.switch) and "feeder" in net.switch.columns:
            for gid, fid in zip(_gis_ids(net, "switch"), net.switch["feeder"], strict=True):
                if isinstance(fid, str):
                    feeder_ids.setdefault(gid, fid)
        self._graph = _Graph(net, feeder_ids, closed)
        self._sol = self._graph.solve()

    @property
    def state(self) -> TopologyState:
        """The current topology."""
        return TopologyState(self._graph, self.model, self._sol)

    @property
    def feeder_heads(self) -> dict[str, str]:
        """Feeder id -> head breaker GIS id."""
        return {
            name: h.switch_id
            for name, h in zip(self._graph.feeder_names, self._graph.heads, strict=True)
        }

    @property
    def switch_ids(self) -> list[str]:
        """GIS ids of all switches the processor tracks (earthing switches included)."""
        return list(self._graph.switch_ids) + list(self._graph.earth_ids)

    def is_closed(self, gis_id: str) -> bool:
        """Current state of a switch."""
        g = self._graph
        if gis_id in g.switch_pos:
            return bool(g.switch_closed[g.switch_pos[gis_id]])
        if gis_id in g.earth_pos:
            return bool(g.earth_closed[g.earth_pos[gis_id]])
        raise UnknownElementError("no such switch", feature_id=gis_id, kind="switch")

    def set_switch(self, gis_id: str, closed: bool) -> TopologyChange:
        """Set one switch and return what changed."""
        return self.apply({gis_id: closed})

    def apply(self, states: Mapping[str, bool]) -> TopologyChange:
        """Set several switches at once (e.g. a SCADA snapshot), then recompute once."""
        t0 = time.perf_counter()
        g = self._graph
        net = self.model.net
        changed = False
        for gis_id, closed in states.items():
            closed = bool(closed)
            if gis_id in g.switch_pos:
                i = g.switch_pos[gis_id]
                if g.switch_closed[i] == closed:
                    continue
                g.switch_closed[i] = closed
                if g.switch_edge[i] >= 0:
                    g.side_open[g.switch_edge[i], g.switch_side[i]] += -1 if closed else 1
                if self._write_through:
                    net.switch.iat[i, net.switch.columns.get_loc("closed")] = closed
            elif gis_id in g.earth_pos:
                i = g.earth_pos[gis_id]
                if g.earth_closed[i] == closed:
                    continue
                g.earth_closed[i] = closed
                if self._write_through:
                    es = net["earthing_switch"]
                    es.iat[i, es.columns.get_loc("closed")] = closed
            else:
                raise UnknownElementError("no such switch", feature_id=gis_id, kind="switch")
            changed = True
        old = self._sol
        new = g.solve() if changed else old
        self._sol = new
        return self._diff(tuple((k, bool(v)) for k, v in states.items()), changed, old, new, t0)

    def _diff(
        self,
        switches: tuple[tuple[str, bool], ...],
        changed: bool,
        old: _Solution,
        new: _Solution,
        t0: float,
    ) -> TopologyChange:
        g = self._graph
        nb = g.n_bus
        ids = g.bus_ids

        def buses(mask: BoolArray) -> tuple[str, ...]:
            return tuple(ids[np.flatnonzero(mask[:nb])].tolist())

        feeder_changes: dict[str, tuple[str | None, str | None]] = {}
        for i in np.flatnonzero(old.feeder[:nb] != new.feeder[:nb]):
            a, b = int(old.feeder[i]), int(new.feeder[i])
            feeder_changes[str(ids[i])] = (
                g.feeder_names[a] if a != _NO_FEEDER else None,
                g.feeder_names[b] if b != _NO_FEEDER else None,
            )
        load_old = old.energised[g.load_node] & g.load_in_service
        load_new = new.energised[g.load_node] & g.load_in_service
        up = load_new & ~load_old
        down = load_old & ~load_new
        return TopologyChange(
            switches=switches,
            changed=changed,
            energised_buses=buses(new.energised & ~old.energised),
            deenergised_buses=buses(old.energised & ~new.energised),
            earthed_buses=buses(new.earthed & ~old.earthed),
            unearthed_buses=buses(old.earthed & ~new.earthed),
            feeder_changes=feeder_changes,
            energised_loads=tuple(g.load_ids[up].tolist()),
            deenergised_loads=tuple(g.load_ids[down].tolist()),
            customers_restored=int(g.load_customers[up].sum()),
            customers_interrupted=int(g.load_customers[down].sum()),
            loops_before=old.loops,
            loops_after=new.loops,
            energised_and_earthed=buses(new.energised & new.earthed),
            elapsed_ms=(time.perf_counter() - t0) * 1e3,
        )

    def loops(self) -> list[Loop]:
        """The independent loops of the closed graph (a cycle basis), all sources joined."""
        g = self._graph
        closed = g.edge_closed()
        graph: nx.Graph[Any] = nx.Graph()
        # Each edge becomes a node of its own so parallel branches show up as loops.
        for e in np.flatnonzero(closed):
            graph.add_edge(("n", int(g.edge_u[e])), ("e", int(e)))
            graph.add_edge(("e", int(e)), ("n", int(g.edge_v[e])))
        for node in g.source_nodes:
            graph.add_edge(("src", 0), ("n", int(node)))
        out = []
        for cycle in nx.cycle_basis(graph):
            nodes = [int(k[1]) for k in cycle if k[0] == "n"]
            branches: list[str] = []
            for edge in (int(k[1]) for k in cycle if k[0] == "e"):
                table, index = g.edge_owner[edge]
                gid = (
                    self.model.gis_id_of(table, index)
                    if "gis_id" in self.model.net[table]
                    else f"{table}-{index}"
                )
                if gid not in branches:
                    branches.append(gid)
            out.append(
                Loop(
                    buses=tuple(str(g.bus_ids[n]) for n in nodes if n < g.n_bus),
                    branches=tuple(branches),
                    via_sources=any(k[0] == "src" for k in cycle),
                    energised=bool(any(self._sol.energised[n] for n in nodes)),
                )
            )
        return out


def derive_feeders(
    model: NetworkModel,
) -> tuple[dict[str, Feeder], dict[str, dict[int, str | None]]]:
    """Feeders and each element's feeder in the normal switching state.

    Returns ``(feeders, assignments)`` where ``assignments[table][index]`` is
    the feeder id of that element (``None`` upstream of the feeder breakers).
    """
    net = model.net
    proc = TopologyProcessor(model, normal_state=True)
    g = proc._graph
    sol = proc._sol
    names = g.feeder_names
    bus_feeder = [names[f] if f != _NO_FEEDER else None for f in sol.feeder[: g.n_bus]]
    by_bus = dict(zip(net.bus.index.tolist(), bus_feeder, strict=True))
    head_of_switch = {h.switch_index: names[k] for k, h in enumerate(g.heads)}
    head_of_line = {h.line_index: names[k] for k, h in enumerate(g.heads)}

    out: dict[str, dict[int, str | None]] = {"bus": dict(by_bus)}
    for table in ("line", "impedance"):
        rows: dict[int, str | None] = {}
        for index, a, b in zip(
            net[table].index, net[table].from_bus, net[table].to_bus, strict=True
        ):
            # A branch belongs to the feeder that energises it: an end that is closed.
            edge = g.branch_edges[(table, int(index))][0]
            ends = [end for side, end in ((0, a), (1, b)) if g.side_open[edge, side] == 0]
            rows[int(index)] = head_of_line.get(int(index)) or next(
                (by_bus[end] for end in ends if by_bus.get(end)), None
            )
        out[table] = rows
    for table, cols in (
        ("trafo", ("hv_bus", "lv_bus")),
        ("trafo3w", ("hv_bus", "mv_bus", "lv_bus")),
    ):
        out[table] = {
            int(index): next((by_bus.get(row[c]) for c in cols if by_bus.get(row[c])), None)
            for index, row in net[table].iterrows()
        }
    for table in _SINGLE_BUS_TABLES:
        if table in net and len(net[table]) and "bus" in net[table].columns:
            out[table] = {
                int(i): by_bus.get(b) for i, b in zip(net[table].index, net[table].bus, strict=True)
            }
    for index in head_of_switch:
        out["switch"][index] = head_of_switch[index]
    if "fpi" in net and len(net.fpi):
        out["fpi"] = {
            int(i): (out["line"] if et == "line" else out["switch"]).get(int(el))
            for i, et, el in zip(net.fpi.index, net.fpi.et, net.fpi.element, strict=True)
        }

    feeders: dict[str, Feeder] = {}
    sub_ids: dict[int, str] = {}
    if "substation" in net and len(net.substation):
        sub_ids = dict(
            zip(net.substation.index.tolist(), net.substation.gis_id.tolist(), strict=True)
        )
    for k, head in enumerate(g.heads):
        bus_row = net.bus.loc[head.bus_index]
        sub = bus_row.get("substation") if "substation" in net.bus.columns else None
        feeders[names[k]] = Feeder(
            id=names[k],
            head_switch=head.switch_id,
            head_bus=str(g.bus_ids[net.bus.index.get_loc(head.bus_index)]),
            substation=sub_ids.get(int(sub)) if sub is not None and not _isna(sub) else None,
            buses=tuple(
                str(b)
                for b, f in zip(g.bus_ids[: g.n_bus], bus_feeder, strict=True)
                if f == names[k]
            ),
        )
    return feeders, out


def _isna(value: Any) -> bool:
    try:
        return bool(value != value) or value is None
    except (TypeError, ValueError):
        return False


def benchmark(
    network: str | NetworkModel = "mv_oberrhein",
    changes: int = 1000,
    *,
    seed: int = 0,
    switches: Sequence[str] | None = None,
) -> dict[str, float]:
    """Time ``changes`` random switch toggles; figures in milliseconds.

    Returns ``build_ms`` (processor construction), ``update_ms_p50``,
    ``update_ms_p99``, ``update_ms_max`` and the sizes used.
    """
    if isinstance(network, str):
        # Imported here: the loaders use this module to derive feeders.
        from models.loader import load_network

        model = load_network(network)
    else:
        model = network.copy()
    t0 = time.perf_counter()
    proc = TopologyProcessor(model)
    build_ms = (time.perf_counter() - t0) * 1e3
    rng = random.Random(seed)
    pool = list(switches) if switches is not None else list(proc._graph.switch_ids)
    times = []
    for _ in range(changes):
        sw = rng.choice(pool)
        t = time.perf_counter()
        proc.set_switch(sw, not proc.is_closed(sw))
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return {
        "buses": float(len(model.net.bus)),
        "switches": float(len(pool)),
        "changes": float(changes),
        "build_ms": build_ms,
        "update_ms_p50": statistics.median(times),
        "update_ms_p99": times[min(len(times) - 1, int(0.99 * len(times)))],
        "update_ms_max": times[-1],
    }


if __name__ == "__main__":
    import sys

    _args = sys.argv[1:]
    _figures = benchmark(
        _args[0] if _args else "mv_oberrhein", int(_args[1]) if len(_args) > 1 else 1000
    )
    for _key, _value in _figures.items():
        print(f"{_key:>14}: {_value:.3f}")
