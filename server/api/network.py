"""The network model and its live topology for consoles: ``/api/network`` and ``/api/topology``.

Contract:
- :func:`install_network` serves the control centre's network model
  (:attr:`server.wiring.ControlCentre.network`) and its live topology
  (:attr:`~server.wiring.ControlCentre.topology`, the
  :class:`~server.topology.TopologyFeed` that keeps the model in step with
  the switch status points) from an application made by
  :func:`server.api.create_app`. Call it on the event loop, after
  :meth:`server.wiring.ControlCentre.start`. Without it (a SCADA-only
  server) both routes answer 404 naming what is missing.
- ``GET /api/network`` (viewer): the model as a GeoJSON FeatureCollection in
  the schema of ``models/GEOJSON.md``: every feature with its id, kind,
  geometry, feeder, normal state (``normal_open``) and ``closed`` as it was
  when installed (the live states are the topology's). The collection's
  ``pyadms`` member adds ``bindings`` (GIS id -> ``[{point, table,
  qualifier}]`` for every configured point whose ``element`` names it, as
  of the running configuration) and ``feeder_heads`` (feeder id -> head
  breaker id).
- ``GET /api/topology`` (viewer): :meth:`NetworkService.view`, the live
  topology: ``{"version", "switches": {id: closed}, "elements": {id:
  {"energised", "earthed", "feeder"}}, "loops": [{"buses", "branches",
  "via_sources"}], "paralleled_feeders": [[a, b]]}`` for every bus, line,
  transformer, switch, load, DER, capacitor, FPI, source and substation. An
  element's feeder is that of its first energised terminal bus (None when
  de-energised or upstream of the feeder breakers).
- The push channel carries the same view as the snapshot's ``topology``;
  each ``changes`` batch's ``topology`` list holds deltas ``{"version",
  "switches", "elements"}`` with only what changed, plus the whole
  ``loops`` and ``paralleled_feeders`` and the customers interrupted and
  restored since the previous delta. Deltas are computed once per loop
  iteration however many switch changes arrived in it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status

from models.binding import BindingError, parse_element
from models.errors import UnknownElementError
from models.gis_export import to_feature_collection
from models.network import NetworkModel
from models.topology import TopologyChange, TopologyState
from server.api.deps import ApiContext, Viewer
from server.topology import TopologyFeed

__all__ = ["NetworkService", "install_network", "router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["network"])

#: tables whose elements get a topology state, with the bus columns that are their terminals
_TERMINALS: dict[str, tuple[str, ...]] = {
    "bus": (),
    "line": ("from_bus", "to_bus"),
    "trafo": ("hv_bus", "lv_bus"),
    "switch": ("bus",),
    "earthing_switch": ("bus",),
    "load": ("bus",),
    "sgen": ("bus",),
    "shunt": ("bus",),
    "ext_grid": ("bus",),
}


def _terminals(model: NetworkModel) -> dict[str, tuple[str, ...]]:
    """GIS id -> the GIS ids of the buses it connects to (for its feeder)."""
    net = model.net
    out: dict[str, tuple[str, ...]] = {}
    for table, columns in _TERMINALS.items():
        if table not in net or not len(net[table]):
            continue
        frame = net[table]
        for gid, (_, row) in zip(model.ids(table), frame.iterrows(), strict=True):
            if table == "bus":
                out[gid] = (gid,)
            else:
                out[gid] = tuple(model.gis_id_of("bus", int(row[c])) for c in columns)
    if "fpi" in net and len(net.fpi):
        for gid, et, element in zip(model.ids("fpi"), net.fpi.et, net.fpi.element, strict=True):
            table = "line" if et == "line" else "switch"
            out[gid] = out.get(model.gis_id_of(table, int(element)), ())
    if "substation" in net and len(net.substation) and "substation" in net.bus:
        for gid, index in zip(model.ids("substation"), net.substation.index, strict=True):
            buses = net.bus.index[net.bus["substation"].eq(index).fillna(False).to_numpy(bool)]
            out[gid] = tuple(model.gis_id_of("bus", int(b)) for b in buses)
    return out


@dataclass
class _Pending:
    """Topology changes reported since the last delta (guarded by the service's lock)."""

    scheduled: bool = False
    interrupted: int = 0
    restored: int = 0
    switches: list[tuple[str, bool]] = field(default_factory=list)


class NetworkService:
    """A network model, its live topology, and the JSON views consoles get."""

    def __init__(self, ctx: ApiContext, model: NetworkModel, feed: TopologyFeed):
        self.ctx = ctx
        self.model = model
        self.feed = feed
        self._loop = asyncio.get_running_loop()
        self._terminals = _terminals(model)
        self._lock = threading.Lock()
        self._pending = _Pending()
        self.version = 0
        self._view = self._compute()
        # the model's geometry never changes: serialise it once (~0.3 s for mv_oberrhein)
        self._collection = to_feature_collection(model, include_changes=False)
        feed.listeners.append(self._on_change)

    # --------------------------------------------------------------- views
    def view(self) -> dict[str, Any]:
        """The live topology (see the module docstring)."""
        return self._view

    def collection(self) -> dict[str, Any]:
        """The model as a FeatureCollection with the bindings of the running configuration."""
        meta = dict(self._collection["pyadms"])
        meta["bindings"] = self._bindings()
        meta["feeder_heads"] = self.feed.processor.feeder_heads
        return {**self._collection, "pyadms": meta}

    def _bindings(self) -> dict[str, list[dict[str, Any]]]:
        config = self.ctx.cc.fep.config
        out: dict[str, list[dict[str, Any]]] = {}
        if config is None:
            return out
        for dp in config.expand():
            for p in dp.points:
                if p.template.element is None:
                    continue
                try:
                    el = parse_element(p.template.element)
                except BindingError:
                    continue  # the configuration check reports it; consoles just lack the link
                if el.gis_id in self.model:
                    out.setdefault(el.gis_id, []).append(
                        {"point": p.name, "table": el.table, "qualifier": el.qualifier}
                    )
        return out

    def _compute(self) -> dict[str, Any]:
        processor = self.feed.processor
        state = processor.state
        buses = state.buses()
        elements: dict[str, dict[str, Any]] = {}
        for gid, terminals in self._terminals.items():
            elements[gid] = _element_state(state, gid, terminals, buses)
        return {
            "version": self.version,
            "switches": {s: processor.is_closed(s) for s in processor.switch_ids},
            "elements": elements,
            "loops": [
                {
                    "buses": list(lp.buses),
                    "branches": list(lp.branches),
                    "via_sources": lp.via_sources,
                }
                for lp in processor.loops()
            ],
            "paralleled_feeders": [list(pair) for pair in state.paralleled_feeders],
        }

    # ------------------------------------------------------------- changes
    def _on_change(self, change: TopologyChange) -> None:
        """A feed listener: note the change and compute the delta once this loop iteration."""
        with self._lock:
            p = self._pending
            p.interrupted += change.customers_interrupted
            p.restored += change.customers_restored
            p.switches.extend(change.switches)
            schedule = not p.scheduled
            p.scheduled = True
        if schedule:
            self._loop.call_soon_threadsafe(self._publish)

    def _publish(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, _Pending()
        old = self._view
        self.version += 1
        new = self._compute()
        delta = {
            "version": self.version,
            "switches": {k: v for k, v in new["switches"].items() if old["switches"].get(k) != v},
            "elements": {k: v for k, v in new["elements"].items() if old["elements"].get(k) != v},
            "loops": new["loops"],
            "paralleled_feeders": new["paralleled_feeders"],
            "customers_interrupted": pending.interrupted,
            "customers_restored": pending.restored,
        }
        self._view = new
        self.ctx.cc.push.publish_topology(delta)

    def close(self) -> None:
        """Stop publishing (the feed is the control centre's)."""
        if self._on_change in self.feed.listeners:
            self.feed.listeners.remove(self._on_change)
        if self.ctx.cc.push.topology_snapshot == self.view:
            self.ctx.cc.push.topology_snapshot = None


def _element_state(
    state: TopologyState, gid: str, terminals: tuple[str, ...], buses: dict[str, Any]
) -> dict[str, Any]:
    try:
        energised = state.is_energised(gid)
        earthed = state.is_earthed(gid)
    except UnknownElementError:
        energised = earthed = False
    feeder = None
    for bus in terminals:
        b = buses.get(bus)
        if b is not None and b.energised:
            feeder = b.feeder
            break
    return {"energised": energised, "earthed": earthed, "feeder": feeder}


def install_network(app: FastAPI) -> NetworkService:
    """Serve the control centre's network and live topology from ``app`` (module docstring)."""
    ctx: ApiContext = app.state.ctx
    model, feed = ctx.cc.network, ctx.cc.topology
    if model is None or feed is None:
        raise RuntimeError("install_network: the control centre has no network model (started?)")
    service = NetworkService(ctx, model, feed)
    app.state.network = service
    ctx.cc.push.topology_snapshot = service.view
    log.info(
        "network %s served to consoles (%d elements)", model.name, len(service.view()["elements"])
    )
    return service


def _service(request: Request) -> NetworkService:
    service: NetworkService | None = getattr(request.app.state, "network", None)
    if service is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "no network model loaded on this server (install_network)"
        )
    return service


@router.get("/network", responses={404: {"description": "no network model loaded"}})
async def network(request: Request, _: Viewer) -> Response:
    """The network model as a GeoJSON FeatureCollection with point bindings."""
    body = json.dumps(_service(request).collection(), separators=(",", ":"))
    return Response(body, media_type="application/geo+json")


@router.get("/topology", responses={404: {"description": "no network model loaded"}})
async def topology(request: Request, _: Viewer) -> dict[str, Any]:
    """The live topology: switch states and per-element energisation, earthing and feeder."""
    return _service(request).view()
