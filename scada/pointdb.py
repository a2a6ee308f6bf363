"""The real-time point database.

Contract:
- Points are defined from :class:`scada.config.PointConfig` and addressed by a
  dense integer *handle* (stable for the life of the point) or by name.
- State is held column-wise in numpy arrays so a batch of updates is applied
  with a handful of vector operations: :meth:`PointDB.apply` is the ingest path
  (arrays in), :meth:`PointDB.apply_updates` wraps it for lists of
  :class:`protocols.base.PointUpdate`.
- Engineering units: values arriving here are already converted (the FEP does
  raw -> engineering conversion in one place).
- A value is *reported* (sent to subscribers) when its quality changes or it
  moved by more than the point's deadband since the last reported value; the
  current value is always stored. A batch holding several updates of one
  point applies them in order (a change batch never holds a point twice).
- Subscribers get one :class:`ChangeBatch` per applied batch, synchronously, on
  the caller's thread (the FEP's event loop). They must return quickly; an
  asynchronous consumer copies the batch into its own queue.
- Manual substitution: an operator's value replaces the field value (quality
  SUBSTITUTED) until removed; field updates meanwhile are kept aside and
  restored on removal.
- Redefining an existing point (run-time reload) keeps its value and quality.
- Bulk reads: :meth:`PointDB.values` (by handles) and :meth:`PointDB.columns`
  (every point) copy numpy columns under the lock, so they are consistent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protocols.base import PointKind, PointUpdate, Quality
from scada.config import PointConfig

__all__ = [
    "ChangeBatch",
    "PointColumns",
    "PointDB",
    "PointValue",
    "Subscription",
    "UnknownPointError",
]

_KIND_CODES = {k: i for i, k in enumerate(PointKind)}
_KINDS = list(PointKind)

#: flags that make a value unusable
BAD = Quality.INVALID | Quality.COMM_FAIL | Quality.NOT_INIT


def _rounds(handles: npt.NDArray[np.int64]) -> list[npt.NDArray[np.int64]]:
    """Positions of each handle's first, second, ... occurrence (each in the batch's order)."""
    n = len(handles)
    order = np.argsort(handles, kind="stable")
    ordered = handles[order]
    new = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    starts = np.flatnonzero(new)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - starts[np.cumsum(new) - 1]
    return [np.flatnonzero(rank == r) for r in range(int(rank.max()) + 1)]


class UnknownPointError(KeyError):
    """A point name or handle that the database does not hold."""


@dataclass(frozen=True, slots=True)
class PointValue:
    """A point's current state, for queries."""

    name: str
    kind: PointKind
    value: float
    quality: Quality
    source_time: float | None
    receive_time: float | None
    unit: str


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """Reported changes of one applied batch; arrays are aligned and read-only."""

    handles: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint32]
    source_time: npt.NDArray[np.float64]
    receive_time: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.handles)


@dataclass(frozen=True, slots=True)
class PointColumns:
    """Every point's state at one instant, column-wise (arrays aligned with ``names``)."""

    #: the point database's :attr:`PointDB.generation` the columns were read at
    generation: int
    names: list[str]
    handles: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint32]
    source_time: npt.NDArray[np.float64]
    receive_time: npt.NDArray[np.float64]


class Subscription:
    """A registered consumer; call :meth:`close` to stop receiving."""

    def __init__(self, db: PointDB, callback: Callable[[ChangeBatch], None]) -> None:
        self._db = db
        self.callback = callback

    def close(self) -> None:
        self._db._unsubscribe(self)


class PointDB:
    """Column store of every point's value, quality and timestamps."""

    def __init__(self, capacity: int = 1024) -> None:
        self._lock = threading.RLock()
        self._names: dict[str, int] = {}
        self._configs: list[PointConfig | None] = []
        self._free: list[int] = []
        self._subs: list[Subscription] = []
        #: incremented whenever points are defined or removed (consumers reload their maps)
        self.generation = 0
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        def grow(old: np.ndarray | None, fill: float | int, dtype: npt.DTypeLike) -> np.ndarray:
            new = np.full(capacity, fill, dtype=dtype)
            if old is not None:
                new[: len(old)] = old
            return new

        g = getattr
        self._value = grow(g(self, "_value", None), np.nan, np.float64)
        self._quality = grow(g(self, "_quality", None), int(Quality.NOT_INIT), np.uint32)
        self._source_time = grow(g(self, "_source_time", None), np.nan, np.float64)
        self._receive_time = grow(g(self, "_receive_time", None), np.nan, np.float64)
        self._reported = grow(g(self, "_reported", None), np.nan, np.float64)
        self._deadband = grow(g(self, "_deadband", None), 0.0, np.float64)
        self._kind = grow(g(self, "_kind", None), 0, np.uint8)
        self._substituted = grow(g(self, "_substituted", None), False, np.bool_)
        self._field_value = grow(g(self, "_field_value", None), np.nan, np.float64)
        self._field_quality = grow(
            g(self, "_field_quality", None), int(Quality.NOT_INIT), np.uint32
        )
        # apply()'s repeated-handle test
        self._scratch = np.zeros(capacity, np.int32)
        self._positions = np.arange(capacity, dtype=np.int32)
        self._capacity = capacity

    # ----------------------------------------------------------- definition
    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def define(self, points: Iterable[PointConfig]) -> list[int]:
        """Add points or update their definition; existing points keep their state."""
        handles = []
        with self._lock:
            for p in points:
                h = self._names.get(p.name)
                if h is None:
                    if self._free:
                        h = self._free.pop()
                    else:
                        h = len(self._configs)
                        self._configs.append(None)
                        if h >= self._capacity:
                            self._alloc(max(2 * self._capacity, 1024))
                    self._names[p.name] = h
                    self._reset(h)
                elif self._configs[h] is not None and self._configs[h].kind != p.kind:  # type: ignore[union-attr]
                    self._reset(h)
                self._configs[h] = p
                self._kind[h] = _KIND_CODES[p.kind]
                self._deadband[h] = p.template.deadband
                handles.append(h)
            self.generation += 1
        return handles

    def _reset(self, h: int) -> None:
        self._value[h] = np.nan
        self._quality[h] = Quality.NOT_INIT
        self._source_time[h] = np.nan
        self._receive_time[h] = np.nan
        self._reported[h] = np.nan
        self._substituted[h] = False
        self._field_value[h] = np.nan
        self._field_quality[h] = Quality.NOT_INIT

    def remove(self, names: Iterable[str]) -> None:
        """Remove points; their handles may be reused by later definitions."""
        with self._lock:
            for name in names:
                h = self._names.pop(name, None)
                if h is None:
                    continue
                self._configs[h] = None
                self._reset(h)
                self._free.append(h)
                self.generation += 1

    def handle(self, name: str) -> int:
        try:
            return self._names[name]
        except KeyError:
            raise UnknownPointError(f"unknown point {name!r}") from None

    def handles(self) -> dict[str, int]:
        return dict(self._names)

    def config(self, name: str) -> PointConfig:
        cfg = self._configs[self.handle(name)]
        assert cfg is not None
        return cfg

    def names(self) -> list[str]:
        return list(self._names)

    # --------------------------------------------------------------- ingest
    def apply(
        self,
        handles: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        quality: npt.NDArray[np.uint32],
        source_time: npt.NDArray[np.float64],
        receive_time: npt.NDArray[np.float64],
    ) -> int:
        """Apply a batch of field updates; return how many were reported.

        A point may appear several times (updates coalesced in arrival
        order): its updates are applied in that order, one sub-batch per
        repetition, so every change is reported and the last one stays.
        """
        with self._lock:
            n = len(handles)
            repeated = n > self._capacity  # more updates than points
            if not repeated:
                # a repeated handle: its earlier positions lose the scatter to the last one
                positions = self._positions[:n]
                self._scratch[handles] = positions
                repeated = bool((self._scratch[handles] != positions).any())
        if not repeated:
            return self._apply(handles, values, quality, source_time, receive_time)
        return sum(
            self._apply(handles[r], values[r], quality[r], source_time[r], receive_time[r])
            for r in _rounds(handles)
        )

    def _apply(
        self,
        handles: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        quality: npt.NDArray[np.uint32],
        source_time: npt.NDArray[np.float64],
        receive_time: npt.NDArray[np.float64],
    ) -> int:
        with self._lock:
            self._field_value[handles] = values
            self._field_quality[handles] = quality
            subst = self._substituted[handles]
            if subst.any():
                keep = ~subst
                handles, values, quality = handles[keep], values[keep], quality[keep]
                source_time, receive_time = source_time[keep], receive_time[keep]
            batch = self._store(handles, values, quality, source_time, receive_time)
        if batch is not None:
            self._notify(batch)
            return len(batch)
        return 0

    def _store(
        self,
        handles: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        quality: npt.NDArray[np.uint32],
        source_time: npt.NDArray[np.float64],
        receive_time: npt.NDArray[np.float64],
    ) -> ChangeBatch | None:
        reported = self._reported[handles]
        moved = np.abs(values - reported) > self._deadband[handles]
        # NaN compares false: a first value (reported NaN) must count as a change
        moved |= np.isnan(reported) != np.isnan(values)
        changed = moved | (quality != self._quality[handles])
        self._value[handles] = values
        self._quality[handles] = quality
        self._source_time[handles] = source_time
        self._receive_time[handles] = receive_time
        if not changed.any():
            return None
        ch = handles[changed]
        cv = values[changed]
        self._reported[ch] = cv
        return ChangeBatch(ch, cv, quality[changed], source_time[changed], receive_time[changed])

    def apply_updates(self, updates: Sequence[PointUpdate]) -> int:
        """Apply a list of updates whose values are already in engineering units."""
        n = len(updates)
        if n == 0:
            return 0
        h = np.fromiter((u.handle for u in updates), np.int64, n)
        v = np.fromiter((u.value for u in updates), np.float64, n)
        q = np.fromiter((u.quality for u in updates), np.uint32, n)
        st = np.fromiter(
            (np.nan if u.source_time is None else u.source_time for u in updates), np.float64, n
        )
        rt = np.fromiter((u.receive_time for u in updates), np.float64, n)
        return self.apply(h, v, q, st, rt)

    def set_quality(
        self, handles: Sequence[int] | npt.NDArray[np.int64], add: Quality, remove: Quality
    ) -> int:
        """Set and clear quality flags on points (comm-fail marking); values are kept."""
        idx = np.asarray(handles, dtype=np.int64)
        if len(idx) == 0:
            return 0
        with self._lock:
            fq = (self._field_quality[idx] | np.uint32(add)) & ~np.uint32(remove)
            self._field_quality[idx] = fq
            live = idx[~self._substituted[idx]]
            q = (self._quality[live] | np.uint32(add)) & ~np.uint32(remove)
            now = np.full(len(live), time.time())
            batch = self._store(
                live, self._value[live].copy(), q, self._source_time[live].copy(), now
            )
        if batch is not None:
            self._notify(batch)
            return len(batch)
        return 0

    # --------------------------------------------------------- substitution
    def substitute(self, name: str, value: float) -> None:
        """Replace a point's value by an operator's (quality SUBSTITUTED)."""
        h = self.handle(name)
        now = time.time()
        with self._lock:
            self._substituted[h] = True
            batch = self._store(
                np.array([h]),
                np.array([float(value)]),
                np.array([Quality.SUBSTITUTED], dtype=np.uint32),
                np.array([now]),
                np.array([now]),
            )
        if batch is not None:
            self._notify(batch)

    def unsubstitute(self, name: str) -> None:
        """Remove a substitution; the latest field value and quality return."""
        h = self.handle(name)
        with self._lock:
            if not self._substituted[h]:
                return
            self._substituted[h] = False
            batch = self._store(
                np.array([h]),
                np.array([self._field_value[h]]),
                np.array([self._field_quality[h]], dtype=np.uint32),
                np.array([self._source_time[h]]),
                np.array([time.time()]),
            )
        if batch is not None:
            self._notify(batch)

    # --------------------------------------------------------------- queries
    def get(self, name: str) -> PointValue:
        h = self.handle(name)
        cfg = self._configs[h]
        assert cfg is not None
        st, rt = self._source_time[h], self._receive_time[h]
        return PointValue(
            name=name,
            kind=_KINDS[self._kind[h]],
            value=float(self._value[h]),
            quality=Quality(int(self._quality[h])),
            source_time=None if np.isnan(st) else float(st),
            receive_time=None if np.isnan(rt) else float(rt),
            unit=cfg.template.unit,
        )

    def values(self, handles: npt.NDArray[np.int64]) -> tuple[np.ndarray, np.ndarray]:
        """Current values and quality of several points (a consistent copy)."""
        with self._lock:
            return self._value[handles].copy(), self._quality[handles].copy()

    def snapshot(self, names: Iterable[str] | None = None) -> dict[str, PointValue]:
        """A consistent copy of points' state at one instant."""
        with self._lock:
            return {n: self.get(n) for n in (self._names if names is None else names)}

    def columns(self) -> PointColumns:
        """Every point's state at one instant as columns, in definition order (bulk reads)."""
        with self._lock:
            names = list(self._names)
            handles = np.fromiter(self._names.values(), np.int64, len(names))
            return PointColumns(
                self.generation,
                names,
                handles,
                self._value[handles],
                self._quality[handles],
                self._source_time[handles],
                self._receive_time[handles],
            )

    # ---------------------------------------------------------- subscriptions
    def subscribe(self, callback: Callable[[ChangeBatch], None]) -> Subscription:
        sub = Subscription(self, callback)
        with self._lock:
            self._subs = [*self._subs, sub]
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s is not sub]

    def _notify(self, batch: ChangeBatch) -> None:
        for arr in (batch.handles, batch.values, batch.quality, batch.source_time):
            arr.flags.writeable = False
        for sub in self._subs:
            sub.callback(batch)
