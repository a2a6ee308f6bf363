"""Alarm processing: limits with hysteresis and delay, rate, status/SOE, comm, quality,
list states, acknowledge, shelve, suppression; and comm alarms from a real link loss."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import pytest

from protocols.base import ControlKind, DoubleState, PointKind, PointUpdate, Quality
from rig.field import SimulatedField
from scada.alarms import (
    AlarmError,
    AlarmManager,
    AlarmPolicy,
    AlarmRecord,
    AlarmSettings,
    AlarmState,
    AlarmTransition,
    Condition,
    SoeEntry,
    Transition,
    UnknownAlarmError,
)
from scada.config import ControlConfig, Limits, PointConfig, PointTemplate, parse_config
from scada.events import Event, EventKind, EventLog
from scada.fep import FrontEnd
from scada.pointdb import PointDB
from server.wiring import master_factory
from tests.conftest import wait_for

ON, OFF, TRAVEL = float(DoubleState.ON), float(DoubleState.OFF), float(DoubleState.INTERMEDIATE)


def analog(name: str, deadband: float = 0.0, **limits: float) -> PointConfig:
    device, suffix = name.split(".", 1)
    t = PointTemplate(
        name=suffix,
        kind=PointKind.ANALOG,
        address=1,
        unit="kV",
        deadband=deadband,
        limits=Limits(**limits) if limits else None,
    )
    return PointConfig(name, device, suffix, t)


def status(
    name: str, kind: PointKind = PointKind.DOUBLE, element: str | None = None
) -> PointConfig:
    device, suffix = name.split(".", 1)
    ckind = ControlKind.DOUBLE if kind == PointKind.DOUBLE else ControlKind.SINGLE
    control = ControlConfig(kind=ckind, address=100)
    t = PointTemplate(name=suffix, kind=kind, address=2, element=element, control=control)
    return PointConfig(name, device, suffix, t)


class Rig:
    """A point database, event log and alarm manager, and what the manager published."""

    def __init__(self, points: Sequence[PointConfig], policy: AlarmPolicy | None = None) -> None:
        self.db = PointDB(capacity=8)
        self.db.define(points)
        self.events = EventLog()
        self.alarms = AlarmManager(self.db, self.events, policy)
        self.records: list[AlarmRecord] = []
        self.alarms.subscribe(self.records.extend)

    def set(
        self,
        name: str,
        value: float,
        t: float,
        quality: Quality = Quality.GOOD,
        source_time: float | None = None,
    ) -> None:
        self.db.apply_updates([PointUpdate(self.db.handle(name), value, quality, source_time, t)])

    def transitions(self, kind: Transition | None = None) -> list[AlarmTransition]:
        return [
            r
            for r in self.records
            if isinstance(r, AlarmTransition) and (kind is None or r.kind == kind)
        ]

    def soe(self) -> list[SoeEntry]:
        return [r for r in self.records if isinstance(r, SoeEntry)]

    def one(self, condition: Condition, source: str) -> Any:
        found = [
            a
            for a in self.alarms.alarms(include_shelved=True, include_suppressed=True)
            if a.condition == condition and a.source == source
        ]
        assert len(found) <= 1
        return found[0] if found else None


def test_limit_levels_with_hysteresis() -> None:
    r = Rig([analog("F1.V", deadband=0.0, low_low=9.0, low=9.5, high=11.0, high_high=11.5)])
    r2 = Rig(
        [analog("F1.V", low_low=9.0, low=9.5, high=11.0, high_high=11.5)],
        AlarmPolicy(settings={"F1.*": AlarmSettings(hysteresis=0.2)}),
    )
    t = 100.0
    for v in (10.0, 11.1, 11.6, 11.4, 11.31, 11.2, 10.81, 10.79, 9.4, 8.9, 9.3, 10.0):
        t += 1
        r2.set("F1.V", v, t)
    details = [(x.kind, x.alarm.detail) for x in r2.transitions()]
    assert details == [
        (Transition.RAISED, "H"),  # 11.1
        (Transition.RAISED, "HH"),  # 11.6: escalation re-alarms
        (Transition.UPDATED, "H"),  # 11.2: below 11.5 - 0.2 (11.4 and 11.31 stay HH)
        (Transition.CLEARED, "H"),  # 10.79: below 11.0 - 0.2 (10.81 stays H)
        (Transition.RAISED, "L"),  # 9.4 - the same alarm (still listed, unacknowledged)
        (Transition.RAISED, "LL"),  # 8.9
        (Transition.UPDATED, "L"),  # 9.3: above 9.0 + 0.2
        (Transition.CLEARED, "L"),  # 10.0
    ]
    assert len({x.alarm.id for x in r2.transitions()}) == 1
    alarm = r2.one(Condition.LIMIT, "F1.V")
    assert alarm.state == AlarmState.CLEARED and "F1.V" in alarm.message
    assert [x.alarm.priority for x in r2.transitions(Transition.RAISED)] == [3, 2, 3, 2]
    # without configured hysteresis the point's deadband (0 here) is used
    r.set("F1.V", 11.1, 1.0)
    r.set("F1.V", 10.99, 2.0)
    assert [x.kind for x in r.transitions()] == [Transition.RAISED, Transition.CLEARED]


def test_limit_on_delay_raises_only_if_it_persists() -> None:
    r = Rig(
        [analog("F1.I", high=100.0), analog("F1.J", high=100.0)],
        AlarmPolicy(default=AlarmSettings(delay_s=5.0)),
    )
    r.set("F1.I", 120.0, 10.0)
    r.set("F1.I", 90.0, 12.0)  # gone before the delay: nothing
    r.alarms.tick(20.0)
    assert r.transitions() == []
    r.set("F1.I", 120.0, 30.0)
    r.alarms.tick(34.9)
    assert r.transitions() == []
    r.alarms.tick(35.0)  # no new value (deadband), the timer raises it
    [raised] = r.transitions(Transition.RAISED)
    assert raised.alarm.detail == "H" and raised.alarm.value == 120.0
    r.set("F1.J", 120.0, 40.0)
    r.set("F1.J", 121.0, 45.5)  # a later value past the delay raises it too
    assert r.one(Condition.LIMIT, "F1.J").state == AlarmState.UNACKNOWLEDGED
    r.set("F1.J", 90.0, 46.0)  # clearing is immediate
    assert r.one(Condition.LIMIT, "F1.J").state == AlarmState.CLEARED


def test_invalid_value_neither_raises_nor_clears_limits() -> None:
    r = Rig([analog("F1.V", high=11.0)])
    r.set("F1.V", 12.0, 1.0)
    r.set("F1.V", 5.0, 2.0, Quality.INVALID)
    assert r.one(Condition.LIMIT, "F1.V").active
    assert r.one(Condition.QUALITY, "F1.V").active
    r.set("F1.V", 5.0, 3.0)
    assert not r.one(Condition.LIMIT, "F1.V").active
    assert not r.one(Condition.QUALITY, "F1.V").active


def test_rate_of_change_alarm_and_expiry() -> None:
    r = Rig([analog("F1.P")], AlarmPolicy(default=AlarmSettings(rate_limit_per_s=2.0)))
    r.set("F1.P", 10.0, 0.0, source_time=0.0)
    r.set("F1.P", 11.0, 1.0, source_time=1.0)  # 1/s
    assert r.transitions() == []
    r.set("F1.P", 16.0, 1.6, source_time=1.5)  # 10/s over source time
    alarm = r.one(Condition.RATE, "F1.P")
    assert alarm.active and alarm.detail == "ROC" and alarm.raised_time == 1.5
    r.alarms.tick(1.6 + r.alarms.policy.rate_clear_s)  # steady since: clears
    assert not r.one(Condition.RATE, "F1.P").active


def test_status_changes_soe_commanded_and_uncommanded() -> None:
    r = Rig([status("S1.CB"), status("S1.IND", PointKind.SINGLE)])
    r.set("S1.CB", ON, 1.0)  # first value (integrity): no SOE
    r.set("S1.IND", 0.0, 1.0)
    assert r.soe() == [] and r.transitions() == []
    assert r.alarms.expect_command("S1.CB", 0, within_s=30.0) == ("S1.CB", OFF)
    r.set("S1.CB", TRAVEL, time.time(), source_time=1000.0004)
    r.set("S1.CB", OFF, time.time(), source_time=1000.0456)
    assert r.transitions() == []  # commanded: no alarm
    soe = r.soe()
    assert [(e.text, e.commanded, e.source_time_ms) for e in soe] == [
        ("INTERMEDIATE", False, 1000000),
        ("OPEN", True, 1000046),
    ]
    assert soe[1].previous == TRAVEL and soe[1].receive_time > 1000
    r.set("S1.CB", ON, time.time())  # uncommanded close
    alarm = r.one(Condition.STATUS, "S1.CB")
    assert alarm.detail == "CLOSED" and alarm.normal == OFF and "uncommanded" in alarm.message
    assert r.soe()[-1].source_time_ms is None and not r.soe()[-1].commanded
    r.set("S1.CB", OFF, time.time())  # back to the state before: clears
    assert r.one(Condition.STATUS, "S1.CB").state == AlarmState.CLEARED
    r.set("S1.IND", 1.0, time.time())
    assert r.one(Condition.STATUS, "S1.IND").detail == "ON"


def test_expectation_expires_and_setpoints_have_none() -> None:
    r = Rig([status("S1.CB"), analog("S1.P")])
    r.set("S1.CB", ON, 1.0)
    r.alarms.expect_command("S1.CB", 0, within_s=0.5)
    r.alarms.tick(time.time() + 1.0)
    r.set("S1.CB", OFF, time.time())
    assert r.one(Condition.STATUS, "S1.CB").active
    assert r.alarms.expect_command("S1.P", 3.0, within_s=1.0) is None


def test_comm_failure_is_one_alarm_per_device() -> None:
    r = Rig([analog(f"RTU1.P{i}", high=5.0) for i in range(20)] + [analog("RTU2.P0")])
    for i in range(20):
        r.set(f"RTU1.P{i}", 1.0, 1.0)
    handles = [r.db.handle(f"RTU1.P{i}") for i in range(20)]
    r.db.set_quality(handles, add=Quality.COMM_FAIL | Quality.INVALID, remove=Quality.GOOD)
    r.events.record(Event(EventKind.LINK_LOST, "link lost: timeout", device="RTU1"))
    listed = r.alarms.alarms()
    assert [(a.condition, a.source) for a in listed] == [(Condition.COMM, "RTU1")]
    r.db.set_quality(handles[:10], add=Quality.GOOD, remove=Quality.COMM_FAIL | Quality.INVALID)
    r.events.record(Event(EventKind.LINK_RESTORED, "link restored", device="RTU1"))
    assert r.one(Condition.COMM, "RTU1").active  # ten points still comm-failed
    r.db.set_quality(handles[10:], add=Quality.GOOD, remove=Quality.COMM_FAIL | Quality.INVALID)
    assert r.one(Condition.COMM, "RTU1").state == AlarmState.CLEARED
    assert len(r.transitions(Transition.RAISED)) == 1


def test_quality_alarm_ignores_comm_fail_and_not_init() -> None:
    r = Rig([analog("D.P")])
    r.set("D.P", 1.0, 1.0, Quality.QUESTIONABLE | Quality.OLD)
    alarm = r.one(Condition.QUALITY, "D.P")
    assert alarm.active and alarm.priority == 4 and "OLD" in alarm.message
    r.set("D.P", 1.0, 2.0, Quality.COMM_FAIL | Quality.INVALID)
    assert not r.one(Condition.QUALITY, "D.P").active


def test_list_states_acknowledge_single_device_and_list() -> None:
    r = Rig([analog(f"A.P{i}", high=1.0) for i in range(3)] + [analog("B.P0", high=1.0)])
    for name in ("A.P0", "A.P1", "A.P2", "B.P0"):
        r.set(name, 2.0, 1.0)
    ids = {a.point: a.id for a in r.alarms.alarms()}
    r.set("A.P0", 0.0, 2.0)  # cleared before acknowledgement: still listed
    assert r.alarms.get(ids["A.P0"]).state == AlarmState.CLEARED
    acked = r.alarms.acknowledge(ids["A.P0"], "op1")
    assert acked.state == AlarmState.CLOSED and acked.ack_operator == "op1"
    with pytest.raises(UnknownAlarmError):
        r.alarms.get(ids["A.P0"])
    assert [a.point for a in r.alarms.acknowledge_device("A", "op2")] == ["A.P1", "A.P2"]
    assert r.alarms.get(ids["A.P1"]).state == AlarmState.ACKNOWLEDGED
    r.set("A.P1", 0.0, 3.0)  # acknowledged and cleared: off the list
    assert ids["A.P1"] not in {a.id for a in r.alarms.alarms()}
    done = r.alarms.acknowledge_many([ids["B.P0"], ids["A.P1"], 999], "op3")
    assert [a.id for a in done] == [ids["B.P0"]]
    assert r.alarms.counts()[AlarmState.ACKNOWLEDGED] == 2


def test_shelve_hides_until_expiry() -> None:
    r = Rig([analog("A.P", high=1.0)])
    r.set("A.P", 2.0, 1.0)
    alarm_id = r.alarms.alarms()[0].id
    with pytest.raises(AlarmError, match="duration_s"):
        r.alarms.shelve(alarm_id, 0, "op")
    r.alarms.shelve(alarm_id, 60.0, "op")
    assert r.alarms.alarms() == [] and len(r.alarms.alarms(include_shelved=True)) == 1
    r.set("A.P", 0.0, 2.0)
    r.set("A.P", 2.0, 3.0)  # a new occurrence of a shelved key is shelved too
    assert r.alarms.alarms() == []
    r.alarms.tick(time.time() + 61.0)
    assert [a.id for a in r.alarms.alarms()] != []
    assert r.transitions(Transition.UNSHELVED)


def test_breaker_trip_suppresses_downstream_alarms() -> None:
    r = Rig(
        [status("SS.CB1"), analog("SS.V", low=9.0)]
        + [analog(f"FRTU{i}.V", low=9.0) for i in range(3)],
        AlarmPolicy(suppress_window_s=2.0),
    )
    r.alarms.set_downstream("SS.CB1", points=["FRTU0.V"], devices=["FRTU1", "FRTU2"])
    now = time.time()
    r.set("SS.CB1", ON, now - 100)
    for name in ("SS.V", "FRTU0.V", "FRTU1.V", "FRTU2.V"):
        r.set(name, 10.0, now - 100)
    r.set("FRTU2.V", 0.0, now - 1.0, source_time=now - 1.0)  # arrives before the trip indication
    r.set("SS.CB1", OFF, now, source_time=now)  # uncommanded: a trip
    r.db.apply_updates(
        [PointUpdate(r.db.handle(n), 0.0, receive_time=now) for n in ("FRTU0.V", "FRTU1.V")]
    )
    r.events.record(Event(EventKind.LINK_LOST, "link lost", device="FRTU1"))
    listed = r.alarms.alarms()
    assert [(a.source, a.detail, a.priority) for a in listed] == [("SS.CB1", "TRIP", 1)]
    hidden = r.alarms.alarms(include_suppressed=True)
    assert {a.source for a in hidden} == {"SS.CB1", "FRTU0.V", "FRTU1.V", "FRTU2.V", "FRTU1"}
    assert all(a.suppressed_by == "SS.CB1" for a in hidden if a.source != "SS.CB1")
    r.set("SS.V", 0.0, now)  # not downstream
    assert {a.source for a in r.alarms.alarms()} == {"SS.CB1", "SS.V"}
    # voltage returns after the reclose: suppressed alarms that clear are closed silently,
    # those still active when the window is over are shown
    r.alarms.expect_command("SS.CB1", 1, 10.0)
    r.set("SS.CB1", ON, time.time())
    assert r.one(Condition.STATUS, "SS.CB1").state == AlarmState.CLEARED
    r.db.apply_updates([PointUpdate(r.db.handle(n), 10.0) for n in ("FRTU0.V", "FRTU1.V")])
    r.events.record(Event(EventKind.LINK_RESTORED, "link restored", device="FRTU1"))
    assert {a.source for a in r.alarms.alarms(include_suppressed=True)} == {
        "SS.CB1",
        "SS.V",
        "FRTU2.V",
    }
    assert {a.source for a in r.alarms.alarms()} == {"SS.CB1", "SS.V"}
    r.alarms.tick(time.time() + 2.5)
    assert {a.source for a in r.alarms.alarms()} == {"SS.CB1", "SS.V", "FRTU2.V"}


def test_external_alarm_raise_update_clear() -> None:
    r = Rig([analog("A.P")])
    with pytest.raises(AlarmError, match="priority"):
        r.alarms.raise_alarm("feeder:F1", "deenergised", "x", 7)
    a = r.alarms.raise_alarm("feeder:F1", "deenergised", "120 customers de-energised", 2)
    r.alarms.acknowledge(a.id, "op")
    b = r.alarms.raise_alarm("feeder:F1", "deenergised", "125 customers de-energised", 2)
    assert b.id == a.id and b.acknowledged and b.message.startswith("125")
    c = r.alarms.raise_alarm("feeder:F1", "deenergised", "900 customers de-energised", 1)
    assert not c.acknowledged  # more urgent: re-alarmed
    cleared = r.alarms.clear_alarm("feeder:F1", "deenergised", "restored")
    assert cleared is not None and cleared.state == AlarmState.CLEARED
    assert r.alarms.clear_alarm("feeder:F1", "deenergised") is None


def test_restore_from_a_previous_run() -> None:
    r = Rig([analog("A.P", high=1.0), analog("B.P"), status("C.CB")])
    r.set("A.P", 2.0, 1.0)
    r.set("C.CB", ON, 1.0)
    r.set("C.CB", OFF, 2.0)
    r.events.record(Event(EventKind.LINK_LOST, "link lost", device="B"))
    before = r.alarms.alarms()
    assert len(before) == 3
    fresh = Rig([analog("A.P", high=1.0), analog("B.P"), status("C.CB")])
    fresh.alarms.restore(before)
    assert fresh.alarms.alarms() == before
    fresh.set("A.P", 0.5, 10.0)
    fresh.set("B.P", 0.5, 10.0)
    fresh.set("C.CB", ON, 10.0)
    assert all(a.state == AlarmState.CLEARED for a in fresh.alarms.alarms())
    new = fresh.alarms.raise_alarm("x", "y", "z", 3)
    assert new.id > max(a.id for a in before)


def test_reload_keeps_state_of_unchanged_points() -> None:
    r = Rig([analog("A.P", high=1.0)])
    r.set("A.P", 2.0, 1.0)
    r.db.define([analog("A.Q", high=5.0)])
    r.events.record(Event(EventKind.CONFIG, "configuration reloaded"))
    r.set("A.Q", 6.0, 2.0)
    r.set("A.P", 0.0, 2.0)
    assert [(x.alarm.source, x.kind) for x in r.transitions()][1:] == [
        ("A.Q", Transition.RAISED),
        ("A.P", Transition.CLEARED),
    ]


def test_vectorised_flood_raises_every_alarm() -> None:
    # its rate is `pyadms bench alarms`' figure, not a timed test
    n = 20_000
    r = Rig([analog(f"D{i // 100}.P{i % 100}", high=10.0) for i in range(n)])
    h = np.arange(n, dtype=np.int64)
    zeros = np.zeros(n, np.uint32)
    r.db.apply(h, np.full(n, 5.0), zeros, np.full(n, np.nan), np.full(n, 1.0))
    r.db.apply(h, np.full(n, 20.0), zeros, np.full(n, np.nan), np.full(n, 2.0))
    assert len(r.transitions(Transition.RAISED)) == n
    assert math.isclose(r.alarms.alarms()[0].value or 0, 20.0)


# ------------------------------------------------------ with a real protocol link
@pytest.fixture
async def live() -> AsyncIterator[tuple[SimulatedField, FrontEnd, AlarmManager, EventLog]]:
    doc = {
        "templates": {
            "t": {
                "points": [
                    {
                        "name": "CB",
                        "kind": "double",
                        "address": 10,
                        "table": "holding_register",
                        "element": "breaker:CB",
                        "control": {
                            "kind": "double",
                            "address": 10,
                            "table": "holding_register",
                            "mode": "direct",
                            "checkback_timeout_s": 2,
                        },
                    },
                    {
                        "name": "V{i}",
                        "kind": "analog",
                        "address": 0,
                        "repeat": 8,
                        "address_step": 2,
                        "table": "input_register",
                        "dtype": "float32",
                        "limits": {"low": 9.0},
                    },
                ]
            }
        },
        "devices": [
            {
                "name": "RTU1",
                "template": "t",
                "protocol": "modbus",
                "port": 0,
                "scan_period_s": 0.3,
                "timeout_s": 0.3,
                "integrity_period_s": 0,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 0.5,
            }
        ],
    }
    field = SimulatedField(parse_config([("t.yaml", doc)]))
    await field.start()
    field.set("RTU1.CB", ON)
    for i in range(1, 9):
        field.set(f"RTU1.V{i}", 10.0)
    db, events = PointDB(), EventLog()
    alarms = AlarmManager(db, events)
    fep = FrontEnd(db, events, master_factory)
    await fep.start(field.resolved_config())
    await alarms.start(tick_period_s=0.05)
    await wait_for(lambda: db.get("RTU1.V8").value == 10.0, 10, "initial values")
    yield field, fep, alarms, events
    await alarms.close()
    await fep.stop()
    await field.stop()


async def test_real_link_loss_gives_one_device_alarm(
    live: tuple[SimulatedField, FrontEnd, AlarmManager, EventLog],
) -> None:
    field, fep, alarms, _ = live
    await field.stop_device("RTU1")
    await wait_for(lambda: bool(alarms.alarms()), 5, "comm alarm")
    assert [(a.condition, a.source) for a in alarms.alarms()] == [(Condition.COMM, "RTU1")]
    await field.start_device("RTU1")
    await wait_for(lambda: not alarms.alarms()[0].active, 10, "comm alarm cleared")
    assert len(alarms.alarms()) == 1  # cleared, waiting for acknowledgement


async def test_real_command_is_not_an_uncommanded_alarm(
    live: tuple[SimulatedField, FrontEnd, AlarmManager, EventLog],
) -> None:
    field, fep, alarms, _ = live
    soe: list[SoeEntry] = []
    alarms.subscribe(lambda recs: soe.extend(r for r in recs if isinstance(r, SoeEntry)))
    alarms.expect_command("RTU1.CB", 0, within_s=5.0)
    result = await fep.command("RTU1.CB", 0)
    assert result.status == "confirmed", result
    assert alarms.alarms() == [] and [(e.text, e.commanded) for e in soe] == [("OPEN", True)]
    field.set("RTU1.CB", ON)  # closed at the substation, not by us
    await wait_for(lambda: len(soe) == 2, 5, "uncommanded change")
    [alarm] = alarms.alarms()
    assert alarm.detail == "CLOSED" and not soe[1].commanded
    field.set("RTU1.CB", OFF)  # a breaker's uncommanded opening is a trip, whatever came before
    await wait_for(lambda: alarms.alarms()[0].detail == "TRIP", 5, "trip")
    assert alarms.alarms()[0].priority == 1 and alarms.alarms()[0].normal == ON
