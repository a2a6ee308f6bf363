"""``pyadms bench alarms`` / ``pyadms bench historian``: alarm flood and archiving throughput.

:func:`run_alarms` drives a point database on an asyncio loop the way the FEP
does (adapter threads push :class:`~protocols.base.PointUpdate` s through an
:class:`~protocols.base.UpdateSink`): one thread floods analog points across
their limits (an alarm raised and one cleared per point moved), another pushes
an unrelated probe stream every ``probe_period_s``. The probe's latency is
measured from its receive time stamp to its arrival in the point database's
subscribers, so it includes every wait behind alarm processing on the loop.
The archiver writes alarms and values to an SQLite historian meanwhile.

:func:`run_historian` measures values archived per second (committed) on
SQLite and on PostgreSQL, feeding as fast as the archiver keeps up.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from protocols.base import PointKind, PointUpdate, UpdateSink
from scada.alarms import AlarmManager, AlarmRecord, AlarmTransition, Transition
from scada.config import Limits, PointConfig, PointTemplate
from scada.events import EventLog
from scada.historian import Archiver, Historian
from scada.pointdb import ChangeBatch, PointDB

__all__ = ["DEFAULT_POSTGRES_URLS", "run_alarms", "run_historian"]

DEFAULT_POSTGRES_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)


def _points(n: int, prefix: str, limits: Limits | None) -> list[PointConfig]:
    t = PointTemplate(name="P", kind=PointKind.ANALOG, address=1, limits=limits, unit="A")
    return [
        PointConfig(f"{prefix}{i // 50}.P{i % 50}", f"{prefix}{i // 50}", "P", t) for i in range(n)
    ]


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def run_alarms(
    points: int = 20_000,
    alarms: int = 10_000,
    seconds: float = 10.0,
    probe_period_s: float = 0.01,
    batch_period_s: float = 0.01,
    historian_url: str | None = None,
) -> dict[str, Any]:
    """Raise ``alarms`` alarms over ``seconds`` while measuring an unrelated stream's latency.

    Returns ``alarms_per_s`` (raised, sustained over the run) and
    ``acquisition_latency_p99_s`` of the probe stream, with details.
    """
    with tempfile.TemporaryDirectory() as tmp:
        url = historian_url or f"sqlite:///{Path(tmp) / 'alarms.db'}"
        return asyncio.run(_alarms(points, alarms, seconds, probe_period_s, batch_period_s, url))


async def _alarms(
    points: int,
    alarms: int,
    seconds: float,
    probe_period_s: float,
    batch_period_s: float,
    url: str,
) -> dict[str, Any]:
    probes = 100
    db = PointDB(capacity=points + probes)
    flood = db.define(_points(points, "F", Limits(high=100.0)))
    probe = db.define(_points(probes, "PROBE", None))
    probe_set = np.zeros(points + probes, bool)
    probe_set[probe] = True
    latencies: list[float] = []

    def measure(batch: ChangeBatch) -> None:
        mine = probe_set[batch.handles]
        if mine.any():
            now = time.time()
            latencies.extend((now - batch.receive_time[mine]).tolist())

    db.subscribe(measure)  # first subscriber: sees a value as soon as the point database has it
    events = EventLog()
    manager = AlarmManager(db, events)
    raised = cleared = 0

    def count(records: Sequence[AlarmRecord]) -> None:
        nonlocal raised, cleared
        for r in records:
            if isinstance(r, AlarmTransition):
                if r.kind == Transition.RAISED:
                    raised += 1
                elif r.kind == Transition.CLEARED:
                    cleared += 1

    manager.subscribe(count)
    historian = Historian(url)
    archiver = Archiver(historian, db, events, manager)
    archiver.start()
    loop = asyncio.get_running_loop()

    def consume(updates: list[PointUpdate]) -> None:
        db.apply_updates(updates)

    sink = UpdateSink(loop, consume)
    await manager.start()
    for h in flood:  # everyone starts normal
        sink.push(PointUpdate(h, 50.0))
    stop = threading.Event()
    per_batch = max(1, round(alarms * batch_period_s / seconds))

    def flood_thread() -> None:
        # each batch raises ``per_batch`` alarms and clears the previous batch's
        k = 0
        start = time.perf_counter()
        while not stop.is_set():
            lo = (k * per_batch) % points
            now = time.time()
            up = [
                PointUpdate(flood[(lo + j) % points], 150.0, receive_time=now)
                for j in range(per_batch)
            ]
            prev = (lo - per_batch) % points
            down = [
                PointUpdate(flood[(prev + j) % points], 50.0, receive_time=now)
                for j in range(per_batch)
            ]
            sink.push_many(down + up)
            k += 1
            stop.wait(max(0.0, start + k * batch_period_s - time.perf_counter()))

    def probe_thread() -> None:
        k = 0
        while not stop.wait(probe_period_s):
            sink.push(PointUpdate(probe[k % probes], float(k), receive_time=time.time()))
            k += 1

    threads = [threading.Thread(target=flood_thread), threading.Thread(target=probe_thread)]
    await asyncio.sleep(0.2)  # the initial values in, before the clock starts
    base_raised = raised
    latencies.clear()
    cpu0, t0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    await asyncio.sleep(seconds)
    stop.set()
    for t in threads:
        await asyncio.to_thread(t.join)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    n_raised = raised - base_raised
    await manager.close()
    flush_t0 = time.perf_counter()
    flushed = await asyncio.to_thread(archiver.flush, 60.0)
    drain_s = time.perf_counter() - flush_t0
    archiver.stop()
    historian.close()
    return {
        "points": points,
        "seconds": round(elapsed, 2),
        "alarms_raised": n_raised,
        "alarms_cleared": cleared,
        "alarms_per_s": round(n_raised / elapsed),
        "acquisition_latency_p50_s": round(_percentile(latencies, 50), 4),
        "acquisition_latency_p99_s": round(_percentile(latencies, 99), 4),
        "acquisition_latency_max_s": round(max(latencies, default=float("nan")), 4),
        "probe_updates": len(latencies),
        "historian_records": archiver.stats.records_written,
        "historian_drain_after_run_s": round(drain_s, 3),
        "historian_kept_up": flushed,
        "cpu_s": round(cpu, 2),
    }


def _postgres() -> tuple[str | None, str]:
    override = os.environ.get("PYADMS_BENCH_POSTGRES_URL")
    reasons = []
    for url in [override] if override else DEFAULT_POSTGRES_URLS:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return url, ""
        except sa.exc.SQLAlchemyError as exc:
            reasons.append(f"{url}: {str(exc).splitlines()[0]}")
        finally:
            engine.dispose()
    return None, "; ".join(reasons)


def _archive_rate(
    url: str, schema: str | None, points: int, seconds: float, batch: int
) -> dict[str, Any]:
    """Feed changes as fast as the archiver commits them (at most ``max_backlog`` queued)."""
    max_backlog = 300_000
    db = PointDB(capacity=points)
    handles = np.array(db.define(_points(points, "H", None)), dtype=np.int64)
    historian = Historian(url, schema=schema)
    archiver = Archiver(historian, db, flush_interval_s=1.0)
    archiver.start()
    rng = np.random.default_rng(1)
    zeros = np.zeros(batch, np.uint32)
    nan = np.full(batch, np.nan)
    fed = 0
    t0 = time.perf_counter()
    k = 0
    while time.perf_counter() - t0 < seconds:
        if archiver.backlog * batch > max_backlog:
            # the writer is behind: feed no faster than it commits
            time.sleep(0.005)
            continue
        h = handles[(np.arange(batch) + k * batch) % points]
        # every value moves (archive deadband 0): each one is a row
        db.apply(h, rng.normal(100.0, 10.0, batch), zeros, nan, np.full(batch, time.time()))
        fed += batch
        k += 1
    archiver.flush(120.0)
    elapsed = time.perf_counter() - t0
    stats = archiver.stats
    archiver.stop()
    historian.close()
    return {
        "values_per_s": round(stats.values_written / elapsed),
        "values_written": stats.values_written,
        "values_fed": fed,
        "flushes": stats.flushes,
        "database_write_values_per_s": round(stats.values_written / stats.write_s),
        "last_flush_s": round(stats.last_flush_s, 3),
    }


def run_historian(
    points: int = 10_000,
    seconds: float = 5.0,
    batch: int = 5_000,
    postgres_url: str | None = None,
) -> dict[str, Any]:
    """Values archived (committed) per second on SQLite and on PostgreSQL."""
    out: dict[str, Any] = {"points": points, "batch": batch}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = _archive_rate(f"sqlite:///{Path(tmp) / 'bench.db'}", None, points, seconds, batch)
    out["sqlite"] = sqlite
    out["sqlite_values_per_s"] = sqlite["values_per_s"]
    url, reason = (postgres_url, "") if postgres_url else _postgres()
    if url is None:
        out["postgresql"] = {"skipped": f"PostgreSQL not reachable: {reason}"}
        out["postgresql_values_per_s"] = None
        return out
    schema = f"pyadms_bench_{uuid.uuid4().hex[:12]}"
    try:
        pg = _archive_rate(url, schema, points, seconds, batch)
    finally:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
    out["postgresql"] = pg
    out["postgresql_values_per_s"] = pg["values_per_s"]
    return out
