"""The console's ADMS model and panels, driven by JSON shaped like ``/api/adms`` (no server).

R-DMS-1 (state estimate overlay), R-DMS-2 (FLISR plan approve/reject),
R-DMS-3/4 (volt-VAR and reconfiguration proposals), R-DMS-5 (switch order
step by step), R-OPS-3 (viewers cannot act). The same panels against a real
control centre: ``test_adms_live.py``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from hmi.client import ConsoleClient
from hmi.model import ConnectionState, ConsoleModel, Session, Updates
from hmi.model.adms import AdmsStore, Plan, loading_band, voltage_band
from hmi.qt import style
from hmi.qt.adms import AdmsPanel
from hmi.qt.diagram import DiagramPanel, describe
from tests.hmi.conftest import collection


def estimate(i: int, vm: float = 1.0, loading: float | None = 40.0, **kw: Any) -> dict[str, Any]:
    """A result shaped as ``GET /api/adms/estimate`` answers, over baran_wu's buses and lines."""
    e: dict[str, Any] = {
        "id": i,
        "time": 1000.0 + i,
        "trigger": "periodic",
        "converged": True,
        "iterations": 3,
        "elapsed_ms": 12.5,
        "buses": {f"B{b}": {"vm_pu": vm - 0.002 * b, "va_degree": -0.1 * b} for b in range(33)},
        "branches": {
            f"L{n}": {"p_from_mw": 1.0, "q_from_mvar": 0.2, "loading_percent": loading}
            for n in range(37)
        },
        "chi2": {"value": 10.0, "threshold": 40.0, "passed": True},
        "bad_data": [],
        "excluded": [],
        "unobservable": [],
        "error": None,
    }
    e.update(kw)
    return e


def plan(
    pid: str = "P1", state: str = "proposed", updated: float = 10.0, **kw: Any
) -> dict[str, Any]:
    """A FLISR plan shaped as ``GET /api/adms/plans/{id}`` answers."""
    p: dict[str, Any] = {
        "id": pid,
        "app": "flisr",
        "state": state,
        "mode": "advisory",
        "created": 5.0,
        "updated": updated,
        "title": "FLISR: fault on L9",
        "summary": "fault on L9: isolate 2, restore 1 (12 customers)",
        "details": {
            "located_section": ["L9", "B9"],
            "customers_restored": 12,
            "customers_left_out": 3,
            "loss_kw_before": 200.0,
            "loss_kw_after": 180.0,
            "feeder_loading_before": {"F1": 50.0, "F2": 20.0},
            "feeder_loading_after": {"F1": 30.0, "F2": 41.0},
            "open_switches_before": ["TIE1"],
            "open_switches_after": ["SW3", "SW4"],
            "location": {"lines": ["L9"], "candidates": [{"bus": "B9", "score": 0.9}]},
            "replans": [],
        },
        "steps": [
            step(1, "SW3", "open"),
            step(2, "SW4", "open"),
            step(3, "TIE1", "close"),
        ],
        "approved_by": None,
    }
    p.update(kw)
    return p


def step(
    i: int, element: str, action: str, state: str = "pending", message: str = ""
) -> dict[str, Any]:
    return {
        "index": i,
        "element": element,
        "point": f"FR-{element}.SW",
        "action": action,
        "value": None,
        "state": state,
        "message": message,
        "reason": f"{action} {element}",
    }


# ----------------------------------------------------------------- model
def test_bands_cover_every_value() -> None:
    assert [voltage_band(v) for v in (0.9, 0.96, 1.0, 1.04, 1.1)] == [
        "under",
        "low",
        "normal",
        "high",
        "over",
    ]
    assert [loading_band(v) for v in (10, 60, 90, 130)] == ["light", "medium", "heavy", "overload"]
    assert set(style.VOLTAGE_COLOURS) == {"under", "low", "normal", "high", "over"}
    assert set(style.LOADING_COLOURS) == {"light", "medium", "heavy", "overload"}


def test_store_keeps_the_newest_estimate_and_plan_whatever_the_arrival_order() -> None:
    store = AdmsStore()
    seen_estimates: list[int | None] = []
    seen_plans: list[frozenset[str]] = []
    store.estimate_changed.connect(lambda e: seen_estimates.append(e.id if e else None))
    store.plans_changed.connect(seen_plans.append)
    # the snapshot brings a summary (no buses); the GET reply of the same id brings them
    summary = {k: v for k, v in estimate(4).items() if k not in ("buses", "branches")}
    store.reset({"estimate": summary, "plans": [plan("P1", "executing", 20.0)]})
    assert store.estimate is not None and store.estimate.partial
    store.set_estimate(estimate(4))
    assert store.estimate is not None and not store.estimate.partial
    store.set_estimate(estimate(3))  # a late reply: older, ignored
    assert store.estimate.id == 4
    # a late plan list holds the plan as it was before the push
    store.set_plans([plan("P1", "proposed", 10.0), plan("P0", "done", 2.0, created=1.0)])
    assert store.plans["P1"].state == "executing"
    assert [p.id for p in store.ordered()] == ["P1", "P0"]
    # pushed items in one batch: one event each
    store.apply(
        [
            {"estimate": estimate(5)},
            {"plan": plan("P1", "executing", 21.0)},
            {"estimate": estimate(6)},
            {"plan": plan("P1", "done", 22.0)},
        ]
    )
    assert store.estimate.id == 6 and store.plans["P1"].state == "done"
    assert seen_estimates == [4, 4, 6]
    assert seen_plans == [frozenset({"P1"}), frozenset({"P0"}), frozenset({"P1"})]
    # a restarted server counts from 1 again: its snapshot is taken as it is
    store.reset({"estimate": estimate(1), "plans": []})
    assert store.estimate.id == 1


def test_updates_carry_adms_items_into_the_console_model() -> None:
    model = ConsoleModel()
    updates = Updates()
    updates.merge(
        {
            "type": "snapshot",
            "points": [],
            "alarms": [],
            "topology": None,
            "adms": {"estimate": None, "plans": [plan()]},
        }
    )
    updates.merge({"type": "changes", "points": [], "adms": [{"estimate": estimate(1)}]})
    updates.merge({"type": "changes", "points": [], "adms": [{"plan": plan(updated=11.0)}]})
    assert updates and len(updates.adms) == 2
    model.apply(updates)
    assert model.adms.estimate is not None and model.adms.estimate.id == 1
    assert model.adms.plans["P1"].updated == 11.0
    with pytest.raises(ValueError, match="plan P9: bad field"):
        model.adms.set_plan({"id": "P9", "state": "proposed"})


def test_plan_answers_what_may_be_done_and_the_figures() -> None:
    p = Plan.from_json(plan())
    assert (p.can_approve(), p.can_step(), p.can_reject()) == (True, True, True)
    assert p.next_step is not None and p.next_step.describe() == "open SW3"
    figures = {(f.name, f.unit): (f.before, f.after) for f in p.figures()}
    assert figures == {
        ("loss", "kW"): (200.0, 180.0),
        ("feeder loading F1", ""): (50.0, 30.0),
        ("feeder loading F2", ""): (20.0, 41.0),
    }
    assert dict(p.facts()) == {
        "located section": "L9, B9",
        "customers restored": "12",
        "customers left out": "3",
        "open switches": "TIE1 -> SW3, SW4",
    }
    running = Plan.from_json(
        plan(
            state="executing",
            steps=[step(1, "SW3", "open", "done"), step(2, "SW4", "open", "executing")],
        )
    )
    assert (running.can_approve(), running.can_step(), running.can_reject()) == (
        False,
        False,
        False,
    )
    assert running.progress == (1, 2)
    # stepped once by hand (the server keeps it executing): the rest may be approved
    stepped = Plan.from_json(
        plan(
            state="executing",
            steps=[step(1, "SW3", "open", "done"), step(2, "SW4", "open")],
        )
    )
    assert (stepped.can_approve(), stepped.can_step(), stepped.can_reject()) == (True, True, True)
    failed = Plan.from_json(
        plan(state="failed", steps=[step(1, "SW3", "open", "failed", "no check-back")])
    )
    assert not (failed.can_step() or failed.can_reject())
    assert failed.describe_state() == "failed at step 1: no check-back"


def test_feeder_head_points_are_the_heads_active_power() -> None:
    model = ConsoleModel()
    fc = collection("baran_wu")
    fc["pyadms"]["feeder_heads"] = {"SS1-F1": "CB1"}
    fc["pyadms"]["bindings"] = {
        "CB1": [{"point": "SS1.F1.CB", "table": "switch", "qualifier": None}],
        "L0": [
            {"point": "SS1.F1.I", "table": "line", "qualifier": "from"},
            {"point": "SS1.F1.P", "table": "line", "qualifier": "from"},
        ],
    }
    model.set_network(fc)
    points = [
        {
            "name": n,
            "device": "SS1",
            "kind": k,
            "unit": u,
            "description": "",
            "controllable": k == "double",
            "value": 1.0,
            "quality": 0,
            "quality_flags": [],
            "source_time": None,
            "receive_time": 1.0,
        }
        for n, k, u in (
            ("SS1.F1.CB", "double", ""),
            ("SS1.F1.I", "analog", "A"),
            ("SS1.F1.P", "analog", "MW"),
        )
    ]
    model.apply(Updates(snapshot={"points": points, "alarms": []}))
    assert model.feeder_head_points() == ["SS1.F1.P"]
    assert model.feeder_head_points(units=("A",)) == ["SS1.F1.I"]


# --------------------------------------------------------------- widgets
def test_estimate_overlay_colours_by_voltage_and_loading_with_legend_and_tooltips(
    qtbot: QtBot,
) -> None:
    model = ConsoleModel()
    panel = DiagramPanel(model)
    qtbot.addWidget(panel)
    model.set_network(collection("baran_wu"))
    scene = panel.scene
    feeder_colour = scene.style_of("L10").colour
    model.adms.set_estimate(estimate(1, vm=1.0, loading=90.0))
    assert scene.style_of("L10").colour == feeder_colour  # the overlay is off
    assert "1.0000 pu" in describe(model, "B0") and "loading" in describe(model, "L10")

    panel.overlay_box.setChecked(True)
    assert scene.estimate_overlay
    assert scene.style_of("B0").colour == style.VOLTAGE_COLOURS["normal"]
    assert scene.style_of("B20").colour == style.VOLTAGE_COLOURS["low"]  # 1.0 - 0.04
    assert scene.style_of("B32").colour == style.VOLTAGE_COLOURS["under"]  # 1.0 - 0.064
    assert scene.style_of("L10").colour == style.LOADING_COLOURS["heavy"]
    assert scene.symbols.symbols["B20"].colour == style.VOLTAGE_COLOURS["low"]
    assert "estimate #1" in panel.legend.text() and "80-100 %" in panel.legend.text()
    # a new estimate recolours; de-energised stays grey whatever the estimate says
    model.adms.apply([{"estimate": estimate(2, vm=1.08, loading=130.0)}])
    assert scene.style_of("B0").colour == style.VOLTAGE_COLOURS["over"]
    assert scene.lines.keys["L10"][0] == style.LOADING_COLOURS["overload"]
    model.topology.reset(
        {
            "version": 1,
            "elements": {
                "L10": {"energised": False, "earthed": False, "feeder": None},
                "L11": {"energised": True, "earthed": False, "feeder": "SS1-F1"},
            },
        }
    )
    assert scene.style_of("L10").colour == style.DEENERGISED
    # an estimate with an error leaves the chosen colouring, and the legend says why
    model.adms.apply([{"estimate": estimate(3, buses={}, branches={}, error="not observable: B7")}])
    assert scene.style_of("L11").colour == feeder_colour
    assert "not observable: B7" in panel.legend.text()
    panel.overlay_box.setChecked(False)
    assert "SS1-F1" in panel.legend.text()


def _panel(qtbot: QtBot, role: str) -> tuple[ConsoleModel, AdmsPanel, ConsoleClient]:
    model = ConsoleModel()
    client = ConsoleClient("http://127.0.0.1:9")  # never asked here
    panel = AdmsPanel(model, client)
    qtbot.addWidget(panel)
    model.set_session(Session(client.server_url, "x", role))
    model.set_connection(ConnectionState.CONNECTED)
    return model, panel, client


def test_plan_panel_follows_pushed_progress_and_shows_a_failed_step(qtbot: QtBot) -> None:
    model, panel, client = _panel(qtbot, "operator")
    try:
        proposed: list[str] = []
        panel.planProposed.connect(proposed.append)
        model.adms.apply([{"plan": plan()}])
        assert proposed == ["P1"] and panel.selected_id == "P1"
        assert panel.table_model.rowCount() == 1
        assert panel.pages.currentWidget() is panel.steps  # a FLISR plan opens on its steps
        assert panel.figures.rowCount() == 3 and panel.facts.rowCount() == 4
        assert panel.figures.item(0, 3).text() == "-20 (-10.0 %)"
        assert panel.steps.rowCount() == 3
        assert panel.steps.item(0, 3).text() == "pending"
        assert panel.approve_button.isEnabled() and panel.step_button.isEnabled()
        assert panel.reject_button.isEnabled() and panel.role_note.text() == ""

        running = plan(state="executing", updated=11.0)
        running["steps"][0]["state"] = "done"
        running["steps"][1]["state"] = "executing"
        model.adms.apply([{"plan": running}])
        assert (panel.progress.value(), panel.progress.maximum()) == (1, 3)
        assert panel.steps.item(1, 3).text() == "executing"
        assert not panel.step_button.isEnabled() and not panel.approve_button.isEnabled()

        failed = copy.deepcopy(running)
        failed.update(state="failed", updated=12.0)
        failed["steps"][1].update(state="failed", message="check-back timed out")
        model.adms.apply([{"plan": failed}])
        assert panel.outcome[1] == "#ff3b3b" and "check-back timed out" in panel.outcome[0]
        assert not panel.reject_button.isEnabled()
        elements: list[str] = []
        panel.elementSelected.connect(elements.append)
        panel.steps.cellDoubleClicked.emit(1, 0)
        assert elements == ["SW4"]
        # a new proposal replaces the closed plan in view, not an open one
        model.adms.apply([{"plan": plan("P2", created=6.0, updated=13.0)}])
        assert panel.selected_id == "P2" and proposed == ["P1", "P2"]
        model.adms.apply([{"plan": plan("P3", created=7.0, updated=14.0)}])
        assert panel.selected_id == "P2" and proposed == ["P1", "P2", "P3"]
        assert [p.id for p in panel.table_model.rows] == ["P3", "P2", "P1"]
    finally:
        client.close()


def test_viewer_sees_plans_but_every_act_is_disabled(qtbot: QtBot) -> None:
    model, panel, client = _panel(qtbot, "viewer")
    try:
        model.adms.apply([{"plan": plan()}, {"estimate": estimate(1)}])
        assert panel.selected_id == "P1" and panel.steps.rowCount() == 3
        for button in (
            panel.approve_button,
            panel.step_button,
            panel.reject_button,
            panel.estimate_button,
            panel.reconfigure_button,
            panel.voltvar_button,
        ):
            assert not button.isEnabled(), button.text()
        assert "operator" in panel.role_note.text()
        assert "estimate #1" in panel.estimate_label.text()
        model.set_connection(ConnectionState.DISCONNECTED)
        assert "out of date" in panel.estimate_label.text()
    finally:
        client.close()


def test_a_refused_act_is_shown_to_the_operator(qtbot: QtBot) -> None:
    """Nothing listens on the client's address: the request fails on the worker, shown in red."""
    model, panel, client = _panel(qtbot, "operator")
    try:
        model.adms.apply([{"plan": plan()}])
        messages: list[str] = []
        panel.message.connect(messages.append)
        panel.approve()
        assert "P1" in panel.busy and not panel.approve_button.isEnabled()
        qtbot.waitUntil(lambda: bool(messages), timeout=20_000)
        assert "approve P1: refused: no answer" in messages[0]
        assert panel.outcome[1] == "#ff3b3b" and panel.approve_button.isEnabled()
        assert panel.outcome_label.text() == messages[0]
        assert (
            panel.table_model.data(panel.table_model.index(0, 0), Qt.ItemDataRole.UserRole) == "P1"
        )
    finally:
        client.close()


def test_an_estimate_with_gaps_reads_and_summarises() -> None:
    """The server sends None for what the estimator could not resolve, and extra fields."""
    e = estimate(7, chi2={"value": None, "threshold": None, "passed": None}, counts={"v": 3})
    e["buses"]["B5"] = {"vm_pu": None, "va_degree": None, "status": "unobservable"}
    e["branches"]["L5"] = {"p_from_mw": None, "q_from_mvar": None, "loading_percent": None}
    store = AdmsStore()
    got = store.set_estimate(e)
    assert got is not None and "B5" not in got.buses and "B4" in got.buses
    assert got.branches["L5"].loading_percent is None
    text = got.summary(now=got.time + 3)
    assert text.startswith("estimate #7 at ") and "3 s ago" in text and "chi2" not in text
    failed = store.set_estimate(estimate(8, buses={}, branches={}, error="not observable"))
    assert failed is not None and failed.summary().endswith(": not observable")
