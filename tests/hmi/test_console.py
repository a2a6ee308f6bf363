"""The console against a real control centre over a power-flow rig (baran_wu, IEC 104 FRTUs).

Each test opens a console (model + API client + main window) as a user,
acts through the widgets, and checks both what the console shows and what
the server recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from hmi.app import Console
from hmi.client import ConsoleClient
from hmi.model import ConnectionState
from hmi.qt import style
from hmi.qt.login import LoginDialog
from tests.hmi.conftest import PASSWORDS, LiveServer, wait_until

OPEN, CLOSED = 1.0, 2.0  # double-point states


def test_network_and_live_values_arrive(
    open_console: Callable[[str], Console], server: LiveServer
) -> None:
    console = open_console("olga")
    model = console.model
    assert model.network is not None and model.network.name == "baran_wu"
    scene = console.window.diagram.scene
    assert scene.element_ids() == set(model.network.elements)
    assert model.network.status_point("SW3") == "FR-SW3.SW"
    assert model.points.get("FR-SW3.SW").value == CLOSED  # type: ignore[union-attr]
    assert scene.symbols.symbols["SW3"].telemetered and scene.symbols.symbols["SW3"].closed
    server_view = server.call(lambda: server.service.view())  # type: ignore[union-attr]
    assert {k: v["energised"] for k, v in server_view["elements"].items()} == {
        k: v.energised for k, v in model.topology.elements.items()
    }


def test_switch_opened_in_the_field_deenergises_its_downstream_section(
    open_console: Callable[[str], Console], server: LiveServer, qtbot: QtBot
) -> None:
    console = open_console("olga")
    scene = console.window.diagram.scene
    assert scene.style_of("L8").colour != style.DEENERGISED
    server.call(lambda: server.grid.set_switch("SW3", False))  # type: ignore[union-attr]
    try:
        dead = server.call(
            lambda: {
                gid
                for gid in server.grid.model.ids("line")  # type: ignore[union-attr]
                if not server.grid.topology.state.is_energised(gid)  # type: ignore[union-attr]
            }
        )
        assert len(dead) >= 10  # everything behind SW3 on baran_wu's main feeder
        qtbot.waitUntil(lambda: console.model.switch_view("SW3").closed is False, timeout=10_000)
        qtbot.waitUntil(
            lambda: all(scene.style_of(gid).colour == style.DEENERGISED for gid in dead),
            timeout=10_000,
        )
        assert scene.symbols.symbols["SW3"].closed is False
        live = set(scene.lines.paths) - dead
        assert all(scene.style_of(gid).colour != style.DEENERGISED for gid in live)
        assert console.model.customers_off() > 0
    finally:
        server.call(lambda: server.grid.set_switch("SW3", True))  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: scene.style_of("L8").colour != style.DEENERGISED, timeout=10_000)


def test_alarm_arrives_and_is_acknowledged_from_the_list(
    open_console: Callable[[str], Console], server: LiveServer, qtbot: QtBot
) -> None:
    console = open_console("olga")
    summary = console.window.alarms
    server.run(server.grid.field.stop_device("FR-SW7"))  # type: ignore[union-attr]
    try:

        def row() -> int:
            rows = summary.table_model.rows
            return next(
                (
                    i
                    for i, a in enumerate(rows)
                    if a.device == "FR-SW7" and a.condition == "comm" and not a.acknowledged
                ),
                -1,
            )

        qtbot.waitUntil(lambda: row() >= 0, timeout=10_000)
        alarm = summary.table_model.rows[row()]
        assert (
            "FR-SW7"
            in console.window.banner.lines[0].text()
            + console.window.banner.lines[1].text()
            + console.window.banner.lines[2].text()
        )
        summary.table.selectRow(row())
        qtbot.mouseClick(summary.ack_selected, Qt.MouseButton.LeftButton)
        wait_until(
            lambda: server.call(lambda: server.cc.alarms.get(alarm.id).ack_operator) == "olga",  # type: ignore[union-attr]
            10,
            "the server's alarm acknowledged by olga",
        )
        wait_until(
            lambda: any(
                h.transition == "acknowledged" and h.operator == "olga"
                for h in server.call(lambda: server.cc.historian.alarm_history(alarm_id=alarm.id))  # type: ignore[union-attr]
            ),
            10,
            "the acknowledgement in the historian",
        )
        qtbot.waitUntil(lambda: console.model.alarms.alarms[alarm.id].acknowledged, timeout=5_000)
        assert "acknowledged" in summary.result.text()
    finally:
        server.run(server.grid.field.start_device("FR-SW7"))  # type: ignore[union-attr]


def test_sbo_from_the_dialog_operates_the_rigs_switch(
    open_console: Callable[[str], Console], server: LiveServer, qtbot: QtBot
) -> None:
    console = open_console("olga")
    grid = server.grid
    assert grid is not None

    def operate(value: float, closed: bool) -> None:
        dialog = console.window.open_control("FR-SW5.SW")
        (dialog.close_button if closed else dialog.open_button).setChecked(True)
        qtbot.mouseClick(dialog.select_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.outcome == "selected", timeout=10_000)
        assert dialog.execute_button.isEnabled() and not dialog.select_button.isEnabled()
        qtbot.mouseClick(dialog.execute_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.outcome not in ("selected", ""), timeout=15_000)
        assert dialog.outcome == "confirmed", dialog.outcome_label.text()
        assert server.call(lambda: grid.topology.is_closed("SW5")) is closed
        point = console.model.points.points["FR-SW5.SW"]
        qtbot.waitUntil(lambda: point.value == value, timeout=5_000)
        symbols = console.window.diagram.scene.symbols.symbols
        qtbot.waitUntil(lambda: symbols["SW5"].closed is closed, timeout=5_000)
        dialog.close()

    operate(OPEN, False)
    operate(CLOSED, True)
    trail = server.call(lambda: server.cc.historian.audit_trail(user="olga"))  # type: ignore[union-attr]
    assert {"select", "command"} <= {r.action for r in trail}


def test_tag_blocks_the_command_and_substitution_shows_on_the_value(
    open_console: Callable[[str], Console], server: LiveServer, qtbot: QtBot
) -> None:
    console = open_console("olga")
    dialog = console.window.open_control("FR-SW6.SW")
    dialog.tag_kind.setCurrentText("do_not_operate")
    dialog.tag_reason.setText("crew on site")
    qtbot.mouseClick(dialog.tag_point, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.tag_list.count() == 1, timeout=10_000)
    qtbot.waitUntil(
        lambda: console.window.diagram.scene.symbols.symbols["SW6"].tag == "do_not_operate",
        timeout=5_000,
    )
    dialog.open_button.setChecked(True)
    qtbot.mouseClick(dialog.select_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.outcome == "refused", timeout=10_000)
    assert "tag" in dialog.outcome_label.text().lower()
    dialog.tag_list.setCurrentRow(0)
    qtbot.mouseClick(dialog.untag, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.tag_list.count() == 0, timeout=10_000)
    assert server.call(lambda: server.cc.control.tags("FR-SW6.SW")) == []  # type: ignore[union-attr]
    dialog.close()

    analog = console.window.open_control("FR-SW6.I")
    current = console.model.points.points["FR-SW6.I"]
    analog.subst_value.setValue(123.0)
    qtbot.mouseClick(analog.substitute_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "substituted" in current.flags, timeout=10_000)
    assert current.value == 123.0
    assert console.model.points.marks("FR-SW6.I") == "S"
    qtbot.mouseClick(analog.unsubstitute_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "substituted" not in current.flags, timeout=10_000)
    analog.close()


def test_a_viewer_cannot_command(
    open_console: Callable[[str], Console], server: LiveServer
) -> None:
    console = open_console("vic")
    assert console.model.session is not None and console.model.session.role == "viewer"
    dialog = console.window.open_control("FR-SW5.SW")
    buttons = (
        dialog.select_button,
        dialog.execute_button,
        dialog.cancel_button,
        dialog.tag_point,
        dialog.tag_device,
        dialog.substitute_button,
        dialog.unsubstitute_button,
    )
    assert not any(b.isEnabled() for b in buttons)
    assert "viewing only" in dialog.role_note.text()
    dialog.select()  # even when called directly, nothing is sent
    assert dialog.outcome == ""
    trail = server.call(lambda: server.cc.historian.audit_trail(user="vic"))  # type: ignore[union-attr]
    assert [r.action for r in trail] == ["login"]  # no select, not even a refused one
    summary = console.window.alarms
    assert not summary.ack_selected.isEnabled() and not summary.ack_page.isEnabled()
    dialog.close()


def test_drop_shows_disconnected_and_stale_then_reconnects(
    open_console: Callable[[str], Console], server: LiveServer, qtbot: QtBot
) -> None:
    console = open_console("olga")
    window = console.window
    server.run(server.stop_api())
    try:
        qtbot.waitUntil(
            lambda: console.model.connection == ConnectionState.DISCONNECTED, timeout=10_000
        )
        assert "DISCONNECTED" in window.connection.text() and "DISCONNECTED" in window.windowTitle()
        assert all(console.model.points.is_stale(n) for n in console.model.points.points)
        assert window.diagram.scene.symbols.symbols["SW3"].severity == "stale"
        assert "stale" in window.points.table_model.data(window.points.table_model.index(0, 3))
    finally:
        server.run(server.start_api())
    qtbot.waitUntil(lambda: console.model.connection == ConnectionState.CONNECTED, timeout=15_000)
    assert not console.model.points.is_stale("FR-SW3.SW")
    assert window.diagram.scene.symbols.symbols["SW3"].severity is None


def test_events_soe_trends_and_tables_query_the_api(
    open_console: Callable[[str], Console], server: LiveServer, qtbot: QtBot
) -> None:
    console = open_console("olga")
    window = console.window
    server.call(lambda: server.grid.set_switch("SW9", False))  # type: ignore[union-attr]
    server.call(lambda: server.grid.set_switch("SW9", True))  # type: ignore[union-attr]
    events = window.events

    def soe_shows(point: str) -> bool:
        cells = (events.soe.item(r, 3) for r in range(events.soe.rowCount()))
        return any(cell is not None and cell.text() == point for cell in cells)

    events.tabs.setCurrentIndex(1)  # SOE
    deadline = time.monotonic() + 10
    while not soe_shows("FR-SW9.SW"):  # the historian writes in batches: query until it is there
        assert time.monotonic() < deadline, "SOE of FR-SW9.SW not listed within 10 s"
        events.refresh()
        qtbot.wait(300)
    events.tabs.setCurrentIndex(0)
    qtbot.waitUntil(lambda: events.events.rowCount() > 0, timeout=10_000)

    # the diagram, the alarm list and the trends are all in view at once
    for widget in (window.diagram, window.alarms, window.trends, window.adms):
        assert widget.isVisible() and not widget.visibleRegion().isEmpty()
    trends = window.trends
    assert trends.add_point("SS1.F1.P") and trends.add_point("FR-SW1.I")
    qtbot.waitUntil(lambda: trends.sample_count("SS1.F1.P") >= 3, timeout=10_000)
    xs, ys = trends.data("SS1.F1.P")
    readout = trends.readout_at(xs[-1])
    assert "SS1.F1.P = " in readout and "FR-SW1.I = " in readout

    window.tabs.setCurrentWidget(window.breakers)
    # the table holds GET /api/breakers (the historian's breakers: elements "breaker:...")
    qtbot.waitUntil(lambda: " breakers, " in window.breakers.note.text(), timeout=10_000)
    window.tabs.setCurrentWidget(window.reliability)
    window.reliability.refresh()
    qtbot.waitUntil(lambda: window.reliability.indices.rowCount() == 1, timeout=10_000)

    window.points.show_device("FR-SW1")
    names = [p.name for p in window.points.table_model.rows]
    assert names == sorted(n for n in console.model.points.points if n.startswith("FR-SW1."))

    box = window.show_properties("SW1")
    assert box is not None and "normal_open" in box.text()


def test_login_dialog_refuses_then_grants_the_role(qtbot: QtBot, server: LiveServer) -> None:
    client = ConsoleClient(server.url)
    try:
        dialog = LoginDialog(client, "vic")
        qtbot.addWidget(dialog)
        dialog.password.setText("wrong-password")
        dialog.submit()
        qtbot.waitUntil(lambda: "refused" in dialog.status.text(), timeout=10_000)
        assert dialog.session is None and dialog.password.text() == ""
        dialog.password.setText(PASSWORDS["vic"])
        with qtbot.waitSignal(dialog.accepted, timeout=10_000):
            dialog.submit()
        assert dialog.session is not None and dialog.session.role == "viewer"
        assert not dialog.session.can_command
    finally:
        client.close()


def test_an_ended_session_logs_in_again(
    open_console: Callable[[str], Console], server: LiveServer, qtbot: QtBot
) -> None:
    console = open_console("olga")
    sessions = server.api.app.state.ctx.sessions  # type: ignore[union-attr]
    token = console.client._token
    server.call(lambda: sessions.revoke_user("olga"))
    # the push channel is closed (1008), the client logs in again and reconnects
    qtbot.waitUntil(lambda: console.client._token != token, timeout=10_000)
    qtbot.waitUntil(lambda: console.model.connection == ConnectionState.CONNECTED, timeout=10_000)
    server.call(lambda: sessions.revoke_user("olga"))
    reply = console.client.call("GET", "/api/tags")  # 401, log in again, retried
    assert reply.ok
