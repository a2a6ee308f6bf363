"""Point binding: generated SCADA configurations of the bundled networks and their elements."""

from __future__ import annotations

import copy
import math
from collections import Counter
from pathlib import Path

import pytest

from models.binding import (
    BindingError,
    BindingOptions,
    BindingValidationError,
    Quantity,
    bind,
    config_document,
    dump_yaml,
    parse_element,
    parse_protocol_map,
    resolve_bindings,
    switch_state,
    switch_status_points,
)
from models.gis_import import from_geojson
from models.loader import BUNDLED_NETWORKS, load_network
from models.network import NetworkModel
from protocols.base import DoubleState, PointKind
from scada.config import ScadaConfig, load_config, parse_config
from tests.models.netfactory import add, feature, point, small_network


def automated_switches(model: NetworkModel) -> set[str]:
    """Reclosers, and load-break switches with an FPI or normally open (independently)."""
    net = model.net
    with_fpi = {
        model.gis_id_of("switch", int(e))
        for et, e in zip(net.fpi.et, net.fpi.element, strict=True)
        if et == "switch"
    }
    out = set()
    for gid, stype, no in zip(
        model.ids("switch"), net.switch.switch_type, net.switch.normal_open, strict=True
    ):
        if stype == "recloser" or (stype == "load_break_switch" and (no or gid in with_fpi)):
            out.add(gid)
    return out


@pytest.mark.parametrize("name", BUNDLED_NETWORKS)
def test_bundled_network_binding_validates_and_names_model_elements(name: str) -> None:
    model = load_network(name)
    doc = bind(model)
    cfg = parse_config([(f"{name}.yaml", doc)])
    points = [p for dp in cfg.expand() for p in dp.points]
    assert points and all(p.template.element for p in points)
    for p in points:
        element = p.template.element
        assert element is not None
        table, gis_id = element.split(":")[:2]
        assert gis_id in model, f"{p.name}: {element}"
        assert model.locate(gis_id).table == table, f"{p.name}: {element}"
    # every feeder head breaker is in a substation RTU with status, control, trip, P/Q/I
    rtus = [d for d in cfg.devices.values() if d.kind == "rtu" and not d.name.startswith("DER")]
    rtu_elements = {p.template.element for d in rtus for p in cfg.device_points(d.name).points}
    for feeder in model.feeders.values():
        assert f"switch:{feeder.head_switch}" in rtu_elements
        assert f"switch:{feeder.head_switch}:trip" in rtu_elements
    # one FRTU per automated switch, nothing else
    frtu_switches = {
        p.template.element.split(":")[1]
        for d in cfg.devices.values()
        if d.kind == "frtu"
        for p in cfg.device_points(d.name).points
        if p.template.element and p.template.element.startswith("switch:")
    }
    assert frtu_switches == automated_switches(model)
    assert len(resolve_bindings(cfg, model)) == len(points)


def test_oberrhein_is_tens_of_devices_with_tap_changers() -> None:
    model = load_network("mv_oberrhein")
    cfg = parse_config([("o.yaml", bind(model))])
    kinds = Counter(d.protocol for d in cfg.devices.values())
    assert 20 <= len(cfg.devices) <= 100, len(cfg.devices)
    assert kinds["iec104"] >= 40 and kinds["modbus"] > 0
    taps = {
        p.name: p.template
        for dp in cfg.expand()
        for p in dp.points
        if p.template.element and p.template.element.endswith(":tap")
    }
    assert set(taps) == {"SS1.TR114.TAP", "SS2.TR142.TAP"}
    assert all(t.control is not None and t.control.kind == "step" for t in taps.values())
    # cigre's transformers have no tap changer: no tap points
    cigre = parse_config([("c.yaml", bind(load_network("cigre_mv")))])
    assert not any(
        p.template.element and ":tap" in p.template.element
        for dp in cigre.expand()
        for p in dp.points
    )


def test_protocol_map_by_kind_feeder_and_device_allocates_per_protocol() -> None:
    model = load_network("baran_wu")
    options = BindingOptions(
        protocols=parse_protocol_map(["frtu=dnp3", "FR-SW1=modbus,substation=dnp3"]),
        base_port=20000,
    )
    cfg = parse_config([("b.yaml", bind(model, options))])
    protocols = {d.name: d.protocol for d in cfg.devices.values()}
    assert protocols["FR-SW1"] == "modbus" and protocols["FR-SW2"] == "dnp3"
    assert protocols["SS1"] == "dnp3"
    ports = [d.port for d in cfg.devices.values()]
    assert ports == list(range(20000, 20000 + len(ports)))
    # DNP3 indexes are dense per input type
    sw2 = cfg.device_points("FR-SW2").points
    by_kind: dict[str, list[int]] = {}
    for p in sw2:
        by_kind.setdefault(str(p.kind), []).append(p.template.address)
    assert all(sorted(a) == list(range(len(a))) for a in by_kind.values())
    # Modbus points sit in tables, analogs as float32
    sw1 = {p.suffix: p.template for p in cfg.device_points("FR-SW1").points}
    assert sw1["I"].table == "input_register" and sw1["I"].dtype == "float32"
    assert sw1["SW"].control is not None and sw1["SW"].control.table == "coil"
    # by feeder id
    by_feeder = parse_config(
        [("f.yaml", bind(model, BindingOptions(protocols={"SS1-F1": "dnp3"})))]
    )
    assert {d.protocol for d in by_feeder.devices.values() if d.kind == "frtu"} == {"dnp3"}
    assert by_feeder.devices["SS1"].protocol == "iec104"


def test_bad_options_are_errors() -> None:
    model = load_network("baran_wu")
    with pytest.raises(BindingError, match="base_port"):
        bind(model, BindingOptions(base_port=32760))
    with pytest.raises(BindingError, match="KEY=PROTOCOL"):
        parse_protocol_map(["frtu=profibus"])


def test_small_network_capacitor_der_meter_regulator() -> None:
    at = point([8.02, 47.99])
    model = from_geojson(
        add(
            small_network(),
            feature("bus", "B7", at, vn_kv=20.0),
            feature("regulator", "R1", at, from_bus="B6", to_bus="B7", sn_mva=2.0),
            feature("load", "LDB7", at, bus="B7", p_mw=0.2, q_mvar=0.05),
        )
    )
    doc = bind(model, BindingOptions(der_min_mw=0.1, meter_min_mw=0.3))
    cfg = parse_config([("s.yaml", doc)])
    assert {"SS1", "CAP-C4", "DER-PV3", "FR-S1", "FR-TIE", "M-LDB2"} <= set(cfg.devices)
    cap = {p.suffix: p.template for p in cfg.device_points("CAP-C4").points}
    assert cap["STEP"].element == "shunt:C4:step" and cap["STEP"].control is not None
    der = {p.suffix: p.template for p in cfg.device_points("DER-PV3").points}
    assert der["PSET"].kind == "setpoint" and der["PSET"].element == "sgen:PV3:p_limit"
    assert cfg.devices["DER-PV3"].protocol == "modbus"
    ss1 = {p.suffix for p in cfg.device_points("SS1").points}
    assert {"F1.CB", "F1.P", "F2.I", "B1.V", "B0.V", "TR1.TAP"} <= ss1
    fr = {p.suffix: p.template.element for p in cfg.device_points("FR-S1").points}
    assert fr == {"SW": "switch:S1", "FPI": "fpi:FPI1", "I": "line:L2:from"}
    reg = {p.suffix: p.template.element for p in cfg.device_points("REG-R1").points}
    assert reg == {
        "R1.P": "trafo:R1:lv",
        "R1.Q": "trafo:R1:lv",
        "R1.TAP": "trafo:R1:tap",
        "B7.V": "bus:B7",
    }


def test_yaml_round_trip_loads_with_load_config(tmp_path: Path) -> None:
    model = load_network("cigre_mv")
    doc = bind(model)
    out = tmp_path / "cigre.yaml"
    dump_yaml(doc, out, header="generated\nfor a test")
    text = out.read_text()
    assert text.startswith("# generated\n# for a test\n")
    loaded = load_config([out])
    direct = parse_config([("x", doc)])
    assert config_document(loaded) == config_document(direct)
    # a resolved configuration (ports filled in) round-trips as well
    resolved = ScadaConfig(
        loaded.templates,
        {
            n: d.model_copy(update={"port": 2400 + i})
            for i, (n, d) in enumerate(loaded.devices.items())
        },
        loaded.sources,
    )
    dump_yaml(config_document(resolved), out)
    assert [d.port for d in load_config([out]).devices.values()] == list(
        range(2400, 2400 + len(resolved.devices))
    )


def test_edited_configuration_errors_name_the_point() -> None:
    model = load_network("baran_wu")
    doc = bind(model)
    # an engineer gives FR-SW1 a template of its own and edits it
    device = next(d for d in doc["devices"] if d["name"] == "FR-SW1")
    doc["templates"]["edited"] = copy.deepcopy(doc["templates"][device["template"]])
    device["template"] = "edited"
    points = doc["templates"]["edited"]["points"]
    points[0]["element"] = "switch:NOPE"
    points[1]["element"] = "line:CB1"
    points[2]["unit"] = "degC"
    with pytest.raises(BindingValidationError) as info:
        resolve_bindings(parse_config([("edited.yaml", doc)]), model)
    text = str(info.value)
    assert "3 binding error(s)" in text
    assert "FR-SW1.SW" in text and "no such element" in text
    assert "FR-SW1.FPI" in text
    assert "FR-SW1.I" in text and "degC" in text


def test_element_and_measurand_parsing() -> None:
    assert parse_element("line:L1:from").qualifier == "from"
    assert parse_element("switch:SW:1").gis_id == "SW:1"  # colon in an id, no qualifier
    assert str(parse_element("trafo:TR1:tap")) == "trafo:TR1:tap"
    with pytest.raises(BindingError):
        parse_element("pump:P1")
    cfg = parse_config([("c", bind(load_network("cigre_mv")))])
    found = resolve_bindings(cfg, load_network("cigre_mv"))
    assert found["SS1.F1.I"].quantity is Quantity.I and found["SS1.F1.I"].factor == 1e3
    assert found["SS1.B1.V"].quantity is Quantity.V
    assert found["SS1.F1.CB"].quantity is Quantity.STATUS


def test_switch_status_points_and_states() -> None:
    cfg = parse_config([("b", bind(load_network("baran_wu")))])
    status = switch_status_points(cfg)
    assert status["SS1.F1.CB"] == "CB1" and status["FR-SW1.SW"] == "SW1"
    assert not any(p.endswith(("TRIP", "FPI", ".I")) for p in status)
    assert switch_state(PointKind.DOUBLE, float(DoubleState.ON)) is True
    assert switch_state(PointKind.DOUBLE, float(DoubleState.OFF)) is False
    assert switch_state(PointKind.DOUBLE, float(DoubleState.INTERMEDIATE)) is None
    assert switch_state(PointKind.SINGLE, 1.0) is True
    assert switch_state(PointKind.DOUBLE, math.nan) is None


def test_devices_of_one_shape_share_a_template() -> None:
    """R-ACQ-4: 63 devices of mv_oberrhein need 16 templates, each device its own elements."""
    doc = bind(load_network("mv_oberrhein"))
    users = Counter(d["template"] for d in doc["devices"])
    assert len(doc["devices"]) == 63 and len(doc["templates"]) == len(users) == 16
    shared = [t for t, n in users.items() if n > 1]
    assert shared and all(
        "{" in p["element"] for t in shared for p in doc["templates"][t]["points"]
    )
    config = parse_config([("bound.yaml", doc)])
    switches = [p.template.element for dp in config.expand() for p in dp.points if p.suffix == "SW"]
    assert len(switches) == len(set(switches)) and all("{" not in s for s in switches)
