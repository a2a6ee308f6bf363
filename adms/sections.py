"""Switch-bounded sections of a network, FPI positions and radial feeding trees.

Contract:
- :class:`SectionGraph` is built once from a :class:`NetworkModel`. Its nodes
  are the buses plus one node per branch element (line, transformer,
  impedance, three-winding transformer); its edges are *attachments*: a
  branch node to each of its terminal buses, plus one edge per bus-bus
  switch. A switch sits on the attachment at its bus end; an FPI on the
  attachment of its switch, or of its line at its ``bus`` end (the from end
  when it names no bus).
- An attachment conducts when its element is in service and every switch on
  it is closed. A *section* is what stays connected when every switch is
  open: the smallest part a set of switches can isolate.
- States are plain ``{switch id: closed}`` dicts (:meth:`SectionGraph.states`
  reads the model's), so studies try switching actions without touching
  ``model.net``. Earthing switches are not part of it (see
  :mod:`models.topology` for earthing).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from adms.errors import StudyInputError
from adms.powerflow import ids_of
from models.network import NetworkModel

__all__ = ["Attachment", "FeedTree", "SectionGraph", "SwitchInfo"]

#: switch types a study may operate under load / only when dead
LOAD_BREAKING = frozenset({"breaker", "recloser", "load_break_switch"})
DEAD_ONLY = frozenset({"disconnector"})
PROTECTIVE = frozenset({"breaker", "recloser"})


@dataclass(frozen=True)
class Attachment:
    """An edge of the section graph: ``element`` node to ``bus`` node."""

    index: int
    element: int
    bus: int
    switches: tuple[str, ...]
    fpis: tuple[str, ...]


@dataclass(frozen=True)
class SwitchInfo:
    """What a study needs to know about a switch."""

    id: str
    switch_type: str
    normal_open: bool
    edge: int

    @property
    def load_breaking(self) -> bool:
        """Whether it may open or close under load."""
        return self.switch_type in LOAD_BREAKING

    @property
    def operable(self) -> bool:
        """Whether a study may operate it at all (fuses and unknown types are not)."""
        return self.switch_type in LOAD_BREAKING or self.switch_type in DEAD_ONLY


@dataclass
class FeedTree:
    """Energised nodes of a radial state with the attachment each is fed through."""

    energised: set[int]
    parent_edge: dict[int, int]
    depth: dict[int, int]

    def child_of(self, edge: Attachment) -> int | None:
        """The downstream end of an energised, conducting attachment (None otherwise)."""
        for node in (edge.element, edge.bus):
            if self.parent_edge.get(node) == edge.index:
                return node
        return None


class SectionGraph:
    """Sections, attachments, switches and FPIs of a model (see the module doc)."""

    def __init__(self, model: NetworkModel) -> None:
        """Index the model's buses, branches, switches and FPIs."""
        self.model = model
        net = model.net
        self.bus_ids = ids_of(net, "bus")
        self._bus_node = {gid: k for k, gid in enumerate(self.bus_ids)}
        self.node_of_bus = {int(b): k for k, b in enumerate(net.bus.index)}
        self.node_ids: list[str] = list(self.bus_ids)
        self.node_kind: list[str] = ["bus"] * len(self.bus_ids)
        self.node_in_service: list[bool] = [True] * len(self.bus_ids)
        edges: list[tuple[int, int]] = []
        self._edge_of: dict[tuple[str, int, int], int] = {}
        self.branch_node: dict[str, int] = {}

        terminals = {
            "line": ("from_bus", "to_bus"),
            "trafo": ("hv_bus", "lv_bus"),
            "impedance": ("from_bus", "to_bus"),
            "trafo3w": ("hv_bus", "mv_bus", "lv_bus"),
        }
        for table, cols in terminals.items():
            if table not in net or not len(net[table]):
                continue
            frame = net[table]
            for gid, (index, row) in zip(ids_of(net, table), frame.iterrows(), strict=True):
                node = len(self.node_ids)
                self.node_ids.append(gid)
                self.node_kind.append(table)
                self.node_in_service.append(bool(row.get("in_service", True)))
                self.branch_node[gid] = node
                for col in cols:
                    bus = self.node_of_bus[int(row[col])]
                    self._edge_of[(table, int(index), bus)] = len(edges)
                    edges.append((node, bus))

        sw = net.switch
        sw_ids = ids_of(net, "switch")
        types = sw["switch_type"].tolist() if "switch_type" in sw.columns else [None] * len(sw)
        normal = (
            sw["normal_open"].fillna(False).astype(bool).tolist()
            if "normal_open" in sw.columns
            else (~sw.closed.astype(bool)).tolist()
        )
        et_table = {"l": "line", "t": "trafo", "t3": "trafo3w"}
        edge_switches: dict[int, list[str]] = {}
        self.switches: dict[str, SwitchInfo] = {}
        for gid, et, bus, element, kind, pp_type, n_open in zip(
            sw_ids, sw.et, sw.bus, sw.element, types, sw.type, normal, strict=True
        ):
            if et == "b":
                edge = len(edges)
                edges.append((self.node_of_bus[int(element)], self.node_of_bus[int(bus)]))
            else:
                key = (et_table[str(et)], int(element), self.node_of_bus[int(bus)])
                if key not in self._edge_of:
                    raise StudyInputError(
                        "switch bus is not a terminal of its element", element=gid, field="bus"
                    )
                edge = self._edge_of[key]
            edge_switches.setdefault(edge, []).append(gid)
            stype = (
                kind
                if isinstance(kind, str)
                else (
                    "breaker"
                    if pp_type == "CB"
                    else ("load_break_switch" if pp_type == "LBS" else "disconnector")
                )
            )
            self.switches[gid] = SwitchInfo(gid, stype, bool(n_open), edge)

        edge_fpis: dict[int, list[str]] = {}
        self.fpi_edge: dict[str, int] = {}
        if "fpi" in net and len(net.fpi):
            for gid, (_, row) in zip(ids_of(net, "fpi"), net.fpi.iterrows(), strict=True):
                if not bool(row.get("in_service", True)):
                    continue
                if row.et == "switch":
                    edge = self.switches[self.model.gis_id_of("switch", int(row.element))].edge
                else:
                    line = net.line.loc[int(row.element)]
                    bus = row.get("bus")
                    end = int(bus) if bus is not None and bus == bus else int(line.from_bus)
                    edge = self._edge_of[("line", int(row.element), self.node_of_bus[end])]
                self.fpi_edge[gid] = edge
                edge_fpis.setdefault(edge, []).append(gid)

        self.edges = [
            Attachment(k, u, v, tuple(edge_switches.get(k, ())), tuple(edge_fpis.get(k, ())))
            for k, (u, v) in enumerate(edges)
        ]
        self.adjacent: list[list[int]] = [[] for _ in self.node_ids]
        for e in self.edges:
            self.adjacent[e.element].append(e.index)
            self.adjacent[e.bus].append(e.index)
        self.source_nodes = sorted(
            {
                self.node_of_bus[int(b)]
                for b in net.ext_grid.bus[net.ext_grid.in_service.to_numpy(bool)]
            }
        )
        self._sections()
        self._loads(net)

    # ------------------------------------------------------------------ build

    def _sections(self) -> None:
        parent = list(range(len(self.node_ids)))

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for e in self.edges:
            if not e.switches:
                ra, rb = find(e.element), find(e.bus)
                if ra != rb:
                    parent[ra] = rb
        roots = sorted({find(n) for n in range(len(self.node_ids))})
        number = {r: k for k, r in enumerate(roots)}
        self.section_of = [number[find(n)] for n in range(len(self.node_ids))]
        self.section_nodes: list[list[int]] = [[] for _ in roots]
        for node, sec in enumerate(self.section_of):
            self.section_nodes[sec].append(node)

    def _loads(self, net: Any) -> None:
        load = net.load
        self.load_ids = ids_of(net, "load")
        self.load_node = [self.node_of_bus[int(b)] for b in load.bus]
        on = load.in_service.to_numpy(bool) if len(load) else np.zeros(0, bool)
        self.load_p_mw = (load.p_mw.to_numpy(float) * load.scaling.to_numpy(float) * on).tolist()
        self.load_customers = (
            np.nan_to_num(load["customers"].to_numpy(float)).astype(int).tolist()
            if "customers" in load.columns
            else [0] * len(load)
        )
        self.node_customers = [0] * len(self.node_ids)
        self.node_load_mw = [0.0] * len(self.node_ids)
        for node, c, p, live in zip(
            self.load_node, self.load_customers, self.load_p_mw, on, strict=True
        ):
            if live:
                self.node_customers[node] += c
                self.node_load_mw[node] += p

    # --------------------------------------------------------------- queries

    def states(self) -> dict[str, bool]:
        """The model's current switch states."""
        net = self.model.net
        return dict(
            zip(ids_of(net, "switch"), net.switch.closed.astype(bool).tolist(), strict=True)
        )

    def normal_states(self) -> dict[str, bool]:
        """The normal switching state (``not normal_open``)."""
        return {gid: not info.normal_open for gid, info in self.switches.items()}

    def conducts(self, edge: Attachment, states: Mapping[str, bool]) -> bool:
        """Whether an attachment conducts in ``states``."""
        return self.node_in_service[edge.element] and all(states[s] for s in edge.switches)

    def feed_tree(self, states: Mapping[str, bool]) -> FeedTree:
        """Breadth-first feeding tree from the sources over conducting attachments."""
        parent_edge: dict[int, int] = {}
        depth = {n: 0 for n in self.source_nodes}
        seen = set(self.source_nodes)
        queue = deque(self.source_nodes)
        while queue:
            node = queue.popleft()
            for k in self.adjacent[node]:
                e = self.edges[k]
                other = e.bus if e.element == node else e.element
                if other in seen or not self.conducts(e, states):
                    continue
                seen.add(other)
                parent_edge[other] = k
                depth[other] = depth[node] + 1
                queue.append(other)
        return FeedTree(seen, parent_edge, depth)

    def component(
        self, start: int, states: Mapping[str, bool], *, stop_edges: Iterable[int] = ()
    ) -> set[int]:
        """Nodes joined to ``start`` by conducting attachments not in ``stop_edges``."""
        stop = set(stop_edges)
        seen = {start}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for k in self.adjacent[node]:
                if k in stop:
                    continue
                e = self.edges[k]
                other = e.bus if e.element == node else e.element
                if other not in seen and self.conducts(e, states):
                    seen.add(other)
                    queue.append(other)
        return seen

    def downstream(self, tree: FeedTree, edge: Attachment) -> set[int]:
        """Nodes fed through ``edge`` in ``tree`` (empty when it feeds nothing)."""
        child = tree.child_of(edge)
        if child is None:
            return set()
        out = {child}
        queue = deque([child])
        while queue:
            node = queue.popleft()
            for k in self.adjacent[node]:
                e = self.edges[k]
                other = e.bus if e.element == node else e.element
                if tree.parent_edge.get(other) == k and other not in out:
                    out.add(other)
                    queue.append(other)
        return out

    def path_edges(self, tree: FeedTree, node: int) -> list[int]:
        """Attachments from the source down to ``node`` (source first)."""
        out = []
        while node in tree.parent_edge:
            k = tree.parent_edge[node]
            out.append(k)
            e = self.edges[k]
            node = e.bus if e.element == node else e.element
        return out[::-1]

    def boundary_edges(self, nodes: set[int]) -> list[int]:
        """Attachments with exactly one end in ``nodes``."""
        out = []
        for node in nodes:
            for k in self.adjacent[node]:
                e = self.edges[k]
                if (e.element in nodes) != (e.bus in nodes):
                    out.append(k)
        return sorted(set(out))

    def section_closure(self, nodes: Iterable[int]) -> set[int]:
        """The union of the sections that hold any of ``nodes``."""
        out: set[int] = set()
        for sec in {self.section_of[n] for n in nodes}:
            out.update(self.section_nodes[sec])
        return out

    def customers(self, nodes: Iterable[int]) -> int:
        """Customers of in-service loads at ``nodes``."""
        return sum(self.node_customers[n] for n in set(nodes))

    def load_mw(self, nodes: Iterable[int]) -> float:
        """Active power demand (MW, at scaling) of loads at ``nodes``."""
        return sum(self.node_load_mw[n] for n in set(nodes))

    def node(self, gis_id: str) -> int:
        """Node of a bus or branch element GIS id."""
        if gis_id in self.branch_node:
            return self.branch_node[gis_id]
        if gis_id in self._bus_node:
            return self._bus_node[gis_id]
        raise StudyInputError("neither a bus nor a branch", element=gis_id)

    def names(self, nodes: Iterable[int], kind: str | None = None) -> list[str]:
        """GIS ids of ``nodes`` (only of one kind, e.g. ``"bus"``/``"line"``), sorted."""
        return sorted(
            self.node_ids[n] for n in set(nodes) if kind is None or self.node_kind[n] == kind
        )

    def switch(self, gis_id: str) -> SwitchInfo:
        """Switch info; :class:`StudyInputError` for an unknown id."""
        try:
            return self.switches[gis_id]
        except KeyError:
            raise StudyInputError("no such switch", element=gis_id) from None
