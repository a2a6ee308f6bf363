"""The archiver: point database, event log and alarm records into the historian.

Contract:
- :meth:`Archiver.start` syncs the points catalogue, resumes each point's
  archive-deadband reference from the database, subscribes, and starts one
  writer thread. Subscriber callbacks only select and queue (numpy over the
  batch for the deadband test); all database writes happen on the writer
  thread, every ``flush_interval_s`` (default 1 s), one transaction per flush.
- What is archived: status points on every reported change (table
  ``statuses``), analogs and counters when they move more than their archive
  deadband from the last archived value or change quality (``measurements``),
  plus every analog and counter each ``snapshot_period_s``; every event,
  alarm transition (with the alarm's current state) and SOE entry; breaker
  status and trips (``breakers``), and an outage record per trip of a breaker
  whose customers are known (closed when the breaker closes again).
- Breakers are the status points whose ``element`` starts with ``breaker:``
  plus those named in ``breakers=`` (the composition root names a network's
  breakers and reclosers). A trip is the alarm manager's TRIP alarm; the
  breaker's customers (``breaker_customers``) and feeder (``breaker_feeders``)
  are looked up when the trip is seen, on the alarm manager's thread, so a
  live mapping (customers fed in the present switching state) works.
- Durability: a record counts as archived once its transaction committed.
  Writes start every ``flush_interval_s``, or back to back while behind.
  :meth:`Archiver.subscribe_durable` consumers are told (on the writer thread)
  only then, so a consumer never sees an acknowledged record lost by a crash.
  A process killed with SIGKILL loses at most what arrived in the last flush
  interval (plus the duration of the write under way).
- A failed write (database away) is retried at the next flush with the data
  kept; past ``max_backlog`` queued values the oldest values are dropped
  (events, alarms and SOE are never dropped) and counted in :attr:`stats`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from protocols.base import DoubleState, PointKind, Quality
from scada.alarms import (
    AlarmManager,
    AlarmRecord,
    AlarmTransition,
    SoeEntry,
    Transition,
    status_text,
)
from scada.events import Event, EventKind, EventLog
from scada.historian.db import HistorianError
from scada.historian.store import Historian, WriteBatch, alarm_row
from scada.pointdb import ChangeBatch, PointDB, Subscription

__all__ = ["Archiver", "ArchiverStats", "DurableRecord"]

log = logging.getLogger(__name__)

DurableRecord = Event | AlarmTransition | SoeEntry

_STATUS_KINDS = (PointKind.SINGLE, PointKind.DOUBLE)
_CLOSED = {PointKind.DOUBLE: float(DoubleState.ON), PointKind.SINGLE: 1.0}
#: never equal to a real quality: the next value is archived
_NO_QUALITY = np.uint32(0xFFFFFFFF)


def _default_event_priorities() -> dict[EventKind, int]:
    return {
        EventKind.LINK_LOST: 2,
        EventKind.LINK_RESTORED: 3,
        EventKind.COMMAND: 3,
        EventKind.CONFIG: 4,
    }


@dataclass
class ArchiverStats:
    """Counters of an archiver since start."""

    values_written: int = 0
    snapshots_written: int = 0
    records_written: int = 0
    flushes: int = 0
    failed_flushes: int = 0
    values_dropped: int = 0
    #: duration of the last write and of all writes
    last_flush_s: float = 0.0
    write_s: float = 0.0
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class _Values:
    point_id: npt.NDArray[np.int64]
    time_s: npt.NDArray[np.float64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint32]
    receive_time_s: npt.NDArray[np.float64]
    status: npt.NDArray[np.bool_]


_Item = tuple[str, Any]


class Archiver:
    """Writes what the point database, event log and alarm manager produce."""

    def __init__(
        self,
        historian: Historian,
        pointdb: PointDB,
        events: EventLog | None = None,
        alarms: AlarmManager | None = None,
        *,
        flush_interval_s: float = 1.0,
        snapshot_period_s: float = 300.0,
        archive_deadbands: Mapping[str, float] | None = None,
        breakers: Iterable[str] = (),
        breaker_customers: Mapping[str, int] | None = None,
        breaker_feeders: Mapping[str, str] | None = None,
        event_priorities: Mapping[EventKind, int] | None = None,
        max_backlog: int = 2_000_000,
    ) -> None:
        """``archive_deadbands`` overrides a point's template deadband for archiving.

        ``breakers`` names breaker status points besides those whose
        ``element`` starts with ``breaker:``; ``breaker_customers`` gives the
        customers each breaker supplies, for automatic outage records, and
        ``breaker_feeders`` the feeder each belongs to (module docstring).
        """
        if flush_interval_s <= 0 or snapshot_period_s <= 0:
            raise HistorianError(
                f"archiver: flush_interval_s ({flush_interval_s}) and snapshot_period_s "
                f"({snapshot_period_s}) must be > 0"
            )
        self.historian = historian
        self.pointdb = pointdb
        self.flush_interval_s = flush_interval_s
        self.snapshot_period_s = snapshot_period_s
        self.stats = ArchiverStats()
        self._events = events
        self._alarms = alarms
        self._archive_deadbands = dict(archive_deadbands or {})
        self._breaker_names = frozenset(breakers)
        self._breaker_customers: Mapping[str, int] = breaker_customers or {}
        self._breaker_feeders: Mapping[str, str] = breaker_feeders or {}
        self._event_priorities = {**_default_event_priorities(), **(event_priorities or {})}
        self._max_backlog = max_backlog
        # per-handle state, touched only on the thread that delivers batches
        self._pid = np.full(0, -1, np.int64)
        self._arch_v = np.zeros(0)
        self._arch_q = np.zeros(0, np.uint32)
        self._deadband = np.zeros(0)
        self._is_status = np.zeros(0, bool)
        self._is_breaker = np.zeros(0, bool)
        self._names: list[str | None] = []
        self._breaker_value: dict[str, float] = {}
        #: handles and point ids of analogs and counters, for snapshots (replaced whole)
        self._snapshot_set: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] = (
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
        )
        self._lock = threading.Lock()
        self._pending: deque[_Item] = deque()
        self._queued_seq = 0
        self._done_seq = 0
        self._done = threading.Condition(self._lock)
        self._retry: list[_Item] = []
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._durable: list[Callable[[Sequence[DurableRecord]], None]] = []
        self._closers: list[Callable[[], None]] = []

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Sync the catalogue, resume from the database, subscribe and start writing."""
        self._resync()
        last = self.historian.last_values()
        by_pid = {int(p): h for h, p in enumerate(self._pid.tolist()) if p >= 0}
        for pid, (value, quality) in last.items():
            h = by_pid.get(pid)
            if h is not None:
                self._arch_v[h] = np.nan if value is None else value
                self._arch_q[h] = quality
        # a breaker closing after a restart still ends the outage its trip began
        self._breaker_value = {
            b.point: b.value for b in self.historian.breakers() if b.value is not None
        }
        sub: Subscription = self.pointdb.subscribe(self._on_batch)
        self._closers.append(sub.close)
        if self._events is not None:
            self._closers.append(self._events.subscribe(self._on_event))
        if self._alarms is not None:
            self._closers.append(self._alarms.subscribe(self._on_alarms))
        self._thread = threading.Thread(target=self._run, name="historian-archiver", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Unsubscribe, write what is queued, and stop the writer thread."""
        for close in self._closers:
            close()
        self._closers.clear()
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def flush(self, timeout_s: float | None = 30.0) -> bool:
        """Write now; wait until everything queued before the call is committed.

        Returns False if that did not happen within ``timeout_s`` (database away).
        """
        with self._lock:
            target = self._queued_seq
        self._wake.set()
        with self._done:
            return self._done.wait_for(lambda: self._done_seq >= target, timeout_s)

    def subscribe_durable(
        self, callback: Callable[[Sequence[DurableRecord]], None]
    ) -> Callable[[], None]:
        """Be told of events, alarm transitions and SOE entries once they are committed.

        Called on the writer thread: hand off to an event loop with
        ``call_soon_threadsafe`` and return at once.
        """
        self._durable = [*self._durable, callback]

        def close() -> None:
            self._durable = [c for c in self._durable if c is not callback]

        return close

    @property
    def backlog(self) -> int:
        """Items queued but not yet committed."""
        with self._lock:
            return len(self._pending) + len(self._retry)

    # ------------------------------------------------------------- catalogue
    def _resync(self) -> None:
        """Read point definitions again and register new points in the catalogue."""
        self._generation = self.pointdb.generation
        handles = self.pointdb.handles()
        configs = {name: self.pointdb.config(name) for name in handles}
        ids = self.historian.sync_points(configs.values(), self._archive_deadbands)
        size = max(handles.values(), default=-1) + 1
        old_names, old_v, old_q = self._names, self._arch_v, self._arch_q
        pid = np.full(size, -1, np.int64)
        arch_v = np.full(size, np.nan)
        arch_q = np.full(size, _NO_QUALITY, np.uint32)
        deadband = np.zeros(size)
        is_status = np.zeros(size, bool)
        is_breaker = np.zeros(size, bool)
        names: list[str | None] = [None] * size
        for name, h in handles.items():
            cfg = configs[name]
            names[h] = name
            pid[h] = ids[name]
            deadband[h] = self._archive_deadbands.get(name, cfg.template.deadband)
            is_status[h] = cfg.kind in _STATUS_KINDS
            is_breaker[h] = is_status[h] and (
                name in self._breaker_names or (cfg.template.element or "").startswith("breaker:")
            )
            if h < len(old_names) and old_names[h] == name:
                arch_v[h], arch_q[h] = old_v[h], old_q[h]
        analog = np.flatnonzero((pid >= 0) & ~is_status)
        self._pid, self._arch_v, self._arch_q = pid, arch_v, arch_q
        self._deadband, self._is_status, self._is_breaker = deadband, is_status, is_breaker
        self._names = names
        self._snapshot_set = (analog.astype(np.int64), pid[analog])

    # ------------------------------------------------------------ consumers
    def _on_batch(self, batch: ChangeBatch) -> None:
        h = batch.handles
        if len(h) == 0:
            return
        if self.pointdb.generation != self._generation:
            self._resync()
        v, q = batch.values, batch.quality
        av = self._arch_v[h]
        status = self._is_status[h]
        moved = np.abs(v - av) > self._deadband[h]
        moved |= np.isnan(av) != np.isnan(v)
        take = status | moved | (q != self._arch_q[h])
        if not take.any():
            return
        if not take.all():
            h, v, q, status = h[take], v[take], q[take], status[take]
            st, rt = batch.source_time[take], batch.receive_time[take]
        else:
            st, rt = batch.source_time, batch.receive_time
        self._arch_v[h] = v
        self._arch_q[h] = q
        t = np.where(np.isnan(st), rt, st)
        items: list[_Item] = [
            ("values", _Values(self._pid[h], t, v.copy(), q.copy(), rt.copy(), status))
        ]
        breakers = self._is_breaker[h]
        if breakers.any():
            for hi, vi, qi, ti in zip(
                h[breakers].tolist(),
                v[breakers].tolist(),
                q[breakers].tolist(),
                t[breakers].tolist(),
                strict=True,
            ):
                items.extend(self._breaker_items(hi, vi, qi, ti))
        self._enqueue(items)

    def _breaker_items(self, h: int, value: float, quality: int, t: float) -> list[_Item]:
        name = self._names[h]
        assert name is not None
        cfg = self.pointdb.config(name)
        row: dict[str, Any] = {
            "point": name,
            "device": cfg.device,
            "element": cfg.template.element,
            "state": status_text(cfg.kind, value),
            "value": None if np.isnan(value) else value,
            "quality": quality,
            "updated_s": time.time(),
        }
        items: list[_Item] = []
        before = self._breaker_value.get(name)
        if before != value and not np.isnan(value):
            row["changed_s"] = t
            self._breaker_value[name] = value
            if before is not None and value == _CLOSED.get(cfg.kind):
                items.append(("outage", ("close", (name, t))))
        return [("breaker", row), *items]

    def _on_event(self, event: Event) -> None:
        if event.kind == EventKind.CONFIG:
            self._resync()
        self._enqueue([("event", event)])

    def _on_alarms(self, records: Sequence[AlarmRecord]) -> None:
        items: list[_Item] = []
        for r in records:
            if isinstance(r, SoeEntry):
                items.append(("soe", r))
                continue
            items.append(("alarm", r))
            a = r.alarm
            if r.kind == Transition.RAISED and a.detail == "TRIP" and a.point in self.pointdb:
                assert a.point is not None and a.value is not None
                state = status_text(self.pointdb.config(a.point).kind, a.value)
                customers = self._breaker_customers.get(a.point)
                feeder = self._breaker_feeders.get(a.point)
                items.append(("trip", (r, state, customers, feeder)))
        self._enqueue(items)

    def _enqueue(self, items: list[_Item]) -> None:
        with self._lock:
            self._pending.extend(items)
            self._queued_seq += len(items)

    # ---------------------------------------------------------------- writer
    def _run(self) -> None:
        next_snapshot = time.monotonic() + self.snapshot_period_s
        next_flush = time.monotonic() + self.flush_interval_s
        while True:
            self._wake.wait(max(0.0, next_flush - time.monotonic()))
            self._wake.clear()
            # the cadence counts from the start of a write: a write that takes longer than
            # the interval is followed by the next one at once
            next_flush = time.monotonic() + self.flush_interval_s
            stopping = self._stopping
            snapshot = time.monotonic() >= next_snapshot
            if snapshot:
                next_snapshot += self.snapshot_period_s
            self._write(snapshot)
            if stopping:
                return

    def _write(self, snapshot: bool) -> None:
        with self._lock:
            items = [*self._retry, *self._pending]
            self._pending.clear()
            self._retry = []
            seq = self._queued_seq
        batch = WriteBatch()
        durable: list[DurableRecord] = []
        values = self._build(items, batch, durable)
        snaps = self._snapshot(batch) if snapshot else 0
        if not len(batch):
            self._mark_done(seq)
            return
        t0 = time.perf_counter()
        try:
            self.historian.write(batch)
        except HistorianError as exc:
            self._failed(items, str(exc))
            return
        self.stats.last_flush_s = time.perf_counter() - t0
        self.stats.write_s += self.stats.last_flush_s
        self.stats.flushes += 1
        self.stats.values_written += values
        self.stats.snapshots_written += snaps
        self.stats.records_written += len(durable)
        if self.stats.last_error:
            log.info("historian writes resumed")
            self.stats.last_error = ""
        self._mark_done(seq)
        for callback in self._durable:
            callback(durable)

    def _mark_done(self, seq: int) -> None:
        with self._done:
            self._done_seq = seq
            self._done.notify_all()

    def _failed(self, items: list[_Item], error: str) -> None:
        if not self.stats.last_error:
            log.error("historian write failed (will retry): %s", error)
        self.stats.failed_flushes += 1
        self.stats.last_error = error
        kept: list[_Item] = []
        backlog = 0
        for kind, payload in reversed(items):
            if kind == "values":
                backlog += len(payload.point_id)
                if backlog > self._max_backlog:
                    self.stats.values_dropped += len(payload.point_id)
                    continue
            kept.append((kind, payload))
        kept.reverse()
        with self._lock:
            self._retry = kept + self._retry

    def _build(self, items: list[_Item], batch: WriteBatch, durable: list[DurableRecord]) -> int:
        """Turn queued items into rows; returns how many point values there are."""
        now = time.time()
        latest_alarm: dict[int, dict[str, Any]] = {}
        values = 0
        for kind, payload in items:
            if kind == "values":
                values += len(payload.point_id)
                _value_rows(payload, batch)
            elif kind == "event":
                e: Event = payload
                batch.events.append(
                    {
                        "time_s": e.time,
                        "kind": e.kind.value,
                        "device": e.device,
                        "point": e.point,
                        "message": e.message,
                        "priority": self._event_priorities.get(e.kind, 4),
                    }
                )
                durable.append(e)
            elif kind == "alarm":
                tr: AlarmTransition = payload
                latest_alarm[tr.alarm.id] = alarm_row(tr.alarm, now)
                batch.alarm_transitions.append(
                    {
                        "alarm_id": tr.alarm.id,
                        "time_s": tr.time,
                        "transition": tr.kind.value,
                        "state": tr.alarm.state.value,
                        "priority": tr.alarm.priority,
                        "message": tr.alarm.message,
                        "value": tr.alarm.value,
                        "operator": tr.operator,
                    }
                )
                durable.append(tr)
            elif kind == "soe":
                s: SoeEntry = payload
                batch.soe.append(
                    {
                        "point": s.point,
                        "device": s.device,
                        "value": s.value,
                        "previous": s.previous,
                        "text": s.text,
                        "source_time_ms": s.source_time_ms,
                        "receive_time_s": s.receive_time,
                        "quality": s.quality,
                        "commanded": s.commanded,
                    }
                )
                durable.append(s)
            elif kind == "breaker":
                batch.breakers.append(payload)
            elif kind == "trip":
                transition, state, customers, feeder = payload
                self._trip_rows(transition, state, customers, feeder, batch, now)
            elif kind == "outage":
                batch.outages.append(payload)
        # transitions reference their alarm: the alarm rows go first in the transaction
        batch.alarms = list(latest_alarm.values())
        return values

    def _trip_rows(
        self,
        tr: AlarmTransition,
        state: str,
        customers: int | None,
        feeder: str | None,
        batch: WriteBatch,
        now: float,
    ) -> None:
        a = tr.alarm
        assert a.point is not None
        batch.breakers.append(
            {
                "point": a.point,
                "device": a.device or "",
                "state": state,
                "quality": int(Quality.GOOD),
                "last_trip_s": a.raised_time,
                "last_trip_cause": "uncommanded opening (protection trip)",
                "expected_outage_s": None,
                "updated_s": now,
            }
        )
        if customers is not None:
            outage = {
                "device": a.point,
                "feeder": feeder,
                "cause": "trip",
                "start_s": a.raised_time,
                "end_s": None,
                "customers": customers,
                "planned": False,
            }
            batch.outages.append(("open", outage))

    def _snapshot(self, batch: WriteBatch) -> int:
        handles, pids = self._snapshot_set
        if not len(handles):
            return 0
        values, quality = self.pointdb.values(handles)
        live = (quality & np.uint32(Quality.NOT_INIT)) == 0
        now = time.time()
        n = int(live.sum())
        batch.measurements.extend(
            (p, now, None if v != v else v, q, now, True)
            for p, v, q in zip(
                pids[live].tolist(), values[live].tolist(), quality[live].tolist(), strict=True
            )
        )
        return n


def _value_rows(vals: _Values, batch: WriteBatch) -> None:
    value: list[float | None] = vals.value.tolist()
    if np.isnan(vals.value).any():
        value = [None if v != v else v for v in value]
    cols = (
        vals.point_id.tolist(),
        vals.time_s.tolist(),
        value,
        vals.quality.tolist(),
        vals.receive_time_s.tolist(),
    )
    if not vals.status.any():
        batch.measurements.extend(zip(*cols, itertools.repeat(False)))
        return
    for row, status in zip(zip(*cols, strict=True), vals.status.tolist(), strict=True):
        if status:
            batch.statuses.append(row)
        else:
            batch.measurements.append((*row, False))
