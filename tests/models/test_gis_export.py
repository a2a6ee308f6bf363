import json
from pathlib import Path

import pandapower as pp
import pandas as pd
import pytest

from models.errors import UnsupportedElementError
from models.gis_export import changes_since_import, to_feature_collection, write_geojson
from models.gis_import import from_geojson
from models.importers import from_pandapower
from models.loader import load_network
from models.topology import TopologyProcessor
from tests.models.netfactory import edit, small_network


def topology_signature(model):
    """Everything that defines topology and state, by GIS id."""
    net = model.net
    bus = net.bus.gis_id
    lines = {
        g: (bus[f], bus[t], bool(s))
        for g, f, t, s in zip(
            net.line.gis_id, net.line.from_bus, net.line.to_bus, net.line.in_service, strict=True
        )
    }
    trafo_ids = net.trafo.gis_id if "gis_id" in net.trafo else pd.Series(dtype=object)
    element_ids = {"l": net.line.gis_id, "b": bus, "t": trafo_ids}
    switches = {
        row.gis_id: (
            bus[row.bus],
            element_ids[row.et][row.element],
            row.et,
            bool(row.closed),
            bool(row.normal_open),
            row.switch_type,
        )
        for row in net.switch.itertuples()
    }
    earthing = {
        row.gis_id: (bus[row.bus], bool(row.closed)) for row in net.earthing_switch.itertuples()
    }
    attached = {
        table: {g: bus[b] for g, b in zip(net[table].gis_id, net[table].bus, strict=True)}
        for table in ("load", "sgen", "shunt", "ext_grid")
        if len(net[table])
    }
    trafos = {
        g: (bus[h], bus[lv], None if pd.isna(tap) else int(tap))
        for g, h, lv, tap in zip(
            trafo_ids, net.trafo.hv_bus, net.trafo.lv_bus, net.trafo.tap_pos, strict=True
        )
    }
    feeders = {f.id: (f.head_switch, f.buses) for f in model.feeders.values()}
    return lines, switches, earthing, attached, trafos, feeders


@pytest.mark.parametrize("name", ["mv_oberrhein", "baran_wu", "cigre_mv"])
def test_bundled_export_reimports_identically(name: str):
    model = load_network(name)
    again = from_geojson(to_feature_collection(model))
    assert topology_signature(again) == topology_signature(model)
    assert again.repairs == []


def test_round_trip_keeps_switching_changes(tmp_path: Path):
    model = load_network("mv_oberrhein")
    proc = TopologyProcessor(model)
    proc.set_switch("SW14", True)  # close a normally-open point
    proc.set_switch("SW265", False)  # open a feeder breaker
    path = write_geojson(model, tmp_path / "out.geojson")
    again = load_network(path)
    assert topology_signature(again) == topology_signature(model)
    states = dict(zip(again.net.switch.gis_id, again.net.switch.closed, strict=True))
    assert states["SW14"] and not states["SW265"]
    # normal state is still the GIS's
    normal = dict(zip(again.net.switch.gis_id, again.net.switch.normal_open, strict=True))
    assert normal["SW14"] and not normal["SW265"]
    meta = json.loads(path.read_text(encoding="utf-8"))["pyadms"]
    assert meta["changes"]["switches"] == [
        {"id": "SW14", "closed_before": False, "closed": True},
        {"id": "SW265", "closed_before": True, "closed": False},
    ]
    assert meta["changes"]["modified"] == {"SW14": ["closed"], "SW265": ["closed"]}
    # the re-imported model took these states as its baseline
    assert changes_since_import(again).empty
    assert TopologyProcessor(again).state.loop_count == 1


def test_one_feature_per_line(tmp_path: Path):
    model = from_geojson(small_network())
    text = write_geojson(model, tmp_path / "small.geojson").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) == 2 + len(model.source_features)
    assert json.loads(lines[1].rstrip(","))["type"] == "Feature"


def test_added_removed_and_modified_elements():
    # start from a file that already has feeders, so only the edits below differ
    model = from_geojson(to_feature_collection(from_geojson(small_network())))
    net = model.net
    # remove a DER, add a load, change a tap, take a line out of service
    net.sgen.drop(index=model.index_of("sgen", "PV3"), inplace=True)
    pp.create_load(
        net, model.index_of("bus", "B5"), 0.1, gis_id="LD-NEW", customers=3, geo=None, feeder=None
    )
    net.trafo.loc[model.index_of("trafo", "TR1"), "tap_pos"] = 3
    net.line.loc[model.index_of("line", "L6"), "in_service"] = False
    model.refresh_ids()
    changes = changes_since_import(model)
    assert changes.added == ["LD-NEW"]
    assert changes.removed == ["PV3"]
    assert changes.modified["TR1"] == ["tap_pos"]
    assert changes.modified["L6"] == ["in_service"]
    assert changes.switches == []
    fc = to_feature_collection(model)
    again = from_geojson(fc, name="again")
    assert "LD-NEW" in again and "PV3" not in again
    assert again.net.trafo.tap_pos[0] == 3


def test_unknown_properties_survive_export():
    model = from_geojson(small_network())
    fc = to_feature_collection(model)
    line = next(f for f in fc["features"] if f["properties"]["id"] == "L3")
    assert line["properties"]["owner"] == "north"


def test_repaired_values_are_exported_and_reported():
    model = from_geojson(edit(small_network(), "L3", length_km=None))
    changes = changes_since_import(model)
    assert changes.modified["L3"] == ["feeder", "length_km"]
    line = next(
        f for f in to_feature_collection(model)["features"] if f["properties"]["id"] == "L3"
    )
    assert line["properties"]["length_km"] == pytest.approx(model.net.line.length_km[2])


def test_std_type_values_written_only_when_they_differ_from_the_library():
    fc = to_feature_collection(load_network("mv_oberrhein"))
    by_id = {f["properties"]["id"]: f["properties"] for f in fc["features"]}
    assert "r_ohm_per_km" not in by_id["L0"] and by_id["L0"]["std_type"]
    # mv_oberrhein's transformers differ from pandapower's library values of the same name
    assert by_id["TR114"]["vk_percent"] == 11.2 and by_id["TR114"]["tap_pos"] == -2


def test_export_refuses_tables_the_schema_cannot_express(tmp_path: Path):
    import pandapower.networks as pn

    model = from_pandapower(pn.example_multivoltage())
    with pytest.raises(UnsupportedElementError, match="gen") as info:
        to_feature_collection(model)
    assert "trafo3w" in str(info.value)
