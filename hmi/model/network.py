"""The network drawing model: elements from the server's GeoJSON, point bindings and layouts.

Contract:
- :meth:`NetworkGraph.from_collection` reads ``GET /api/network`` (a GeoJSON
  FeatureCollection, ``models/GEOJSON.md``, with ``pyadms.bindings``). WGS84
  coordinates are projected to local metres (equirectangular about the
  network's centre, north up); schematic coordinates are taken as they are.
  Layout coordinates have y pointing down, as on a screen.
- :meth:`NetworkGraph.layout` gives a position for every element that is
  drawn as a symbol and a path for every line: ``"geographic"`` from the
  geometry (elements without it are placed from their buses: a switch on
  its line near its bus, a transformer between its buses...), or
  ``"schematic"``: a one-line diagram where each source's network is a tree
  in the normal switching state (the largest branch continues straight,
  the others drop below) and normally open ties are drawn straight across.
- Bindings tie points to elements: :meth:`status_point` is the monitored
  status of a switch, :meth:`points_of` every point bound to an element.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Binding", "Element", "Layout", "NetworkGraph", "natural_key"]

Point = tuple[float, float]

_EARTH_M = 6_371_000.0
#: schematic grid: one tree level across, one row down
SCHEMATIC_DX = 100.0
SCHEMATIC_DY = 60.0
#: a switch without geometry sits this fraction of its line's length from its bus
_SWITCH_FRACTION = 0.25


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key putting ``B2`` before ``B10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


@dataclass(frozen=True, slots=True)
class Binding:
    """A point bound to an element: ``qualifier`` says which quantity or side (None: status)."""

    point: str
    table: str
    qualifier: str | None


@dataclass(slots=True)
class Element:
    """One feature: id, kind, display name, properties and projected geometry."""

    id: str
    kind: str
    name: str
    props: dict[str, Any]
    #: projected coordinates (y down); one point, a polyline, or a polygon ring; [] without
    geometry: list[Point] = field(default_factory=list)

    @property
    def feeder(self) -> str | None:
        """The feeder in the normal switching state."""
        f = self.props.get("feeder")
        return f if isinstance(f, str) else None

    @property
    def switch_type(self) -> str | None:
        t = self.props.get("switch_type")
        return t if isinstance(t, str) else None

    @property
    def normal_open(self) -> bool:
        return bool(self.props.get("normal_open", False))

    def buses(self) -> tuple[str, ...]:
        """The buses the element connects to (its terminals)."""
        p = self.props
        keys: tuple[str, ...]
        if self.kind == "bus":
            return (self.id,)
        if self.kind == "line" or self.kind == "regulator":
            keys = ("from_bus", "to_bus")
        elif self.kind == "transformer":
            keys = ("hv_bus", "lv_bus")
        elif self.kind == "switch" and p.get("et") == "bus":
            keys = ("bus", "element")
        elif self.kind in ("switch", "load", "der", "capacitor", "ext_grid"):
            keys = ("bus",)
        else:
            return ()
        return tuple(str(p[k]) for k in keys if isinstance(p.get(k), str))


@dataclass
class Layout:
    """Where each element is drawn: symbols at ``points``, lines along ``paths``."""

    name: str
    points: dict[str, Point]
    paths: dict[str, list[Point]]

    def bounds(self) -> tuple[float, float, float, float]:
        """``(x_min, y_min, x_max, y_max)`` over everything placed."""
        xs = [x for x, _ in self.points.values()]
        ys = [y for _, y in self.points.values()]
        for path in self.paths.values():
            xs.extend(x for x, _ in path)
            ys.extend(y for _, y in path)
        if not xs:
            return (0.0, 0.0, 1.0, 1.0)
        return (min(xs), min(ys), max(xs), max(ys))


class NetworkGraph:
    """Elements, bindings and layouts of one network; see the module docstring."""

    def __init__(
        self,
        name: str,
        coordinates: str,
        elements: dict[str, Element],
        bindings: dict[str, list[Binding]],
        feeder_heads: dict[str, str],
    ) -> None:
        self.name = name
        self.coordinates = coordinates
        self.elements = elements
        self.bindings = bindings
        self.feeder_heads = feeder_heads
        #: point -> (element id, binding)
        self.element_of_point: dict[str, tuple[str, Binding]] = {
            b.point: (gid, b) for gid, bs in bindings.items() for b in bs
        }
        self._by_kind: dict[str, list[str]] = {}
        for e in elements.values():
            self._by_kind.setdefault(e.kind, []).append(e.id)
        self._layouts: dict[str, Layout] = {}

    # -------------------------------------------------------------- import
    @classmethod
    def from_collection(cls, fc: dict[str, Any]) -> NetworkGraph:
        """Read a FeatureCollection as ``GET /api/network`` serves it."""
        meta = fc.get("pyadms") or {}
        coordinates = str(meta.get("coordinates", "wgs84"))
        features = fc.get("features") or []
        project = _projection(features) if coordinates == "wgs84" else _flip
        elements: dict[str, Element] = {}
        for f in features:
            props = dict(f.get("properties") or {})
            gid = str(props.get("id", f.get("id")))
            kind = str(props.get("kind"))
            elements[gid] = Element(
                id=gid,
                kind=kind,
                name=str(props.get("name") or gid),
                props=props,
                geometry=[project(c) for c in _coordinates(f.get("geometry"))],
            )
        bindings = {
            gid: [Binding(b["point"], b["table"], b.get("qualifier")) for b in bs]
            for gid, bs in (meta.get("bindings") or {}).items()
        }
        return cls(
            str(meta.get("name", "network")),
            coordinates,
            elements,
            bindings,
            dict(meta.get("feeder_heads") or {}),
        )

    # ------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self.elements)

    def __contains__(self, gid: object) -> bool:
        return gid in self.elements

    def of_kind(self, kind: str) -> list[Element]:
        return [self.elements[g] for g in self._by_kind.get(kind, [])]

    def feeders(self) -> list[str]:
        """Every feeder id, in natural order."""
        found = {e.feeder for e in self.elements.values() if e.feeder}
        found.update(self.feeder_heads)
        return sorted((f for f in found if f), key=natural_key)

    def points_of(self, gid: str) -> list[Binding]:
        return self.bindings.get(gid, [])

    def status_point(self, gid: str) -> str | None:
        """The monitored status point of a switch (None when the switch is not telemetered)."""
        return next(
            (
                b.point
                for b in self.bindings.get(gid, [])
                if b.table == "switch" and not b.qualifier
            ),
            None,
        )

    def search(self, text: str, limit: int = 50) -> list[str]:
        """Element ids matching ``text`` (id or name, case-insensitive): exact, prefix, contains."""
        t = text.strip().lower()
        if not t:
            return []
        exact, prefix, contains = [], [], []
        for e in self.elements.values():
            gid, name = e.id.lower(), e.name.lower()
            if t in (gid, name):
                exact.append(e.id)
            elif gid.startswith(t) or name.startswith(t):
                prefix.append(e.id)
            elif t in gid or t in name:
                contains.append(e.id)
        prefix.sort(key=natural_key)
        contains.sort(key=natural_key)
        return (exact + prefix + contains)[:limit]

    # ------------------------------------------------------------- layouts
    def layout(self, name: str = "geographic") -> Layout:
        """The ``"geographic"`` or ``"schematic"`` layout (computed once each).

        A geographic layout falls back to the schematic one when a bus has no geometry.
        """
        if name not in ("geographic", "schematic"):
            raise ValueError(f"layout {name!r}: 'geographic' or 'schematic'")
        cached = self._layouts.get(name)
        if cached is not None:
            return cached
        if name == "geographic" and all(e.geometry for e in self.of_kind("bus")):
            buses = {e.id: e.geometry[0] for e in self.of_kind("bus")}
            paths = {
                e.id: list(e.geometry) if len(e.geometry) >= 2 else self._straight(e, buses)
                for e in self.of_kind("line")
            }
            layout = self._complete("geographic", buses, paths, use_geometry=True)
        else:
            buses, paths = self._schematic()
            layout = self._complete("schematic", buses, paths, use_geometry=False)
        self._layouts[name] = layout
        return layout

    def _straight(self, line: Element, buses: dict[str, Point]) -> list[Point]:
        return [buses[b] for b in line.buses() if b in buses]

    def _complete(
        self, name: str, buses: dict[str, Point], paths: dict[str, list[Point]], use_geometry: bool
    ) -> Layout:
        """Place every symbol from geometry (when allowed) or from the buses and lines."""
        points: dict[str, Point] = dict(buses)

        def own(e: Element) -> Point | None:
            if not use_geometry or not e.geometry:
                return None
            if e.kind == "substation" and len(e.geometry) > 1:
                return _centroid(e.geometry)
            return e.geometry[0]

        def at_buses(e: Element) -> Point | None:
            found = [buses[b] for b in e.buses() if b in buses]
            return _centroid(found) if found else None

        for kind in ("transformer", "regulator", "ext_grid", "load", "der", "capacitor"):
            for e in self.of_kind(kind):
                p = own(e) or at_buses(e)
                if p is not None:
                    points[e.id] = p
        for e in self.of_kind("switch"):
            p = own(e) or self._switch_position(e, buses, paths, points)
            if p is not None:
                points[e.id] = p
        for e in self.of_kind("fpi"):
            p = own(e)
            if p is None:
                host = e.props.get("switch") or e.props.get("line")
                if isinstance(host, str):
                    p = points.get(host) or (_midpoint(paths[host]) if host in paths else None)
            if p is not None:
                points[e.id] = p
        for e in self.of_kind("substation"):
            p = own(e)
            if p is None:
                members = [
                    buses[b.id]
                    for b in self.of_kind("bus")
                    if b.props.get("substation") == e.id and b.id in buses
                ]
                p = _centroid(members) if members else None
            if p is not None:
                points[e.id] = p
        return Layout(name, points, paths)

    def _switch_position(
        self,
        e: Element,
        buses: dict[str, Point],
        paths: dict[str, list[Point]],
        points: dict[str, Point],
    ) -> Point | None:
        bus = e.props.get("bus")
        element = e.props.get("element")
        at = buses.get(bus) if isinstance(bus, str) else None
        if at is None:
            return None
        et = e.props.get("et")
        if et == "line" and isinstance(element, str) and element in paths:
            path = paths[element]
            from_start = _dist(path[0], at) <= _dist(path[-1], at)
            return _along(path, from_start, _SWITCH_FRACTION)
        if isinstance(element, str):
            other = buses.get(element) if et == "bus" else points.get(element)
            if other is not None:
                return (at[0] + (other[0] - at[0]) * 0.5, at[1] + (other[1] - at[1]) * 0.5)
        return at

    def _schematic(self) -> tuple[dict[str, Point], dict[str, list[Point]]]:
        """Tree layout of buses from the sources in the normal state; see the module docstring."""
        bus_ids = sorted((e.id for e in self.of_kind("bus")), key=natural_key)
        adjacency: dict[str, list[tuple[str, str]]] = {b: [] for b in bus_ids}
        open_lines = {
            str(s.props.get("element"))
            for s in self.of_kind("switch")
            if s.normal_open and s.props.get("et") == "line"
        }
        for kind in ("transformer", "regulator", "line", "switch"):
            for e in sorted(self.of_kind(kind), key=lambda el: natural_key(el.id)):
                ends = e.buses()
                if len(ends) != 2 or ends[0] not in adjacency or ends[1] not in adjacency:
                    continue
                if e.id in open_lines or (kind == "switch" and e.normal_open):
                    continue
                adjacency[ends[0]].append((ends[1], e.id))
                adjacency[ends[1]].append((ends[0], e.id))
        sources = [
            str(g.props["bus"])
            for g in sorted(self.of_kind("ext_grid"), key=lambda el: natural_key(el.id))
            if g.props.get("bus") in adjacency
        ]
        children: dict[str, list[str]] = {b: [] for b in bus_ids}
        visited: set[str] = set()
        roots: list[str] = []
        for start in [*sources, *bus_ids]:
            if start in visited:
                continue
            roots.append(start)
            visited.add(start)
            queue = [start]
            for node in queue:  # breadth first: the tree follows the shortest electrical path
                for other, _ in adjacency[node]:
                    if other not in visited:
                        visited.add(other)
                        children[node].append(other)
                        queue.append(other)
        size = _subtree_sizes(roots, children)
        for kids in children.values():
            kids.sort(key=lambda b: (-size[b], natural_key(b)))
        rows = _rows(roots, children)
        buses = {b: (depth * SCHEMATIC_DX, row * SCHEMATIC_DY) for b, (depth, row) in rows.items()}
        parent = {kid: node for node, kids in children.items() for kid in kids}
        paths: dict[str, list[Point]] = {}
        for e in self.of_kind("line"):
            ends = e.buses()
            if len(ends) != 2 or ends[0] not in buses or ends[1] not in buses:
                continue
            a, b = ends
            if parent.get(a) == b:
                a, b = b, a
            pa, pb = buses[a], buses[b]
            if parent.get(b) == a and pa[1] != pb[1]:
                # drop from the parent then run across: the one-line diagram's branch shape
                paths[e.id] = [pa, (pa[0], pb[1]), pb]
            else:
                paths[e.id] = [pa, pb]
        return buses, paths


# ------------------------------------------------------------------ geometry
def _coordinates(geometry: Any) -> list[list[float]]:
    if not isinstance(geometry, dict):
        return []
    kind = geometry.get("type")
    coords: Any = geometry.get("coordinates")
    if kind == "Point":
        return [coords]
    if kind == "LineString":
        return list(coords)
    if kind == "Polygon" and coords:
        return list(coords[0])
    return []


def _flip(c: list[float]) -> Point:
    return (float(c[0]), -float(c[1]))


def _projection(features: Iterable[dict[str, Any]]) -> Any:
    """Equirectangular projection to metres about the centre of every coordinate."""
    lons, lats = [], []
    for f in features:
        for c in _coordinates(f.get("geometry")):
            lons.append(float(c[0]))
            lats.append(float(c[1]))
    lon0 = (min(lons) + max(lons)) / 2 if lons else 0.0
    lat0 = (min(lats) + max(lats)) / 2 if lats else 0.0
    kx = math.radians(1) * _EARTH_M * math.cos(math.radians(lat0))
    ky = math.radians(1) * _EARTH_M

    def project(c: list[float]) -> Point:
        return ((float(c[0]) - lon0) * kx, -(float(c[1]) - lat0) * ky)

    return project


def _centroid(points: list[Point]) -> Point:
    return (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))


def _dist(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def _midpoint(path: list[Point]) -> Point:
    return _along(path, True, 0.5)


def _along(path: list[Point], from_start: bool, fraction: float) -> Point:
    """The point ``fraction`` of the path's length from one end."""
    pts = path if from_start else path[::-1]
    total = sum(_dist(a, b) for a, b in zip(pts, pts[1:], strict=False))
    want = total * fraction
    for a, b in zip(pts, pts[1:], strict=False):
        d = _dist(a, b)
        if d >= want and d > 0:
            t = want / d
            return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
        want -= d
    return pts[-1]


def _subtree_sizes(roots: list[str], children: dict[str, list[str]]) -> dict[str, int]:
    order: list[str] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(children[node])
    size: dict[str, int] = {}
    for node in reversed(order):
        size[node] = 1 + sum(size[k] for k in children[node])
    return size


def _rows(roots: list[str], children: dict[str, list[str]]) -> dict[str, tuple[int, int]]:
    """(depth, row) per bus: a first child keeps its parent's row, later ones start below."""
    place: dict[str, tuple[int, int]] = {}
    max_row = -1
    for root in roots:
        max_row += 1
        place[root] = (0, max_row)
        stack: list[list[Any]] = [[root, 0]]
        while stack:
            frame = stack[-1]
            node, i = frame
            kids = children[node]
            if i >= len(kids):
                stack.pop()
                continue
            frame[1] += 1
            depth, row = place[node]
            child = kids[i]
            if i > 0:
                max_row += 1
                row = max_row
            place[child] = (depth + 1, row)
            stack.append([child, 0])
    return place
