"""The historian database: catalogue, batched writes, queries, breakers, outages, audit.

Contract:
- :class:`Historian` opens (and migrates) one database. Its methods are
  thread-safe (each uses its own pooled connection); the archiver writes
  through :meth:`Historian.write` on its own thread while the API queries.
- :meth:`Historian.write` stores one :class:`WriteBatch` in one transaction:
  either all of it is durable when it returns, or none of it.
- The audit trail is append-only: :meth:`Historian.audit` commits each record
  before returning, and the database refuses UPDATE and DELETE on it.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Double,
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    cast,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from protocols.base import PointKind, Quality
from scada.alarms import Alarm, Condition
from scada.config import PointConfig
from scada.historian.db import HistorianError, create_historian_engine, migrate
from scada.historian.schema import (
    ALARM_TRANSITIONS,
    ALARMS,
    AUDIT,
    BREAKERS,
    ENERGY_BLOCKS,
    EVENTS,
    MEASUREMENTS,
    OUTAGES,
    POINTS,
    SOE,
    STATUSES,
)

__all__ = [
    "Aggregate",
    "AlarmHistoryRecord",
    "AuditRecord",
    "BreakerStatus",
    "EventRecord",
    "Historian",
    "Outage",
    "Sample",
    "SoeRecord",
    "WriteBatch",
]

_STATUS_KINDS = {PointKind.SINGLE.value, PointKind.DOUBLE.value}
_CATALOGUE = (
    "name",
    "device",
    "kind",
    "unit",
    "description",
    "element",
    "archive_deadband",
    "active",
)
#: a value with any of these flags is left out of aggregates
_UNUSABLE = int(Quality.INVALID | Quality.COMM_FAIL | Quality.NOT_INIT)


@dataclass(frozen=True, slots=True)
class Sample:
    time_s: float
    value: float | None
    quality: int
    receive_time_s: float
    snapshot: bool = False


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Statistics of the usable samples of one interval (sample-weighted average)."""

    start_s: float
    min: float
    max: float
    avg: float
    count: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    time_s: float
    kind: str
    device: str | None
    point: str | None
    message: str
    priority: int


@dataclass(frozen=True, slots=True)
class AlarmHistoryRecord:
    """One transition of one alarm, with the alarm's identity."""

    alarm_id: int
    source: str
    condition: str
    device: str | None
    point: str | None
    time_s: float
    transition: str
    state: str
    priority: int
    message: str
    value: float | None
    operator: str | None


@dataclass(frozen=True, slots=True)
class SoeRecord:
    id: int
    point: str
    device: str
    value: float
    previous: float
    text: str
    source_time_ms: int | None
    receive_time_s: float
    quality: int
    commanded: bool


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    point: str
    device: str
    element: str | None
    state: str
    value: float | None
    quality: int
    changed_s: float | None
    last_trip_s: float | None
    last_trip_cause: str | None
    expected_outage_s: float | None


@dataclass(frozen=True, slots=True)
class Outage:
    id: int
    device: str
    feeder: str | None
    cause: str
    start_s: float
    end_s: float | None
    customers: int
    planned: bool

    def duration_s(self, now: float) -> float:
        return (now if self.end_s is None else self.end_s) - self.start_s


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    time_s: float
    user: str
    action: str
    target: str
    details: str
    result: str


#: column order of :attr:`WriteBatch.measurements` tuples
MEASUREMENT_COLUMNS = ("point_id", "time_s", "value", "quality", "receive_time_s", "snapshot")
#: column order of :attr:`WriteBatch.statuses` tuples
STATUS_COLUMNS = ("point_id", "time_s", "value", "quality", "receive_time_s")
_PG_TYPES = {
    "point_id": "int4",
    "time_s": "float8",
    "value": "float8",
    "quality": "int4",
    "receive_time_s": "float8",
    "snapshot": "bool",
}


@dataclass
class WriteBatch:
    """Rows for one transaction.

    Values (the bulk) are tuples in :data:`MEASUREMENT_COLUMNS` /
    :data:`STATUS_COLUMNS` order (None for a missing value); other rows are
    dicts keyed by column name.
    """

    measurements: list[tuple[Any, ...]] = field(default_factory=list)
    statuses: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: latest state of each alarm touched (upserted by id)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    alarm_transitions: list[dict[str, Any]] = field(default_factory=list)
    soe: list[dict[str, Any]] = field(default_factory=list)
    #: partial breaker rows upserted by point (rows with the same keys go together)
    breakers: list[dict[str, Any]] = field(default_factory=list)
    #: in order: ("open", outage row) or ("close", (device, end_s)) to end a device's outages
    outages: list[tuple[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.measurements)
            + len(self.statuses)
            + len(self.events)
            + len(self.alarms)
            + len(self.alarm_transitions)
            + len(self.soe)
            + len(self.breakers)
            + len(self.outages)
        )


def alarm_row(alarm: Alarm, now: float) -> dict[str, Any]:
    """The ``alarms`` table row of an alarm's current state."""
    return {
        "id": alarm.id,
        "source": alarm.source,
        "condition": alarm.condition.value,
        "tag": alarm.tag,
        "detail": alarm.detail,
        "priority": alarm.priority,
        "message": alarm.message,
        "device": alarm.device,
        "point": alarm.point,
        "value": alarm.value,
        "normal": alarm.normal,
        "raised_time_s": alarm.raised_time,
        "receive_time_s": alarm.receive_time,
        "active": alarm.active,
        "acknowledged": alarm.acknowledged,
        "ack_operator": alarm.ack_operator,
        "ack_time_s": alarm.ack_time,
        "cleared_time_s": alarm.cleared_time,
        "shelved_until_s": alarm.shelved_until,
        "suppressed_by": alarm.suppressed_by,
        "state": alarm.state.value,
        "updated_s": now,
    }


def _bulk(
    conn: Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Append value rows the fastest way the driver has (binary COPY on PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        try:
            with cursor.copy(sql) as copy:
                copy.set_types([_PG_TYPES[c] for c in columns])
                for row in rows:
                    copy.write_row(row)
        except conn.dialect.loaded_dbapi.Error as exc:
            # the driver's own error: SQLAlchemy does not wrap what goes around it
            raise HistorianError(f"historian: COPY into {table} failed: {exc}") from exc
        return
    marks = ", ".join("?" * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - constants
    conn.exec_driver_sql(sql, rows)


def _upsert(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: list[str]
) -> None:
    """Insert rows, or update the given columns of rows whose ``keys`` exist, in order.

    Consecutive rows with the same columns go in one statement; the order of
    rows is kept, so a later row for the same key wins.
    """
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert

    def columns_of(row: dict[str, Any]) -> tuple[str, ...]:
        return tuple(row)

    for columns, group in itertools.groupby(rows, key=columns_of):
        ins = insert(table)
        stmt = ins.on_conflict_do_update(
            index_elements=keys, set_={c: ins.excluded[c] for c in columns if c not in keys}
        )
        conn.execute(stmt, list(group))


class Historian:
    """One historian database (SQLite file or PostgreSQL schema)."""

    def __init__(self, url: str, *, schema: str | None = None, upgrade: bool = True) -> None:
        self.url = url
        self.engine = create_historian_engine(url, schema=schema)
        if upgrade:
            migrate(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------ catalogue
    def sync_points(
        self, points: Iterable[PointConfig], archive_deadband: Mapping[str, float]
    ) -> dict[str, int]:
        """Bring the points catalogue in line with ``points``; return name -> point id.

        New points are added, changed ones updated; points no longer
        configured are marked inactive (their history stays).
        """
        now = time.time()
        wanted = {
            p.name: {
                "name": p.name,
                "device": p.device,
                "kind": p.kind.value,
                "unit": p.template.unit,
                "description": p.template.description,
                "element": p.template.element,
                "archive_deadband": archive_deadband.get(p.name, p.template.deadband),
                "active": True,
            }
            for p in points
        }
        cols = [POINTS.c.id, *(POINTS.c[k] for k in _CATALOGUE)]
        with self._begin() as conn:
            existing = {r.name: r for r in conn.execute(select(*cols))}
            new = [{**row, "updated_s": now} for n, row in wanted.items() if n not in existing]
            if new:
                conn.execute(POINTS.insert(), new)
            changed = [
                {**row, "b_id": existing[n].id, "updated_s": now}
                for n, row in wanted.items()
                if n in existing and any(getattr(existing[n], k) != v for k, v in row.items())
            ]
            gone = [r.id for n, r in existing.items() if n not in wanted and r.active]
            if changed:
                stmt = update(POINTS).where(POINTS.c.id == bindparam("b_id"))
                conn.execute(stmt, changed)
            for chunk in _chunks(gone):
                conn.execute(
                    update(POINTS).where(POINTS.c.id.in_(chunk)).values(active=False, updated_s=now)
                )
            return {r.name: r.id for r in conn.execute(select(POINTS.c.id, POINTS.c.name))}

    def point_ids(self) -> dict[str, int]:
        with self._connect() as conn:
            return {r.name: r.id for r in conn.execute(select(POINTS.c.id, POINTS.c.name))}

    def last_values(self) -> dict[int, tuple[float | None, int]]:
        """The newest archived value and quality of every point (for deadband continuity)."""
        newest = (
            select(MEASUREMENTS.c.id)
            .where(MEASUREMENTS.c.point_id == POINTS.c.id)
            .order_by(MEASUREMENTS.c.time_s.desc())
            .limit(1)
            .scalar_subquery()
        )
        out: dict[int, tuple[float | None, int]] = {}
        with self._connect() as conn:
            # one index probe per point (a GROUP BY would read the whole table)
            last = [i for (i,) in conn.execute(select(newest).select_from(POINTS)) if i is not None]
            for chunk in _chunks(last):
                rows = conn.execute(
                    select(
                        MEASUREMENTS.c.point_id, MEASUREMENTS.c.value, MEASUREMENTS.c.quality
                    ).where(MEASUREMENTS.c.id.in_(chunk))
                )
                out.update({r.point_id: (r.value, r.quality) for r in rows})
        return out

    # ---------------------------------------------------------------- writes
    def write(self, batch: WriteBatch) -> None:
        """Store a batch in one transaction; raises :class:`HistorianError` if it failed."""
        with self._begin() as conn:
            if batch.measurements:
                _bulk(conn, "measurements", MEASUREMENT_COLUMNS, batch.measurements)
            if batch.statuses:
                _bulk(conn, "statuses", STATUS_COLUMNS, batch.statuses)
            if batch.events:
                conn.execute(EVENTS.insert(), batch.events)
            if batch.alarms:
                _upsert(conn, ALARMS, batch.alarms, ["id"])
            if batch.alarm_transitions:
                conn.execute(ALARM_TRANSITIONS.insert(), batch.alarm_transitions)
            if batch.soe:
                conn.execute(SOE.insert(), batch.soe)
            if batch.breakers:
                _upsert(conn, BREAKERS, batch.breakers, ["point"])
            for op, arg in batch.outages:
                if op == "open":
                    conn.execute(OUTAGES.insert().values(arg))
                else:
                    device, end_s = arg
                    conn.execute(
                        update(OUTAGES)
                        .where(OUTAGES.c.device == device, OUTAGES.c.end_s.is_(None))
                        .values(end_s=end_s)
                    )

    # --------------------------------------------------------------- history
    def _point(self, conn: Connection, name: str) -> tuple[int, str]:
        row = conn.execute(select(POINTS.c.id, POINTS.c.kind).where(POINTS.c.name == name)).first()
        if row is None:
            raise HistorianError(f"point {name!r} is not in the historian's catalogue")
        return row.id, row.kind

    def history(
        self, point: str, start_s: float, end_s: float, *, limit: int = 100_000
    ) -> list[Sample]:
        """Archived values of a point in ``[start_s, end_s)``, oldest first."""
        with self._connect() as conn:
            pid, kind = self._point(conn, point)
            t = STATUSES if kind in _STATUS_KINDS else MEASUREMENTS
            snap = t.c.snapshot if t is MEASUREMENTS else None
            cols = [t.c.time_s, t.c.value, t.c.quality, t.c.receive_time_s]
            stmt = (
                select(*cols, *([snap] if snap is not None else []))
                .where(t.c.point_id == pid, t.c.time_s >= start_s, t.c.time_s < end_s)
                .order_by(t.c.time_s, t.c.id)
                .limit(limit)
            )
            return [
                Sample(r[0], r[1], r[2], r[3], bool(r[4]) if snap is not None else False)
                for r in conn.execute(stmt)
            ]

    def aggregate(
        self, point: str, start_s: float, end_s: float, interval_s: float
    ) -> list[Aggregate]:
        """Min/max/average per ``interval_s`` of a point's usable values in ``[start_s, end_s)``.

        Intervals without a usable value are left out. The average is over
        archived samples (exception-based archiving favours moving periods).
        """
        if interval_s <= 0:
            raise HistorianError(f"point {point!r}: interval_s must be > 0, got {interval_s}")
        with self._connect() as conn:
            pid, kind = self._point(conn, point)
            t = STATUSES if kind in _STATUS_KINDS else MEASUREMENTS
            offset = (t.c.time_s - start_s) / interval_s
            # PostgreSQL rounds a cast to integer; SQLite truncates (offsets are >= 0 here)
            bucket: ColumnElement[Any] = (
                func.floor(offset) if conn.dialect.name == "postgresql" else cast(offset, Integer)
            )
            stmt = (
                select(
                    bucket.label("b"),
                    func.min(t.c.value),
                    func.max(t.c.value),
                    func.avg(cast(t.c.value, Double)),
                    func.count(),
                )
                .where(
                    t.c.point_id == pid,
                    t.c.time_s >= start_s,
                    t.c.time_s < end_s,
                    t.c.value.is_not(None),
                    t.c.quality.bitwise_and(_UNUSABLE) == 0,
                )
                .group_by("b")
                .order_by("b")
            )
            return [
                Aggregate(start_s + int(r[0]) * interval_s, r[1], r[2], float(r[3]), r[4])
                for r in conn.execute(stmt)
            ]

    # ---------------------------------------------------- events and alarms
    def events(
        self,
        *,
        start_s: float | None = None,
        end_s: float | None = None,
        device: str | None = None,
        max_priority: int | None = None,
        kind: str | None = None,
        limit: int = 10_000,
    ) -> list[EventRecord]:
        """Events, newest first; ``max_priority=2`` gives priorities 1 and 2."""
        t = EVENTS
        stmt = _window(select(t), t.c.time_s, start_s, end_s)
        if device is not None:
            stmt = stmt.where(t.c.device == device)
        if max_priority is not None:
            stmt = stmt.where(t.c.priority <= max_priority)
        if kind is not None:
            stmt = stmt.where(t.c.kind == kind)
        stmt = stmt.order_by(t.c.time_s.desc(), t.c.id.desc()).limit(limit)
        with self._connect() as conn:
            return [EventRecord(**r._asdict()) for r in conn.execute(stmt)]

    def alarm_history(
        self,
        *,
        start_s: float | None = None,
        end_s: float | None = None,
        device: str | None = None,
        max_priority: int | None = None,
        alarm_id: int | None = None,
        limit: int = 10_000,
    ) -> list[AlarmHistoryRecord]:
        """Alarm transitions, newest first."""
        a, tr = ALARMS, ALARM_TRANSITIONS
        stmt = _window(
            select(
                tr.c.alarm_id,
                a.c.source,
                a.c.condition,
                a.c.device,
                a.c.point,
                tr.c.time_s,
                tr.c.transition,
                tr.c.state,
                tr.c.priority,
                tr.c.message,
                tr.c.value,
                tr.c.operator,
            ).join_from(tr, a, tr.c.alarm_id == a.c.id),
            tr.c.time_s,
            start_s,
            end_s,
        )
        if device is not None:
            stmt = stmt.where(a.c.device == device)
        if max_priority is not None:
            stmt = stmt.where(tr.c.priority <= max_priority)
        if alarm_id is not None:
            stmt = stmt.where(tr.c.alarm_id == alarm_id)
        stmt = stmt.order_by(tr.c.time_s.desc(), tr.c.id.desc()).limit(limit)
        with self._connect() as conn:
            return [AlarmHistoryRecord(**r._asdict()) for r in conn.execute(stmt)]

    def listed_alarms(self) -> list[Alarm]:
        """Alarms still on the list (not closed), to restore an alarm manager after a restart."""
        with self._connect() as conn:
            rows = conn.execute(select(ALARMS).where(ALARMS.c.state != "closed"))
            return [
                Alarm(
                    id=r.id,
                    source=r.source,
                    condition=Condition(r.condition),
                    tag=r.tag,
                    detail=r.detail,
                    priority=r.priority,
                    message=r.message,
                    device=r.device,
                    point=r.point,
                    value=r.value,
                    normal=r.normal,
                    raised_time=r.raised_time_s,
                    receive_time=r.receive_time_s,
                    active=r.active,
                    acknowledged=r.acknowledged,
                    ack_operator=r.ack_operator,
                    ack_time=r.ack_time_s,
                    cleared_time=r.cleared_time_s,
                    shelved_until=r.shelved_until_s,
                    suppressed_by=r.suppressed_by,
                )
                for r in rows
            ]

    def soe(
        self,
        *,
        start_s: float | None = None,
        end_s: float | None = None,
        device: str | None = None,
        limit: int = 10_000,
    ) -> list[SoeRecord]:
        """Sequence of events by receive time window, in source-time order (oldest first)."""
        stmt = _window(select(SOE), SOE.c.receive_time_s, start_s, end_s)
        if device is not None:
            stmt = stmt.where(SOE.c.device == device)
        order = func.coalesce(SOE.c.source_time_ms, SOE.c.receive_time_s * 1000)
        stmt = stmt.order_by(order, SOE.c.id).limit(limit)
        with self._connect() as conn:
            return [SoeRecord(**r._asdict()) for r in conn.execute(stmt)]

    # --------------------------------------------------------------- breakers
    def breakers(self) -> list[BreakerStatus]:
        """Current state of every breaker, with its last trip (R-REC-1)."""
        with self._connect() as conn:
            rows = conn.execute(select(BREAKERS).order_by(BREAKERS.c.point))
            return [
                BreakerStatus(**{k: v for k, v in r._asdict().items() if k != "updated_s"})
                for r in rows
            ]

    def set_trip_info(
        self,
        point: str,
        *,
        cause: str | None = None,
        expected_outage_s: float | None = None,
    ) -> None:
        """Record the cause and/or expected outage duration of a breaker's last trip."""
        values: dict[str, Any] = {"updated_s": time.time()}
        if cause is not None:
            values["last_trip_cause"] = cause
        if expected_outage_s is not None:
            values["expected_outage_s"] = expected_outage_s
        with self._begin() as conn:
            done = conn.execute(update(BREAKERS).where(BREAKERS.c.point == point).values(values))
            if done.rowcount == 0:
                raise HistorianError(f"breaker {point!r} is not in the breaker status table")

    # ---------------------------------------------------------------- outages
    def open_outage(
        self,
        device: str,
        start_s: float,
        customers: int,
        cause: str,
        *,
        feeder: str | None = None,
        planned: bool = False,
        end_s: float | None = None,
    ) -> int:
        """Record an outage (``end_s`` None while it lasts); returns its id."""
        if customers < 0:
            raise HistorianError(f"outage of {device!r}: customers must be >= 0, got {customers}")
        if end_s is not None and end_s < start_s:
            raise HistorianError(f"outage of {device!r}: end_s {end_s} is before start_s {start_s}")
        row = {
            "device": device,
            "feeder": feeder,
            "cause": cause,
            "start_s": start_s,
            "end_s": end_s,
            "customers": customers,
            "planned": planned,
        }
        with self._begin() as conn:
            key = conn.execute(OUTAGES.insert().values(row)).inserted_primary_key
            assert key is not None
            return int(key[0])

    def close_outage(self, outage_id: int, end_s: float) -> None:
        with self._begin() as conn:
            done = conn.execute(
                update(OUTAGES)
                .where(OUTAGES.c.id == outage_id, OUTAGES.c.start_s <= end_s)
                .values(end_s=end_s)
            )
            if done.rowcount == 0:
                raise HistorianError(f"outage {outage_id} does not exist or starts after {end_s}")

    def outages(self, start_s: float | None = None, end_s: float | None = None) -> list[Outage]:
        """Outages that started in ``[start_s, end_s)``, oldest first."""
        stmt = _window(select(OUTAGES), OUTAGES.c.start_s, start_s, end_s)
        with self._connect() as conn:
            return [Outage(**r._asdict()) for r in conn.execute(stmt.order_by(OUTAGES.c.start_s))]

    def current_outages(self) -> list[Outage]:
        """Outages still in progress (the summary of outaged equipment, R-REC-3)."""
        stmt = select(OUTAGES).where(OUTAGES.c.end_s.is_(None)).order_by(OUTAGES.c.start_s)
        with self._connect() as conn:
            return [Outage(**r._asdict()) for r in conn.execute(stmt)]

    # ------------------------------------------------------------------ audit
    def audit(
        self,
        user: str,
        action: str,
        result: str,
        *,
        target: str = "",
        details: str = "",
        time_s: float | None = None,
    ) -> int:
        """Append one audit record and commit it before returning; returns its id."""
        row = {
            "time_s": time.time() if time_s is None else time_s,
            "user_name": user,
            "action": action,
            "target": target,
            "details": details,
            "result": result,
        }
        with self._begin() as conn:
            key = conn.execute(AUDIT.insert().values(row)).inserted_primary_key
            assert key is not None
            return int(key[0])

    def audit_trail(
        self,
        *,
        start_s: float | None = None,
        end_s: float | None = None,
        user: str | None = None,
        limit: int = 10_000,
    ) -> list[AuditRecord]:
        """Audit records, oldest first."""
        stmt = _window(select(AUDIT), AUDIT.c.time_s, start_s, end_s)
        if user is not None:
            stmt = stmt.where(AUDIT.c.user_name == user)
        stmt = stmt.order_by(AUDIT.c.id).limit(limit)
        with self._connect() as conn:
            return [
                AuditRecord(r.id, r.time_s, r.user_name, r.action, r.target, r.details, r.result)
                for r in conn.execute(stmt)
            ]

    # ----------------------------------------------------------------- energy
    def write_energy_blocks(self, rows: Sequence[dict[str, Any]]) -> None:
        with self._begin() as conn:
            _upsert(conn, ENERGY_BLOCKS, rows, ["feeder", "duration_s", "start_s"])

    def energy_rows(
        self, feeder: str, start_s: float, end_s: float, duration_s: int
    ) -> list[dict[str, Any]]:
        t = ENERGY_BLOCKS
        stmt = (
            select(t)
            .where(
                t.c.feeder == feeder,
                t.c.duration_s == duration_s,
                t.c.start_s >= start_s,
                t.c.start_s < end_s,
            )
            .order_by(t.c.start_s)
        )
        with self._connect() as conn:
            return [r._asdict() for r in conn.execute(stmt)]

    def raw_samples(
        self, point: str, start_s: float, end_s: float
    ) -> list[tuple[float, float | None, int]]:
        """``(time_s, value, quality)`` of a point in ``[start_s, end_s]``, oldest first."""
        with self._connect() as conn:
            pid, kind = self._point(conn, point)
            t = STATUSES if kind in _STATUS_KINDS else MEASUREMENTS
            stmt = (
                select(t.c.time_s, t.c.value, t.c.quality)
                .where(t.c.point_id == pid, t.c.time_s >= start_s, t.c.time_s <= end_s)
                .order_by(t.c.time_s, t.c.id)
            )
            return [(r[0], r[1], r[2]) for r in conn.execute(stmt)]

    # ---------------------------------------------------------------- helpers
    @contextlib.contextmanager
    def _connect(self) -> Iterator[Connection]:
        """A connection for reading; database errors become :class:`HistorianError`."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise HistorianError(f"historian {self.engine.url.render_as_string()}: {exc}") from exc

    @contextlib.contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A transaction committed on success; database errors become :class:`HistorianError`."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise HistorianError(f"historian {self.engine.url.render_as_string()}: {exc}") from exc


def _chunks(ids: list[int], size: int = 5000) -> Iterator[list[int]]:
    """Slices of an id list small enough for an IN clause (SQLite caps bound parameters)."""
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _window(stmt: Select[Any], column: Any, start_s: float | None, end_s: float | None) -> Any:
    conds = []
    if start_s is not None:
        conds.append(column >= start_s)
    if end_s is not None:
        conds.append(column < end_s)
    return stmt.where(and_(*conds)) if conds else stmt
