import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from models.errors import CimImportError, UnknownNetworkError
from models.importers import from_cgmes, from_pandapower
from models.loader import BUNDLED_NETWORKS, DEFAULT_NETWORK, bundled_path, load_network
from models.network import NetworkModel

# pandapower's own example nets predate tap_dependency_table and warn on every power flow
pytestmark = pytest.mark.filterwarnings("ignore:tap_dependency_table:DeprecationWarning")

CGMES_SAMPLE = Path(__file__).parent / "data" / "example_multivoltage_cgmes.zip"


@pytest.fixture(scope="module")
def cgmes_model() -> NetworkModel:
    with warnings.catch_warnings():
        # cim2pp emits pandas FutureWarnings/SettingWithCopy warnings of its own
        warnings.simplefilter("ignore")
        return from_cgmes(CGMES_SAMPLE)


def test_pandapower_net_gets_ids_switch_types_and_feeders():
    model = from_pandapower(pn.mv_oberrhein())
    net = model.net
    assert net.bus.gis_id[39] == "bus-39"
    assert model.locate("switch-265").table == "switch"
    assert set(net.switch.switch_type) == {"breaker", "load_break_switch"}
    assert net.switch.normal_open.sum() == 6
    assert {f.head_switch for f in model.feeders.values()} == {
        "switch-99",
        "switch-265",
        "switch-270",
        "switch-321",
    }
    assert any("gis_id missing for 179 element(s)" in line for line in model.repair_log)
    assert any("normal_open missing for 322 switch(es)" in line for line in model.repair_log)


def test_pandapower_json_file_of_an_imported_model_keeps_everything(tmp_path: Path):
    model = load_network("cigre_mv")
    path = tmp_path / "cigre.json"
    pp.to_json(model.net, str(path))
    again = load_network(path)
    assert again.source_format == "pandapower"
    assert again.net.bus.gis_id.tolist() == model.net.bus.gis_id.tolist()
    assert again.net.switch.switch_type.tolist() == model.net.switch.switch_type.tolist()
    assert again.net.load.customers.tolist() == model.net.load.customers.tolist()
    assert {k: f.buses for k, f in again.feeders.items()} == {
        k: f.buses for k, f in model.feeders.items()
    }
    assert [line for line in again.repair_log if "gis_id" in line] == []


def test_cgmes_sample_imports_and_matches_pandapower_original(cgmes_model: NetworkModel):
    net = cgmes_model.net
    assert cgmes_model.source_format == "cgmes"
    assert len(net.bus) == 111 and len(net.switch) == 88
    # CIM mRIDs become the GIS ids; CIM switch classes the switch types
    assert net.bus.gis_id.str.startswith("_").all()
    assert {"breaker", "disconnector", "load_break_switch"} <= set(net.switch.switch_type)
    pp.runpp(net, calculate_voltage_angles=True)
    original = pn.example_multivoltage()
    pp.runpp(original, calculate_voltage_angles=True)
    ours = net.res_bus.vm_pu.groupby(net.bus.name).mean()
    theirs = original.res_bus.vm_pu.groupby(original.bus.name).mean()
    common = ours.index.intersection(theirs.index)
    assert len(common) == len(original.bus)
    # the CIM export/import in pandapower is not exact; 0.2 % is its own round-trip error
    assert np.abs(ours[common] - theirs[common]).max() < 2.5e-3


def test_cgmes_malformed_xml(tmp_path: Path):
    bad = tmp_path / "bad_EQ.xml"
    bad.write_text(
        '<?xml version="1.0"?>\n<rdf:RDF><cim:ACLineSegment></rdf:RDF>', encoding="utf-8"
    )
    with pytest.raises(CimImportError) as info:
        from_cgmes(bad)
    assert info.value.feature_id == str(bad) and "XMLSyntaxError" in str(info.value)


def test_cgmes_without_model_header(tmp_path: Path):
    empty = tmp_path / "empty_EQ.xml"
    empty.write_text(
        '<?xml version="1.0"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        ' xmlns:cim="http://iec.ch/TC57/2013/CIM-schema-cim16#"></rdf:RDF>',
        encoding="utf-8",
    )
    with pytest.raises(CimImportError, match="FullModel"):
        from_cgmes(empty)


def test_cgmes_not_a_zip_and_missing_file(tmp_path: Path):
    bad = tmp_path / "net.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CimImportError, match="BadZipFile"):
        load_network(bad)
    with pytest.raises(CimImportError, match="no such file"):
        from_cgmes(tmp_path / "absent.zip")


def test_cgmes_zip_without_equipment(tmp_path: Path):
    path = tmp_path / "tp_only.zip"
    with zipfile.ZipFile(CGMES_SAMPLE) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            if name.endswith("_DL.xml"):
                dst.writestr(name, src.read(name))
    with pytest.raises(CimImportError):
        from_cgmes(path)


def test_load_network_dispatch(tmp_path: Path):
    assert DEFAULT_NETWORK == "mv_oberrhein"
    assert set(BUNDLED_NETWORKS) == {"mv_oberrhein", "baran_wu", "cigre_mv"}
    assert load_network("case33bw").name == "baran_wu"
    geojson_as_json = tmp_path / "copy.json"
    shutil.copy(bundled_path("cigre_mv"), geojson_as_json)
    assert load_network(geojson_as_json).source_format == "geojson"
    assert load_network(str(bundled_path("cigre_mv"))).source_format == "geojson"
    with pytest.raises(UnknownNetworkError, match="bundled"):
        load_network("no_such_network")
    other = tmp_path / "net.csv"
    other.write_text("x", encoding="utf-8")
    with pytest.raises(UnknownNetworkError, match="unsupported extension"):
        load_network(other)
    with pytest.raises(UnknownNetworkError):
        bundled_path("nope")
