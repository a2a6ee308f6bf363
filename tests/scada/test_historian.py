"""Historian on SQLite and PostgreSQL: migrations, archiving, queries, breakers, outages,
reliability indices, energy blocks, audit, restart, and durability across SIGKILL."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from protocols.base import DoubleState, PointKind, PointUpdate, Quality
from scada.alarms import AlarmManager, AlarmState, Condition
from scada.config import Limits, PointConfig, PointTemplate
from scada.events import Event, EventKind, EventLog
from scada.historian import (
    Archiver,
    DurableRecord,
    EnergyQuality,
    FeederMeter,
    Historian,
    HistorianError,
    Outage,
    WriteBatch,
    compute_day,
    energy_blocks,
    indices,
    migrate,
    reliability,
)
from scada.historian.db import current_revision, head_revision
from scada.historian.schema import METADATA
from scada.pointdb import PointDB

ROOT = Path(__file__).resolve().parents[2]
PG_HOST = "127.0.0.1:5432"
ON, OFF = float(DoubleState.ON), float(DoubleState.OFF)


def _postgres_url() -> tuple[str | None, str]:
    """A URL of the local test PostgreSQL, or None and why it cannot be used."""
    override = os.environ.get("PYADMS_TEST_POSTGRES_URL")
    candidates = (
        [override]
        if override
        else [f"postgresql+psycopg://{user}@{PG_HOST}/test" for user in ("postgres", "root")]
    )
    reasons = []
    for url in candidates:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return url, ""
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable": report it
            reasons.append(f"{url}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        finally:
            engine.dispose()
    return None, "; ".join(reasons)


_PG: tuple[str | None, str] | None = None


def postgres_url() -> tuple[str | None, str]:
    global _PG
    if _PG is None:
        _PG = _postgres_url()
    return _PG


Target = tuple[str, str | None]


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Where a historian lives: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'historian.db'}", None
        return
    url, reason = postgres_url()
    if url is None:
        pytest.skip(f"PostgreSQL test server not reachable: {reason}")
    schema = f"pyadms_test_{uuid.uuid4().hex[:12]}"
    yield url, schema
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def historian(target: Target) -> Iterator[Historian]:
    h = Historian(target[0], schema=target[1])
    yield h
    h.close()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def analog(
    name: str,
    deadband: float = 0.0,
    limits: Limits | None = None,
    kind: PointKind = PointKind.ANALOG,
) -> PointConfig:
    device, suffix = name.split(".", 1)
    t = PointTemplate(
        name=suffix, kind=kind, address=1, deadband=deadband, limits=limits, unit="MW"
    )
    return PointConfig(name, device, suffix, t)


def breaker(name: str) -> PointConfig:
    device, suffix = name.split(".", 1)
    t = PointTemplate(name=suffix, kind=PointKind.DOUBLE, address=2, element=f"breaker:{suffix}")
    return PointConfig(name, device, suffix, t)


class Plant:
    """Point database, event log, alarms and an archiver writing to ``historian``."""

    def __init__(self, historian: Historian, points: list[PointConfig], **kw: Any) -> None:
        self.db = PointDB(capacity=16)
        self.db.define(points)
        self.events = EventLog()
        self.alarms = AlarmManager(self.db, self.events)
        self.archiver = Archiver(
            historian,
            self.db,
            self.events,
            self.alarms,
            flush_interval_s=0.05,
            **kw,
        )
        self.durable: list[DurableRecord] = []
        self.archiver.subscribe_durable(self.durable.extend)
        self.archiver.start()

    def set(
        self,
        name: str,
        value: float,
        t: float,
        quality: Quality = Quality.GOOD,
        st: float | None = None,
    ) -> None:
        self.db.apply_updates([PointUpdate(self.db.handle(name), value, quality, st, t)])

    def flush(self) -> None:
        assert self.archiver.flush(10.0), self.archiver.stats.last_error

    def stop(self) -> None:
        self.archiver.stop()


# ------------------------------------------------------------------ schema
def test_migrations_create_the_schema_of_the_metadata(target: Target) -> None:
    h = Historian(target[0], schema=target[1])
    try:
        assert current_revision(h.engine) == head_revision() == "0002"
        migrate(h.engine)  # idempotent on every start
        with h.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), METADATA
            )
        assert diff == []
    finally:
        h.close()


def test_audit_trail_is_append_only(historian: Historian) -> None:
    first = historian.audit("op1", "command", "confirmed", target="F1.CB", details="open")
    historian.audit("op2", "login", "ok")
    trail = historian.audit_trail()
    assert [(a.user, a.action, a.target, a.result) for a in trail] == [
        ("op1", "command", "F1.CB", "confirmed"),
        ("op2", "login", "", "ok"),
    ]
    assert [a.id for a in historian.audit_trail(user="op2")] == [first + 1]
    for sql in ("UPDATE audit SET result = 'x'", "DELETE FROM audit"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with historian.engine.begin() as conn:
                conn.execute(sa.text(sql))
    assert len(historian.audit_trail()) == 2


def test_unusable_urls_are_refused(tmp_path: Path) -> None:
    with pytest.raises(HistorianError, match="only sqlite and postgresql"):
        Historian("mysql://x@y/z")
    with pytest.raises(HistorianError, match="PostgreSQL only"):
        Historian(f"sqlite:///{tmp_path}/x.db", schema="s")


# --------------------------------------------------------------- archiving
def test_deadband_archiving_statuses_events_alarms_soe(historian: Historian) -> None:
    plant = Plant(
        historian,
        [
            analog("F1.P", deadband=0.0, limits=Limits(high=10.0)),
            analog("F1.Q"),
            breaker("F1.CB"),
        ],
        archive_deadbands={"F1.P": 1.0},
    )
    try:
        for t, v in enumerate([5.0, 5.5, 5.9, 6.2, 6.5, 12.0, 5.0]):
            plant.set("F1.P", v, 100.0 + t)
        plant.set("F1.P", 5.0, 107.0, Quality.INVALID)  # a quality change is always archived
        plant.set("F1.CB", ON, 100.0)
        plant.set("F1.CB", OFF, 101.0, st=100.5004)
        plant.events.record(Event(EventKind.LINK_LOST, "link lost: x", device="F1", time=102.0))
        plant.flush()
        samples = historian.history("F1.P", 0, 1000)
        assert [(s.time_s, s.value, s.quality) for s in samples] == [
            (100.0, 5.0, 0),
            (103.0, 6.2, 0),
            (105.0, 12.0, 0),
            (106.0, 5.0, 0),
            (107.0, 5.0, int(Quality.INVALID)),
        ]
        assert [(s.value, s.time_s) for s in historian.history("F1.CB", 0, 1000)] == [
            (ON, 100.0),
            (OFF, 100.5004),
        ]
        [event] = historian.events(device="F1")
        assert (event.kind, event.priority, event.time_s) == ("link_lost", 2, 102.0)
        [soe] = historian.soe()
        assert (soe.text, soe.source_time_ms, soe.commanded) == ("OPEN", 100500, False)
        transitions = historian.alarm_history()
        kinds = sorted((t.source, t.transition) for t in transitions)
        assert ("F1.P", "raised") in kinds and ("F1.P", "cleared") in kinds
        assert ("F1.CB", "raised") in kinds and ("F1", "raised") in kinds
        assert historian.alarm_history(max_priority=1)[0].source == "F1.CB"  # the trip
        listed = {(a.source, a.condition): a for a in historian.listed_alarms()}
        assert listed["F1.P", Condition.LIMIT].state == AlarmState.CLEARED
        assert listed["F1.P", Condition.QUALITY].state == AlarmState.UNACKNOWLEDGED
        assert listed["F1.CB", Condition.STATUS].detail == "TRIP"
        durable_kinds = {type(r).__name__ for r in plant.durable}
        assert durable_kinds == {"Event", "AlarmTransition", "SoeEntry"}
    finally:
        plant.stop()


def test_snapshots_archive_every_analog_periodically(historian: Historian) -> None:
    plant = Plant(
        historian,
        [analog("F1.P", deadband=100.0), analog("F1.E", kind=PointKind.COUNTER), breaker("F1.CB")],
        snapshot_period_s=0.1,
    )
    try:
        plant.set("F1.P", 1.0, time.time())
        plant.set("F1.P", 2.0, time.time())  # inside the archive deadband
        wait_until(lambda: plant.archiver.stats.snapshots_written >= 2, 5, "two snapshots")
        plant.flush()
        rows = historian.history("F1.P", 0, time.time() + 1)
        assert rows[0].value == 1.0 and not rows[0].snapshot
        assert any(r.snapshot and r.value == 2.0 for r in rows)
        assert historian.history("F1.E", 0, time.time() + 1) == []  # never received a value
    finally:
        plant.stop()


def test_history_aggregates_and_event_queries(historian: Historian) -> None:
    plant = Plant(historian, [analog("F1.P"), analog("F2.P")])
    try:
        for i in range(60):
            plant.set("F1.P", float(i), 1000.0 + i)
        plant.set("F1.P", 999.0, 1060.0, Quality.INVALID)
        for i, kind in enumerate([EventKind.LINK_LOST, EventKind.COMMAND, EventKind.CONFIG]):
            plant.events.record(Event(kind, f"e{i}", device="F2" if i else "F1", time=50.0 + i))
        plant.flush()
        agg = historian.aggregate("F1.P", 1000.0, 1080.0, 20.0)
        assert [(a.start_s, a.min, a.max, a.avg, a.count) for a in agg] == [
            (1000.0, 0.0, 19.0, 9.5, 20),
            (1020.0, 20.0, 39.0, 29.5, 20),
            (1040.0, 40.0, 59.0, 49.5, 20),
        ]
        assert len(historian.history("F1.P", 1010.0, 1020.0)) == 10
        with pytest.raises(HistorianError, match="'nope'"):
            historian.history("nope", 0, 1)
        assert [e.message for e in historian.events(device="F2")] == ["e2", "e1"]
        assert [e.message for e in historian.events(max_priority=3)] == ["e1", "e0"]
        assert [e.message for e in historian.events(start_s=51.0, end_s=52.0)] == ["e1"]
    finally:
        plant.stop()


def test_failed_writes_are_retried_without_loss(historian: Historian) -> None:
    plant = Plant(historian, [analog("F1.P")])
    try:
        plant.events.record(Event(EventKind.CONFIG, "before", time=1.0))
        plant.flush()
        with historian.engine.begin() as conn:  # the table disappears: every write fails
            conn.execute(sa.text("ALTER TABLE events RENAME TO events_away"))
        for i in range(5):
            plant.events.record(Event(EventKind.COMMAND, f"during-{i}", time=2.0 + i))
            plant.set("F1.P", float(i), 2.0 + i)
        assert not plant.archiver.flush(0.5)
        assert plant.archiver.stats.failed_flushes >= 1
        assert "events" in plant.archiver.stats.last_error
        assert not any(
            isinstance(r, Event) and r.message.startswith("during") for r in plant.durable
        )
        with historian.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE events_away RENAME TO events"))
        plant.flush()
        assert plant.archiver.stats.last_error == ""
        assert len(historian.events()) == 6
        assert [s.value for s in historian.history("F1.P", 0, 100)] == [0.0, 1.0, 2.0, 3.0, 4.0]
    finally:
        plant.stop()


def test_catalogue_sync_updates_and_retires_points(historian: Historian) -> None:
    ids = historian.sync_points([analog("A.P"), analog("A.Q")], {})
    again = historian.sync_points([analog("A.P", deadband=2.0)], {"A.P": 5.0})
    assert again == ids  # ids are permanent, retired points keep theirs
    with historian.engine.connect() as conn:
        rows = {r.name: r for r in conn.execute(sa.text("SELECT * FROM points"))}
    assert rows["A.P"].archive_deadband == 5.0 and rows["A.P"].active
    assert not rows["A.Q"].active


# --------------------------------------------------------- breakers, outages
def test_breaker_status_trip_and_automatic_outage(historian: Historian) -> None:
    plant = Plant(
        historian, [breaker("SS.CB1"), breaker("SS.CB2")], breaker_customers={"SS.CB1": 250}
    )
    try:
        plant.set("SS.CB1", ON, 100.0)
        plant.set("SS.CB2", ON, 100.0)
        plant.set("SS.CB1", OFF, 200.0, st=199.99)
        plant.flush()
        state = {b.point: b for b in historian.breakers()}
        assert state["SS.CB2"].state == "CLOSED" and state["SS.CB2"].last_trip_s is None
        cb1 = state["SS.CB1"]
        assert (cb1.state, cb1.last_trip_s, cb1.changed_s) == ("OPEN", 199.99, 199.99)
        assert cb1.last_trip_cause and "uncommanded" in cb1.last_trip_cause
        historian.set_trip_info("SS.CB1", cause="earth fault on L12", expected_outage_s=5400)
        with pytest.raises(HistorianError, match="'SS.CB9'"):
            historian.set_trip_info("SS.CB9", cause="x")
        [outage] = historian.current_outages()
        assert (outage.device, outage.customers, outage.start_s) == ("SS.CB1", 250, 199.99)
        plant.stop()
        # a restart in between: the breaker state comes back from the database
        plant = Plant(historian, [breaker("SS.CB1"), breaker("SS.CB2")])
        plant.set("SS.CB1", ON, 2000.0)
        plant.flush()
        assert historian.current_outages() == []
        cb1 = {b.point: b for b in historian.breakers()}["SS.CB1"]
        assert (cb1.state, cb1.last_trip_cause, cb1.expected_outage_s) == (
            "CLOSED",
            "earth fault on L12",
            5400,
        )
        assert historian.outages()[0].end_s == 2000.0
    finally:
        plant.stop()


def test_reliability_indices_ieee_1366(historian: Historian) -> None:
    day = 86400.0
    historian.open_outage("F1.CB", 1000.0, 100, "trip", end_s=1000.0 + 3600)  # 60 min
    historian.open_outage("F2.CB", 2000.0, 50, "trip", end_s=2000.0 + 300)  # exactly 5 min
    historian.open_outage("F3.CB", 3000.0, 20, "trip", end_s=3000.0 + 301)  # sustained
    historian.open_outage("F4.CB", 4000.0, 10, "maintenance", planned=True, end_s=4000 + 1800)
    historian.open_outage("F5.CB", day + 10, 999, "next period", end_s=day + 20)
    ongoing = historian.open_outage("F6.CB", 5000.0, 5, "trip")
    with pytest.raises(HistorianError, match="customers"):
        historian.open_outage("X", 0, -1, "x")
    r = reliability(historian, 1000, 0.0, day, as_of_s=5000.0 + 600)
    # sustained: 100 x 60 + 20 x 301/60 + 10 x 30 + 5 x 10 customer-minutes
    assert r.sustained_interruptions == 4 and r.momentary_interruptions == 1
    assert r.saifi == pytest.approx((100 + 20 + 10 + 5) / 1000)
    assert r.saidi_min == pytest.approx((6000 + 20 * 301 / 60 + 300 + 50) / 1000)
    assert r.caidi_min == pytest.approx(r.saidi_min / r.saifi)
    assert r.maifi == pytest.approx(50 / 1000)
    unplanned = reliability(historian, 1000, 0.0, day, as_of_s=5600, include_planned=False)
    assert unplanned.saifi == pytest.approx(125 / 1000)
    assert [o.device for o in historian.current_outages()] == ["F6.CB"]
    historian.close_outage(ongoing, 5000.0 + 60)
    assert reliability(historian, 1000, 0.0, day).momentary_interruptions == 2
    none = indices([], 10, 0, 1)
    assert (none.saifi, none.caidi_min) == (0.0, None)
    assert isinstance(historian.outages()[0], Outage)


# ------------------------------------------------------------------- energy
DAY = dt.date(2024, 3, 10)
T0 = dt.datetime(2024, 3, 10, tzinfo=dt.UTC).timestamp()


def write_samples(
    historian: Historian, point: str, samples: list[tuple[float, float, int]]
) -> None:
    pid = historian.point_ids()[point]
    rows = [(pid, t, v, q, t, False) for t, v, q in samples]
    historian.write(WriteBatch(measurements=rows))


def test_energy_from_counter_with_rollover_gaps_and_missing_data(historian: Historian) -> None:
    historian.sync_points([analog("F1.E", kind=PointKind.COUNTER)], {})
    modulus = 100_000.0
    samples = []
    count = 99_000.0  # rolls over in the first hour
    for k in range(0, 24 * 60, 1):  # one reading a minute, 10 kWh a minute
        t = T0 + 60 * k
        if 6 * 3600 <= t - T0 < 7 * 3600 and (t - T0) % 1800:  # 6:00-7:00 one reading / 30 min
            count = (count + 10) % modulus
            continue
        if 12 * 3600 <= t - T0 < 13 * 3600:  # 12:00-13:00: nothing at all
            count = (count + 10) % modulus
            continue
        samples.append((t, count, 0))
        count = (count + 10) % modulus
    samples.append((T0 + 86400.0, count, 0))
    write_samples(historian, "F1.E", samples)
    meter = FeederMeter("F1", counter="F1.E", rollover=modulus, max_gap_s=700)
    blocks = compute_day(historian, meter, DAY, dt.UTC, now=T0 + 2 * 86400)
    quarters = [b for b in blocks if b.duration_s == 900]
    assert len(quarters) == 96
    by_hour = {b.start_s: b for b in blocks if b.duration_s == 3600}
    assert quarters[0].energy_kwh == pytest.approx(150.0)  # across the rollover
    assert quarters[0].quality == EnergyQuality.COMPLETE
    assert by_hour[T0].energy_kwh == pytest.approx(600.0)
    # 6:00-7:00 has readings 30 min apart: interpolated, estimated, energy still right
    assert by_hour[T0 + 6 * 3600].quality == EnergyQuality.ESTIMATED
    assert by_hour[T0 + 6 * 3600].energy_kwh == pytest.approx(600.0)
    noon = [b for b in quarters if T0 + 12 * 3600 <= b.start_s < T0 + 13 * 3600]
    assert {b.quality for b in noon} == {EnergyQuality.ESTIMATED}  # a 61-minute gap
    stored = energy_blocks(historian, "F1", T0, T0 + 86400, 3600)
    assert [b.energy_kwh for b in stored] == [b.energy_kwh for b in by_hour.values()]
    assert sum(b.energy_kwh or 0 for b in stored) == pytest.approx(24 * 600.0)
    # a day without any reading is missing
    empty = compute_day(historian, meter, DAY + dt.timedelta(days=3), now=T0 + 9 * 86400)
    assert {b.quality for b in empty} == {EnergyQuality.MISSING}
    assert all(b.energy_kwh is None for b in empty)


def test_energy_integrated_from_power_and_partial_day(historian: Historian) -> None:
    historian.sync_points([analog("F2.P")], {})
    # 2 MW from midnight, 4 MW from 01:00 (deadband archiving: only changes + 5-min snapshots)
    samples = [(T0 - 60, 2.0, 0)]
    samples += [(T0 + 300.0 * k, 2.0 if k < 12 else 4.0, 0) for k in range(0, 36)]
    samples.append((T0 + 2 * 3600 + 450, 9.0, int(Quality.INVALID)))
    write_samples(historian, "F2.P", samples)
    meter = FeederMeter("F2", power="F2.P")
    blocks = compute_day(historian, meter, DAY, now=T0 + 3 * 3600)
    quarters = [b for b in blocks if b.duration_s == 900]
    hours = [b for b in blocks if b.duration_s == 3600]
    assert len(quarters) == 12 and len(hours) == 3  # only blocks that have ended
    assert quarters[0].energy_kwh == pytest.approx(500.0)  # 2 MW x 0.25 h
    assert quarters[0].quality == EnergyQuality.COMPLETE and quarters[0].method == "integrated"
    assert hours[1].energy_kwh == pytest.approx(4000.0)
    assert quarters[8].quality == EnergyQuality.ESTIMATED  # an invalid value inside
    with pytest.raises(HistorianError, match="exactly one"):
        FeederMeter("F3")
    # a day that loses an hour to daylight saving has 92 quarters and 23 hours
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    dst = compute_day(historian, meter, dt.date(2024, 3, 31), paris, now=T0 + 30 * 86400)
    assert [len([b for b in dst if b.duration_s == d]) for d in (900, 3600)] == [92, 23]


# ----------------------------------------------------------- restart/resume
def test_restart_resumes_catalogue_alarms_and_deadband(target: Target) -> None:
    points = [analog("F1.P", deadband=0.0, limits=Limits(high=10.0)), analog("F1.Q")]
    h1 = Historian(target[0], schema=target[1])
    plant = Plant(h1, points, archive_deadbands={"F1.P": 1.0, "F1.Q": 1.0})
    plant.set("F1.P", 12.0, 100.0)
    plant.set("F1.Q", 3.0, 100.0)
    plant.flush()
    alarm = plant.alarms.alarms()[0]
    ids = h1.point_ids()
    plant.stop()
    h1.close()

    h2 = Historian(target[0], schema=target[1])
    try:
        plant2 = Plant(h2, points, archive_deadbands={"F1.P": 1.0, "F1.Q": 1.0})
        assert h2.point_ids() == ids
        plant2.alarms.restore(h2.listed_alarms())
        assert [a.id for a in plant2.alarms.alarms()] == [alarm.id]
        plant2.set("F1.Q", 3.5, 200.0)  # within the deadband of the last archived 3.0
        plant2.set("F1.P", 5.0, 200.0)  # clears the restored alarm
        plant2.flush()
        assert [s.value for s in h2.history("F1.Q", 0, 1000)] == [3.0]
        assert h2.listed_alarms()[0].state == AlarmState.CLEARED
        assert plant2.alarms.alarms()[0].condition == Condition.LIMIT
        plant2.stop()
    finally:
        h2.close()


# -------------------------------------------------------------- durability
CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from protocols.base import PointKind
    from scada.alarms import AlarmManager, AlarmTransition
    from scada.config import Limits, PointConfig, PointTemplate
    from scada.events import Event, EventKind, EventLog
    from scada.historian import Archiver, Historian
    from scada.pointdb import PointDB

    url, schema, flush_s = sys.argv[1], sys.argv[2] or None, float(sys.argv[3])
    n = 50
    db = PointDB()
    t = PointTemplate(name="P", kind=PointKind.ANALOG, address=1, limits=Limits(high=0.5))
    db.define(PointConfig(f"D.P{i}", "D", f"P{i}", t) for i in range(n))
    events = EventLog()
    alarms = AlarmManager(db, events)
    historian = Historian(url, schema=schema)
    archiver = Archiver(historian, db, events, alarms, flush_interval_s=flush_s)

    def acked(records):
        out = []
        for r in records:
            if isinstance(r, Event):
                out.append({"event": r.message})
            elif isinstance(r, AlarmTransition):
                out.append({"alarm": r.alarm.id, "time": r.time})
        sys.stdout.write(json.dumps(out) + "\\n")
        sys.stdout.flush()

    archiver.subscribe_durable(acked)
    archiver.start()
    print(json.dumps("started"), flush=True)
    handles = np.arange(n, dtype=np.int64)
    i = 0
    while True:
        now = time.time()
        # every value moves (all archived); P0 toggles across its limit (an alarm transition)
        values = np.full(n, float(i))
        values[0] = float(i % 2)
        db.apply(handles, values, np.zeros(n, np.uint32), np.full(n, np.nan), np.full(n, now))
        events.record(Event(EventKind.COMMAND, f"ev-{i}", device="D", time=now))
        i += 1
        time.sleep(0.005)
    """
)


def test_sigkill_loses_no_acknowledged_record_nor_values_older_than_flush(
    target: Target,
) -> None:
    url, schema = target
    flush_s = 0.25
    Historian(url, schema=schema).close()  # migrate before the clock starts
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, schema or "", str(flush_s)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    acked_events: set[str] = set()
    acked_alarms: set[tuple[int, float]] = set()
    try:
        assert json.loads(proc.stdout.readline()) == "started", proc.stderr
        deadline = time.monotonic() + 30
        while len(acked_events) < 150:
            assert time.monotonic() < deadline, "child did not acknowledge records"
            for r in json.loads(proc.stdout.readline()):
                if "event" in r:
                    acked_events.add(r["event"])
                else:
                    acked_alarms.add((r["alarm"], r["time"]))
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in rest.splitlines():  # acknowledged before the kill, still in the pipe
        try:
            records = json.loads(line)
        except json.JSONDecodeError:
            continue  # the kill cut the line: its records were never acknowledged
        for r in records:
            if "event" in r:
                acked_events.add(r["event"])
            else:
                acked_alarms.add((r["alarm"], r["time"]))

    h = Historian(url, schema=schema)
    try:
        stored_events = {e.message for e in h.events(limit=1_000_000)}
        assert acked_events <= stored_events, sorted(acked_events - stored_events)[:5]
        stored_alarms = {(a.alarm_id, a.time_s) for a in h.alarm_history(limit=1_000_000)}
        assert acked_alarms <= stored_alarms
        # every point: the archived values are gap-free up to at most a flush interval
        # (plus the write under way) before the kill
        for p in ("D.P1", "D.P49"):
            samples = h.history(p, 0, killed_at + 10, limit=1_000_000)
            values = [s.value for s in samples]
            assert values == [float(i) for i in range(len(values))], p
            newest = samples[-1].receive_time_s
            assert newest >= killed_at - flush_s - 0.5, (p, killed_at - newest)
        # restart: the database opens, and a new archiver continues the same catalogue
        assert len(h.point_ids()) == 50
        assert h.listed_alarms()
    finally:
        h.close()
