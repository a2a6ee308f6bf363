"""Small GeoJSON networks built in code, for import/validation/topology tests."""

from __future__ import annotations

import copy
from typing import Any

CABLE = "NA2XS2Y 1x185 RM/25 12/20 kV"

# ~370 m per 0.005 degree of longitude at 48 degrees north.
_X0, _Y0, _DX = 8.0, 48.0, 0.005

_BUS_XY = {
    "B0": (0, 1),  # 110 kV side
    "B1": (0, 0),  # 20 kV busbar
    "B2": (1, 0),
    "B3": (2, 0),
    "B4": (3, 0),
    "B5": (1, -1),
    "B6": (2, -1),
}


def xy(bus: str) -> list[float]:
    gx, gy = _BUS_XY[bus]
    return [_X0 + gx * _DX, _Y0 + gy * _DX]


def feature(
    kind: str, fid: str, geometry: dict[str, Any] | None = None, **props: Any
) -> dict[str, Any]:
    properties = {"kind": kind, "id": fid, **props}
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def point(coords: list[float]) -> dict[str, Any]:
    return {"type": "Point", "coordinates": coords}


def linestring(*buses: str) -> dict[str, Any]:
    return {"type": "LineString", "coordinates": [xy(b) for b in buses]}


def collection(features: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "pyadms": {"name": "small", **meta}, "features": features}


def line(fid: str, a: str, b: str, **props: Any) -> dict[str, Any]:
    base = {"from_bus": a, "to_bus": b, "length_km": 0.4, "std_type": CABLE}
    return feature("line", fid, linestring(a, b), **{**base, **props})


def switch(fid: str, bus: str, element: str, **props: Any) -> dict[str, Any]:
    base = {"et": "line", "switch_type": "load_break_switch", "normal_open": False, "closed": True}
    return feature("switch", fid, point(xy(bus)), bus=bus, element=element, **{**base, **props})


def small_network() -> dict[str, Any]:
    """Two feeders from one substation busbar, a normally-open tie between them.

    ::

        EG1-B0 =TR1= B1 -CB1- L1 - B2 -S1- L2 - B3 - L3 - B4
                      |                                 |  (TIE open at B4)
                      +-CB2- L4 - B5 - L5 - B6 -------- L6
    """
    features = [
        feature("substation", "SS1", point(xy("B1")), name="Main"),
        feature("bus", "B0", point(xy("B0")), vn_kv=110.0, type="b", substation="SS1"),
        feature("bus", "B1", point(xy("B1")), vn_kv=20.0, type="b", substation="SS1"),
        *[feature("bus", b, point(xy(b)), vn_kv=20.0) for b in ("B2", "B3", "B4", "B5", "B6")],
        feature("ext_grid", "EG1", point(xy("B0")), bus="B0", vm_pu=1.02),
        feature(
            "transformer",
            "TR1",
            point(xy("B1")),
            hv_bus="B0",
            lv_bus="B1",
            std_type="25 MVA 110/20 kV",
            tap_pos=0,
        ),
        line("L1", "B1", "B2"),
        line("L2", "B2", "B3"),
        line("L3", "B3", "B4", owner="north"),
        line("L4", "B1", "B5"),
        line("L5", "B5", "B6"),
        line("L6", "B4", "B6"),
        switch("CB1", "B1", "L1", switch_type="breaker", feeder="F1"),
        switch("CB2", "B1", "L4", switch_type="breaker", feeder="F2"),
        switch("S1", "B2", "L2"),
        switch("TIE", "B4", "L6", normal_open=True, closed=False),
        feature(
            "switch",
            "ES1",
            point(xy("B3")),
            bus="B3",
            switch_type="earthing_switch",
            normal_open=True,
            closed=False,
        ),
        *[
            feature("load", f"LD{b}", point(xy(b)), bus=b, p_mw=0.4, q_mvar=0.1, customers=150)
            for b in ("B2", "B3", "B4", "B5", "B6")
        ],
        feature("der", "PV3", point(xy("B3")), bus="B3", p_mw=0.2, type="PV"),
        feature("capacitor", "C4", point(xy("B4")), bus="B4", q_mvar=-0.3, step=1, max_step=2),
        feature("fpi", "FPI1", point(xy("B2")), switch="S1"),
    ]
    return collection(features)


def edit(fc: dict[str, Any], fid: str, **props: Any) -> dict[str, Any]:
    """A copy of ``fc`` with properties of feature ``fid`` set (None removes a key)."""
    out = copy.deepcopy(fc)
    for f in out["features"]:
        if f["properties"]["id"] == fid:
            for k, v in props.items():
                if v is None:
                    f["properties"].pop(k, None)
                else:
                    f["properties"][k] = v
            return out
    raise KeyError(fid)


def drop(fc: dict[str, Any], *fids: str) -> dict[str, Any]:
    out = copy.deepcopy(fc)
    out["features"] = [f for f in out["features"] if f["properties"]["id"] not in fids]
    return out


def add(fc: dict[str, Any], *features: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(fc)
    out["features"].extend(copy.deepcopy(list(features)))
    return out
