"""Reliability indices from outage records (IEEE 1366), R-REC-3.

Definitions, for the outages that *start* in the period, with N_T the
customers served:

- sustained interruption: longer than ``momentary_max_s`` (IEEE 1366: five
  minutes; an interruption of exactly five minutes is momentary);
- SAIFI = sum of customers interrupted (sustained) / N_T;
- SAIDI = sum of customer minutes of interruption (sustained) / N_T, minutes;
- CAIDI = SAIDI / SAIFI, minutes (None when there was no sustained interruption);
- MAIFI = sum of customers momentarily interrupted / N_T (each momentary
  outage record counts as one momentary interruption event).

An outage still in progress counts up to ``as_of_s`` (default: the earlier
of now and the end of the period).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from scada.historian.db import HistorianError
from scada.historian.store import Historian, Outage

__all__ = ["MOMENTARY_MAX_S", "ReliabilityIndices", "indices", "reliability"]

MOMENTARY_MAX_S = 300.0


@dataclass(frozen=True, slots=True)
class ReliabilityIndices:
    start_s: float
    end_s: float
    customers_served: int
    saifi: float
    saidi_min: float
    caidi_min: float | None
    maifi: float
    sustained_interruptions: int
    momentary_interruptions: int
    customer_minutes: float


def indices(
    outages: Iterable[Outage],
    customers_served: int,
    start_s: float,
    end_s: float,
    *,
    as_of_s: float | None = None,
    include_planned: bool = True,
    momentary_max_s: float = MOMENTARY_MAX_S,
) -> ReliabilityIndices:
    """Indices over outages that start in ``[start_s, end_s)``."""
    if customers_served <= 0:
        raise HistorianError(f"reliability: customers_served must be > 0, got {customers_served}")
    as_of = min(time.time(), end_s) if as_of_s is None else as_of_s
    interrupted = minutes = momentary = 0.0
    n_sustained = n_momentary = 0
    for o in outages:
        if not start_s <= o.start_s < end_s or (o.planned and not include_planned):
            continue
        duration = o.duration_s(as_of)
        if duration <= momentary_max_s:
            momentary += o.customers
            n_momentary += 1
        else:
            interrupted += o.customers
            minutes += o.customers * duration / 60.0
            n_sustained += 1
    saifi = interrupted / customers_served
    saidi = minutes / customers_served
    return ReliabilityIndices(
        start_s=start_s,
        end_s=end_s,
        customers_served=customers_served,
        saifi=saifi,
        saidi_min=saidi,
        caidi_min=saidi / saifi if saifi else None,
        maifi=momentary / customers_served,
        sustained_interruptions=n_sustained,
        momentary_interruptions=n_momentary,
        customer_minutes=minutes,
    )


def reliability(
    historian: Historian,
    customers_served: int,
    start_s: float,
    end_s: float,
    *,
    as_of_s: float | None = None,
    include_planned: bool = True,
    momentary_max_s: float = MOMENTARY_MAX_S,
) -> ReliabilityIndices:
    """Indices from the historian's outage records of ``[start_s, end_s)``."""
    return indices(
        historian.outages(start_s, end_s),
        customers_served,
        start_s,
        end_s,
        as_of_s=as_of_s,
        include_planned=include_planned,
        momentary_max_s=momentary_max_s,
    )
