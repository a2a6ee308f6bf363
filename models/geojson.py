"""GeoJSON schema of a distribution-network GIS export (see ``models/GEOJSON.md``).

A network is one GeoJSON ``FeatureCollection``. Each feature's
``properties.kind`` says what it is; ``properties.id`` is its GIS id (a string,
unique in the collection); other features refer to it by that id. Electrical
fields follow pandapower's names and units (``vn_kv``, ``p_mw``,
``length_km``...). Properties the schema does not know are kept and written
back on export, so GIS attributes survive a round trip.

This module only *parses*: it checks each feature on its own (types, ranges,
required fields, geometry type). Cross-feature checks (duplicate ids,
references, topology) and repairs live in :mod:`models.gis_import`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from models.errors import SchemaError

__all__ = [
    "FORMAT_VERSION",
    "KIND_MODELS",
    "REFERENCE_FIELDS",
    "BaseProperties",
    "BusProperties",
    "CapacitorProperties",
    "CollectionMeta",
    "CoordinateSystem",
    "DerProperties",
    "ExtGridProperties",
    "FeatureProperties",
    "FpiProperties",
    "Geometry",
    "Kind",
    "LineProperties",
    "LoadProperties",
    "ParseResult",
    "ParsedFeature",
    "RegulatorProperties",
    "SubstationProperties",
    "SwitchElementType",
    "SwitchProperties",
    "SwitchType",
    "TransformerProperties",
    "json_schema",
    "parse_collection",
]

#: Version of the format written in the collection's ``pyadms`` member.
FORMAT_VERSION = 1

GisId = Annotated[str, Field(min_length=1)]


class Kind(enum.StrEnum):
    """Feature kinds (``properties.kind``)."""

    SUBSTATION = "substation"
    BUS = "bus"
    LINE = "line"
    SWITCH = "switch"
    TRANSFORMER = "transformer"
    REGULATOR = "regulator"
    LOAD = "load"
    DER = "der"
    CAPACITOR = "capacitor"
    FPI = "fpi"
    EXT_GRID = "ext_grid"


class SwitchType(enum.StrEnum):
    """Switching devices. ``earthing_switch`` connects its bus to earth."""

    BREAKER = "breaker"
    RECLOSER = "recloser"
    LOAD_BREAK_SWITCH = "load_break_switch"
    DISCONNECTOR = "disconnector"
    FUSE = "fuse"
    EARTHING_SWITCH = "earthing_switch"


class SwitchElementType(enum.StrEnum):
    """What a (non-earthing) switch connects its bus to."""

    LINE = "line"
    BUS = "bus"
    TRAFO = "trafo"


class CoordinateSystem(enum.StrEnum):
    """How to read coordinates: WGS84 lon/lat (RFC 7946) or schematic units."""

    WGS84 = "wgs84"
    SCHEMATIC = "schematic"


Position = Annotated[list[float], Field(min_length=2, max_length=3)]


class Geometry(BaseModel):
    """A GeoJSON geometry: Point, LineString or Polygon."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["Point", "LineString", "Polygon"]
    coordinates: Position | list[Position] | list[list[Position]]

    @model_validator(mode="after")
    def _shape_matches_type(self) -> Geometry:
        coords: Any = self.coordinates
        depth = 0
        while isinstance(coords, list) and coords and isinstance(coords[0], list):
            coords = coords[0]
            depth += 1
        expected = {"Point": 0, "LineString": 1, "Polygon": 2}[self.type]
        if depth != expected:
            raise ValueError(f"coordinates nesting does not fit a {self.type}")
        if self.type == "LineString" and len(self.coordinates) < 2:
            raise ValueError("a LineString needs at least two positions")
        return self

    def point(self) -> list[float]:
        """The position of a Point geometry."""
        if self.type != "Point":
            raise ValueError(f"a {self.type} has no single position")
        return cast(list[float], self.coordinates)

    def positions(self) -> list[list[float]]:
        """The positions of a LineString geometry."""
        if self.type != "LineString":
            raise ValueError(f"a {self.type} is not a LineString")
        return cast(list[list[float]], self.coordinates)


class BaseProperties(BaseModel):
    """Fields every feature has; unknown properties are kept (``extra='allow'``)."""

    model_config = ConfigDict(extra="allow")

    id: GisId
    name: str | None = None
    in_service: bool = True
    #: feeder id (derived from the topology on import when missing)
    feeder: str | None = None


class SubstationProperties(BaseProperties):
    """A substation: groups its busbars (buses refer to it with ``substation``)."""

    kind: Literal["substation"]


class BusProperties(BaseProperties):
    """An electrical node. ``type``: b = busbar, n = node, m = muff (pandapower)."""

    kind: Literal["bus"]
    vn_kv: PositiveFloat
    type: Literal["b", "n", "m"] = "n"
    substation: GisId | None = None
    zone: str | None = None
    max_vm_pu: PositiveFloat | None = None
    min_vm_pu: PositiveFloat | None = None


class LineProperties(BaseProperties):
    """A cable or overhead line: ``std_type`` or per-km parameters."""

    kind: Literal["line"]
    from_bus: GisId | None = None
    to_bus: GisId | None = None
    length_km: PositiveFloat | None = None
    std_type: str | None = None
    r_ohm_per_km: NonNegativeFloat | None = None
    x_ohm_per_km: NonNegativeFloat | None = None
    c_nf_per_km: NonNegativeFloat | None = None
    g_us_per_km: NonNegativeFloat | None = None
    max_i_ka: PositiveFloat | None = None
    #: cs = cable, ol = overhead line
    type: Literal["cs", "ol"] | None = None
    parallel: PositiveInt = 1
    df: Annotated[float, Field(gt=0, le=1)] = 1.0


class SwitchProperties(BaseProperties):
    """A switching device on ``bus``, connecting it to ``element`` of type ``et``.

    ``normal_open`` is the planned (normal) state; ``closed`` the state at export
    time (taken as ``not normal_open`` when missing). An earthing switch has
    neither ``element`` nor ``et``.
    """

    kind: Literal["switch"]
    bus: GisId
    element: GisId | None = None
    et: SwitchElementType | None = None
    switch_type: SwitchType
    normal_open: bool = False
    closed: bool | None = None
    z_ohm: NonNegativeFloat = 0.0
    in_ka: PositiveFloat | None = None

    @model_validator(mode="after")
    def _element_fits_type(self) -> SwitchProperties:
        if self.switch_type is SwitchType.EARTHING_SWITCH:
            if self.element is not None or self.et is not None:
                raise ValueError("an earthing_switch has no 'element' nor 'et'")
        elif self.element is None or self.et is None:
            raise ValueError(f"a {self.switch_type} needs 'element' and 'et'")
        return self


class TransformerProperties(BaseProperties):
    """A two-winding transformer: ``std_type`` or nameplate data, plus tap changer."""

    kind: Literal["transformer"]
    hv_bus: GisId
    lv_bus: GisId
    std_type: str | None = None
    sn_mva: PositiveFloat | None = None
    vn_hv_kv: PositiveFloat | None = None
    vn_lv_kv: PositiveFloat | None = None
    vk_percent: PositiveFloat | None = None
    vkr_percent: NonNegativeFloat | None = None
    pfe_kw: NonNegativeFloat | None = None
    i0_percent: NonNegativeFloat | None = None
    shift_degree: float | None = None
    tap_side: Literal["hv", "lv"] | None = None
    tap_neutral: int | None = None
    tap_min: int | None = None
    tap_max: int | None = None
    tap_step_percent: NonNegativeFloat | None = None
    tap_pos: int | None = None
    tap_changer_type: Literal["Ratio", "Symmetrical", "Ideal"] | None = None
    parallel: PositiveInt = 1


class RegulatorProperties(BaseProperties):
    """A step-voltage regulator between ``from_bus`` (source side) and ``to_bus``.

    Defaults are the common 32-step, +/-10 % regulator. Raising ``tap_pos``
    raises the ``to_bus`` voltage.
    """

    kind: Literal["regulator"]
    from_bus: GisId
    to_bus: GisId
    sn_mva: PositiveFloat
    vn_kv: PositiveFloat | None = None
    tap_neutral: int = 0
    tap_min: int = -16
    tap_max: int = 16
    tap_step_percent: PositiveFloat = 0.625
    tap_pos: int = 0
    vm_set_pu: PositiveFloat = 1.0
    vk_percent: PositiveFloat | None = None
    vkr_percent: NonNegativeFloat | None = None


class LoadProperties(BaseProperties):
    """A load (an MV/LV station or a customer): pandapower ZIP columns, customers."""

    kind: Literal["load"]
    bus: GisId
    p_mw: float
    q_mvar: float = 0.0
    const_z_p_percent: float = 0.0
    const_i_p_percent: float = 0.0
    const_z_q_percent: float = 0.0
    const_i_q_percent: float = 0.0
    sn_mva: PositiveFloat | None = None
    scaling: NonNegativeFloat = 1.0
    type: str | None = None
    customers: NonNegativeInt | None = None


class DerProperties(BaseProperties):
    """Distributed generation (pandapower ``sgen``); ``type`` e.g. PV, WP, CHP."""

    kind: Literal["der"]
    bus: GisId
    p_mw: float
    q_mvar: float = 0.0
    sn_mva: PositiveFloat | None = None
    scaling: NonNegativeFloat = 1.0
    type: str | None = None


class CapacitorProperties(BaseProperties):
    """A switched capacitor bank (pandapower ``shunt``).

    ``q_mvar`` is per step at rated voltage, pandapower sign: a capacitor
    delivers reactive power, so it is negative.
    """

    kind: Literal["capacitor"]
    bus: GisId
    q_mvar: float
    p_mw: NonNegativeFloat = 0.0
    vn_kv: PositiveFloat | None = None
    step: NonNegativeInt = 1
    max_step: PositiveInt = 1

    @model_validator(mode="after")
    def _step_in_range(self) -> CapacitorProperties:
        if self.step > self.max_step:
            raise ValueError(f"step {self.step} exceeds max_step {self.max_step}")
        return self


class FpiProperties(BaseProperties):
    """A fault passage indicator on a ``line`` or a ``switch`` (exactly one).

    ``bus`` optionally says at which end of the line it sits.
    """

    kind: Literal["fpi"]
    line: GisId | None = None
    switch: GisId | None = None
    bus: GisId | None = None

    @model_validator(mode="after")
    def _one_location(self) -> FpiProperties:
        if (self.line is None) == (self.switch is None):
            raise ValueError("an fpi needs exactly one of 'line' and 'switch'")
        return self


class ExtGridProperties(BaseProperties):
    """The supply point (upstream grid) behind a substation busbar."""

    kind: Literal["ext_grid"]
    bus: GisId
    vm_pu: PositiveFloat = 1.0
    va_degree: float = 0.0
    s_sc_max_mva: PositiveFloat | None = None
    s_sc_min_mva: PositiveFloat | None = None
    rx_max: NonNegativeFloat | None = None
    rx_min: NonNegativeFloat | None = None


FeatureProperties = (
    SubstationProperties
    | BusProperties
    | LineProperties
    | SwitchProperties
    | TransformerProperties
    | RegulatorProperties
    | LoadProperties
    | DerProperties
    | CapacitorProperties
    | FpiProperties
    | ExtGridProperties
)

KIND_MODELS: dict[Kind, type[BaseProperties]] = {
    Kind.SUBSTATION: SubstationProperties,
    Kind.BUS: BusProperties,
    Kind.LINE: LineProperties,
    Kind.SWITCH: SwitchProperties,
    Kind.TRANSFORMER: TransformerProperties,
    Kind.REGULATOR: RegulatorProperties,
    Kind.LOAD: LoadProperties,
    Kind.DER: DerProperties,
    Kind.CAPACITOR: CapacitorProperties,
    Kind.FPI: FpiProperties,
    Kind.EXT_GRID: ExtGridProperties,
}

#: Fields that hold GIS ids of other features, with the kinds they may name.
#: A switch's ``element`` depends on its ``et`` and is checked separately.
REFERENCE_FIELDS: dict[Kind, dict[str, tuple[Kind, ...]]] = {
    Kind.BUS: {"substation": (Kind.SUBSTATION,)},
    Kind.LINE: {"from_bus": (Kind.BUS,), "to_bus": (Kind.BUS,)},
    Kind.SWITCH: {"bus": (Kind.BUS,)},
    Kind.TRANSFORMER: {"hv_bus": (Kind.BUS,), "lv_bus": (Kind.BUS,)},
    Kind.REGULATOR: {"from_bus": (Kind.BUS,), "to_bus": (Kind.BUS,)},
    Kind.LOAD: {"bus": (Kind.BUS,)},
    Kind.DER: {"bus": (Kind.BUS,)},
    Kind.CAPACITOR: {"bus": (Kind.BUS,)},
    Kind.FPI: {"line": (Kind.LINE,), "switch": (Kind.SWITCH,), "bus": (Kind.BUS,)},
    Kind.EXT_GRID: {"bus": (Kind.BUS,)},
}

_GEOMETRY_TYPES: dict[Kind, tuple[str, ...]] = {
    Kind.SUBSTATION: ("Point", "Polygon"),
    Kind.LINE: ("LineString",),
}


class CollectionMeta(BaseModel):
    """The collection's ``pyadms`` foreign member (all optional on input)."""

    model_config = ConfigDict(extra="allow")

    format_version: PositiveInt = FORMAT_VERSION
    name: str | None = None
    description: str | None = None
    coordinates: CoordinateSystem = CoordinateSystem.WGS84


@dataclass(frozen=True)
class ParsedFeature:
    """One feature that passed the per-feature schema checks."""

    kind: Kind
    props: BaseProperties
    geometry: Geometry | None
    raw: Mapping[str, Any]

    @property
    def id(self) -> str:
        """The feature's GIS id."""
        return self.props.id


def _field_of(loc: tuple[int | str, ...]) -> str | None:
    return ".".join(str(part) for part in loc) if loc else None


def _schema_errors(err: ValidationError, fid: str | None, kind: str | None) -> list[SchemaError]:
    out = []
    for item in err.errors():
        out.append(
            SchemaError(item["msg"], feature_id=fid, kind=kind, field=_field_of(item["loc"]))
        )
    return out


def _parse_feature(index: int, feature: Any) -> tuple[ParsedFeature | None, list[SchemaError]]:
    where = f"features[{index}]"
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        return None, [SchemaError("not a GeoJSON Feature", feature_id=where)]
    raw_props = feature.get("properties")
    if not isinstance(raw_props, Mapping):
        return None, [SchemaError("missing properties object", feature_id=where)]
    props = dict(raw_props)
    # RFC 7946 lets the id live on the Feature itself; accept it there too.
    if props.get("id") is None and isinstance(feature.get("id"), str | int):
        props["id"] = str(feature["id"])
    fid = props.get("id") if isinstance(props.get("id"), str) else where
    try:
        kind = Kind(str(props.get("kind")))
    except ValueError:
        allowed = ", ".join(k.value for k in Kind)
        msg = f"unknown kind {props.get('kind')!r} (one of: {allowed})"
        return None, [SchemaError(msg, feature_id=fid, field="kind")]
    errors: list[SchemaError] = []
    geometry: Geometry | None = None
    if feature.get("geometry") is not None:
        try:
            geometry = Geometry.model_validate(feature["geometry"])
        except ValidationError as exc:
            errors += _schema_errors(exc, fid, kind.value)
        else:
            allowed_geo = _GEOMETRY_TYPES.get(kind, ("Point",))
            if geometry.type not in allowed_geo:
                msg = f"{geometry.type} geometry, expected {' or '.join(allowed_geo)}"
                errors.append(SchemaError(msg, feature_id=fid, kind=kind.value, field="geometry"))
    try:
        parsed = KIND_MODELS[kind].model_validate(props)
    except ValidationError as exc:
        return None, errors + _schema_errors(exc, fid, kind.value)
    if errors:
        return None, errors
    return ParsedFeature(kind=kind, props=parsed, geometry=geometry, raw=feature), []


@dataclass
class ParseResult:
    """Outcome of :func:`parse_collection`.

    ``rejected_ids`` holds the ids of features that failed the schema, so
    references to them are not reported again as unknown.
    """

    meta: CollectionMeta
    features: list[ParsedFeature]
    errors: list[SchemaError]
    rejected_ids: set[str]


def parse_collection(collection: Any) -> ParseResult:
    """Check a FeatureCollection feature by feature.

    Never raises for bad features, so an importer can report every problem at
    once: each problem is one :class:`SchemaError` in ``errors``.
    """
    if not isinstance(collection, Mapping) or collection.get("type") != "FeatureCollection":
        return ParseResult(
            CollectionMeta(), [], [SchemaError("not a GeoJSON FeatureCollection")], set()
        )
    features = collection.get("features")
    if not isinstance(features, list):
        return ParseResult(CollectionMeta(), [], [SchemaError("'features' must be a list")], set())
    errors: list[SchemaError] = []
    rejected: set[str] = set()
    try:
        meta = CollectionMeta.model_validate(collection.get("pyadms") or {})
    except ValidationError as exc:
        meta = CollectionMeta()
        errors += [
            SchemaError(e["msg"], feature_id="pyadms", field=_field_of(e["loc"]))
            for e in exc.errors()
        ]
    if meta.format_version > FORMAT_VERSION:
        errors.append(
            SchemaError(
                f"format_version {meta.format_version} is newer than {FORMAT_VERSION}",
                feature_id="pyadms",
                field="format_version",
            )
        )
    parsed: list[ParsedFeature] = []
    for index, feature in enumerate(features):
        item, item_errors = _parse_feature(index, feature)
        errors += item_errors
        if item is not None:
            parsed.append(item)
        elif item_errors and item_errors[0].feature_id is not None:
            rejected.add(item_errors[0].feature_id)
    return ParseResult(meta, parsed, errors, rejected)


def json_schema() -> dict[str, Any]:
    """JSON Schema of the ``properties`` object of every feature kind."""
    return {
        "title": "pyadms network feature properties",
        "oneOf": [model.model_json_schema() for model in KIND_MODELS.values()],
    }
