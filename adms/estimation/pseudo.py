"""Pseudo-measurements for unmetered loads and generators.

Contract:
- For every energised grid bus with loads, storage or generators (``sgen``)
  and no real P (resp. Q) injection measurement, one bus ``p`` (``q``)
  pseudo-measurement: the net consumption of its elements, each taken from
  the model (``p_mw * scaling``, ``q_mvar * scaling``) times a profile
  factor, or from its ``customers`` count times ``kw_per_customer`` (at the
  load's nominal power factor) when that is given and the load has customers.
- The standard deviation is ``sigma_pct`` percent of each element's value
  (at least ``floor_mw``), the element variances summed per bus: pseudo
  values are weak, and real measurements dominate wherever they exist.
- Buses with an ``ext_grid``, ``gen``, ``ward``... get none: their injection
  is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from adms.estimation.grid import PSEUDO_TABLES, Grid
from adms.estimation.measurements import ElementKind, Measurement, Quantity

__all__ = ["PseudoOptions", "pseudo_for_grid"]

BoolArray = npt.NDArray[np.bool_]
Profile = float | Mapping[str, float]


@dataclass(frozen=True)
class PseudoOptions:
    """How pseudo-measurements are derived.

    ``load_profile`` / ``der_profile``: a factor for all loads / generators, or
    a mapping from a GIS id or an element ``type`` (e.g. ``"MV/LV Station"``,
    ``"PV"``) to a factor, with ``"*"`` as the default (1.0 if absent).
    ``kw_per_customer``: when set, loads with a ``customers`` count use
    ``customers * kw_per_customer`` instead of their nominal ``p_mw``.
    """

    load_profile: Profile = 1.0
    der_profile: Profile = 1.0
    sigma_pct: float = 30.0
    floor_mw: float = 0.001
    kw_per_customer: float | None = None


def _factors(profile: Profile, frame: pd.DataFrame) -> npt.NDArray[np.float64] | float:
    """Profile factor of each element: by GIS id, else by ``type``, else ``"*"``, else 1."""
    if not isinstance(profile, Mapping):
        return float(profile)
    default = float(profile.get("*", 1.0))
    ids = frame["gis_id"].astype(str).tolist() if "gis_id" in frame else [""] * len(frame)
    types = frame["type"].astype(str).tolist() if "type" in frame else [""] * len(frame)
    return np.array(
        [
            float(profile.get(gis_id, profile.get(kind, default)))
            for gis_id, kind in zip(ids, types, strict=True)
        ]
    )


def pseudo_for_grid(
    grid: Grid, measured_p: BoolArray, measured_q: BoolArray, options: PseudoOptions
) -> list[tuple[int, Measurement]]:
    """Pseudo-measurements with their grid bus, for buses without a real P/Q injection."""
    net = grid.model.net
    n_bus = grid.n_bus
    p_sum = np.zeros(n_bus)
    q_sum = np.zeros(n_bus)
    p_var = np.zeros(n_bus)
    q_var = np.zeros(n_bus)
    count = np.zeros(n_bus, dtype=np.int64)
    first_bus = np.full(n_bus, -1, dtype=np.int64)
    sigma = options.sigma_pct / 100.0
    for table, sign in PSEUDO_TABLES.items():
        frame = net[table] if table in net else None
        if frame is None or not len(frame):
            continue
        pp_bus = frame["bus"].to_numpy(dtype=np.int64)
        bus = grid.bus_lookup[pp_bus]
        alive = (bus >= 0) & frame["in_service"].to_numpy(dtype=bool)
        if not alive.any():
            continue
        scaling = frame["scaling"].to_numpy(dtype=float) if "scaling" in frame else 1.0
        p = frame["p_mw"].to_numpy(dtype=float) * scaling
        q = frame["q_mvar"].to_numpy(dtype=float) * scaling
        profile = options.der_profile if table == "sgen" else options.load_profile
        if table == "load" and options.kw_per_customer is not None and "customers" in frame:
            customers = frame["customers"].fillna(0).to_numpy(dtype=float)
            by_count = customers * options.kw_per_customer / 1000.0
            ratio = np.divide(q, p, out=np.zeros_like(q), where=p != 0)
            use = customers > 0
            p = np.where(use, by_count, p)
            q = np.where(use, by_count * ratio, q)
        factor = _factors(profile, frame)
        p = p * factor
        q = q * factor
        b = bus[alive]
        p = sign * p[alive]
        q = sign * q[alive]
        np.add.at(p_sum, b, p)
        np.add.at(q_sum, b, q)
        np.add.at(p_var, b, np.maximum(sigma * np.abs(p), options.floor_mw) ** 2)
        np.add.at(q_var, b, np.maximum(sigma * np.abs(q), options.floor_mw) ** 2)
        np.add.at(count, b, 1)
        unset = first_bus[b] < 0
        first_bus[b[unset][::-1]] = pp_bus[alive][unset][::-1]
    out: list[tuple[int, Measurement]] = []
    wanted = (count > 0) & ~grid.unknown_injection
    for bus in np.flatnonzero(wanted).tolist():
        element = grid.bus_gis_id[int(first_bus[bus])]
        for quantity, measured, value, var in (
            (Quantity.P, measured_p, p_sum, p_var),
            (Quantity.Q, measured_q, q_sum, q_var),
        ):
            if measured[bus]:
                continue
            out.append(
                (
                    bus,
                    Measurement(
                        kind=ElementKind.BUS,
                        element=element,
                        quantity=quantity,
                        value=float(value[bus]),
                        std_dev=float(np.sqrt(var[bus])),
                        pseudo=True,
                        id=f"pseudo {element} {quantity.value}",
                    ),
                )
            )
    return out
