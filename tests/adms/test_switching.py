import asyncio
import json

import pytest

from adms.errors import SwitchOrderError
from adms.flisr import locate_fault, plan_flisr, simulate_protection
from adms.switching import (
    OrderExecutor,
    OrderStatus,
    OrderStep,
    SwitchOrder,
    order_from_flisr,
    planned_outage,
    validate_order,
)
from models.network import NetworkModel
from models.topology import TopologyProcessor
from tests.adms.nets import three_feeders
from tests.conftest import wait_for


class Field:
    """A simulated control layer: operates switches in a live topology processor."""

    def __init__(self, model: NetworkModel, stuck: tuple[str, ...] = ()) -> None:
        self.proc = TopologyProcessor(model)
        self.stuck = set(stuck)
        self.calls: list[tuple[str, bool]] = []

    async def operate(self, switch_id: str, close: bool) -> bool:
        self.calls.append((switch_id, close))
        await asyncio.sleep(0)
        if switch_id in self.stuck:
            return False
        self.proc.set_switch(switch_id, close)
        return True


@pytest.fixture
def model():
    return three_feeders()


def errors(issues):
    return [(i.step, i.switch_id) for i in issues if i.severity == "error"]


def test_order_round_trips_through_json(model):
    order = planned_outage(model, ["LC3"], order_id="PO-1")
    again = SwitchOrder.from_json(order.to_json())
    assert again.to_dict() == order.to_dict()
    with pytest.raises(SwitchOrderError):
        OrderStep("toggle", "SC1")
    with pytest.raises(SwitchOrderError):
        OrderStep("open")
    with pytest.raises(SwitchOrderError):
        SwitchOrder.from_dict({"title": "no id", "steps": []})


def test_validation_flags_interruptions_parallels_and_earthing(model):
    order = SwitchOrder(
        "O1",
        "bad",
        [
            OrderStep("open", "SC2"),  # cuts C3, C4 off
            OrderStep("close", "TA"),  # restores C3 via feeder A: no issue
            OrderStep("close", "TB"),  # loop A-C-D through TA/TB
            OrderStep("close", "ES-C2"),  # earths a live bus
            OrderStep("open", "SC1", expect_interruption=True),
            OrderStep("open", "SC1"),  # already open: warning
            OrderStep("open", "NOPE"),
        ],
    )
    issues = validate_order(model, order)
    assert errors(issues) == [(0, "SC2"), (2, "TB"), (3, "ES-C2"), (6, "NOPE")]
    assert [(i.step, i.severity) for i in issues if i.step == 5] == [(5, "warning")]
    assert order.status == OrderStatus.DRAFT
    json.dumps([i.to_dict() for i in issues])


def test_interlock_callbacks_refuse_steps(model):
    def no_breakers(step, state):
        return "feeder breakers are tagged" if step.switch_id.startswith("CB") else None

    order = SwitchOrder("O2", "tagged", [OrderStep("open", "CBA", expect_interruption=True)])
    issues = validate_order(model, order, interlocks=[no_breakers])
    assert [i.message for i in issues] == ["interlock: feeder breakers are tagged"]


def test_flisr_plan_converts_to_a_valid_order(model):
    work = model.copy()
    device, fpis = simulate_protection(work, "LC2")
    work.net.switch.loc[work.net.switch.gis_id == device, "closed"] = False
    plan = plan_flisr(work, locate_fault(work, [device], fpis))
    order = order_from_flisr(plan, order_id="F1")
    assert [s.switch_id for s in order.steps] == [s.switch_id for s in plan.steps]
    assert errors(validate_order(work, order)) == []
    assert order.status == OrderStatus.VALIDATED


def test_planned_outage_transfers_load_through_a_tie_first(model):
    # the section of LC3 holds C3 (and the tie line LTA); C4 moves to feeder D first
    order = planned_outage(model, ["LC3"], order_id="PO-1")
    actions = [(s.action, s.switch_id) for s in order.steps]
    assert actions[:3] == [("close", "TB"), ("open", "SC3"), ("open", "SC2")]
    assert actions[-1] == ("open", "TB")
    assert any(s.action == "confirm" and "portable earths" in s.reason for s in order.steps)
    assert errors(validate_order(model, order)) == []


async def test_planned_outage_isolates_earths_and_restores(model):
    order = planned_outage(model, ["LC2"], order_id="PO-2")
    actions = [(s.action, s.switch_id) for s in order.steps]
    assert actions[:3] == [("open", "SC2"), ("open", "SC1"), ("close", "ES-C2")]
    assert errors(validate_order(model, order)) == []
    live = model.copy()
    field = Field(live)
    seen = {}

    async def confirm(step):
        state = field.proc.state
        seen[step.reason] = (state.is_earthed("C2"), state.is_energised("C2"))
        return True

    executor = OrderExecutor(order, field.operate, confirm=confirm)
    await executor.run()
    assert order.status == OrderStatus.COMPLETED
    work_state = seen["work finished, staff clear, permit returned"]
    assert work_state == (True, False)  # earthed and dead while the crew works
    # back to normal, nobody left off supply
    assert live.net.switch.closed.tolist() == model.net.switch.closed.tolist()
    assert field.proc.state.deenergised_elements(("load",)) == []
    assert len(order.log) == len(order.steps)


async def test_execution_pause_resume_abort_and_failure(model):
    steps = [
        OrderStep("close", "TA", expect_parallel=True),
        OrderStep("open", "SC3"),
        OrderStep("close", "SC3"),
        OrderStep("open", "TA"),
    ]
    field = Field(model.copy())
    order = SwitchOrder("E1", "exercise", list(steps))
    done: list[int] = []
    executor = OrderExecutor(order, field.operate, on_step=lambda i, s, ok: done.append(i))
    executor.pause()
    task = asyncio.create_task(executor.run())
    await wait_for(lambda: order.status == OrderStatus.PAUSED, 5, "paused before the first step")
    assert field.calls == []
    executor.resume()
    await task
    assert order.status == OrderStatus.COMPLETED and done == [0, 1, 2, 3]
    with pytest.raises(SwitchOrderError):
        await executor.run()

    aborted = SwitchOrder("E2", "abort", list(steps))
    ex2 = OrderExecutor(
        aborted,
        Field(model.copy()).operate,
        on_step=lambda i, s, ok: ex2.abort() if i == 1 else None,
    )
    await ex2.run()
    assert aborted.status == OrderStatus.ABORTED and aborted.position == 2

    failing = SwitchOrder("E3", "stuck", list(steps))
    stuck_field = Field(model.copy(), stuck=("SC3",))
    await OrderExecutor(failing, stuck_field.operate).run()
    assert failing.status == OrderStatus.FAILED and failing.position == 1
    assert failing.log[-1]["ok"] is False


async def test_manual_step_waits_for_the_operator(model):
    order = SwitchOrder(
        "M1", "manual", [OrderStep("confirm", None, "check the site"), OrderStep("open", "SC3")]
    )
    field = Field(model.copy())
    executor = OrderExecutor(order, field.operate)
    task = asyncio.create_task(executor.run())
    await wait_for(lambda: order.status == OrderStatus.PAUSED, 5, "waiting at the manual step")
    assert field.calls == []
    executor.resume()
    await task
    assert order.status == OrderStatus.COMPLETED and field.calls == [("SC3", False)]
