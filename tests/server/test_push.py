"""The push hub's batching, snapshots and resume, on a point database and alarm manager.

No sockets here: the hub is logic between the point database and the
consoles' queues (the WebSocket itself is covered in test_api.py).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from protocols.base import PointKind, PointUpdate, Quality
from scada.alarms import AlarmManager
from scada.config import PointConfig, PointTemplate, parse_config
from scada.pointdb import PointDB
from server.push import Console, PushHub
from server.views import point_view
from tests.server.conftest import P_HIGH, scada_doc


@pytest.fixture
async def hub() -> AsyncIterator[PushHub]:
    db = PointDB()
    cfg = parse_config([("field.yaml", scada_doc())])
    db.define(p for dp in cfg.expand() for p in dp.points)
    alarms = AlarmManager(db)
    # a long interval: the tests flush by hand
    h = PushHub(db, alarms, interval_s=60, keep_batches=3, max_queue=2)
    await h.start()
    yield h
    await h.stop()
    await alarms.close()


def set_value(hub: PushHub, name: str, value: float) -> None:
    now = time.time()
    hub.pointdb.apply_updates(
        [PointUpdate(hub.pointdb.handle(name), value, Quality.GOOD, None, now)]
    )


def drain(console: Console) -> list[dict[str, Any]]:
    out = []
    while not console.queue.empty():
        out.append(json.loads(console.queue.get_nowait()))
    return out


async def test_snapshot_then_batches_in_sequence(hub: PushHub) -> None:
    set_value(hub, "RTU1.P", 1.0)
    hub.flush()
    console = hub.attach()
    [snap] = drain(console)
    assert snap["type"] == "snapshot" and snap["seq"] == 1 and snap["epoch"] == hub.epoch
    assert {p["name"]: p["value"] for p in snap["points"]}["RTU1.P"] == 1.0
    assert {p["name"]: p["value"] for p in snap["points"]}["RTU1.E"] is None  # no value yet
    set_value(hub, "RTU1.P", 2.0)
    set_value(hub, "RTU1.P", P_HIGH + 1)
    hub.publish_topology({"feeder": "F1", "energised": False})
    hub.flush()
    hub.flush()  # nothing changed: no batch
    [batch] = drain(console)
    assert batch["type"] == "changes" and batch["seq"] == 2
    assert [(p["name"], p["value"]) for p in batch["points"]] == [("RTU1.P", P_HIGH + 1)]
    assert [(a["transition"], a["alarm"]["detail"]) for a in batch["alarms"]] == [("raised", "H")]
    assert batch["topology"] == [{"feeder": "F1", "energised": False}]


async def test_resume_within_the_kept_batches_else_a_snapshot(hub: PushHub) -> None:
    console = hub.attach()
    drain(console)
    for v in (1.0, 2.0):
        set_value(hub, "RTU1.P", v)
        hub.flush()
    seq = hub.seq
    hub.detach(console)
    for v in (3.0, 4.0):
        set_value(hub, "RTU1.P", v)
        hub.flush()
    back = hub.attach((hub.epoch, seq))
    assert back.start == "resumed"
    missed = drain(back)
    assert [m["seq"] for m in missed] == [seq + 1, seq + 2]
    assert [m["points"][0]["value"] for m in missed] == [3.0, 4.0]
    # three batches are kept (2, 3, 4): resuming from before them needs a snapshot
    assert hub.attach((hub.epoch, seq - 1)).start == "resumed"
    assert hub.attach((hub.epoch, seq - 2)).start == "snapshot"
    assert hub.attach(("another-epoch", seq)).start == "snapshot"
    assert hub.attach((hub.epoch, hub.seq + 1)).start == "snapshot"
    up_to_date = hub.attach((hub.epoch, hub.seq))
    assert up_to_date.start == "resumed" and drain(up_to_date) == []


async def test_a_slow_console_gets_a_snapshot_instead_of_the_backlog(hub: PushHub) -> None:
    slow = hub.attach()  # a snapshot queued, never read
    set_value(hub, "RTU1.P", 1.0)
    hub.flush()  # two queued: the limit
    set_value(hub, "RTU1.P", 2.0)
    hub.flush()
    [snap] = drain(slow)
    assert snap["type"] == "snapshot" and snap["seq"] == hub.seq == 2
    assert {p["name"]: p["value"] for p in snap["points"]}["RTU1.P"] == 2.0


async def test_points_added_or_removed_send_every_console_a_snapshot(hub: PushHub) -> None:
    console = hub.attach()
    drain(console)
    hub.topology_snapshot = lambda: {"islands": 1}
    hub.pointdb.remove(["RTU1.E"])
    set_value(hub, "RTU1.P", 5.0)
    hub.flush()
    [snap] = drain(console)
    assert snap["type"] == "snapshot" and snap["topology"] == {"islands": 1}
    assert "RTU1.E" not in {p["name"] for p in snap["points"]}
    set_value(hub, "RTU1.P", 6.0)
    hub.flush()
    [batch] = drain(console)
    assert batch["seq"] == snap["seq"] + 1


async def test_snapshot_text_is_the_json_of_the_per_point_views(hub: PushHub) -> None:
    """The columnar snapshot equals the per-point views, and its text their compact JSON."""
    db = hub.pointdb
    t = PointTemplate(
        name="X", kind=PointKind.ANALOG, address=9, unit="°C", description='oil "top" \\ temp'
    )
    db.define([PointConfig("RTU1.X", "RTU1", "X", t), PointConfig("RTU2.Y", "RTU2", "Y", t)])
    now = time.time()
    for name, value, quality in (
        ("RTU1.P", -0.0, Quality.GOOD),
        ("RTU1.X", math.inf, Quality.INVALID | Quality.OVERFLOW),
        ("RTU2.Y", 1e-7, Quality.SUBSTITUTED),
    ):
        db.apply_updates([PointUpdate(db.handle(name), value, quality, now - 1.5, now)])
    for _ in range(2):  # the second time from the cached value text
        snap = hub.snapshot()
        expected = []
        for name, pv in db.snapshot().items():
            cfg = db.config(name)
            expected.append(
                point_view(
                    pv, cfg.device, cfg.template.description, cfg.template.control is not None
                )
            )
        assert snap["points"] == expected
        assert hub.snapshot_text() == json.dumps(snap, allow_nan=False, separators=(",", ":"))
    by_name = {p["name"]: p for p in json.loads(hub.snapshot_text())["points"]}
    assert by_name["RTU1.X"]["value"] is None and by_name["RTU1.X"]["unit"] == "°C"
    assert by_name["RTU1.X"]["quality_flags"] == ["invalid", "overflow"]
    assert math.copysign(1, by_name["RTU1.P"]["value"]) == -1
    assert by_name["RTU1.E"]["value"] is None and by_name["RTU1.E"]["source_time"] is None
    set_value(hub, "RTU1.P", 0.0)  # same number, other text: -0.0 -> 0.0
    [p] = [p for p in json.loads(hub.snapshot_text())["points"] if p["name"] == "RTU1.P"]
    assert math.copysign(1, p["value"]) == 1
    db.remove(["RTU2.Y"])
    assert "RTU2.Y" not in hub.snapshot_text()
