"""Small networks built in code for the ADMS study tests."""

from __future__ import annotations

from typing import Any

import pandapower as pp

from models.gis_import import from_geojson
from models.loader import load_network
from models.network import NetworkModel

CABLE = "NA2XS2Y 1x185 RM/25 12/20 kV"

_XY = {
    "B0": (0, 1),
    "B1": (0, 0),
    "A1": (1, 1),
    "A2": (2, 1),
    "C1": (1, 0),
    "C2": (2, 0),
    "C3": (3, 0),
    "C4": (4, 0),
    "D1": (1, -1),
    "D2": (2, -1),
}


def _f(kind: str, fid: str, at: str | None = None, **props: Any) -> dict[str, Any]:
    geometry = {"type": "Point", "coordinates": list(_XY[at])} if at else None
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {"kind": kind, "id": fid, **props},
    }


def _line(fid: str, a: str, b: str, **props: Any) -> dict[str, Any]:
    geometry = {"type": "LineString", "coordinates": [list(_XY[a]), list(_XY[b])]}
    base = {"from_bus": a, "to_bus": b, "length_km": 0.5, "std_type": CABLE, "max_i_ka": 0.1}
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {"kind": "line", "id": fid, **base, **props},
    }


def _switch(fid: str, bus: str, element: str, **props: Any) -> dict[str, Any]:
    base = {"et": "line", "switch_type": "load_break_switch", "normal_open": False, "closed": True}
    return _f("switch", fid, bus, bus=bus, element=element, **{**base, **props})


def three_feeders() -> NetworkModel:
    """Feeder C's tail (C3, C4) can be fed through tie TA (from A) or TB (from D).

    ::

        B1 -CBA- LA1 - A1 - LA2 - A2 -TA(open)- LTA ----------- C3
        B1 -CBC- LC1 - C1 -SC1- LC2 - C2 -SC2- LC3 - C3 -SC3- LC4 - C4
        B1 -CBD- LD1 - D1 - LD2 - D2 -TB(open)- LTB ------------------ C4

    Feeders A and D are rated 100 A (3.5 MVA at 20 kV): each can take one of C3/C4
    (1.5 MW each) on top of their own 1 MW, not both. FPIs at SC1 and SC2, an
    earthing switch ES-C2 at C2.
    """
    features = [
        _f("substation", "SS1", "B1"),
        _f("bus", "B0", "B0", vn_kv=110.0, type="b", substation="SS1"),
        _f("bus", "B1", "B1", vn_kv=20.0, type="b", substation="SS1"),
        *[_f("bus", b, b, vn_kv=20.0) for b in ("A1", "A2", "C1", "C2", "C3", "C4", "D1", "D2")],
        _f("ext_grid", "EG1", "B0", bus="B0", vm_pu=1.02),
        _f("transformer", "TR1", "B1", hv_bus="B0", lv_bus="B1", std_type="25 MVA 110/20 kV"),
        _line("LA1", "B1", "A1"),
        _line("LA2", "A1", "A2"),
        _line("LC1", "B1", "C1", max_i_ka=0.3),
        _line("LC2", "C1", "C2", max_i_ka=0.3),
        _line("LC3", "C2", "C3", max_i_ka=0.3),
        _line("LC4", "C3", "C4", max_i_ka=0.3),
        _line("LD1", "B1", "D1"),
        _line("LD2", "D1", "D2"),
        _line("LTA", "A2", "C3"),
        _line("LTB", "D2", "C4"),
        _switch("CBA", "B1", "LA1", switch_type="breaker", feeder="FA"),
        _switch("CBC", "B1", "LC1", switch_type="breaker", feeder="FC"),
        _switch("CBD", "B1", "LD1", switch_type="breaker", feeder="FD"),
        _switch("SC1", "C1", "LC2"),
        _switch("SC2", "C2", "LC3"),
        _switch("SC3", "C3", "LC4"),
        _switch("TA", "A2", "LTA", normal_open=True, closed=False),
        _switch("TB", "D2", "LTB", normal_open=True, closed=False),
        _f(
            "switch",
            "ES-C2",
            "C2",
            bus="C2",
            switch_type="earthing_switch",
            normal_open=True,
            closed=False,
        ),
        _f("fpi", "FPI-SC1", "C1", switch="SC1"),
        _f("fpi", "FPI-SC2", "C2", switch="SC2"),
        *[
            _f("load", f"LD-{b}", b, bus=b, p_mw=0.5, q_mvar=0.1, customers=100)
            for b in ("A1", "A2", "D1", "D2", "C1", "C2")
        ],
        *[
            _f("load", f"LD-{b}", b, bus=b, p_mw=1.5, q_mvar=0.3, customers=300)
            for b in ("C3", "C4")
        ],
    ]
    fc = {
        "type": "FeatureCollection",
        "pyadms": {"format_version": 1, "name": "three_feeders", "coordinates": "schematic"},
        "features": features,
    }
    return from_geojson(fc)


def cigre_with_controls() -> NetworkModel:
    """cigre_mv with tap changers on both transformers and a 4-step capacitor at B5."""
    model = load_network("cigre_mv")
    net = model.net
    net.trafo["tap_changer_type"] = "Ratio"
    net.trafo["tap_side"] = "hv"
    net.trafo["tap_neutral"] = 0
    net.trafo["tap_min"] = -9
    net.trafo["tap_max"] = 9
    net.trafo["tap_step_percent"] = 1.5
    net.trafo["tap_pos"] = 0
    bus = int(net.bus.index[net.bus.gis_id == "B5"][0])
    idx = pp.create_shunt(net, bus, q_mvar=-0.5, p_mw=0.0, step=1, max_step=4, name="Cap B5")
    net.shunt.loc[idx, "gis_id"] = "CAP5"
    model.refresh_ids()
    return model
