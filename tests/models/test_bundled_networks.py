from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from models.build_networks import BUILDERS, build_all
from models.gis_export import dumps_collection
from models.loader import bundled_path, load_network
from models.topology import TopologyProcessor

# pandapower's own example nets predate tap_dependency_table and warn on every power flow
pytestmark = pytest.mark.filterwarnings("ignore:tap_dependency_table:DeprecationWarning")

ORIGINALS: dict[str, Callable[[], pp.pandapowerNet]] = {
    "mv_oberrhein": pn.mv_oberrhein,
    "baran_wu": pn.case33bw,
    "cigre_mv": lambda: pn.create_cigre_network_mv(with_der="pv_wind"),
}


@pytest.mark.parametrize("name", list(ORIGINALS))
def test_power_flow_matches_pandapower_original(name: str):
    model = load_network(name)
    assert model.repairs == []
    pp.runpp(model.net)
    original = ORIGINALS[name]()
    pp.runpp(original)
    # GIS ids are B<pandapower index> (see models.build_networks)
    index = [int(gid[1:]) for gid in model.net.bus.gis_id]
    dvm = np.abs(model.net.res_bus.vm_pu.to_numpy() - original.res_bus.vm_pu.loc[index].to_numpy())
    dva = np.abs(
        model.net.res_bus.va_degree.to_numpy() - original.res_bus.va_degree.loc[index].to_numpy()
    )
    assert model.net.converged
    assert len(model.net.bus) == len(original.bus)
    assert dvm.max() < 1e-8 and dva.max() < 1e-6


def test_mv_oberrhein_switching_devices():
    model = load_network("mv_oberrhein")
    sw = model.net.switch.set_index("gis_id")
    assert len(model.net.bus) == 179 and len(sw) == 322
    counts = sw.switch_type.value_counts().to_dict()
    assert counts == {"load_break_switch": 314, "breaker": 4, "recloser": 4}
    # breakers are the feeder heads, at the two substations' MV busbars
    heads = {f.head_switch for f in model.feeders.values()}
    assert heads == set(sw.index[sw.switch_type == "breaker"])
    assert {f.substation for f in model.feeders.values()} == {"SS1", "SS2"}
    assert set(model.feeders) == {"SS1-F1", "SS1-F2", "SS2-F1", "SS2-F2"}
    # pandapower's six open switches are the normally-open points
    assert sorted(sw.index[sw.normal_open]) == sorted(
        ["SW14", "SW34", "SW48", "SW107", "SW144", "SW311"]
    )
    assert (sw.closed == ~sw.normal_open).all()
    # each recloser is part-way down a feeder: it has buses on both sides
    proc = TopologyProcessor(model)
    for recloser in sw.index[sw.switch_type == "recloser"]:
        change = proc.set_switch(recloser, False)
        assert 5 < len(change.deenergised_buses) < 60
        proc.set_switch(recloser, True)
    assert len(model.net.fpi) >= 10
    assert model.net.load.customers.min() >= 1


def test_baran_wu_ties_are_normally_open_switches():
    model = load_network("baran_wu")
    sw = model.net.switch.set_index("gis_id")
    ties = sw[sw.normal_open]
    assert list(ties.index) == ["TIE1", "TIE2", "TIE3", "TIE4", "TIE5"]
    tie_lines = {model.net.line.gis_id[e] for e in ties.element}
    assert tie_lines == {"L32", "L33", "L34", "L35", "L36"}
    assert model.net.line.in_service.all()
    assert (sw.switch_type[~sw.normal_open] != "fuse").all()
    assert len(sw) == 1 + 12 + 5
    assert model.coordinates.value == "schematic"


def test_cigre_mv_has_der_and_two_feeders():
    model = load_network("cigre_mv")
    assert set(model.net.sgen.type) == {"PV", "WP"}
    assert len(model.net.sgen) == 9
    assert {f.head_switch for f in model.feeders.values()} == {"CB-F1", "CB-F2"}
    sw = model.net.switch.set_index("gis_id")
    assert sorted(sw.index[sw.normal_open]) == ["S1", "S2", "S3"]


def test_build_is_reproducible(tmp_path: Path):
    # the committed files are exactly what the build script writes today
    for path in build_all(tmp_path):
        assert path.read_text(encoding="utf-8") == bundled_path(path.stem).read_text(
            encoding="utf-8"
        ), f"{path.stem}: run python -m models.build_networks"
    assert set(BUILDERS) == {p.stem for p in tmp_path.iterdir()}
    assert dumps_collection({"type": "FeatureCollection", "features": []}).startswith("{")
