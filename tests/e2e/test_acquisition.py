"""Field -> real protocol -> FEP -> point database, and commands back down, for all three
protocols over loopback sockets (R-ACQ-1, R-ACQ-2, R-ACQ-4, R-ACQ-6)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from protocols.base import CommandStatus, DoubleState, Quality
from rig.field import SimulatedField
from scada.config import ConfigError, parse_config
from scada.events import EventKind
from server.wiring import ControlCentre
from tests.conftest import wait_for

SCAN_S = 0.5
PROTOCOLS = ["iec104", "dnp3", "modbus"]


def template(protocol: str) -> dict[str, Any]:
    mb = protocol == "modbus"

    def reg(dtype: str = "float32") -> dict[str, Any]:
        return {"table": "input_register", "dtype": dtype} if mb else {}

    return {
        "points": [
            {
                "name": "CB",
                "kind": "double",
                "address": 10 if mb else 1,
                **({"table": "holding_register", "dtype": "uint16"} if mb else {}),
                "control": {
                    "kind": "double",
                    "address": 20 if mb else 101,
                    "mode": "sbo",
                    "checkback_timeout_s": 2,
                    **({"table": "holding_register"} if mb else {}),
                },
            },
            {
                "name": "FPI",
                "kind": "single",
                "address": 0 if mb else 2,
                **({"table": "discrete_input", "dtype": "bool"} if mb else {}),
            },
            {
                "name": "P",
                "kind": "analog",
                "address": 0 if mb else 3,
                "unit": "MW",
                "scale": 0.001,
                "offset": 0.5,
                **reg(),
            },
            {"name": "E", "kind": "counter", "address": 4 if mb else 4, **reg("uint32")},
        ]
    }


def config_doc(protocol: str, devices: list[str]) -> dict[str, Any]:
    return {
        "templates": {"t": template(protocol)},
        "devices": [
            {
                "name": d,
                "template": "t",
                "protocol": protocol,
                "port": 0,
                "address": 1 + n,
                "scan_period_s": SCAN_S,
                "timeout_s": SCAN_S,
                "integrity_period_s": 0,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 1.0,
            }
            for n, d in enumerate(devices)
        ],
    }


class Setup:
    def __init__(self, protocol: str, field: SimulatedField, cc: ControlCentre) -> None:
        self.protocol, self.field, self.cc = protocol, field, cc

    def value(self, point: str) -> float:
        return self.cc.pointdb.get(point).value

    def quality(self, point: str) -> Quality:
        return self.cc.pointdb.get(point).quality


@pytest.fixture(params=PROTOCOLS)
async def setup(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    protocol = request.param
    cfg = parse_config([("test.yaml", config_doc(protocol, ["RTU1"]))])
    field = SimulatedField(cfg)
    await field.start()
    field.set("RTU1.CB", float(DoubleState.ON))
    field.set("RTU1.FPI", 0)
    field.set("RTU1.P", 1.5)
    field.set("RTU1.E", 1000)
    cc = ControlCentre(field.resolved_config())
    await cc.start()
    s = Setup(protocol, field, cc)
    await wait_for(lambda: cc.fep.link_state("RTU1"), 10, "link up")
    # GI brings CB, FPI and P; the counter comes with the counter interrogation that follows.
    initial = {"RTU1.CB": float(DoubleState.ON), "RTU1.FPI": 0.0, "RTU1.P": 1.5, "RTU1.E": 1000.0}
    await wait_for(
        lambda: all(s.value(p) == pytest.approx(v) for p, v in initial.items()), 5, "initial values"
    )
    yield s
    await cc.stop()
    await field.stop()


async def test_values_arrive_with_quality_and_timestamps(setup: Setup) -> None:
    s = setup
    assert s.value("RTU1.CB") == DoubleState.ON
    assert s.value("RTU1.E") == 1000
    assert s.quality("RTU1.P") == Quality.GOOD
    source = time.time() - 0.25
    t0 = time.time()
    s.field.set("RTU1.P", 2.25, source_time=source)
    s.field.set("RTU1.FPI", 1, source_time=source)
    took = await wait_for(
        lambda: s.value("RTU1.FPI") == 1 and s.value("RTU1.P") == pytest.approx(2.25),
        2 * SCAN_S + 2,
        "changed values",
    )
    p = s.cc.pointdb.get("RTU1.P")
    assert p.receive_time is not None and t0 <= p.receive_time <= time.time()
    if s.protocol == "modbus":
        assert p.source_time is None  # Modbus carries no time tag
    else:
        assert p.source_time == pytest.approx(source, abs=0.002)
    assert took < 2 * SCAN_S + 1


async def test_field_quality_is_mapped(setup: Setup) -> None:
    s = setup
    if s.protocol != "modbus":  # Modbus has no quality bits, only a not-available value
        s.field.set("RTU1.P", 3.0, Quality.SUBSTITUTED)
        await wait_for(lambda: Quality.SUBSTITUTED in s.quality("RTU1.P"), 3, "substituted flag")
    s.field.set("RTU1.P", 3.0, Quality.INVALID)
    await wait_for(lambda: Quality.INVALID in s.quality("RTU1.P"), 3, "invalid flag")
    s.field.set("RTU1.P", 3.5)
    await wait_for(lambda: s.quality("RTU1.P") == Quality.GOOD, 3, "good again")
    assert s.value("RTU1.P") == pytest.approx(3.5)


async def test_command_is_confirmed_by_checkback(setup: Setup) -> None:
    s = setup
    result = await s.cc.fep.command("RTU1.CB", 0, operator="op1")
    assert result.status == CommandStatus.CONFIRMED, result
    assert s.field.get("RTU1.CB") == DoubleState.OFF
    assert s.value("RTU1.CB") == DoubleState.OFF
    assert any(
        "op1: RTU1.CB" in e.message and "confirmed" in e.message
        for e in s.cc.events.recent(EventKind.COMMAND)
    )


async def test_refused_and_stuck_commands(setup: Setup) -> None:
    s = setup
    s.field.behaviour("RTU1").refuse = True
    result = await s.cc.fep.command("RTU1.CB", 0)
    assert result.status == CommandStatus.REFUSED and result.reason
    assert s.field.get("RTU1.CB") == DoubleState.ON
    s.field.behaviour("RTU1").refuse = False
    s.field.behaviour("RTU1").stuck = True
    result = await s.cc.fep.command("RTU1.CB", 0)
    assert result.status == CommandStatus.TIMED_OUT and "check-back" in result.reason, result
    result = await s.cc.fep.command("RTU1.P", 1)
    assert result.status == CommandStatus.REFUSED and "no control" in result.reason


async def test_rtu_loss_marks_comm_fail_and_recovery_restores(setup: Setup) -> None:
    s = setup
    await s.field.stop_device("RTU1")
    took = await wait_for(
        lambda: Quality.COMM_FAIL in s.quality("RTU1.P"), 4 * SCAN_S + 2, "comm-fail"
    )
    assert took <= 2 * SCAN_S + 1.0, f"loss detected after {took:.2f} s"
    assert s.value("RTU1.P") == pytest.approx(1.5)  # last value kept
    assert all(Quality.INVALID in s.quality(f"RTU1.{p}") for p in ("CB", "FPI", "P", "E"))
    assert len(s.cc.events.recent(EventKind.LINK_LOST, "RTU1")) == 1
    s.field.set("RTU1.P", 1.75)
    await s.field.start_device("RTU1")
    await wait_for(lambda: s.quality("RTU1.P") == Quality.GOOD, 15, "recovery")
    assert s.value("RTU1.P") == pytest.approx(1.75)
    await wait_for(
        lambda: all(s.quality(f"RTU1.{p}") == Quality.GOOD for p in ("CB", "FPI", "E")),
        5,
        "refresh of every point",
    )
    assert len(s.cc.events.recent(EventKind.LINK_RESTORED, "RTU1")) == 1
    assert len(s.cc.events.recent(EventKind.LINK_LOST, "RTU1")) == 1


async def test_reload_adds_devices_and_keeps_unaffected_points(
    setup: Setup, tmp_path: Path
) -> None:
    s = setup
    doc = config_doc(s.protocol, ["RTU1", "RTU2"])
    doc["devices"][0]["port"] = s.field.devices["RTU1"].port
    field2 = SimulatedField(parse_config([("t.yaml", config_doc(s.protocol, ["RTU2"]))]))
    await field2.start()
    field2.set("RTU2.P", 2.0)
    doc["devices"][1]["port"] = field2.devices["RTU2"].port
    doc["devices"][1]["address"] = 1  # field2 serves RTU2 at link address 1
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(doc))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**doc, "devices": [{**doc["devices"][0], "timeout_s": 99}]}))
    before = s.cc.pointdb.get("RTU1.P")
    try:
        s.cc.config_paths = [bad]
        with pytest.raises(ConfigError, match="timeout_s"):
            await s.cc.reload()
        assert s.cc.fep.link_state("RTU1") and s.cc.pointdb.get("RTU1.P") == before
        s.cc.config_paths = [good]
        report = await s.cc.reload()
        assert report.devices_added == ["RTU2"] and not report.devices_changed
        assert s.cc.pointdb.get("RTU1.P") == before
        await wait_for(lambda: s.value("RTU2.P") == pytest.approx(2.0), 10, "new device's values")
        assert s.cc.fep.link_state("RTU1")
    finally:
        await field2.stop()
