"""NetworkModel -> GeoJSON, so GIS stays the master of topology.

Contract: :func:`to_feature_collection` writes the model's *current* state
(switch positions, in-service flags, tap and capacitor steps, anything added
or removed since import) in the schema of :mod:`models.geojson`. Properties
the schema does not know, kept from the imported features, are written back
unchanged. The collection's ``pyadms.changes`` member lists what differs from
the import (see :func:`changes_since_import`). Importing the output gives the
same topology and states.

Lines and transformers with a ``std_type`` whose values equal pandapower's
library are written with the ``std_type`` alone; otherwise with every value.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandapower as pp
import pandas as pd
from pydantic import ValidationError

from models.errors import UnsupportedElementError
from models.geojson import FORMAT_VERSION, KIND_MODELS, Kind
from models.network import GIS_TABLES, NetworkModel, element_tables

__all__ = [
    "ModelChanges",
    "SwitchChange",
    "changes_since_import",
    "dumps_collection",
    "to_feature_collection",
    "write_geojson",
]

_PP_TO_SWITCH_TYPE = {
    "CB": "breaker",
    "LBS": "load_break_switch",
    "LS": "load_break_switch",
    "DS": "disconnector",
}
#: pandapower switch ``et`` -> GeoJSON ``et``, which is also the table ``element`` indexes
_ET_NAMES = {"l": "line", "b": "bus", "t": "trafo"}


@dataclass(frozen=True)
class SwitchChange:
    """A switch whose state differs from the imported one."""

    id: str
    closed_before: bool | None
    closed: bool


@dataclass
class ModelChanges:
    """What the model's current state changes against the imported GeoJSON."""

    switches: list[SwitchChange] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: feature id -> names of properties whose value differs (switch states included)
    modified: dict[str, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True when nothing changed."""
        return not (self.switches or self.added or self.removed or self.modified)

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form (the ``pyadms.changes`` member)."""
        return {
            "switches": [asdict(c) for c in self.switches],
            "added": list(self.added),
            "removed": list(self.removed),
            "modified": {k: list(v) for k, v in self.modified.items()},
        }


def _plain(value: Any) -> Any:
    """numpy/pandas scalars to JSON values; NaN/NA to None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float | int) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            return None
        return value
    if hasattr(value, "item"):
        return _plain(value.item())
    return value


def _default(value: Any, fallback: Any) -> Any:
    plain = _plain(value)
    return fallback if plain is None else plain


def _put(props: dict[str, Any], key: str, value: Any, *, as_int: bool = False) -> None:
    value = _plain(value)
    if value is None:
        return
    props[key] = int(value) if as_int else value


class _Writer:
    """Writes a net's rows as features; references become GIS ids."""

    def __init__(self, model: NetworkModel) -> None:
        self.model = model
        self.net = model.net
        self.library = pp.create_empty_network()

    def gid(self, table: str, index: Any) -> str:
        return self.model.gis_id_of(table, int(index))

    def feature(self, kind: Kind, row: pd.Series, props: dict[str, Any]) -> dict[str, Any]:
        head: dict[str, Any] = {"kind": kind.value, "id": row["gis_id"]}
        name = _plain(row.get("name"))
        if name is not None:
            head["name"] = str(name)
        head["in_service"] = bool(row.get("in_service", True))
        _put(head, "feeder", row.get("feeder"))
        geo = row.get("geo")
        return {
            "type": "Feature",
            "geometry": json.loads(geo) if isinstance(geo, str) else None,
            "properties": {**head, **props},
        }

    def substation(self, row: pd.Series) -> dict[str, Any]:
        return self.feature(Kind.SUBSTATION, row, {})

    def bus(self, row: pd.Series) -> dict[str, Any]:
        props: dict[str, Any] = {"vn_kv": float(row.vn_kv), "type": row.type}
        sub = row.get("substation")
        if _plain(sub) is not None:
            props["substation"] = self.gid("substation", sub)
        _put(props, "zone", row.get("zone"))
        _put(props, "max_vm_pu", row.get("max_vm_pu"))
        _put(props, "min_vm_pu", row.get("min_vm_pu"))
        return self.feature(Kind.BUS, row, props)

    def ext_grid(self, row: pd.Series) -> dict[str, Any]:
        props: dict[str, Any] = {
            "bus": self.gid("bus", row.bus),
            "vm_pu": float(row.vm_pu),
            "va_degree": float(row.va_degree),
        }
        for key in ("s_sc_max_mva", "s_sc_min_mva", "rx_max", "rx_min"):
            _put(props, key, row.get(key))
        return self.feature(Kind.EXT_GRID, row, props)

    def trafo(self, row: pd.Series) -> dict[str, Any]:
        if bool(_plain(row.get("regulator")) or False):
            props = {
                "from_bus": self.gid("bus", row.hv_bus),
                "to_bus": self.gid("bus", row.lv_bus),
                "sn_mva": float(row.sn_mva),
                "vn_kv": float(row.vn_lv_kv),
                "tap_neutral": int(row.tap_neutral),
                "tap_min": int(row.tap_min),
                "tap_max": int(row.tap_max),
                "tap_step_percent": float(row.tap_step_percent),
                "tap_pos": int(row.tap_pos),
                "vm_set_pu": float(row.vm_set_pu),
                "vk_percent": float(row.vk_percent),
                "vkr_percent": float(row.vkr_percent),
            }
            return self.feature(Kind.REGULATOR, row, props)
        props = {"hv_bus": self.gid("bus", row.hv_bus), "lv_bus": self.gid("bus", row.lv_bus)}
        values = {
            "sn_mva": row.sn_mva,
            "vn_hv_kv": row.vn_hv_kv,
            "vn_lv_kv": row.vn_lv_kv,
            "vk_percent": row.vk_percent,
            "vkr_percent": row.vkr_percent,
            "pfe_kw": row.pfe_kw,
            "i0_percent": row.i0_percent,
            "shift_degree": row.shift_degree,
        }
        taps: dict[str, Any] = {}
        if _plain(row.get("tap_changer_type")) is not None:
            taps = {
                "tap_side": row.tap_side,
                "tap_neutral": row.tap_neutral,
                "tap_min": row.tap_min,
                "tap_max": row.tap_max,
                "tap_step_percent": row.tap_step_percent,
                "tap_changer_type": row.tap_changer_type,
            }
        std = _plain(row.get("std_type"))
        if isinstance(std, str):
            props["std_type"] = std
            lib = (
                pp.load_std_type(self.library, std, "trafo")
                if pp.std_type_exists(self.library, std, "trafo")
                else {}
            )
            values = {k: v for k, v in values.items() if not _same(lib.get(k), v)}
            taps = {k: v for k, v in taps.items() if not _same(lib.get(k), v)}
        for key, value in values.items():
            _put(props, key, value)
        for key, value in taps.items():
            _put(props, key, value, as_int=key in ("tap_neutral", "tap_min", "tap_max"))
        _put(props, "tap_pos", row.get("tap_pos"), as_int=True)
        if int(row.parallel) != 1:
            props["parallel"] = int(row.parallel)
        return self.feature(Kind.TRANSFORMER, row, props)

    def line(self, row: pd.Series) -> dict[str, Any]:
        props: dict[str, Any] = {
            "from_bus": self.gid("bus", row.from_bus),
            "to_bus": self.gid("bus", row.to_bus),
            "length_km": float(row.length_km),
        }
        values = {
            "r_ohm_per_km": row.r_ohm_per_km,
            "x_ohm_per_km": row.x_ohm_per_km,
            "c_nf_per_km": row.c_nf_per_km,
            "max_i_ka": row.max_i_ka,
            "type": row.get("type"),
        }
        std = _plain(row.get("std_type"))
        if isinstance(std, str):
            props["std_type"] = std
            lib = (
                pp.load_std_type(self.library, std, "line")
                if pp.std_type_exists(self.library, std, "line")
                else {}
            )
            values = {k: v for k, v in values.items() if not _same(lib.get(k), v)}
        for key, value in values.items():
            _put(props, key, value)
        if _plain(row.get("g_us_per_km")):
            props["g_us_per_km"] = float(row.g_us_per_km)
        if int(row.parallel) != 1:
            props["parallel"] = int(row.parallel)
        if float(row.df) != 1.0:
            props["df"] = float(row.df)
        return self.feature(Kind.LINE, row, props)

    def switch(self, row: pd.Series) -> dict[str, Any]:
        stype = _plain(row.get("switch_type")) or _PP_TO_SWITCH_TYPE.get(
            _plain(row.type), "load_break_switch"
        )
        props: dict[str, Any] = {
            "bus": self.gid("bus", row.bus),
            "element": self.gid(_ET_NAMES[row.et], row.element),
            "et": _ET_NAMES[row.et],
            "switch_type": stype,
            # a net without a normal state (pandapower/CIM source): its state is the normal one
            "normal_open": bool(_default(row.get("normal_open"), not row.closed)),
            "closed": bool(row.closed),
        }
        if _plain(row.get("z_ohm")):
            props["z_ohm"] = float(row.z_ohm)
        _put(props, "in_ka", row.get("in_ka"))
        return self.feature(Kind.SWITCH, row, props)

    def earthing_switch(self, row: pd.Series) -> dict[str, Any]:
        props = {
            "bus": self.gid("bus", row.bus),
            "switch_type": "earthing_switch",
            "normal_open": bool(row.normal_open),
            "closed": bool(row.closed),
        }
        return self.feature(Kind.SWITCH, row, props)

    def load(self, row: pd.Series) -> dict[str, Any]:
        props: dict[str, Any] = {
            "bus": self.gid("bus", row.bus),
            "p_mw": float(row.p_mw),
            "q_mvar": float(row.q_mvar),
        }
        for key in (
            "const_z_p_percent",
            "const_i_p_percent",
            "const_z_q_percent",
            "const_i_q_percent",
        ):
            if _plain(row.get(key)):
                props[key] = float(row[key])
        _put(props, "sn_mva", row.get("sn_mva"))
        props["scaling"] = float(row.scaling)
        _put(props, "type", row.get("type"))
        _put(props, "customers", row.get("customers"), as_int=True)
        return self.feature(Kind.LOAD, row, props)

    def sgen(self, row: pd.Series) -> dict[str, Any]:
        props: dict[str, Any] = {
            "bus": self.gid("bus", row.bus),
            "p_mw": float(row.p_mw),
            "q_mvar": float(row.q_mvar),
        }
        _put(props, "sn_mva", row.get("sn_mva"))
        props["scaling"] = float(row.scaling)
        _put(props, "type", row.get("type"))
        return self.feature(Kind.DER, row, props)

    def shunt(self, row: pd.Series) -> dict[str, Any]:
        props: dict[str, Any] = {
            "bus": self.gid("bus", row.bus),
            "q_mvar": float(row.q_mvar),
            "p_mw": float(row.p_mw),
            "step": int(row.step),
            "max_step": int(row.max_step),
        }
        _put(props, "vn_kv", row.get("vn_kv"))
        return self.feature(Kind.CAPACITOR, row, props)

    def fpi(self, row: pd.Series) -> dict[str, Any]:
        props: dict[str, Any] = {str(row.et): self.gid(str(row.et), row.element)}
        if _plain(row.get("bus")) is not None:
            props["bus"] = self.gid("bus", row.bus)
        return self.feature(Kind.FPI, row, props)

    def writers(self) -> dict[str, Callable[[pd.Series], dict[str, Any]]]:
        return {
            "substation": self.substation,
            "bus": self.bus,
            "ext_grid": self.ext_grid,
            "trafo": self.trafo,
            "line": self.line,
            "switch": self.switch,
            "earthing_switch": self.earthing_switch,
            "load": self.load,
            "sgen": self.sgen,
            "shunt": self.shunt,
            "fpi": self.fpi,
        }


def _same(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-15)
    return bool(a == b)


def _current_features(model: NetworkModel) -> list[dict[str, Any]]:
    unsupported = sorted(set(element_tables(model.net)) - set(GIS_TABLES))
    if unsupported:
        raise UnsupportedElementError(
            f"the GeoJSON schema has no kind for pandapower table(s) {', '.join(unsupported)}",
            feature_id=model.name,
        )
    writer = _Writer(model)
    features = []
    for table, write in writer.writers().items():
        if table not in model.net or not len(model.net[table]):
            continue
        if "gis_id" not in model.net[table].columns:
            raise UnsupportedElementError(
                f"table {table} has no gis_id column", feature_id=model.name
            )
        for _, row in model.net[table].iterrows():
            features.append(write(row))
    # Keep properties the schema does not know, as imported.
    for feature in features:
        props = feature["properties"]
        original = model.source_features.get(props["id"])
        if original is None:
            continue
        known = set(KIND_MODELS[Kind(props["kind"])].model_fields)
        for key, value in (original.get("properties") or {}).items():
            if key not in known and key != "kind":
                props.setdefault(key, value)
    return features


def _normalised(feature: dict[str, Any]) -> dict[str, Any] | None:
    props = dict(feature.get("properties") or {})
    try:
        kind = Kind(str(props.get("kind")))
        parsed = KIND_MODELS[kind].model_validate(props)
    except (ValueError, ValidationError):
        return None
    dumped = parsed.model_dump(mode="json")
    dumped["geometry"] = feature.get("geometry")
    return dumped


def _diff(model: NetworkModel, features: list[dict[str, Any]]) -> ModelChanges:
    changes = ModelChanges()
    now = {f["properties"]["id"]: f for f in features}
    for fid, feature in now.items():
        before = model.source_features.get(fid)
        if before is None:
            changes.added.append(fid)
            continue
        a, b = _normalised(before), _normalised(feature)
        if a is None or b is None:
            continue
        fields = sorted(k for k in set(a) | set(b) if not _same_value(a.get(k), b.get(k)))
        if fields:
            changes.modified[fid] = fields
        if b.get("kind") == "switch" and "closed" in fields:
            changes.switches.append(SwitchChange(fid, a.get("closed"), bool(b["closed"])))
    changes.removed = [fid for fid in model.source_features if fid not in now]
    return changes


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return _same(a, b)


def changes_since_import(model: NetworkModel) -> ModelChanges:
    """Differences between the model now and the GeoJSON it was imported from."""
    return _diff(model, _current_features(model))


def to_feature_collection(model: NetworkModel, *, include_changes: bool = True) -> dict[str, Any]:
    """The model as a GeoJSON FeatureCollection in the pyadms schema."""
    features = _current_features(model)
    meta: dict[str, Any] = {
        **{k: v for k, v in model.source_meta.items() if k != "changes"},
        "format_version": FORMAT_VERSION,
        "name": model.name,
        "coordinates": model.coordinates.value,
    }
    if include_changes and model.source_features:
        meta["changes"] = _diff(model, features).as_dict()
    return {"type": "FeatureCollection", "pyadms": meta, "features": features}


def write_geojson(
    model: NetworkModel, path: str | os.PathLike[str], *, include_changes: bool = True
) -> Path:
    """Write :func:`to_feature_collection` to ``path`` (UTF-8); returns the path.

    One feature per line, so a version-controlled network diffs per element.
    """
    out = Path(path)
    out.write_text(
        dumps_collection(to_feature_collection(model, include_changes=include_changes)),
        encoding="utf-8",
    )
    return out


def dumps_collection(collection: dict[str, Any]) -> str:
    """Serialise a FeatureCollection with one feature per line."""
    head = {k: v for k, v in collection.items() if k != "features"}
    lines = [
        json.dumps(f, ensure_ascii=False, separators=(",", ":"))
        for f in collection.get("features", [])
    ]
    body = ",\n".join(lines)
    head_text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1]
    return f'{head_text},"features":[\n{body}\n]}}\n'
