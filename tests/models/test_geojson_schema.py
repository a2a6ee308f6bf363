import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from models.geojson import (
    KIND_MODELS,
    Geometry,
    Kind,
    SwitchProperties,
    json_schema,
    parse_collection,
)
from tests.models.netfactory import collection, feature, point, small_network

DOC = (Path(__file__).parents[2] / "models" / "GEOJSON.md").read_text(encoding="utf-8")


def doc_section(kind: Kind) -> str:
    match = re.search(rf"^### {kind.value}\n(.*?)(?=^### |^## )", DOC, re.S | re.M)
    assert match, f"GEOJSON.md has no section for {kind.value}"
    return match.group(1)


@pytest.mark.parametrize("kind", list(Kind))
def test_doc_names_every_field_of_every_kind(kind: Kind):
    common = {"id", "name", "in_service", "feeder", "kind"}
    text = doc_section(kind)
    missing = [
        f for f in KIND_MODELS[kind].model_fields if f not in common and f"`{f}`" not in text
    ]
    assert missing == [], f"{kind.value}: document {missing} in models/GEOJSON.md"


def test_small_network_parses_cleanly():
    parsed = parse_collection(small_network())
    assert parsed.errors == [] and parsed.rejected_ids == set()
    assert {f.kind for f in parsed.features} == set(Kind) - {Kind.REGULATOR}
    assert parsed.meta.coordinates.value == "wgs84"


def test_switch_rules():
    with pytest.raises(ValidationError, match="needs 'element' and 'et'"):
        SwitchProperties.model_validate(
            {"kind": "switch", "id": "S", "bus": "B", "switch_type": "breaker"}
        )
    with pytest.raises(ValidationError, match="has no 'element'"):
        SwitchProperties.model_validate(
            {
                "kind": "switch",
                "id": "S",
                "bus": "B",
                "element": "L",
                "et": "line",
                "switch_type": "earthing_switch",
            }
        )


def test_fpi_needs_exactly_one_location_and_capacitor_step_range():
    parsed = parse_collection(
        collection(
            [
                feature("fpi", "F1", point([0, 0]), line="L1", switch="S1"),
                feature("capacitor", "C1", None, bus="B1", q_mvar=-0.1, step=3, max_step=2),
            ]
        )
    )
    assert [(e.feature_id, e.kind) for e in parsed.errors] == [("F1", "fpi"), ("C1", "capacitor")]
    assert parsed.rejected_ids == {"F1", "C1"}


def test_geometry_shapes():
    Geometry.model_validate({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]})
    with pytest.raises(ValidationError, match="nesting"):
        Geometry.model_validate({"type": "Point", "coordinates": [[0, 0], [1, 1]]})
    with pytest.raises(ValidationError, match="two positions"):
        Geometry.model_validate({"type": "LineString", "coordinates": [[0, 0]]})
    with pytest.raises(ValueError, match="not a LineString"):
        Geometry(type="Point", coordinates=[0.0, 0.0]).positions()


def test_newer_format_version_is_refused():
    parsed = parse_collection(collection([], format_version=99))
    assert parsed.errors and parsed.errors[0].field == "format_version"


def test_json_schema_covers_all_kinds():
    schema = json_schema()
    titles = {s["title"] for s in schema["oneOf"]}
    assert titles == {m.__name__ for m in KIND_MODELS.values()}
