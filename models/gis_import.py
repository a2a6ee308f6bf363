"""GeoJSON (GIS export) -> :class:`NetworkModel`, with validation and logged repairs.

Contract: :func:`from_geojson` either returns a model whose every element
carries its GIS id, geometry and feeder, or raises a
:class:`ModelValidationError` listing every problem found (each naming the
feature id and field). Problems it can fix it fixes, and logs each fix in
``model.repairs`` (unless ``ImportOptions.repair`` is False, when they are
errors too). Repairs:

- line ``length_km`` missing: computed from the WGS84 geometry;
- line end (``from_bus``/``to_bus``) missing: snapped to the bus whose point
  is within ``snap_tolerance_m`` of the geometry's end;
- line ``max_i_ka`` missing while explicit impedances are given: taken from
  ``std_type`` (a line with only a ``std_type`` takes everything from the
  library, which is no repair);
- transformer ``vn_hv_kv``/``vn_lv_kv`` missing: taken from the buses;
  tap fields without ``tap_changer_type``: ``Ratio`` (pandapower ignores
  ``tap_pos`` otherwise);
- switch ``closed`` missing: ``not normal_open``;
- capacitor ``q_mvar`` positive: sign turned (capacitors deliver vars);
- regulator impedance missing: ``vk_percent`` 1.0, ``vkr_percent`` 0.1;
- load ``customers`` missing: 0;
- bus geometry missing: the end point of an attached line;
- ``feeder`` missing: derived from the topology (see :mod:`models.topology`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandapower as pp
import pandas as pd

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
from models.geojson import (
    REFERENCE_FIELDS,
    BaseProperties,
    BusProperties,
    CapacitorProperties,
    CoordinateSystem,
    DerProperties,
    ExtGridProperties,
    FpiProperties,
    Geometry,
    Kind,
    LineProperties,
    LoadProperties,
    ParsedFeature,
    RegulatorProperties,
    SubstationProperties,
    SwitchElementType,
    SwitchProperties,
    SwitchType,
    TransformerProperties,
    parse_collection,
)
from models.network import ImportOptions, NetworkModel, Repair
from models.topology import TopologyProcessor, derive_feeders

__all__ = [
    "PP_SWITCH_TYPE",
    "check_topology",
    "fill_feeders",
    "log_repairs",
    "from_geojson",
    "geo_length_km",
    "haversine_m",
]

#: pandapower ``switch.type`` for each GIS switch type (pandapower has no fuse type).
PP_SWITCH_TYPE: dict[SwitchType, str | None] = {
    SwitchType.BREAKER: "CB",
    SwitchType.RECLOSER: "CB",
    SwitchType.LOAD_BREAK_SWITCH: "LBS",
    SwitchType.DISCONNECTOR: "DS",
    SwitchType.FUSE: None,
    SwitchType.EARTHING_SWITCH: None,
}

P = TypeVar("P", bound=BaseProperties)

_LOG = logging.getLogger(__name__)

_EARTH_RADIUS_M = 6_371_008.8
_LINE_STD_FIELDS = ("r_ohm_per_km", "x_ohm_per_km", "c_nf_per_km", "max_i_ka")
_TRAFO_FIELDS = (
    "sn_mva",
    "vn_hv_kv",
    "vn_lv_kv",
    "vk_percent",
    "vkr_percent",
    "pfe_kw",
    "i0_percent",
    "shift_degree",
)
_TAP_FIELDS = (
    "tap_side",
    "tap_neutral",
    "tap_min",
    "tap_max",
    "tap_step_percent",
    "tap_changer_type",
)
_REGULATOR_VK_PERCENT = 1.0
_REGULATOR_VKR_PERCENT = 0.1


def haversine_m(a: list[float], b: list[float]) -> float:
    """Great-circle distance in metres between two lon/lat positions."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * _EARTH_RADIUS_M * math.asin(math.sqrt(h))


def geo_length_km(coordinates: list[list[float]]) -> float:
    """Length in km of a WGS84 LineString's coordinates."""
    return sum(haversine_m(a, b) for a, b in zip(coordinates, coordinates[1:], strict=False)) / 1e3


def _geo_str(geometry: Geometry | None) -> str | None:
    if geometry is None:
        return None
    return json.dumps({"coordinates": geometry.coordinates, "type": geometry.type})


@dataclass
class _Context:
    """State of one import: parsed features, errors, repairs, resolved values."""

    source: str
    options: ImportOptions
    coordinates: CoordinateSystem
    features: list[ParsedFeature]
    errors: list[ModelError] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)
    by_id: dict[str, ParsedFeature] = field(default_factory=dict)
    #: resolved pandapower values per feature id (only for features that need it)
    resolved: dict[str, dict[str, Any]] = field(default_factory=dict)
    bus_geometry: dict[str, Geometry] = field(default_factory=dict)
    #: ids of features that failed the schema: references to them are not errors again
    rejected: set[str] = field(default_factory=set)

    def fix(
        self, feat: ParsedFeature, fld: str, problem: str, action: str, error: type[ModelError]
    ) -> bool:
        """Log ``problem, action`` as a repair (True), or record ``problem`` as an error.

        Errors instead of repairs when ``ImportOptions.repair`` is off.
        """
        if self.options.repair:
            self.repairs.append(Repair(feat.id, feat.kind.value, fld, f"{problem}, {action}"))
            return True
        self.errors.append(error(problem, feature_id=feat.id, kind=feat.kind.value, field=fld))
        return False

    def error(
        self, error: type[ModelError], feat: ParsedFeature, fld: str | None, message: str
    ) -> None:
        self.errors.append(error(message, feature_id=feat.id, kind=feat.kind.value, field=fld))

    def of_kind(self, *kinds: Kind) -> list[ParsedFeature]:
        return [f for f in self.features if f.kind in kinds]

    def typed(self, cls: type[P]) -> list[tuple[ParsedFeature, P]]:
        """Features whose properties are of ``cls``, with the properties typed."""
        return [(f, f.props) for f in self.features if isinstance(f.props, cls)]


def _read(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[Any, str]:
    if isinstance(source, Mapping):
        return source, "<mapping>"
    path = Path(source)
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh), str(path)
    except json.JSONDecodeError as exc:
        raise ModelValidationError(
            [
                SchemaError(
                    f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                    feature_id=str(path),
                )
            ],
            source=str(path),
        ) from exc


def _check_ids(ctx: _Context) -> None:
    for feat in ctx.features:
        if feat.id in ctx.by_id:
            other = ctx.by_id[feat.id]
            ctx.error(DuplicateIdError, feat, "id", f"id also used by a {other.kind.value}")
        else:
            ctx.by_id[feat.id] = feat


def _ref(
    ctx: _Context, feat: ParsedFeature, fld: str, kinds: tuple[Kind, ...]
) -> ParsedFeature | None:
    """The feature a reference names, or None (with an error recorded if it is wrong)."""
    target_id = getattr(feat.props, fld)
    if target_id is None:
        return None
    target = ctx.by_id.get(target_id)
    if target is None:
        if target_id in ctx.rejected:
            return None
        ctx.error(UnknownReferenceError, feat, fld, f"references unknown id {target_id!r}")
        return None
    if target.kind not in kinds:
        wanted = " or ".join(k.value for k in kinds)
        ctx.error(
            UnknownReferenceError,
            feat,
            fld,
            f"references {target_id!r}, a {target.kind.value}, not a {wanted}",
        )
        return None
    return target


def _check_references(ctx: _Context) -> None:
    for feat in ctx.features:
        for fld, kinds in REFERENCE_FIELDS.get(feat.kind, {}).items():
            _ref(ctx, feat, fld, kinds)
    for feat, sw in ctx.typed(SwitchProperties):
        if sw.et is None:
            continue
        kinds = {
            SwitchElementType.LINE: (Kind.LINE,),
            SwitchElementType.BUS: (Kind.BUS,),
            SwitchElementType.TRAFO: (Kind.TRANSFORMER, Kind.REGULATOR),
        }[sw.et]
        target = _ref(ctx, feat, "element", kinds)
        if target is None or sw.bus not in ctx.by_id:
            continue
        if sw.et is SwitchElementType.BUS:
            if target.id == sw.bus:
                ctx.error(
                    UnknownReferenceError,
                    feat,
                    "element",
                    "a bus-bus switch needs two different buses",
                )
            else:
                _check_same_voltage(ctx, feat, "element", sw.bus, target.id)
            continue
        ends = _terminals(target)
        if sw.bus not in ends and None not in ends:
            ctx.error(
                UnknownReferenceError,
                feat,
                "bus",
                f"bus {sw.bus!r} is not a terminal of {target.kind.value} {target.id!r}"
                f" ({', '.join(map(str, ends))})",
            )
    for feat, fpi in ctx.typed(FpiProperties):
        holder = ctx.by_id.get(fpi.line or fpi.switch or "")
        if fpi.bus is None or holder is None:
            continue
        at = (
            [holder.props.bus] if isinstance(holder.props, SwitchProperties) else _terminals(holder)
        )
        if fpi.bus not in at and None not in at:
            ctx.error(
                UnknownReferenceError,
                feat,
                "bus",
                f"bus {fpi.bus!r} is not an end of {holder.id!r}",
            )


def _terminals(feat: ParsedFeature) -> list[str | None]:
    """The buses a branch feature connects (None for an unattached line end)."""
    props = feat.props
    if isinstance(props, TransformerProperties):
        return [props.hv_bus, props.lv_bus]
    if isinstance(props, LineProperties | RegulatorProperties):
        return [props.from_bus, props.to_bus]
    return []


def _vn(ctx: _Context, bus_id: str | None) -> float | None:
    bus = ctx.by_id.get(bus_id or "")
    return bus.props.vn_kv if bus is not None and isinstance(bus.props, BusProperties) else None


def _check_same_voltage(ctx: _Context, feat: ParsedFeature, fld: str, a: str, b: str) -> None:
    va, vb = _vn(ctx, a), _vn(ctx, b)
    if va is not None and vb is not None and not math.isclose(va, vb, rel_tol=1e-6):
        ctx.error(VoltageMismatchError, feat, fld, f"joins {a!r} ({va} kV) and {b!r} ({vb} kV)")


def _snap(ctx: _Context, position: list[float]) -> tuple[str, float] | None:
    """Nearest bus within the snap tolerance of a WGS84 position."""
    best: tuple[str, float] | None = None
    for bus in ctx.of_kind(Kind.BUS):
        if bus.geometry is None:
            continue
        d = haversine_m(position, bus.geometry.point())
        if d <= ctx.options.snap_tolerance_m and (best is None or d < best[1]):
            best = (bus.id, d)
    return best


def _resolve_lines(ctx: _Context, net: pp.pandapowerNet) -> None:
    for feat, props in ctx.typed(LineProperties):
        coords = feat.geometry.positions() if feat.geometry is not None else None
        ends: dict[str, str | None] = {"from_bus": props.from_bus, "to_bus": props.to_bus}
        for fld, at in (("from_bus", 0), ("to_bus", -1)):
            if ends[fld] is not None:
                continue
            snapped = None
            if coords is not None and ctx.coordinates is CoordinateSystem.WGS84:
                snapped = _snap(ctx, coords[at])
            if snapped is None:
                ctx.error(DanglingLineError, feat, fld, "line end is not attached to any bus")
            elif ctx.fix(
                feat,
                fld,
                f"{fld} missing",
                f"snapped to bus {snapped[0]} ({snapped[1]:.1f} m from the geometry end)",
                DanglingLineError,
            ):
                ends[fld] = snapped[0]
        if ends["from_bus"] is not None and ends["from_bus"] == ends["to_bus"]:
            ctx.error(DanglingLineError, feat, "to_bus", f"both ends on bus {ends['to_bus']!r}")
        elif ends["from_bus"] is not None and ends["to_bus"] is not None:
            _check_same_voltage(ctx, feat, "to_bus", ends["from_bus"], ends["to_bus"])

        length = props.length_km
        if length is None:
            if coords is None or ctx.coordinates is not CoordinateSystem.WGS84:
                why = "no geometry" if coords is None else "schematic coordinates"
                ctx.error(
                    MissingParameterError,
                    feat,
                    "length_km",
                    f"missing and cannot be computed ({why})",
                )
            else:
                computed = geo_length_km(coords)
                if ctx.fix(
                    feat,
                    "length_km",
                    "length_km missing",
                    f"computed {computed:.3f} km from geometry",
                    MissingParameterError,
                ):
                    length = computed

        values: dict[str, Any] = {f: getattr(props, f) for f in _LINE_STD_FIELDS}
        values["type"] = props.type
        values["g_us_per_km"] = props.g_us_per_km
        # A std_type outside pandapower's library is only a label when every value is given.
        known = props.std_type is not None and pp.std_type_exists(net, props.std_type, "line")
        if (
            props.std_type is not None
            and not known
            and any(values[f] is None for f in _LINE_STD_FIELDS)
        ):
            ctx.error(
                UnknownStdTypeError,
                feat,
                "std_type",
                f"{props.std_type!r} is not a pandapower line type",
            )
            continue
        if known:
            assert props.std_type is not None
            lib = pp.load_std_type(net, props.std_type, "line")
            explicit = any(
                values[f] is not None for f in ("r_ohm_per_km", "x_ohm_per_km", "c_nf_per_km")
            )
            if values["max_i_ka"] is None and explicit:
                action = f"took {lib['max_i_ka']} kA from std_type {props.std_type!r}"
                if not ctx.fix(feat, "max_i_ka", "max_i_ka missing", action, MissingRatingError):
                    continue
            for f in _LINE_STD_FIELDS:
                if values[f] is None:
                    values[f] = float(lib[f])
            values["type"] = values["type"] or lib.get("type")
        else:
            if values["max_i_ka"] is None:
                ctx.error(
                    MissingRatingError,
                    feat,
                    "max_i_ka",
                    "no max_i_ka and no std_type to take it from",
                )
            for f in ("r_ohm_per_km", "x_ohm_per_km", "c_nf_per_km"):
                if values[f] is None:
                    ctx.error(MissingParameterError, feat, f, "missing (give it or a std_type)")
        values["g_us_per_km"] = values["g_us_per_km"] or 0.0
        ctx.resolved[feat.id] = {**ends, "length_km": length, **values}


def _resolve_transformers(ctx: _Context, net: pp.pandapowerNet) -> None:
    for feat, props in ctx.typed(TransformerProperties):
        values: dict[str, Any] = {f: getattr(props, f) for f in _TRAFO_FIELDS + _TAP_FIELDS}
        values["tap_pos"] = props.tap_pos
        known = props.std_type is not None and pp.std_type_exists(net, props.std_type, "trafo")
        required = ("sn_mva", "vk_percent", "vkr_percent")
        if props.std_type is not None and not known and any(values[f] is None for f in required):
            ctx.error(
                UnknownStdTypeError,
                feat,
                "std_type",
                f"{props.std_type!r} is not a pandapower trafo type",
            )
            continue
        if known:
            assert props.std_type is not None
            lib = pp.load_std_type(net, props.std_type, "trafo")
            for f in _TRAFO_FIELDS + _TAP_FIELDS:
                if values[f] is None and f in lib and not pd.isna(lib[f]):
                    values[f] = lib[f]
        reported: set[str] = set()
        for fld, bus_fld in (("vn_hv_kv", "hv_bus"), ("vn_lv_kv", "lv_bus")):
            bus_id = getattr(props, bus_fld)
            vn = _vn(ctx, bus_id)
            if values[fld] is None and vn is not None:
                reported.add(fld)
                if ctx.fix(
                    feat,
                    fld,
                    f"{fld} missing",
                    f"took {vn} kV from bus {bus_id}",
                    MissingParameterError,
                ):
                    values[fld] = vn
        if values["sn_mva"] is None:
            ctx.error(
                MissingRatingError, feat, "sn_mva", "no sn_mva and no std_type to take it from"
            )
        for fld in ("vn_hv_kv", "vn_lv_kv", "vk_percent", "vkr_percent"):
            if values[fld] is None and fld not in reported:
                ctx.error(MissingParameterError, feat, fld, "missing (give it or a std_type)")
        for fld in ("pfe_kw", "i0_percent", "shift_degree"):
            values[fld] = values[fld] or 0.0
        has_taps = values["tap_pos"] is not None or values["tap_step_percent"] is not None
        if has_taps and values["tap_changer_type"] is None:
            if ctx.fix(
                feat,
                "tap_changer_type",
                "tap_changer_type missing while tap fields are set",
                "assumed 'Ratio'",
                MissingParameterError,
            ):
                values["tap_changer_type"] = "Ratio"
        if values["tap_changer_type"] is not None:
            if values["tap_neutral"] is None:
                values["tap_neutral"] = 0
            if values["tap_pos"] is None:
                values["tap_pos"] = values["tap_neutral"]
            if values["tap_side"] is None:
                values["tap_side"] = "hv"
        ctx.resolved[feat.id] = values

    for feat, reg in ctx.typed(RegulatorProperties):
        _check_same_voltage(ctx, feat, "to_bus", reg.from_bus, reg.to_bus)
        vk, vkr = reg.vk_percent, reg.vkr_percent
        if vk is None and ctx.fix(
            feat,
            "vk_percent",
            "vk_percent missing",
            f"assumed {_REGULATOR_VK_PERCENT}",
            MissingParameterError,
        ):
            vk = _REGULATOR_VK_PERCENT
        if vkr is None and ctx.fix(
            feat,
            "vkr_percent",
            "vkr_percent missing",
            f"assumed {_REGULATOR_VKR_PERCENT}",
            MissingParameterError,
        ):
            vkr = _REGULATOR_VKR_PERCENT
        ctx.resolved[feat.id] = {
            "vn_kv": reg.vn_kv or _vn(ctx, reg.from_bus),
            "vk_percent": vk,
            "vkr_percent": vkr,
        }


def _resolve_others(ctx: _Context) -> None:
    for feat, sw in ctx.typed(SwitchProperties):
        closed = sw.closed
        if closed is None and ctx.fix(
            feat,
            "closed",
            "closed missing",
            f"taken as {not sw.normal_open} (not normal_open)",
            MissingParameterError,
        ):
            closed = not sw.normal_open
        ctx.resolved[feat.id] = {"closed": closed}
    for feat, cap in ctx.typed(CapacitorProperties):
        q = cap.q_mvar
        if q > 0 and ctx.fix(
            feat,
            "q_mvar",
            f"q_mvar {q} positive",
            f"stored as {-q} (a capacitor delivers vars)",
            SchemaError,
        ):
            q = -q
        ctx.resolved[feat.id] = {"q_mvar": q, "vn_kv": cap.vn_kv or _vn(ctx, cap.bus)}
    for feat, load in ctx.typed(LoadProperties):
        customers = load.customers
        if customers is None and ctx.fix(
            feat, "customers", "customers missing", "assumed 0", MissingParameterError
        ):
            customers = 0
        ctx.resolved[feat.id] = {"customers": customers}
    # Buses without a point: the end of an attached line that has geometry.
    for feat in ctx.of_kind(Kind.BUS):
        if feat.geometry is not None:
            ctx.bus_geometry[feat.id] = feat.geometry
    for line in ctx.of_kind(Kind.LINE):
        if line.geometry is None or line.id not in ctx.resolved:
            continue
        for fld, at in (("from_bus", 0), ("to_bus", -1)):
            bus_id = ctx.resolved[line.id][fld]
            if bus_id is None or bus_id in ctx.bus_geometry or bus_id not in ctx.by_id:
                continue
            if not ctx.options.repair:
                continue
            where = "start" if at == 0 else "end"
            ctx.fix(
                ctx.by_id[bus_id],
                "geometry",
                "geometry missing",
                f"placed at the {where} of line {line.id}",
                SchemaError,
            )
            ctx.bus_geometry[bus_id] = Geometry(
                type="Point", coordinates=line.geometry.positions()[at]
            )


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)


def _build_net(ctx: _Context, net: pp.pandapowerNet) -> None:
    """Fill the empty ``net`` (also the std-type library the values were resolved with)."""
    net["substation"] = _frame(
        [_common(f, p) for f, p in ctx.typed(SubstationProperties)],
        ["name", "in_service", *_COMMON],
    )
    sub_index = {f.id: i for i, (f, _) in enumerate(ctx.typed(SubstationProperties))}

    buses = ctx.typed(BusProperties)
    bus_index = {f.id: i for i, (f, _) in enumerate(buses)}
    if buses:
        bp = [p for _, p in buses]
        pp.create_buses(
            net,
            len(bp),
            [p.vn_kv for p in bp],
            name=[p.name for p in bp],
            type=[p.type for p in bp],
            zone=[p.zone for p in bp],
            in_service=[p.in_service for p in bp],
            max_vm_pu=[_nan(p.max_vm_pu) for p in bp],
            min_vm_pu=[_nan(p.min_vm_pu) for p in bp],
        )
        net.bus["geo"] = [_geo_str(ctx.bus_geometry.get(f.id)) for f, _ in buses]
        net.bus["gis_id"] = [f.id for f, _ in buses]
        net.bus["feeder"] = [p.feeder for p in bp]
        net.bus["substation"] = pd.array(
            [sub_index.get(p.substation) if p.substation else None for p in bp], dtype="Int64"
        )

    for feat, e in ctx.typed(ExtGridProperties):
        pp.create_ext_grid(
            net,
            bus_index[e.bus],
            vm_pu=e.vm_pu,
            va_degree=e.va_degree,
            s_sc_max_mva=_nan(e.s_sc_max_mva),
            s_sc_min_mva=_nan(e.s_sc_min_mva),
            rx_max=_nan(e.rx_max),
            rx_min=_nan(e.rx_min),
            **_common(feat, e),
        )

    trafo_index: dict[str, int] = {}
    for feat, t in ctx.typed(TransformerProperties):
        r = ctx.resolved[feat.id]
        trafo_index[feat.id] = int(
            pp.create_transformer_from_parameters(
                net,
                bus_index[t.hv_bus],
                bus_index[t.lv_bus],
                r["sn_mva"],
                r["vn_hv_kv"],
                r["vn_lv_kv"],
                r["vkr_percent"],
                r["vk_percent"],
                r["pfe_kw"],
                r["i0_percent"],
                shift_degree=r["shift_degree"],
                tap_side=r["tap_side"],
                tap_neutral=_nan(r["tap_neutral"]),
                tap_max=_nan(r["tap_max"]),
                tap_min=_nan(r["tap_min"]),
                tap_step_percent=_nan(r["tap_step_percent"]),
                tap_pos=_nan(r["tap_pos"]),
                tap_changer_type=r["tap_changer_type"],
                parallel=t.parallel,
                std_type=t.std_type,
                regulator=False,
                vm_set_pu=math.nan,
                **_common(feat, t),
            )
        )
    for feat, g in ctx.typed(RegulatorProperties):
        r = ctx.resolved[feat.id]
        trafo_index[feat.id] = int(
            pp.create_transformer_from_parameters(
                net,
                bus_index[g.from_bus],
                bus_index[g.to_bus],
                g.sn_mva,
                r["vn_kv"],
                r["vn_kv"],
                r["vkr_percent"],
                r["vk_percent"],
                0.0,
                0.0,
                tap_side="lv",
                tap_neutral=g.tap_neutral,
                tap_max=g.tap_max,
                tap_min=g.tap_min,
                tap_step_percent=g.tap_step_percent,
                tap_pos=g.tap_pos,
                tap_changer_type="Ratio",
                std_type=None,
                regulator=True,
                vm_set_pu=g.vm_set_pu,
                **_common(feat, g),
            )
        )

    lines = ctx.typed(LineProperties)
    line_index = {f.id: i for i, (f, _) in enumerate(lines)}
    if lines:
        res = [ctx.resolved[f.id] for f, _ in lines]
        lp = [p for _, p in lines]
        pp.create_lines_from_parameters(
            net,
            [bus_index[r["from_bus"]] for r in res],
            [bus_index[r["to_bus"]] for r in res],
            [r["length_km"] for r in res],
            [r["r_ohm_per_km"] for r in res],
            [r["x_ohm_per_km"] for r in res],
            [r["c_nf_per_km"] for r in res],
            [r["max_i_ka"] for r in res],
            name=[p.name for p in lp],
            type=[r["type"] for r in res],
            in_service=[p.in_service for p in lp],
            df=[p.df for p in lp],
            parallel=[p.parallel for p in lp],
            g_us_per_km=[r["g_us_per_km"] for r in res],
            std_type=[p.std_type for p in lp],
            gis_id=[f.id for f, _ in lines],
            feeder=[p.feeder for p in lp],
        )
        net.line["geo"] = [_geo_str(f.geometry) for f, _ in lines]

    switch_rows: list[dict[str, Any]] = []
    earth_rows: list[dict[str, Any]] = []
    element_index = {"line": line_index, "bus": bus_index, "trafo": trafo_index}
    for feat, s in ctx.typed(SwitchProperties):
        base = {
            "closed": ctx.resolved[feat.id]["closed"],
            "normal_open": s.normal_open,
            **_common(feat, s),
        }
        if s.et is None or s.element is None:
            earth_rows.append({"bus": bus_index[s.bus], **base})
            continue
        switch_rows.append(
            {
                "bus": bus_index[s.bus],
                "element": element_index[s.et.value][s.element],
                "et": _PP_ET[s.et],
                "type": PP_SWITCH_TYPE[s.switch_type],
                "z_ohm": s.z_ohm,
                "in_ka": _nan(s.in_ka),
                "switch_type": s.switch_type.value,
                **base,
            }
        )
    if switch_rows:
        pp.create_switches(
            net,
            [r["bus"] for r in switch_rows],
            [r["element"] for r in switch_rows],
            [r["et"] for r in switch_rows],
            closed=[r["closed"] for r in switch_rows],
            type=[r["type"] for r in switch_rows],
            name=[r["name"] for r in switch_rows],
            z_ohm=[r["z_ohm"] for r in switch_rows],
            in_ka=[r["in_ka"] for r in switch_rows],
        )
        for col in ("switch_type", "normal_open", "in_service", *_COMMON):
            net.switch[col] = [r[col] for r in switch_rows]
        net.switch["normal_open"] = net.switch["normal_open"].astype(bool)
    net["earthing_switch"] = _frame(
        earth_rows, ["bus", "name", "closed", "normal_open", "in_service", *_COMMON]
    )

    loads = ctx.typed(LoadProperties)
    if loads:
        ld = [p for _, p in loads]
        pp.create_loads(
            net,
            [bus_index[p.bus] for p in ld],
            [p.p_mw for p in ld],
            q_mvar=[p.q_mvar for p in ld],
            const_z_p_percent=[p.const_z_p_percent for p in ld],
            const_i_p_percent=[p.const_i_p_percent for p in ld],
            const_z_q_percent=[p.const_z_q_percent for p in ld],
            const_i_q_percent=[p.const_i_q_percent for p in ld],
            sn_mva=[_nan(p.sn_mva) for p in ld],
            name=[p.name for p in ld],
            scaling=[p.scaling for p in ld],
            in_service=[p.in_service for p in ld],
            type=[p.type for p in ld],
        )
        net.load["customers"] = [ctx.resolved[f.id]["customers"] for f, _ in loads]
        _set_common(net.load, loads)

    ders = ctx.typed(DerProperties)
    if ders:
        dp = [p for _, p in ders]
        pp.create_sgens(
            net,
            [bus_index[p.bus] for p in dp],
            [p.p_mw for p in dp],
            q_mvar=[p.q_mvar for p in dp],
            sn_mva=[_nan(p.sn_mva) for p in dp],
            name=[p.name for p in dp],
            scaling=[p.scaling for p in dp],
            type=[p.type for p in dp],
            in_service=[p.in_service for p in dp],
        )
        _set_common(net.sgen, ders)

    for feat, c in ctx.typed(CapacitorProperties):
        r = ctx.resolved[feat.id]
        pp.create_shunt(
            net,
            bus_index[c.bus],
            r["q_mvar"],
            p_mw=c.p_mw,
            vn_kv=r["vn_kv"],
            step=c.step,
            max_step=c.max_step,
            **_common(feat, c),
        )

    switch_index = {row["gis_id"]: i for i, row in enumerate(switch_rows)}
    fpi_rows = []
    for feat, f in ctx.typed(FpiProperties):
        located = ("line", line_index[f.line]) if f.line else ("switch", switch_index[f.switch])
        fpi_rows.append(
            {
                "et": located[0],
                "element": located[1],
                "bus": bus_index[f.bus] if f.bus else None,
                **_common(feat, f),
            }
        )
    net["fpi"] = _frame(fpi_rows, ["name", "et", "element", "bus", "in_service", *_COMMON])
    net.fpi["bus"] = net.fpi["bus"].astype("Int64")


_COMMON = ("gis_id", "feeder", "geo")
_PP_ET = {SwitchElementType.LINE: "l", SwitchElementType.BUS: "b", SwitchElementType.TRAFO: "t"}


def _common(feat: ParsedFeature, props: BaseProperties) -> dict[str, Any]:
    """Columns every GIS-imported row has."""
    return {
        "name": props.name,
        "in_service": props.in_service,
        "gis_id": feat.id,
        "feeder": props.feeder,
        "geo": _geo_str(feat.geometry),
    }


def _set_common(frame: pd.DataFrame, rows: list[tuple[ParsedFeature, Any]]) -> None:
    for col in _COMMON:
        frame[col] = [_common(f, p)[col] for f, p in rows]


def _nan(value: float | int | None) -> float:
    return math.nan if value is None else float(value)


def check_topology(model: NetworkModel, options: ImportOptions) -> list[ModelError]:
    """Normal-state checks: unsupplied buses and (if expected) non-radial operation."""
    errors: list[ModelError] = []
    net = model.net
    proc = TopologyProcessor(model, normal_state=True)
    state = proc.state
    if not options.allow_unsupplied:
        islands = state.islands()
        dead = state.deenergised_buses - set(net.bus.gis_id[~net.bus.in_service])
        seen: set[int] = set()
        for bus_id in sorted(dead):
            island = state[bus_id].island
            if island in seen:
                continue
            seen.add(island)
            members = sorted(islands[island])
            more = f" and {len(members) - 8} more" if len(members) > 8 else ""
            errors.append(
                UnsuppliedIslandError(
                    f"no source supplies this island in the normal state: "
                    f"{', '.join(members[:8])}{more}",
                    feature_id=members[0],
                    kind="bus",
                )
            )
    if options.expect_radial and state.loop_count:
        for loop in proc.loops():
            errors.append(
                NonRadialError(
                    "closed loop in the normal state"
                    + (" (between sources)" if loop.via_sources else "")
                    + f" through {', '.join(loop.branches)};"
                    " a switch on one of them should be normal_open",
                    feature_id=loop.branches[0] if loop.branches else None,
                    kind=_kind_of(model, loop.branches[0]) if loop.branches else None,
                )
            )
    return errors


def _kind_of(model: NetworkModel, gis_id: str) -> str:
    table = model.locate(gis_id).table
    return _TABLE_KIND.get(table, table)


def fill_feeders(model: NetworkModel, *, log: bool) -> None:
    """Derive feeders; set each element's missing ``feeder`` (logging it when ``log``)."""
    feeders, assignments = derive_feeders(model)
    model.feeders = feeders
    net = model.net
    for table, rows in assignments.items():
        frame = net[table]
        if not len(frame):
            continue
        if "feeder" not in frame.columns:
            frame["feeder"] = None
        frame["feeder"] = frame["feeder"].astype(object)
        for index, feeder in rows.items():
            current = frame.at[index, "feeder"]
            if isinstance(current, str) or feeder is None:
                continue
            frame.at[index, "feeder"] = feeder
            if log:
                gid = frame.at[index, "gis_id"] if "gis_id" in frame.columns else None
                kind = _TABLE_KIND.get(table, table)
                model.repairs.append(
                    Repair(
                        gid, kind, "feeder", f"feeder missing, derived {feeder} from the topology"
                    )
                )


_TABLE_KIND = {
    "trafo": "transformer",
    "sgen": "der",
    "shunt": "capacitor",
    "earthing_switch": "switch",
}


def from_geojson(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    options: ImportOptions | None = None,
    name: str | None = None,
) -> NetworkModel:
    """Import a GIS FeatureCollection (a path or an already-parsed mapping)."""
    opts = options or ImportOptions()
    collection, label = _read(source)
    parsed = parse_collection(collection)
    meta, features = parsed.meta, parsed.features
    ctx = _Context(
        source=label,
        options=opts,
        coordinates=meta.coordinates,
        features=features,
        rejected=parsed.rejected_ids,
    )
    ctx.errors.extend(parsed.errors)
    _check_ids(ctx)
    _check_references(ctx)
    net = pp.create_empty_network(name=name or meta.name or Path(label).stem)
    if not ctx.errors:
        _resolve_lines(ctx, net)
        _resolve_transformers(ctx, net)
        _resolve_others(ctx)
    if ctx.errors:
        raise ModelValidationError(ctx.errors, source=label)
    _build_net(ctx, net)
    model = NetworkModel(
        net=net,
        name=name or meta.name or Path(label).stem,
        source=label,
        source_format="geojson",
        coordinates=meta.coordinates,
        repairs=ctx.repairs,
        source_features={f.id: dict(f.raw) for f in features},
        source_meta=meta.model_dump(mode="json", exclude_none=True),
    )
    topology_errors = check_topology(model, opts)
    if topology_errors:
        raise ModelValidationError(topology_errors, source=label)
    fill_feeders(model, log=True)
    log_repairs(model)
    return model


def log_repairs(model: NetworkModel) -> None:
    """Log each repair at INFO, naming the source (the list stays in ``model.repairs``)."""
    for repair in model.repairs:
        _LOG.info("%s: %s", model.source, repair)
