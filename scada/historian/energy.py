"""Daily energy per feeder in 15-minute and hourly blocks, with quality codes (R-REC-2).

Contract:
- A :class:`FeederMeter` names a feeder's energy counter point or, when it has
  none, its active-power point (MW). :func:`compute_day` reads the archived
  values, computes every block of one local day that has ended, stores them
  (recomputing replaces earlier results) and returns them;
  :func:`energy_blocks` reads stored blocks back.
- Counters: the energy of a block is the difference of the counter at the
  block's ends, each interpolated linearly between the readings around it. A
  decrease is a rollover (``rollover`` is the counter's modulus) or, when
  ``rollover`` is None, a reset to zero.
- Power: the block's energy is the integral of the archived power held
  constant from one archived value to the next (deadband archiving means the
  value stayed within the deadband until the next archived one).
- Quality per block: ``complete`` when data covers the block with no gap
  longer than ``max_gap_s`` and only usable values; ``estimated`` when the
  value rests on a longer gap, a counter reset, unusable values in between,
  or power values held into the block from before it started; ``missing``
  (no energy) when no value covers the block. An hour is the sum of its four
  quarters: missing if any quarter is missing, else estimated if any is.
- Days are local days of ``tz`` (92 or 100 quarters on DST change days).
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protocols.base import Quality
from scada.historian.db import HistorianError
from scada.historian.store import Historian

__all__ = ["EnergyBlock", "EnergyQuality", "FeederMeter", "compute_day", "energy_blocks"]

QUARTER_S = 900
HOUR_S = 3600
_UNUSABLE = int(Quality.INVALID | Quality.COMM_FAIL | Quality.NOT_INIT)


class EnergyQuality(enum.StrEnum):
    COMPLETE = "complete"
    ESTIMATED = "estimated"
    MISSING = "missing"


_RANK = {EnergyQuality.COMPLETE: 0, EnergyQuality.ESTIMATED: 1, EnergyQuality.MISSING: 2}


@dataclass(frozen=True, slots=True)
class FeederMeter:
    """Where a feeder's energy comes from: a counter point, else a power point."""

    feeder: str
    counter: str | None = None
    #: kWh per unit of the counter's engineering value
    kwh_per_count: float = 1.0
    #: the counter wraps to 0 at this value; None: a decrease is a reset to 0
    rollover: float | None = 2.0**32
    #: active power in MW, integrated when there is no counter
    power: str | None = None
    #: a longer stretch without an archived value makes a block estimated
    max_gap_s: float = 700.0

    def __post_init__(self) -> None:
        if (self.counter is None) == (self.power is None):
            raise HistorianError(f"feeder {self.feeder!r}: give exactly one of counter or power")


@dataclass(frozen=True, slots=True)
class EnergyBlock:
    feeder: str
    start_s: float
    duration_s: int
    energy_kwh: float | None
    quality: EnergyQuality
    method: str


def day_bounds(day: dt.date, tz: dt.tzinfo) -> tuple[float, float]:
    """POSIX seconds of local midnight starting ``day`` and the next one."""
    start = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return start.timestamp(), end.timestamp()


def _samples(
    historian: Historian, point: str, start_s: float, end_s: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    rows = historian.raw_samples(point, start_s, end_s)
    t = np.array([r[0] for r in rows], dtype=np.float64)
    v = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
    good = np.array([not (r[2] & _UNUSABLE) for r in rows], dtype=bool) & ~np.isnan(v)
    return t, v, good


def _brackets(
    t: npt.NDArray[np.float64], starts: npt.NDArray[np.float64], ends: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Per block, the samples that bracket it.

    The index of the last sample at or before its start (-1: none) and of the
    first sample at or after its end (``len(t)``: none).
    """
    return np.searchsorted(t, starts, "right") - 1, np.searchsorted(t, ends, "left")


def _bad_inside(
    t: npt.NDArray[np.float64],
    good: npt.NDArray[np.bool_],
    starts: npt.NDArray[np.float64],
    ends: npt.NDArray[np.float64],
) -> npt.NDArray[np.bool_]:
    bad_t = t[~good]
    return np.searchsorted(bad_t, ends, "left") > np.searchsorted(bad_t, starts, "left")


Computed = tuple[npt.NDArray[np.float64], list[EnergyQuality]]


def _from_counter(
    meter: FeederMeter,
    t: npt.NDArray[np.float64],
    v: npt.NDArray[np.float64],
    good: npt.NDArray[np.bool_],
    starts: npt.NDArray[np.float64],
) -> Computed:
    ends = starts + QUARTER_S
    bad = _bad_inside(t, good, starts, ends)
    t, v = t[good], v[good]
    energy = np.full(len(starts), np.nan)
    quality = [EnergyQuality.MISSING] * len(starts)
    if len(t) < 2:
        return energy, quality
    step = np.diff(v)
    down = step < 0
    if meter.rollover is not None:
        step[down] += meter.rollover
        resets = np.zeros(0)
    else:
        step[down] = v[1:][down]
        resets = t[1:][down]
    unwrapped = v[0] + np.concatenate(([0.0], np.cumsum(step)))
    e = (np.interp(ends, t, unwrapped) - np.interp(starts, t, unwrapped)) * meter.kwh_per_count
    lo, hi = _brackets(t, starts, ends)
    for i in np.flatnonzero((lo >= 0) & (hi < len(t))).tolist():
        first, last = t[lo[i]], t[hi[i]]
        longest = float(np.max(np.diff(t[lo[i] : hi[i] + 1])))
        reset = bool(((resets > first) & (resets <= last)).any())
        energy[i] = e[i]
        estimated = longest > meter.max_gap_s or reset or bool(bad[i])
        quality[i] = EnergyQuality.ESTIMATED if estimated else EnergyQuality.COMPLETE
    return energy, quality


def _from_power(
    meter: FeederMeter,
    t: npt.NDArray[np.float64],
    v: npt.NDArray[np.float64],
    good: npt.NDArray[np.bool_],
    starts: npt.NDArray[np.float64],
) -> Computed:
    ends = starts + QUARTER_S
    bad = _bad_inside(t, good, starts, ends)
    t, p = t[good], v[good]
    energy = np.full(len(starts), np.nan)
    quality = [EnergyQuality.MISSING] * len(starts)
    if not len(t):
        return energy, quality
    kw = p * 1000.0
    # energy (kWh) from the first sample to each sample, power held from sample to sample
    cum = np.concatenate(([0.0], np.cumsum(kw[:-1] * np.diff(t)))) / 3600.0
    # before the first sample its value is held backwards (such blocks are estimated)
    i_s = np.clip(np.searchsorted(t, starts, "right") - 1, 0, len(t) - 1)
    i_e = np.clip(np.searchsorted(t, ends, "right") - 1, 0, len(t) - 1)
    e = (cum[i_e] + kw[i_e] * (ends - t[i_e]) / 3600.0) - (
        cum[i_s] + kw[i_s] * (starts - t[i_s]) / 3600.0
    )
    lo, hi = _brackets(t, starts, ends)
    for i in range(len(starts)):
        s, en, a, b = float(starts[i]), float(ends[i]), int(lo[i]), int(hi[i])
        none_inside = b == a + 1
        if (a < 0 and b == 0) or (a >= 0 and s - t[a] > meter.max_gap_s and none_inside):
            continue  # no value covers the block
        covered = np.concatenate(([t[a] if a >= 0 else s], t[a + 1 : b], [en]))
        longest = float(np.max(np.diff(covered)))
        energy[i] = e[i]
        estimated = longest > meter.max_gap_s or a < 0 or bool(bad[i])
        quality[i] = EnergyQuality.ESTIMATED if estimated else EnergyQuality.COMPLETE
    return energy, quality


def compute_day(
    historian: Historian,
    meter: FeederMeter,
    day: dt.date,
    tz: dt.tzinfo = dt.UTC,
    *,
    now: float | None = None,
) -> list[EnergyBlock]:
    """Compute, store and return the 15-minute and hourly blocks of ``day`` that have ended."""
    start_s, end_s = day_bounds(day, tz)
    now = time.time() if now is None else now
    last = min(end_s, now)
    starts = np.arange(start_s, end_s, QUARTER_S, dtype=np.float64)
    starts = starts[starts + QUARTER_S <= last]
    if not len(starts):
        return []
    point = meter.counter or meter.power
    assert point is not None
    t, v, good = _samples(
        historian, point, start_s - meter.max_gap_s, starts[-1] + QUARTER_S + meter.max_gap_s
    )
    if meter.counter is not None:
        method = "counter"
        energy, quality = _from_counter(meter, t, v, good, starts)
    else:
        method = "integrated"
        energy, quality = _from_power(meter, t, v, good, starts)
    blocks = [
        EnergyBlock(meter.feeder, s, QUARTER_S, None if np.isnan(e) else float(e), q, method)
        for s, e, q in zip(starts.tolist(), energy.tolist(), quality, strict=True)
    ]
    for h in np.arange(start_s, end_s, HOUR_S).tolist():
        quarters = [b for b in blocks if h <= b.start_s < h + HOUR_S]
        if len(quarters) < HOUR_S // QUARTER_S:
            continue
        worst = max((b.quality for b in quarters), key=_RANK.__getitem__)
        total = None if worst == EnergyQuality.MISSING else sum(b.energy_kwh or 0 for b in quarters)
        blocks.append(EnergyBlock(meter.feeder, h, HOUR_S, total, worst, method))
    computed = time.time()
    historian.write_energy_blocks(
        [
            {
                "feeder": b.feeder,
                "duration_s": b.duration_s,
                "start_s": b.start_s,
                "energy_kwh": b.energy_kwh,
                "quality": b.quality.value,
                "method": b.method,
                "computed_s": computed,
            }
            for b in blocks
        ]
    )
    return blocks


def energy_blocks(
    historian: Historian,
    feeder: str,
    start_s: float,
    end_s: float,
    duration_s: int = QUARTER_S,
) -> list[EnergyBlock]:
    """Stored blocks of ``duration_s`` (900 or 3600) starting in ``[start_s, end_s)``."""
    if duration_s not in (QUARTER_S, HOUR_S):
        raise HistorianError(f"feeder {feeder!r}: duration_s must be 900 or 3600")
    return [
        EnergyBlock(
            r["feeder"],
            r["start_s"],
            r["duration_s"],
            r["energy_kwh"],
            EnergyQuality(r["quality"]),
            r["method"],
        )
        for r in historian.energy_rows(feeder, start_s, end_s, duration_s)
    ]
