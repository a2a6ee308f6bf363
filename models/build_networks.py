"""Build the bundled networks in ``models/networks/`` from pandapower's example grids.

Run ``python -m models.build_networks [DIR]`` (default: the package's
``networks/`` folder). Deterministic: the same pandapower version writes the
same files. GIS ids are derived from the pandapower indices (bus ``B<i>``,
line ``L<i>``, load ``LD<i>``, DER ``G<i>``, transformer ``TR<i>``, ext grid
``EG<i>``), so results can be compared with the original nets.

What is synthetic (the sources do not have it), per network:

- ``mv_oberrhein``: switch types (its 4 substation breakers stay breakers and
  are the feeder heads; one recloser per feeder longer than 5 km at the
  switch that splits the feeder's load closest to half; load-break switches
  elsewhere; its 6 open switches are the normally-open points), substations,
  FPIs (at reclosers and at switches leaving branch points), customers.
- ``baran_wu``: schematic coordinates; the 5 tie lines (out of service in
  pandapower) are in service with a normally-open switch; a feeder breaker
  and 12 sectionalising switches with FPIs; ratings 0.4 kA (pandapower sets
  a 99999 kA placeholder); customers.
- ``cigre_mv``: schematic coordinates (pandapower's); feeder breakers at the
  two MV busbars; customers.

Customers: residential ``round(p_mw / 0.002)`` (2 kW per customer),
commercial/industrial ``round(p_mw / 0.05)``; at least 1.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import networkx as nx
import pandapower as pp
import pandapower.networks as pn
import pandas as pd
from pandapower.auxiliary import pandapowerNet

from models.geojson import CoordinateSystem
from models.gis_export import dumps_collection, to_feature_collection
from models.gis_import import fill_feeders
from models.network import NetworkModel

__all__ = ["BUILDERS", "build_all", "build_baran_wu", "build_cigre_mv", "build_mv_oberrhein"]

_RECLOSER_MIN_FEEDER_KM = 5.0


def _point(x: float, y: float) -> str:
    return json.dumps({"coordinates": [x, y], "type": "Point"})


def _coords(geo: Any) -> Any:
    return json.loads(geo)["coordinates"] if isinstance(geo, str) else None


def _customers(p_mw: float, residential: bool) -> int:
    return max(1, round(p_mw / (0.002 if residential else 0.05)))


def _base_columns(net: pandapowerNet, prefixes: dict[str, str]) -> None:
    """gis_id from the pandapower index, an empty feeder column, geo where missing."""
    for table, prefix in prefixes.items():
        frame = net[table]
        frame["gis_id"] = [f"{prefix}{i}" for i in frame.index]
        frame["feeder"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        if "geo" not in frame.columns:
            frame["geo"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        frame["geo"] = frame["geo"].astype(object)


def _point_elements_at_buses(net: pandapowerNet, tables: tuple[str, ...]) -> None:
    for table in tables:
        frame = net[table]
        frame["geo"] = [net.bus.at[b, "geo"] for b in frame.bus]


def _switch_points(net: pandapowerNet, along: float = 0.15) -> None:
    """Place a line switch a little way along its line from its bus (for drawing)."""
    geos: list[str | None] = []
    for _, sw in net.switch.iterrows():
        bus_xy = _coords(net.bus.at[sw.bus, "geo"])
        if sw.et == "l" and isinstance(net.line.at[sw.element, "geo"], str):
            line = _coords(net.line.at[sw.element, "geo"])
            a, b = (
                (line[0], line[1])
                if net.line.at[sw.element, "from_bus"] == sw.bus
                else (line[-1], line[-2])
            )
            geos.append(_point(a[0] + along * (b[0] - a[0]), a[1] + along * (b[1] - a[1])))
        else:
            geos.append(_point(*bus_xy[:2]) if bus_xy else None)
    net.switch["geo"] = geos


def _trafo_points(net: pandapowerNet) -> None:
    geos = []
    for _, tr in net.trafo.iterrows():
        a, b = _coords(net.bus.at[tr.hv_bus, "geo"]), _coords(net.bus.at[tr.lv_bus, "geo"])
        geos.append(_point((a[0] + b[0]) / 2, (a[1] + b[1]) / 2))
    net.trafo["geo"] = geos


def _substations(net: pandapowerNet, groups: list[tuple[str, str, list[int], int]]) -> None:
    """groups: (gis id, name, bus indices, bus whose point the substation takes)."""
    net["substation"] = pd.DataFrame(
        {
            "name": [g[1] for g in groups],
            "in_service": [True] * len(groups),
            "gis_id": [g[0] for g in groups],
            "feeder": [None] * len(groups),
            "geo": [net.bus.at[g[3], "geo"] for g in groups],
        }
    )
    net.bus["substation"] = pd.array([None] * len(net.bus), dtype="Int64")
    for k, (_, _, buses, _) in enumerate(groups):
        net.bus.loc[buses, "substation"] = k
        net.bus.loc[buses, "type"] = "b"


def _empty_custom_tables(net: pandapowerNet) -> None:
    if "earthing_switch" not in net:
        net["earthing_switch"] = pd.DataFrame(
            columns=[
                "bus",
                "name",
                "closed",
                "normal_open",
                "in_service",
                "gis_id",
                "feeder",
                "geo",
            ]
        )
    if "fpi" not in net:
        net["fpi"] = pd.DataFrame(
            columns=["name", "et", "element", "bus", "in_service", "gis_id", "feeder", "geo"]
        )


def _add_fpis(net: pandapowerNet, switches: list[int]) -> None:
    rows = [
        {
            "name": f"FPI {net.switch.at[s, 'gis_id']}",
            "et": "switch",
            "element": int(s),
            "bus": None,
            "in_service": True,
            "gis_id": f"FPI-{net.switch.at[s, 'gis_id']}",
            "feeder": None,
            "geo": net.switch.at[s, "geo"],
        }
        for s in switches
    ]
    net["fpi"] = pd.DataFrame(
        rows, columns=["name", "et", "element", "bus", "in_service", "gis_id", "feeder", "geo"]
    )
    net.fpi["bus"] = net.fpi["bus"].astype("Int64")


def _model(net: pandapowerNet, name: str, coordinates: CoordinateSystem) -> NetworkModel:
    model = NetworkModel(
        net=net,
        name=name,
        source=f"pandapower.networks:{name}",
        source_format="pandapower",
        coordinates=coordinates,
    )
    fill_feeders(model, log=False)
    return model


def _collection(model: NetworkModel, description: str) -> dict[str, Any]:
    collection = to_feature_collection(model, include_changes=False)
    collection["pyadms"]["description"] = description
    collection["pyadms"]["pandapower_version"] = pp.__version__
    return collection


def _feeder_tree(net: pandapowerNet, head: int) -> tuple[nx.DiGraph[int], dict[int, int]]:
    """The normal-state tree below feeder head switch ``head`` and line -> child bus."""
    sw = net.switch
    open_lines = set(sw.element[(sw.et == "l") & sw.normal_open])
    line = net.line
    g: nx.Graph[int] = nx.Graph()
    for idx, row in line.iterrows():
        if idx not in open_lines and row.in_service:
            g.add_edge(int(row.from_bus), int(row.to_bus), line=int(idx))
    head_line = int(sw.at[head, "element"])
    root = int(sw.at[head, "bus"])
    far = int(
        line.at[head_line, "to_bus"]
        if line.at[head_line, "from_bus"] == root
        else line.at[head_line, "from_bus"]
    )
    g.remove_node(root)
    tree: nx.DiGraph[int] = nx.bfs_tree(g, far)
    child_of_line = {int(g.edges[u, v]["line"]): v for u, v in tree.edges}
    child_of_line[head_line] = far
    return tree, child_of_line


def build_mv_oberrhein() -> dict[str, Any]:
    """mv_oberrhein: 2 substations, 4 feeders, breakers/reclosers/LBS, FPIs."""
    net = pn.mv_oberrhein()
    _base_columns(
        net,
        {
            "bus": "B",
            "line": "L",
            "switch": "SW",
            "load": "LD",
            "sgen": "G",
            "trafo": "TR",
            "ext_grid": "EG",
        },
    )
    _substations(
        net,
        [
            ("SS1", "Substation 1 (HV/MV Transformer 0)", [58, 39], 39),
            ("SS2", "Substation 2 (HV/MV Transformer 1)", [318, 319], 319),
        ],
    )
    net.bus.loc[net.bus.substation.isna(), "type"] = "n"
    _point_elements_at_buses(net, ("load", "sgen", "ext_grid"))
    _switch_points(net)
    _trafo_points(net)
    _empty_custom_tables(net)

    sw = net.switch
    sw["normal_open"] = ~sw.closed.astype(bool)
    sw["switch_type"] = ["breaker" if t == "CB" else "load_break_switch" for t in sw.type]
    sw["in_service"] = True
    heads = [int(i) for i in sw.index[sw.type == "CB"]]
    per_substation: dict[str, int] = {}
    for head in heads:
        sub = str(net.substation.gis_id[int(net.bus.at[sw.at[head, "bus"], "substation"])])
        per_substation[sub] = per_substation.get(sub, 0) + 1
        sw.at[head, "feeder"] = f"{sub}-F{per_substation[sub]}"

    reclosers: list[int] = []
    branch_switches: list[int] = []
    loads_at = net.load.groupby("bus").p_mw.sum().to_dict()
    for head in heads:
        tree, child_of_line = _feeder_tree(net, head)
        feeder_lines = [i for i in child_of_line if i in net.line.index]
        total_km = float(net.line.length_km[feeder_lines].sum())
        below = {
            b: sum(loads_at.get(d, 0.0) for d in nx.descendants(tree, b) | {b}) for b in tree.nodes
        }
        total = max(below.values())
        if total_km > _RECLOSER_MIN_FEEDER_KM:
            candidates = []
            for idx, s in sw[(sw.et == "l") & ~sw.normal_open & (sw.type != "CB")].iterrows():
                child = child_of_line.get(int(s.element))
                if child is None or s.bus == child:
                    continue  # only the switch at the upstream end of its line
                candidates.append((abs(below[child] / total - 0.5), int(idx)))
            reclosers.append(min(candidates)[1])
        for idx, s in sw[(sw.et == "l") & (sw.type != "CB")].iterrows():
            child = child_of_line.get(int(s.element))
            if (
                child is not None
                and s.bus != child
                and s.bus in tree
                and tree.out_degree(s.bus) >= 2
            ):
                branch_switches.append(int(idx))
    sw.loc[reclosers, "switch_type"] = "recloser"
    sw.loc[reclosers, "type"] = "CB"
    _add_fpis(net, sorted(set(reclosers) | set(branch_switches)))

    net.load["customers"] = [_customers(p, True) for p in net.load.p_mw]
    model = _model(net, "mv_oberrhein", CoordinateSystem.WGS84)
    return _collection(
        model,
        "pandapower.networks.mv_oberrhein(): 20 kV network in the Oberrhein region, "
        "2 HV/MV substations, 4 feeders. Switch types, reclosers, FPIs, substations and "
        "customers are synthetic (models.build_networks).",
    )


# Baran & Wu 33-bus: schematic layout and switching added for ADMS studies.
_BW_LATERALS = {18: (1, 21, -1.5), 22: (2, 24, 1.5), 25: (5, 32, -3.0)}
_BW_SECTIONALISERS = [
    (2, 2),
    (5, 5),
    (8, 8),
    (12, 12),
    (15, 15),
    (17, 1),
    (19, 19),
    (21, 2),
    (23, 23),
    (24, 5),
    (27, 27),
    (30, 30),
]
_BW_RATING_KA = 0.4


def _bw_layout() -> dict[int, tuple[float, float]]:
    xy = {i: (float(i), 0.0) for i in range(18)}
    for first, (parent, last, y) in _BW_LATERALS.items():
        for k, bus in enumerate(range(first, last + 1), 1):
            xy[bus] = (float(parent + k), y)
    return xy


def build_baran_wu() -> dict[str, Any]:
    """Baran & Wu 33-bus (case33bw): one feeder, 5 normally-open ties, 12 sectionalisers."""
    net = pn.case33bw()
    net.bus["type"] = "n"
    xy = _bw_layout()
    net.bus["geo"] = [_point(*xy[i]) for i in net.bus.index]
    _base_columns(net, {"bus": "B", "line": "L", "load": "LD", "ext_grid": "EG"})
    _substations(net, [("SS1", "Baran-Wu substation", [0], 0)])
    net.bus["zone"] = None
    net.bus["max_vm_pu"] = math.nan
    net.bus["min_vm_pu"] = math.nan

    ties = [int(i) for i in net.line.index[~net.line.in_service]]
    net.line["in_service"] = True
    net.line["max_i_ka"] = _BW_RATING_KA
    geos = []
    for _, line in net.line.iterrows():
        a, b = xy[int(line.from_bus)], xy[int(line.to_bus)]
        path = [a, b] if a[1] == b[1] or a[0] == b[0] or line.name in ties else [a, (a[0], b[1]), b]
        geos.append(json.dumps({"coordinates": [list(p) for p in path], "type": "LineString"}))
    net.line["geo"] = geos

    rows: list[dict[str, Any]] = [
        {
            "bus": 0,
            "element": 0,
            "switch_type": "breaker",
            "closed": True,
            "gis_id": "CB1",
            "name": "Feeder breaker",
            "feeder": "SS1-F1",
        }
    ]
    for n, (line, bus) in enumerate(_BW_SECTIONALISERS, 1):
        rows.append(
            {
                "bus": bus,
                "element": line,
                "switch_type": "load_break_switch",
                "closed": True,
                "gis_id": f"SW{n}",
                "name": f"Sectionaliser {n}",
                "feeder": None,
            }
        )
    for n, line in enumerate(ties, 1):
        rows.append(
            {
                "bus": int(net.line.at[line, "from_bus"]),
                "element": line,
                "switch_type": "load_break_switch",
                "closed": False,
                "gis_id": f"TIE{n}",
                "name": f"Tie {n}",
                "feeder": None,
            }
        )
    for r in rows:
        pp.create_switch(
            net,
            r["bus"],
            r["element"],
            "l",
            closed=r["closed"],
            type="CB" if r["switch_type"] == "breaker" else "LBS",
            name=r["name"],
        )
    net.switch["switch_type"] = [r["switch_type"] for r in rows]
    net.switch["normal_open"] = [not r["closed"] for r in rows]
    net.switch["in_service"] = True
    net.switch["gis_id"] = [r["gis_id"] for r in rows]
    net.switch["feeder"] = [r["feeder"] for r in rows]
    _switch_points(net)
    _empty_custom_tables(net)
    _add_fpis(
        net, [int(i) for i in net.switch.index if net.switch.at[i, "gis_id"].startswith("SW")]
    )
    _point_elements_at_buses(net, ("load", "ext_grid"))
    net.load["name"] = [f"Load {b}" for b in net.load.bus]
    net.load["customers"] = [_customers(p, True) for p in net.load.p_mw]
    for col in ("max_p_mw", "min_p_mw", "max_q_mvar", "min_q_mvar"):
        if col in net.ext_grid:
            net.ext_grid[col] = math.nan
    net.ext_grid["name"] = "Grid infeed"
    model = _model(net, "baran_wu", CoordinateSystem.SCHEMATIC)
    return _collection(
        model,
        "Baran & Wu 33-bus 12.66 kV test feeder (pandapower.networks.case33bw()). "
        "Schematic coordinates; tie lines as in-service lines with normally-open switches; "
        "breaker, sectionalisers, FPIs, 0.4 kA ratings and customers are synthetic "
        "(models.build_networks).",
    )


def build_cigre_mv() -> dict[str, Any]:
    """CIGRE MV benchmark with PV and wind DER; feeder breakers added at the MV busbars."""
    net = pn.create_cigre_network_mv(with_der="pv_wind")
    _base_columns(
        net,
        {
            "bus": "B",
            "line": "L",
            "switch": "SW",
            "load": "LD",
            "sgen": "G",
            "trafo": "TR",
            "ext_grid": "EG",
        },
    )
    _substations(net, [("SS1", "CIGRE MV substation", [0, 1, 12], 1)])
    net.bus.loc[net.bus.substation.isna(), "type"] = "n"
    net.bus["zone"] = None
    geos = []
    for _, line in net.line.iterrows():
        a, b = _coords(net.bus.at[line.from_bus, "geo"]), _coords(net.bus.at[line.to_bus, "geo"])
        geos.append(json.dumps({"coordinates": [a, b], "type": "LineString"}))
    net.line["geo"] = geos
    sw = net.switch
    sw["switch_type"] = ["breaker" if t == "CB" else "load_break_switch" for t in sw.type]
    sw["normal_open"] = ~sw.closed.astype(bool)
    sw["in_service"] = True
    sw["gis_id"] = [
        name if isinstance(name, str) else f"SW{i}"
        for i, name in zip(sw.index, sw.name, strict=True)
    ]
    for n, (bus, line) in enumerate(((1, 0), (12, 10)), 1):
        idx = pp.create_switch(
            net, bus, line, "l", closed=True, type="CB", name=f"Feeder breaker {n}"
        )
        net.switch.loc[idx, ["switch_type", "normal_open", "in_service", "gis_id", "feeder"]] = [
            "breaker",
            False,
            True,
            f"CB-F{n}",
            f"SS1-F{n}",
        ]
    net.switch["normal_open"] = net.switch["normal_open"].astype(bool)
    net.switch["in_service"] = net.switch["in_service"].astype(bool)
    _switch_points(net)
    _trafo_points(net)
    _empty_custom_tables(net)
    _point_elements_at_buses(net, ("load", "sgen", "ext_grid"))
    net.load["customers"] = [
        _customers(p, " R" in str(name))
        for p, name in zip(net.load.p_mw, net.load.name, strict=True)
    ]
    model = _model(net, "cigre_mv", CoordinateSystem.SCHEMATIC)
    return _collection(
        model,
        "CIGRE MV benchmark (pandapower.networks.create_cigre_network_mv(with_der='pv_wind')), "
        "two 20 kV feeders with PV and a wind park. Feeder breakers and customers are "
        "synthetic (models.build_networks).",
    )


BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "mv_oberrhein": build_mv_oberrhein,
    "baran_wu": build_baran_wu,
    "cigre_mv": build_cigre_mv,
}


def build_all(out_dir: Path | None = None) -> list[Path]:
    """Write every bundled network to ``out_dir`` (default: the package folder)."""
    target = out_dir or Path(str(resources.files("models.networks")))
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in BUILDERS.items():
        path = target / f"{name}.geojson"
        path.write_text(dumps_collection(build()), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in build_all(Path(sys.argv[1]) if len(sys.argv) > 1 else None):
        print(written_path)
