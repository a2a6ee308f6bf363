import json
from pathlib import Path

import pandapower as pp
import pytest

from models.errors import (
    DanglingLineError,
    DuplicateIdError,
    MissingParameterError,
    MissingRatingError,
    ModelError,
    ModelValidationError,
    NonRadialError,
    SchemaError,
    UnknownReferenceError,
    UnknownStdTypeError,
    UnsuppliedIslandError,
    VoltageMismatchError,
)
from models.gis_import import from_geojson, geo_length_km
from models.network import ImportOptions
from tests.models.netfactory import (
    add,
    edit,
    feature,
    linestring,
    point,
    small_network,
    xy,
)


def errors_of(fc, **options) -> list[ModelError]:
    with pytest.raises(ModelValidationError) as info:
        from_geojson(fc, options=ImportOptions(**options))
    return list(info.value.errors)


def only(errors: list[ModelError], cls: type[ModelError]) -> ModelError:
    found = [e for e in errors if isinstance(e, cls)]
    assert len(found) == 1, errors
    return found[0]


def test_small_network_imports_with_ids_geometry_and_custom_tables():
    model = from_geojson(small_network())
    net = model.net
    assert list(net.bus.gis_id) == ["B0", "B1", "B2", "B3", "B4", "B5", "B6"]
    assert json.loads(net.bus.geo[2]) == {"type": "Point", "coordinates": xy("B2")}
    assert json.loads(net.line.geo[0])["type"] == "LineString"
    assert model.locate("L3").table == "line"
    assert model.locate("TR1").table == "trafo"
    assert model.locate("PV3").table == "sgen"
    assert model.locate("C4").table == "shunt"
    assert model.locate("ES1").table == "earthing_switch"
    assert model.locate("FPI1").table == "fpi"
    assert model.locate("SS1").table == "substation"
    sw = net.switch.set_index("gis_id")
    assert sw.loc["CB1", "switch_type"] == "breaker" and sw.loc["CB1", "type"] == "CB"
    assert not sw.loc["TIE", "closed"] and sw.loc["TIE", "normal_open"]
    assert int(net.bus.substation[1]) == 0
    assert net.load.customers.sum() == 750
    # std_type filled everything, including the tap changer (so tap_pos is honoured)
    assert net.line.max_i_ka[0] == pytest.approx(0.362)
    assert net.trafo.tap_changer_type[0] == "Ratio"


def test_feeders_are_derived_for_elements_without_one():
    model = from_geojson(small_network())
    assert set(model.feeders) == {"F1", "F2"}
    assert model.feeders["F1"].head_switch == "CB1"
    assert model.feeders["F1"].buses == ("B2", "B3", "B4")
    assert model.feeders["F2"].substation == "SS1"
    line_feeders = dict(zip(model.net.line.gis_id, model.net.line.feeder, strict=True))
    # the tie line is energised from B6 (its B4 end is open), so it belongs to F2
    assert line_feeders == {"L1": "F1", "L2": "F1", "L3": "F1", "L4": "F2", "L5": "F2", "L6": "F2"}
    assert "line L3: feeder missing, derived F1 from the topology" in model.repair_log
    assert model.net.bus.feeder[1] is None  # the busbar is upstream of the feeders


def test_power_flow_runs_and_regulator_raises_voltage():
    fc = small_network()
    # put a regulator between B3 and a new bus B7 with a load
    fc = add(
        fc,
        feature("bus", "B7", point([8.02, 48.0]), vn_kv=20.0),
        feature("regulator", "VR1", point([8.015, 48.0]), from_bus="B3", to_bus="B7", sn_mva=2.0),
        feature("load", "LD7", point([8.02, 48.0]), bus="B7", p_mw=0.5, customers=10),
    )
    model = from_geojson(fc)
    assert "regulator VR1: vk_percent missing, assumed 1.0" in model.repair_log
    net = model.net
    pp.runpp(net)
    b7 = model.index_of("bus", "B7")
    v0 = net.res_bus.vm_pu[b7]
    net.trafo.loc[model.index_of("trafo", "VR1"), "tap_pos"] = 4
    pp.runpp(net)
    assert net.res_bus.vm_pu[b7] == pytest.approx(v0 * (1 + 4 * 0.00625), rel=2e-3)


def test_duplicate_ids():
    fc = add(small_network(), feature("bus", "B3", point(xy("B3")), vn_kv=20.0))
    err = only(errors_of(fc), DuplicateIdError)
    assert err.feature_id == "B3" and err.field == "id"
    assert "bus B3 field 'id'" in str(err)


def test_unknown_references_name_feature_and_field():
    fc = edit(small_network(), "LDB5", bus="B99")
    fc = edit(fc, "S1", element="B3")  # a line switch naming a bus
    errors = errors_of(fc)
    msgs = {(e.feature_id, e.field) for e in errors if isinstance(e, UnknownReferenceError)}
    assert msgs == {("LDB5", "bus"), ("S1", "element")}
    assert any("unknown id 'B99'" in str(e) for e in errors)


def test_switch_bus_must_be_an_end_of_its_line():
    fc = edit(small_network(), "S1", bus="B4")
    err = only(errors_of(fc), UnknownReferenceError)
    assert (err.feature_id, err.field) == ("S1", "bus")
    assert "not a terminal of line 'L2'" in str(err)


def test_dangling_line_without_bus_nearby():
    fc = edit(small_network(), "L3", to_bus=None)
    fc["features"][[f["properties"]["id"] for f in fc["features"]].index("L3")]["geometry"] = {
        "type": "LineString",
        "coordinates": [xy("B3"), [8.5, 48.5]],
    }
    err = only(errors_of(fc), DanglingLineError)
    assert (err.feature_id, err.field) == ("L3", "to_bus")


def test_line_with_both_ends_on_one_bus():
    err = only(errors_of(edit(small_network(), "L3", to_bus="B3")), DanglingLineError)
    assert "both ends on bus 'B3'" in str(err)


def test_missing_rating_and_parameters_without_std_type():
    fc = edit(small_network(), "L2", std_type=None, r_ohm_per_km=0.2, x_ohm_per_km=0.1)
    errors = errors_of(fc)
    assert only(errors, MissingRatingError).field == "max_i_ka"
    assert only(errors, MissingParameterError).field == "c_nf_per_km"
    fc = edit(small_network(), "TR1", std_type=None, vk_percent=12.0, vkr_percent=0.3)
    assert only(errors_of(fc), MissingRatingError).field == "sn_mva"


def test_unknown_std_type_only_matters_when_values_are_missing():
    fc = edit(small_network(), "L2", std_type="NOT-A-TYPE")
    assert only(errors_of(fc), UnknownStdTypeError).feature_id == "L2"
    fc = edit(fc, "L2", r_ohm_per_km=0.2, x_ohm_per_km=0.1, c_nf_per_km=200.0, max_i_ka=0.3)
    model = from_geojson(fc)
    assert model.net.line.std_type[1] == "NOT-A-TYPE"


def test_voltage_mismatch():
    fc = edit(small_network(), "L1", from_bus="B0")
    fc = edit(fc, "CB1", bus="B0")
    err = only(errors_of(fc), VoltageMismatchError)
    assert (err.feature_id, err.field) == ("L1", "to_bus")


def test_schema_errors_report_every_bad_feature_and_no_cascade():
    fc = edit(small_network(), "B4", vn_kv=-20)
    fc = edit(fc, "CB2", switch_type="circuit_breaker")
    fc = add(fc, feature("transformator", "X1"))
    errors = errors_of(fc)
    assert all(isinstance(e, SchemaError) for e in errors), errors
    fields = {(e.feature_id, e.field) for e in errors}
    assert fields == {("B4", "vn_kv"), ("CB2", "switch_type"), ("X1", "kind")}


def test_wrong_geometry_type():
    fc = small_network()
    fc["features"][2]["geometry"] = linestring("B1", "B2")
    err = only(errors_of(fc), SchemaError)
    assert (err.feature_id, err.field) == ("B1", "geometry")


def test_not_a_feature_collection():
    err = only(errors_of({"type": "Feature"}), SchemaError)
    assert "FeatureCollection" in str(err)


def test_invalid_json_file(tmp_path: Path):
    path = tmp_path / "broken.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(ModelValidationError) as info:
        from_geojson(path)
    assert "invalid JSON" in str(info.value) and str(path) in str(info.value)


def test_island_without_source():
    fc = add(
        small_network(),
        feature("bus", "B8", point([8.1, 48.1]), vn_kv=20.0),
        feature("bus", "B9", point([8.11, 48.1]), vn_kv=20.0),
        feature(
            "line",
            "L9",
            linestring("B2", "B3"),
            from_bus="B8",
            to_bus="B9",
            length_km=1.0,
            std_type="NA2XS2Y 1x185 RM/25 12/20 kV",
        ),
    )
    err = only(errors_of(fc), UnsuppliedIslandError)
    assert err.feature_id == "B8" and "B8, B9" in str(err)
    model = from_geojson(fc, options=ImportOptions(allow_unsupplied=True))
    assert "B8" in model


def test_normally_open_switch_left_closed_is_non_radial():
    fc = edit(small_network(), "TIE", normal_open=False, closed=True)
    err = only(errors_of(fc), NonRadialError)
    assert err.kind == "line" and "normal_open" in str(err)
    assert {"L6", "L3", "L5"} <= set(str(err).replace(",", " ").split())
    model = from_geojson(fc, options=ImportOptions(expect_radial=False))
    assert model.net.switch.closed.all()


def test_second_source_on_a_feeder_is_a_loop_between_sources():
    fc = add(small_network(), feature("ext_grid", "EG2", point(xy("B6")), bus="B6"))
    err = only(errors_of(fc), NonRadialError)
    assert "between sources" in str(err)
    assert "L4, L5" in str(err)


def test_repair_length_from_geometry():
    fc = edit(small_network(), "L3", length_km=None)
    model = from_geojson(fc)
    expected = geo_length_km([xy("B3"), xy("B4")])
    assert model.net.line.length_km[2] == pytest.approx(expected)
    expected_log = f"line L3: length_km missing, computed {expected:.3f} km from geometry"
    assert expected_log in model.repair_log
    assert 0.36 < expected < 0.38
    err = only(errors_of(fc, repair=False), MissingParameterError)
    assert (err.feature_id, err.field) == ("L3", "length_km")


def test_length_cannot_be_computed_from_schematic_coordinates():
    fc = edit(small_network(), "L3", length_km=None)
    fc["pyadms"]["coordinates"] = "schematic"
    err = only(errors_of(fc), MissingParameterError)
    assert "schematic" in str(err)


def test_repair_rating_from_std_type_when_impedances_are_explicit():
    fc = edit(small_network(), "L2", r_ohm_per_km=0.2, x_ohm_per_km=0.1, c_nf_per_km=250.0)
    model = from_geojson(fc)
    assert model.net.line.max_i_ka[1] == pytest.approx(0.362)
    assert model.net.line.r_ohm_per_km[1] == pytest.approx(0.2)
    assert any(r.feature_id == "L2" and r.field == "max_i_ka" for r in model.repairs)
    assert only(errors_of(fc, repair=False), MissingRatingError).feature_id == "L2"


def test_repair_snaps_unattached_line_end_to_nearby_bus():
    fc = edit(small_network(), "L5", to_bus=None)
    model = from_geojson(fc)
    row = model.net.line.loc[model.index_of("line", "L5")]
    assert model.net.bus.gis_id[row.to_bus] == "B6"
    assert any(r.feature_id == "L5" and "snapped to bus B6" in r.message for r in model.repairs)
    assert only(errors_of(fc, repair=False), DanglingLineError).field == "to_bus"


def test_repair_switch_state_capacitor_sign_customers_tap_changer_bus_point():
    fc = edit(small_network(), "S1", closed=None)
    fc = edit(fc, "TIE", closed=None)
    fc = edit(fc, "C4", q_mvar=0.3)
    fc = edit(fc, "LDB2", customers=None)
    fc = edit(
        fc,
        "TR1",
        std_type=None,
        sn_mva=25.0,
        vk_percent=12.0,
        vkr_percent=0.4,
        vn_hv_kv=None,
        tap_pos=2,
        tap_step_percent=1.5,
        tap_min=-9,
        tap_max=9,
    )
    fc["features"][[f["properties"]["id"] for f in fc["features"]].index("B5")]["geometry"] = None
    model = from_geojson(fc)
    net = model.net
    sw = net.switch.set_index("gis_id")
    assert sw.loc["S1", "closed"] and not sw.loc["TIE", "closed"]
    assert net.shunt.q_mvar[0] == -0.3
    assert net.load.customers[0] == 0
    assert net.trafo.vn_hv_kv[0] == 110.0 and net.trafo.tap_changer_type[0] == "Ratio"
    assert json.loads(net.bus.geo[5])["coordinates"] == xy("B5")
    fields = {(r.feature_id, r.field) for r in model.repairs}
    assert {
        ("S1", "closed"),
        ("TIE", "closed"),
        ("C4", "q_mvar"),
        ("LDB2", "customers"),
        ("TR1", "vn_hv_kv"),
        ("TR1", "tap_changer_type"),
        ("B5", "geometry"),
    } <= fields
    assert len(errors_of(fc, repair=False)) == 7  # bus geometry stays optional


def test_unknown_properties_are_kept_for_export():
    model = from_geojson(small_network())
    assert model.source_features["L3"]["properties"]["owner"] == "north"


def test_feature_id_may_live_on_the_feature():
    fc = small_network()
    f = fc["features"][-1]
    f["id"] = f["properties"].pop("id")
    assert "FPI1" in from_geojson(fc)


def test_earthing_switch_and_fpi_tables():
    model = from_geojson(small_network())
    es = model.net.earthing_switch
    assert es.gis_id.tolist() == ["ES1"] and not es.closed[0]
    fpi = model.net.fpi
    assert fpi.et[0] == "switch"
    assert model.net.switch.gis_id[fpi.element[0]] == "S1"
