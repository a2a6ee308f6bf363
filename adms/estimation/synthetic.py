"""Synthetic measurements from a true power flow, for tests and benchmarks.

Contract:
- :func:`synthesize` perturbs every load and generator around its model value
  (the truth a load profile never knows exactly), runs a pandapower power
  flow on a copy of the net (the model is not modified), and measures it at
  a realistic SCADA placement (:class:`Placement`) with Gaussian noise of the
  stated accuracy (:class:`Noise`); each measurement's ``std_dev`` is that
  accuracy. Deterministic for a given ``seed``.
- Default placement: V at the substation busbars, P/Q/I at the feeder-head
  breakers and P/Q at the HV/MV transformers (MV side); an FRTU at a share of
  the other closed line switches measuring P/Q (some only I) and V at its
  bus; V at a few more buses.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandapower as pp
import pandas as pd
from pandapower.auxiliary import pandapowerNet

from adms.estimation.measurements import ElementKind, Measurement, Quantity
from models.network import NetworkModel
from models.topology import find_feeder_heads

__all__ = ["PLACEMENTS", "Noise", "Placement", "SyntheticCase", "synthesize"]


@dataclass(frozen=True)
class Placement:
    """Where the SCADA measurements are.

    ``frtu_fraction``: share of the closed line switches (feeder heads
    excepted) with an FRTU; ``frtu_current_only``: share of those measuring
    current magnitude only; ``bus_voltage_fraction``: share of the other
    buses with a voltage measurement (power-quality meters, smart meters).
    """

    substation_voltage: bool = True
    feeder_heads: bool = True
    transformers: bool = True
    frtu_fraction: float = 0.3
    frtu_current_only: float = 0.3
    frtu_voltage: bool = True
    bus_voltage_fraction: float = 0.05


#: Named placements: ``scada`` (default), ``heads`` (substation only), ``dense``.
PLACEMENTS: dict[str, Placement] = {
    "scada": Placement(),
    "heads": Placement(frtu_fraction=0.0, bus_voltage_fraction=0.0),
    "dense": Placement(frtu_fraction=1.0, frtu_current_only=0.0, bus_voltage_fraction=0.3),
}


@dataclass(frozen=True)
class Noise:
    """Measurement accuracy (one standard deviation) and how far the truth strays.

    ``pq_pct``/``i_pct``: percent of the value, at least the floor.
    ``load_spread``/``der_spread``: standard deviation of the true load and
    generation around the model value (relative), so pseudo-measurements
    taken from the model are wrong by about that much.
    """

    v_pu: float = 0.003
    pq_pct: float = 1.0
    pq_floor_mw: float = 0.002
    i_pct: float = 1.0
    i_floor_ka: float = 0.0005
    load_spread: float = 0.15
    der_spread: float = 0.15


@dataclass
class SyntheticCase:
    """The measurements and the power flow they were taken from (tables by GIS id)."""

    measurements: list[Measurement]
    truth_bus: pd.DataFrame
    truth_line: pd.DataFrame
    truth_trafo: pd.DataFrame
    truth_net: pandapowerNet


def _by_gis_id(frame: pd.DataFrame, result: pd.DataFrame) -> pd.DataFrame:
    out = result.copy()
    if "gis_id" not in frame.columns:
        return out.iloc[0:0].rename_axis("gis_id")
    out.index = pd.Index(frame.loc[result.index, "gis_id"].astype(str).to_list(), name="gis_id")
    return out


def synthesize(
    model: NetworkModel,
    placement: Placement | str = "scada",
    noise: Noise | None = None,
    seed: int = 0,
) -> SyntheticCase:
    """Measurements of a perturbed power flow of ``model`` (see the module contract)."""
    where = PLACEMENTS[placement] if isinstance(placement, str) else placement
    acc = noise or Noise()
    rng = np.random.default_rng(seed)
    net = copy.deepcopy(model.net)
    for table, spread in (("load", acc.load_spread), ("sgen", acc.der_spread)):
        if len(net[table]):
            factor = np.maximum(0.0, rng.normal(1.0, spread, len(net[table])))
            net[table]["p_mw"] *= factor
            net[table]["q_mvar"] *= factor
    pp.runpp(net, calculate_voltage_angles=True)

    out: list[Measurement] = []

    def voltage(kind: ElementKind, element: str, vm: float) -> None:
        value = vm + rng.normal(0.0, acc.v_pu)
        out.append(Measurement(kind, element, Quantity.V, value, acc.v_pu, id=f"{element}.V"))

    def flow(
        kind: ElementKind,
        element: str,
        side: str | None,
        p: float,
        q: float,
        i: float,
        quantities: tuple[Quantity, ...],
    ) -> None:
        suffix = f".{side}" if side else ""
        for quantity, true in ((Quantity.P, p), (Quantity.Q, q), (Quantity.I, i)):
            if quantity not in quantities:
                continue
            if quantity is Quantity.I:
                sigma = max(acc.i_pct / 100.0 * abs(true), acc.i_floor_ka)
                value = abs(true + rng.normal(0.0, sigma))
            else:
                sigma = max(acc.pq_pct / 100.0 * abs(true), acc.pq_floor_mw)
                value = true + rng.normal(0.0, sigma)
            out.append(
                Measurement(
                    kind,
                    element,
                    quantity,
                    value,
                    sigma,
                    side=side,
                    id=f"{element}{suffix}.{quantity.value.upper()}",
                )
            )

    def switch_flow(switch: int, quantities: tuple[Quantity, ...]) -> None:
        bus = int(net.switch.at[switch, "bus"])
        line = int(net.switch.at[switch, "element"])
        end = "from" if int(net.line.at[line, "from_bus"]) == bus else "to"
        res = net.res_line.loc[line]
        flow(
            ElementKind.SWITCH,
            str(net.switch.at[switch, "gis_id"]),
            None,
            float(res[f"p_{end}_mw"]),
            float(res[f"q_{end}_mvar"]),
            float(res[f"i_{end}_ka"]),
            quantities,
        )

    vm = net.res_bus["vm_pu"]
    measured_v: set[int] = set()
    heads = find_feeder_heads(net)
    pqi = (Quantity.P, Quantity.Q, Quantity.I)
    for head in heads:
        if (
            where.substation_voltage
            and head.bus_index not in measured_v
            and vm.notna()[head.bus_index]
        ):
            measured_v.add(head.bus_index)
            voltage(
                ElementKind.BUS, model.gis_id_of("bus", head.bus_index), float(vm[head.bus_index])
            )
        if where.feeder_heads and bool(net.switch.at[head.switch_index, "closed"]):
            switch_flow(head.switch_index, pqi)
    if where.transformers:
        for index in net.trafo.index[net.trafo["in_service"].astype(bool)]:
            res = net.res_trafo.loc[index]
            if np.isnan(res["p_lv_mw"]):
                continue
            flow(
                ElementKind.TRAFO,
                model.gis_id_of("trafo", int(index)),
                "lv",
                float(res["p_lv_mw"]),
                float(res["q_lv_mvar"]),
                float(res["i_lv_ka"]),
                (Quantity.P, Quantity.Q),
            )
    head_switches = {h.switch_index for h in heads}
    sw = net.switch
    energised = net.res_line["i_ka"].notna()
    candidates = [
        int(index)
        for index in sw.index
        if sw.at[index, "et"] == "l"
        and bool(sw.at[index, "closed"])
        and int(index) not in head_switches
        and bool(net.line.at[sw.at[index, "element"], "in_service"])
        and bool(energised[sw.at[index, "element"]])
    ]
    count = round(where.frtu_fraction * len(candidates))
    frtus = sorted(rng.choice(candidates, size=count, replace=False).tolist()) if count else []
    current_only = set(
        rng.choice(frtus, size=round(where.frtu_current_only * len(frtus)), replace=False).tolist()
        if frtus
        else []
    )
    for switch in frtus:
        switch_flow(switch, (Quantity.I,) if switch in current_only else pqi)
        bus = int(sw.at[switch, "bus"])
        if where.frtu_voltage and bus not in measured_v:
            measured_v.add(bus)
            voltage(ElementKind.SWITCH, str(sw.at[switch, "gis_id"]), float(vm[bus]))
    others = [int(b) for b in net.bus.index if int(b) not in measured_v and vm.notna()[b]]
    count = round(where.bus_voltage_fraction * len(others))
    for bus in sorted(rng.choice(others, size=count, replace=False).tolist()) if count else []:
        voltage(ElementKind.BUS, model.gis_id_of("bus", bus), float(vm[bus]))

    return SyntheticCase(
        measurements=out,
        truth_bus=_by_gis_id(net.bus, net.res_bus[["vm_pu", "va_degree"]]),
        truth_line=_by_gis_id(net.line, net.res_line),
        truth_trafo=_by_gis_id(net.trafo, net.res_trafo),
        truth_net=net,
    )
