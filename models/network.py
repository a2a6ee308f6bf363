"""The network model every importer returns: a pandapower net plus GIS bookkeeping.

Contract:
- ``NetworkModel.net`` is an ordinary pandapower net. Every element table that
  has rows carries a ``gis_id`` column (unique across the whole model) and a
  ``feeder`` column (the feeder in the normal switching state, ``None`` for
  elements upstream of the feeder breakers). Buses and lines keep geometry in
  pandapower 3's ``geo`` column (a GeoJSON string); the other tables imported
  from GIS get a ``geo`` column in the same form.
- Tables the GeoJSON schema adds to pandapower's: ``substation``,
  ``earthing_switch`` and ``fpi``. The ``switch`` table gains ``switch_type``
  and ``normal_open``; ``trafo`` gains ``regulator`` and ``vm_set_pu``;
  ``load`` gains ``customers``.
- ``repairs`` lists every change an importer made to the source data.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pandapower.auxiliary import pandapowerNet

from models.errors import DuplicateIdError, UnknownElementError
from models.geojson import CoordinateSystem

__all__ = [
    "GIS_TABLES",
    "ElementRef",
    "Feeder",
    "ImportOptions",
    "NetworkModel",
    "Repair",
    "element_tables",
]

#: Tables a GeoJSON import fills, in the order the exporter writes them.
GIS_TABLES: tuple[str, ...] = (
    "substation",
    "bus",
    "ext_grid",
    "trafo",
    "line",
    "switch",
    "earthing_switch",
    "load",
    "sgen",
    "shunt",
    "fpi",
)

_SKIP_TABLES = frozenset({"measurement", "controller", "group", "pwl_cost", "poly_cost"})


def element_tables(net: pandapowerNet) -> list[str]:
    """Names of the net's non-empty element tables (inputs, not results nor costs)."""
    names = []
    for key, value in net.items():
        if (
            isinstance(value, pd.DataFrame)
            and not key.startswith(("res_", "_"))
            and key not in _SKIP_TABLES
            and key != "std_types"
            and len(value)
        ):
            names.append(key)
    return names


@dataclass(frozen=True)
class Repair:
    """One change an importer made to messy source data."""

    feature_id: str | None
    kind: str | None
    field: str
    message: str

    def __str__(self) -> str:
        who = " ".join(part for part in (self.kind, self.feature_id) if part)
        return f"{who}: {self.message}" if who else self.message


@dataclass(frozen=True)
class Feeder:
    """A feeder: what its head breaker supplies in the normal switching state."""

    id: str
    head_switch: str
    head_bus: str
    substation: str | None
    buses: tuple[str, ...]


@dataclass(frozen=True)
class ElementRef:
    """Where a GIS id lives in the net."""

    table: str
    index: int


@dataclass(frozen=True)
class ImportOptions:
    """What an importer checks and whether it may repair.

    - ``expect_radial``: a closed loop in the normal state (including a path
      between two sources) is an error.
    - ``allow_unsupplied``: buses no source reaches in the normal state are
      allowed (otherwise an error).
    - ``repair``: fix what can be fixed and log it; when False, each such
      problem is an error instead.
    - ``snap_tolerance_m``: a line end with no bus is attached to the bus whose
      point lies within this distance of the line's end (WGS84 coordinates only).
    """

    expect_radial: bool = True
    allow_unsupplied: bool = False
    repair: bool = True
    snap_tolerance_m: float = 5.0


@dataclass(eq=False)
class NetworkModel:
    """A pandapower net with GIS ids, feeders and the log of import repairs."""

    net: pandapowerNet
    name: str
    source: str
    source_format: str
    coordinates: CoordinateSystem = CoordinateSystem.WGS84
    feeders: dict[str, Feeder] = field(default_factory=dict)
    repairs: list[Repair] = field(default_factory=list)
    #: the features as imported (GeoJSON only), by GIS id: the base for export diffs
    source_features: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the collection's ``pyadms`` member as imported (GeoJSON only)
    source_meta: dict[str, Any] = field(default_factory=dict)
    _ids: dict[str, ElementRef] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.refresh_ids()

    def refresh_ids(self) -> None:
        """Rebuild the GIS-id index; call after adding or removing elements.

        Raises :class:`DuplicateIdError` if two elements share an id.
        """
        ids: dict[str, ElementRef] = {}
        for table in element_tables(self.net):
            frame = self.net[table]
            if "gis_id" not in frame.columns:
                continue
            for index, gis_id in zip(frame.index, frame["gis_id"], strict=True):
                if not isinstance(gis_id, str):
                    continue
                if gis_id in ids:
                    other = ids[gis_id]
                    raise DuplicateIdError(
                        f"used by {other.table} {other.index} and {table} {index}",
                        feature_id=gis_id,
                        field="gis_id",
                    )
                ids[gis_id] = ElementRef(table, int(index))
        self._ids = ids

    def locate(self, gis_id: str) -> ElementRef:
        """Table and index of an element; :class:`UnknownElementError` if absent."""
        try:
            return self._ids[gis_id]
        except KeyError:
            raise UnknownElementError("no such element", feature_id=gis_id) from None

    def index_of(self, table: str, gis_id: str) -> int:
        """Pandapower index of ``gis_id`` in ``table`` (error if it lives elsewhere)."""
        ref = self.locate(gis_id)
        if ref.table != table:
            raise UnknownElementError(f"is a {ref.table}, not a {table}", feature_id=gis_id)
        return ref.index

    def gis_id_of(self, table: str, index: int) -> str:
        """GIS id of row ``index`` of ``table``."""
        value = self.net[table].at[index, "gis_id"]
        if not isinstance(value, str):
            raise UnknownElementError(f"{table} {index} has no gis_id")
        return value

    def ids(self, table: str) -> list[str]:
        """GIS ids of a table's rows, in table order."""
        if table not in self.net or "gis_id" not in self.net[table].columns:
            return []
        return [str(v) for v in self.net[table]["gis_id"]]

    def __contains__(self, gis_id: object) -> bool:
        return gis_id in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def geometry(self, gis_id: str) -> dict[str, Any] | None:
        """The element's GeoJSON geometry, or None."""
        ref = self.locate(gis_id)
        frame = self.net[ref.table]
        if "geo" not in frame.columns:
            return None
        value = frame.at[ref.index, "geo"]
        return json.loads(value) if isinstance(value, str) else None

    @property
    def repair_log(self) -> list[str]:
        """The repairs as one sentence each."""
        return [str(repair) for repair in self.repairs]

    def copy(self) -> NetworkModel:
        """A deep copy (the net included), e.g. for a study that must not touch live state."""
        return NetworkModel(
            net=copy.deepcopy(self.net),
            name=self.name,
            source=self.source,
            source_format=self.source_format,
            coordinates=self.coordinates,
            feeders=dict(self.feeders),
            repairs=list(self.repairs),
            source_features=copy.deepcopy(self.source_features),
            source_meta=dict(self.source_meta),
        )
