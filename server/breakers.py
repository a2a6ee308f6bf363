"""A network's protective devices (breakers, reclosers) and the status points that report them.

Contract:
- :class:`ProtectiveDevices` finds, for a :class:`~models.network.NetworkModel`
  and the scada configuration bound to it (:mod:`models.binding`), every
  breaker and recloser (``switch_type``; pandapower type ``CB`` where the
  model gives none) whose position is telemetered, by its status point
  (``element: switch:<id>``).
- :attr:`ProtectiveDevices.status_points` (status point -> switch id) are the
  rows of the circuit-breaker status table (:class:`scada.historian.Archiver`
  ``breakers=``) and the breakers of the alarm manager (an uncommanded
  opening is one TRIP alarm).
- :meth:`ProtectiveDevices.customers` maps a status point to the customers a
  trip of that device interrupts: counts given by the settings, else those
  of the in-service loads it feeds in the switching state of the model at
  the moment of asking (taken with the device itself closed, so the answer
  does not depend on whether the topology has seen the trip yet). The
  model's switch states are the live ones when a
  :class:`~server.topology.TopologyFeed` keeps them (it writes through); ask
  on its thread. A model whose loads carry no ``customers`` adds nothing (no
  automatic outage records for its devices).
- :attr:`ProtectiveDevices.feeders` maps a status point to the device's
  feeder (the model's ``feeder`` attribute of the switch).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from adms.sections import PROTECTIVE, SectionGraph
from models.binding import switch_status_points
from models.network import NetworkModel
from scada.config import ScadaConfig

__all__ = ["ProtectiveDevices", "ProtectiveDevice"]


@dataclass(frozen=True)
class ProtectiveDevice:
    """A telemetered breaker or recloser."""

    switch: str
    switch_type: str
    status_point: str
    feeder: str | None


class _Customers(Mapping[str, int]):
    """Customers a device's trip interrupts: given counts, else computed when asked."""

    def __init__(self, devices: ProtectiveDevices, given: Mapping[str, int]) -> None:
        self._devices = devices
        self._given = dict(given)
        self._live = devices.by_point if devices.knows_customers else {}

    def __getitem__(self, point: str) -> int:
        if point in self._given:
            return self._given[point]
        return self._devices.customers_fed(self._live[point].switch)

    def __iter__(self) -> Iterator[str]:
        return iter({**self._given, **dict.fromkeys(self._live)})

    def __len__(self) -> int:
        return len({*self._given, *self._live})


class ProtectiveDevices:
    """Breakers and reclosers of a model with their status and trip points."""

    def __init__(
        self, model: NetworkModel, config: ScadaConfig, graph: SectionGraph | None = None
    ) -> None:
        self.model = model
        self.graph = graph or SectionGraph(model)
        net = model.net
        feeders = (
            dict(zip(model.ids("switch"), net.switch["feeder"], strict=True))
            if "feeder" in net.switch.columns
            else {}
        )
        #: status point -> the device it reports
        self.by_point: dict[str, ProtectiveDevice] = {}
        for point, switch in switch_status_points(config).items():
            info = self.graph.switches.get(switch)
            if info is None or info.switch_type not in PROTECTIVE:
                continue
            feeder = feeders.get(switch)
            self.by_point[point] = ProtectiveDevice(
                switch, info.switch_type, point, feeder if isinstance(feeder, str) else None
            )
        #: switch id -> the device (its first status point)
        self.by_switch: dict[str, ProtectiveDevice] = {}
        for device in self.by_point.values():
            self.by_switch.setdefault(device.switch, device)
        #: whether the model's loads carry customer counts
        self.knows_customers = "customers" in net.load.columns

    @property
    def status_points(self) -> dict[str, str]:
        """Status point -> switch id of every telemetered breaker and recloser."""
        return {p: d.switch for p, d in self.by_point.items()}

    def customers(self, given: Mapping[str, int] | None = None) -> Mapping[str, int]:
        """Status point -> customers a trip interrupts now (module docstring).

        ``given`` counts come first; the others are computed from the model
        (none when its loads carry no customer counts).
        """
        return _Customers(self, given or {})

    @property
    def feeders(self) -> dict[str, str]:
        """Status point -> the device's feeder (devices with one)."""
        return {p: d.feeder for p, d in self.by_point.items() if d.feeder is not None}

    def customers_fed(self, switch: str) -> int:
        """Customers of the loads ``switch`` feeds in the model's switching state (it closed)."""
        g = self.graph
        states = g.states()
        states[switch] = True
        tree = g.feed_tree(states)
        return g.customers(g.downstream(tree, g.edges[g.switch(switch).edge]))
