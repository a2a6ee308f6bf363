"""The console's ADMS panels against a real control centre over a power-flow rig (baran_wu).

Each test acts through the widgets (buttons clicked with ``qtbot``) and
checks what the console shows and what the rig and the server did:
R-DMS-1 state estimate overlay, R-DMS-3 volt-VAR proposal, R-DMS-4 and
R-DMS-5 a reconfiguration proposal executed step by step then rejected,
R-DMS-2 a FLISR plan approved and executed, R-OPS-3 viewers cannot act.
The tests run in file order on one server; each puts the rig back.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from hmi.app import Console
from hmi.client import ApiError
from hmi.model.adms import Plan, loading_band, voltage_band
from hmi.qt import style
from hmi.qt.diagram import describe
from tests.hmi.conftest import LiveServer, wait_until

#: waits that include power flows and select-before-operate with check-back
ACT_MS = 60_000


def _plan(console: Console, app: str, predicate: Callable[[Plan], bool] = lambda p: True) -> Plan:
    """The newest plan of ``app`` the console holds that satisfies ``predicate``."""
    found = [p for p in console.model.adms.ordered() if p.app == app and predicate(p)]
    if not found:
        raise LookupError(app)
    return max(found, key=lambda p: p.created)


def _has_plan(console: Console, app: str, predicate: Callable[[Plan], bool]) -> bool:
    try:
        _plan(console, app, predicate)
    except LookupError:
        return False
    return True


def _switches(server: LiveServer) -> dict[str, bool]:
    """Every switch position of the rig (closed: True)."""
    grid = server.grid
    assert grid is not None
    return server.call(
        lambda: {gid: grid.topology.is_closed(gid) for gid in grid.model.ids("switch")}
    )


def _restore_normal(server: LiveServer, normal: dict[str, bool]) -> None:
    grid = server.grid
    assert grid is not None

    def restore() -> None:
        grid.clear_fault()
        for gid, closed in normal.items():
            if grid.topology.is_closed(gid) != closed:
                grid.set_switch(gid, closed)

    server.call(restore)
    wait_until(lambda: _switches(server) == normal, 10, "the rig back in its normal state")


def test_a_viewer_sees_the_panel_but_cannot_act(
    open_console: Callable[[str], Console], qtbot: QtBot
) -> None:
    console = open_console("vic")
    panel = console.window.adms
    assert console.window.adms_dock.isVisible()
    for button in (
        panel.estimate_button,
        panel.reconfigure_button,
        panel.voltvar_button,
        panel.approve_button,
        panel.step_button,
        panel.reject_button,
    ):
        assert not button.isEnabled(), button.text()
    assert "operator" in panel.role_note.text()
    # the server refuses a viewer whatever the console shows
    with pytest.raises(ApiError) as refused:
        console.client.call("POST", "/api/adms/reconfigure")
    assert refused.value.reply.status == 403
    qtbot.waitUntil(lambda: console.model.adms.estimate is not None, timeout=ACT_MS)


def test_estimate_now_overlays_voltages_and_loadings_on_the_diagram(
    open_console: Callable[[str], Console], qtbot: QtBot
) -> None:
    console = open_console("olga")
    window = console.window
    panel, scene = window.adms, window.diagram.scene

    def converged() -> bool:
        e = console.model.adms.estimate
        if e is not None and e.converged and e.buses:
            return True
        if panel.estimate_button.isEnabled():  # not in flight: ask (again) for one now
            qtbot.mouseClick(panel.estimate_button, Qt.MouseButton.LeftButton)
        return False

    qtbot.waitUntil(converged, timeout=ACT_MS)
    estimate = console.model.adms.estimate
    assert estimate is not None
    assert f"estimate #{estimate.id}" in panel.estimate_label.text()
    window.diagram.overlay_box.setChecked(True)
    bus = next(gid for gid in ("B17", "B32", "B5") if gid in estimate.buses)
    vm = estimate.buses[bus].vm_pu
    assert 0.85 < vm < 1.1
    assert scene.style_of(bus).colour == style.VOLTAGE_COLOURS[voltage_band(vm)]
    line = next(g for g, f in estimate.branches.items() if f.loading_percent is not None)
    loading = estimate.branches[line].loading_percent
    assert loading is not None
    assert scene.style_of(line).colour == style.LOADING_COLOURS[loading_band(loading)]
    assert f"{vm:.4f} pu" in describe(console.model, bus)
    assert "loading" in window.diagram.legend.text()


def test_volt_var_proposal_shows_before_and_after_and_is_rejected(
    open_console: Callable[[str], Console], qtbot: QtBot
) -> None:
    console = open_console("olga")
    panel = console.window.adms
    panel.objective_box.setCurrentText("cvr")
    qtbot.mouseClick(panel.voltvar_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _has_plan(console, "voltvar", lambda p: p.open), timeout=ACT_MS)
    plan = _plan(console, "voltvar", lambda p: p.open)
    qtbot.waitUntil(lambda: panel.selected_id == plan.id, timeout=5_000)
    names = [panel.figures.item(r, 0).text() for r in range(panel.figures.rowCount())]
    assert "demand (kW)" in names and "loss (kW)" in names
    assert panel.reject_button.isEnabled()
    assert panel.approve_button.isEnabled() == bool(plan.steps)
    panel.reason_edit.setText("not now")
    qtbot.mouseClick(panel.reject_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: console.model.adms.plans[plan.id].state == "rejected", timeout=ACT_MS)
    assert not panel.reject_button.isEnabled()
    assert "rejected" in panel.table_model.data(
        panel.table_model.index(panel.table_model.row_of(plan.id) or 0, 2)
    )


def test_reconfiguration_executed_step_by_step_then_rejected(
    open_console: Callable[[str], Console], server: LiveServer, qtbot: QtBot
) -> None:
    console = open_console("olga")
    panel = console.window.adms
    normal = _switches(server)
    try:
        qtbot.mouseClick(panel.reconfigure_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(
            lambda: _has_plan(console, "reconfiguration", lambda p: p.state == "proposed"),
            timeout=ACT_MS,
        )
        plan = _plan(console, "reconfiguration", lambda p: p.state == "proposed")
        assert len(plan.steps) >= 2, plan.summary  # baran_wu's ties are not its best
        qtbot.waitUntil(lambda: panel.selected_id == plan.id, timeout=5_000)
        loss = next(f for f in plan.figures() if f.name == "loss")
        assert loss.after < loss.before
        assert panel.steps.rowCount() == len(plan.steps)

        first = plan.steps[0]
        qtbot.mouseClick(panel.step_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(
            lambda: console.model.adms.plans[plan.id].steps[0].state == "done", timeout=ACT_MS
        )
        wait_until(
            lambda: _switches(server)[first.element] == (first.action == "close"),
            10,
            f"{first.element} {first.action} at the rig",
        )
        qtbot.waitUntil(lambda: panel.progress.value() == 1, timeout=10_000)
        assert panel.steps.item(0, 3).text() == "done"
        qtbot.waitUntil(panel.reject_button.isEnabled, timeout=10_000)
        assert panel.approve_button.isEnabled()  # the rest could be approved at once
        qtbot.mouseClick(panel.reject_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(
            lambda: console.model.adms.plans[plan.id].state == "rejected", timeout=ACT_MS
        )
        after = console.model.adms.plans[plan.id]
        assert [s.state for s in after.steps[1:]] == ["skipped"] * (len(after.steps) - 1)
        assert not (panel.step_button.isEnabled() or panel.approve_button.isEnabled())
    finally:
        _restore_normal(server, normal)


def test_flisr_plan_is_proposed_approved_and_restores_supply(
    open_console: Callable[[str], Console], server: LiveServer, qtbot: QtBot
) -> None:
    console = open_console("olga")
    panel = console.window.adms
    grid = server.grid
    assert grid is not None
    normal = _switches(server)
    proposed: list[str] = []
    panel.planProposed.connect(proposed.append)
    try:
        report = server.call(lambda: grid.inject_fault("L9"))
        assert report.protection is not None
        qtbot.waitUntil(
            lambda: _has_plan(console, "flisr", lambda p: p.state == "proposed"), timeout=ACT_MS
        )
        plan = _plan(console, "flisr", lambda p: p.state == "proposed")
        qtbot.waitUntil(lambda: plan.id in proposed, timeout=5_000)
        panel.select(plan.id)
        assert panel.approve_button.isEnabled() and plan.steps
        facts = dict(plan.facts())
        assert "customers restored" in facts
        qtbot.mouseClick(panel.approve_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(
            lambda: console.model.adms.plans[plan.id].state in ("done", "failed"), timeout=ACT_MS
        )
        done = console.model.adms.plans[plan.id]
        assert done.state == "done", done.describe_state()
        assert done.approved_by == "olga"
        qtbot.waitUntil(lambda: panel.progress.value() == panel.progress.maximum(), timeout=10_000)
        # the protection that locked out is closed again and the faulted line is dead
        wait_until(lambda: _switches(server)[report.protection] is True, 10, "protection closed")
        assert server.call(lambda: not grid.topology.state.is_energised("L9"))
    finally:
        _restore_normal(server, normal)
