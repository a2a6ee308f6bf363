"""Control safety over a real Modbus link: SBO reservation, tags, interlocks, audit (R-OPS-3)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from protocols.base import CommandStatus, DoubleState
from rig.field import SimulatedField
from scada.config import parse_config
from scada.control import AuditRecord, ControlService, Selection, TagKind
from server.wiring import ControlCentre
from tests.conftest import wait_for
from tests.e2e.test_acquisition import config_doc


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class NoCloseWhenFPI:
    """A test interlock: refuse closing RTU1.CB while the fault indicator is set."""

    name = "fpi"

    def __init__(self, cc: ControlCentre) -> None:
        self.cc = cc

    def check(self, point: str, value: float) -> str | None:
        if point == "RTU1.CB" and value and self.cc.pointdb.get("RTU1.FPI").value == 1:
            return "fault indicator set on RTU1"
        return None


@pytest.fixture
async def control() -> AsyncIterator[
    tuple[ControlService, list[AuditRecord], SimulatedField, Clock]
]:
    field = SimulatedField(parse_config([("t.yaml", config_doc("modbus", ["RTU1"]))]))
    await field.start()
    field.set("RTU1.CB", float(DoubleState.ON))
    field.set("RTU1.FPI", 0)
    cc = ControlCentre(field.resolved_config())
    await cc.start()
    await wait_for(lambda: cc.pointdb.get("RTU1.CB").value == DoubleState.ON, 10, "link")
    audit: list[AuditRecord] = []
    clock = Clock()
    svc = ControlService(cc.fep, audit.append, select_timeout_s=30, clock=clock)
    svc.interlocks.append(NoCloseWhenFPI(cc))
    yield svc, audit, field, clock
    await cc.stop()
    await field.stop()


async def test_select_execute_confirmed_and_audited(control) -> None:
    svc, audit, field, _ = control
    sel = svc.select("RTU1.CB", 0, "alice")
    assert isinstance(sel, Selection)
    other = svc.select("RTU1.CB", 0, "bob")
    assert other.status == CommandStatus.REFUSED and "already selected by alice" in other.reason
    wrong = await svc.execute(sel.id, "bob")
    assert wrong.status == CommandStatus.REFUSED
    result = await svc.execute(sel.id, "alice")
    assert result.status == CommandStatus.CONFIRMED
    assert field.get("RTU1.CB") == DoubleState.OFF
    actions = [(r.operator, r.action, r.result) for r in audit]
    assert ("alice", "select", "selected") in actions
    assert ("alice", "command", "confirmed") in actions
    assert any(a[0] == "bob" and a[2].startswith("refused") for a in actions)


async def test_selection_expires(control) -> None:
    svc, audit, field, clock = control
    sel = svc.select("RTU1.CB", 0, "alice")
    assert isinstance(sel, Selection)
    clock.now += 31
    result = await svc.execute(sel.id, "alice")
    assert result.status == CommandStatus.REFUSED and "expired" in result.reason
    assert field.get("RTU1.CB") == DoubleState.ON
    assert any(r.result == "expired" for r in audit)


async def test_tags_block_commands_until_removed(control) -> None:
    svc, audit, field, _ = control
    tag = svc.place_tag("RTU1", TagKind.DO_NOT_OPERATE, "carol", "crew on site")
    result = await svc.direct("RTU1.CB", 0, "alice")
    assert (
        result.status == CommandStatus.REFUSED
        and "do_not_operate on RTU1 by carol" in result.reason
    )
    assert field.commands == []  # nothing reached the field
    svc.place_tag("RTU1.CB", TagKind.CAUTION, "carol", "check with dispatcher")
    svc.remove_tag(tag.id, "carol")
    assert (await svc.direct("RTU1.CB", 0, "alice")).status == CommandStatus.CONFIRMED
    assert [r.action for r in audit].count("tag") == 2


async def test_interlock_refuses_with_its_reason(control) -> None:
    svc, _, field, _ = control
    await svc.direct("RTU1.CB", 0, "alice")
    field.set("RTU1.FPI", 1)
    await wait_for(lambda: svc.fep.pointdb.get("RTU1.FPI").value == 1, 5, "FPI")
    result = svc.select("RTU1.CB", 1, "alice")
    assert result.status == CommandStatus.REFUSED
    assert result.reason == "interlock fpi: fault indicator set on RTU1"
