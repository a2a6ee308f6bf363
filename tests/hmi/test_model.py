"""The Qt-free console models: coalescing, staleness, alarms, layouts, switch views."""

from __future__ import annotations

from typing import Any

import pytest

from hmi.model import AlarmFilter, ConnectionState, ConsoleModel, Session, Updates
from hmi.model.points import quality_marks, quality_severity
from tests.hmi.conftest import collection


def point(
    name: str, value: float | None, flags: tuple[str, ...] = (), kind: str = "analog"
) -> dict[str, Any]:
    return {
        "name": name,
        "device": name.split(".")[0],
        "kind": kind,
        "unit": "A",
        "description": "",
        "controllable": kind == "double",
        "value": value,
        "quality": 0,
        "quality_flags": list(flags),
        "source_time": None,
        "receive_time": 1.0,
    }


def alarm(i: int, priority: int, device: str, **kw: Any) -> dict[str, Any]:
    a = {
        "id": i,
        "source": device,
        "condition": "comm",
        "tag": "",
        "detail": "",
        "priority": priority,
        "message": f"alarm {i}",
        "device": device,
        "point": None,
        "value": None,
        "normal": None,
        "raised_time": 100.0 + i,
        "receive_time": 100.0 + i,
        "active": True,
        "acknowledged": False,
        "ack_operator": None,
        "ack_time": None,
        "cleared_time": None,
        "shelved_until": None,
        "suppressed_by": None,
        "state": "unacknowledged",
    }
    a.update(kw)
    return a


def test_a_thousand_changes_make_one_event_per_store_per_frame() -> None:
    model = ConsoleModel()
    updates = Updates()
    updates.merge(
        {
            "type": "snapshot",
            "points": [point(f"D.P{i}", 0.0) for i in range(100)],
            "alarms": [],
            "topology": None,
        }
    )
    for k in range(1000):
        updates.merge(
            {
                "type": "changes",
                "points": [point(f"D.P{k % 100}", float(k))],
                "alarms": [],
                "topology": [],
            }
        )
    seen: list[frozenset[str]] = []
    model.points.changed.connect(seen.append)
    model.apply(updates)
    assert len(seen) == 2  # the snapshot, then the latest of each point
    assert model.points.get("D.P7").value == 907.0  # type: ignore[union-attr]
    assert updates.messages == 1001


def test_values_turn_stale_while_disconnected() -> None:
    model = ConsoleModel()
    model.apply(Updates(snapshot={"points": [point("D.I", 5.0)], "alarms": []}))
    model.set_connection(ConnectionState.CONNECTED)
    assert not model.points.is_stale("D.I") and model.points.marks("D.I") == ""
    model.set_connection(ConnectionState.DISCONNECTED, "connection lost")
    assert model.points.is_stale("D.I") and model.points.severity("D.I") == "stale"
    assert quality_marks(["comm_fail", "substituted"], False) == "CS"
    assert quality_severity(["substituted"], True) == "stale"
    assert quality_severity(["comm_fail"], True) == "comm_fail"


def test_alarm_list_orders_filters_and_closes() -> None:
    model = ConsoleModel()
    model.alarms.reset(
        [
            alarm(1, 3, "A"),
            alarm(2, 1, "B"),
            alarm(3, 3, "A", acknowledged=True, state="acknowledged"),
            alarm(4, 2, "B", shelved_until=4e10),
        ]
    )
    assert [a.id for a in model.alarms.listed()] == [2, 3, 1]  # priority, then newest
    assert [a.id for a in model.alarms.listed(AlarmFilter(show_shelved=True))] == [2, 4, 3, 1]
    assert [a.id for a in model.alarms.listed(AlarmFilter(max_priority=2))] == [2]
    only_a = AlarmFilter(area="A", unacknowledged_only=True)
    assert [a.id for a in model.alarms.listed(only_a, model.area_of)] == [1]
    counts = model.alarms.counts()
    assert (counts.unacknowledged, counts.shelved, counts.top_unacknowledged) == (2, 1, 1)
    model.alarms.apply([{"alarm": alarm(2, 1, "B", state="closed")}])
    assert model.alarms.get(2) is None


@pytest.mark.parametrize("network", ["mv_oberrhein", "baran_wu", "cigre_mv"])
def test_both_layouts_place_every_element(network: str) -> None:
    model = ConsoleModel()
    net = model.set_network(collection(network))
    for name in ("geographic", "schematic"):
        layout = net.layout(name)
        assert set(layout.points) | set(layout.paths) == set(net.elements), name
        assert set(layout.paths) == {e.id for e in net.of_kind("line")}


def test_schematic_layout_is_a_tree_from_the_source() -> None:
    net = ConsoleModel().set_network(collection("baran_wu"))
    layout = net.layout("schematic")
    source = net.of_kind("ext_grid")[0].props["bus"]
    assert layout.points[source] == (0.0, 0.0)
    # the main trunk (the longest branch) runs straight along the first row
    on_trunk = [
        b for b, (x, y) in layout.points.items() if y == 0.0 and net.elements[b].kind == "bus"
    ]
    assert len(on_trunk) >= 15


def test_search_finds_ids_then_names() -> None:
    net = ConsoleModel().set_network(collection("mv_oberrhein"))
    assert net.search("SW10")[0] == "SW10"
    assert net.search("substation 2")[0] == "SS2"
    assert net.search("nothing like this") == []


def test_switch_view_prefers_telemetry_and_knows_tags_and_normal_state() -> None:
    fc = collection("baran_wu")
    fc["pyadms"]["bindings"] = {
        "SW3": [{"point": "FR-SW3.SW", "table": "switch", "qualifier": None}]
    }
    model = ConsoleModel()
    model.set_network(fc)
    model.set_session(Session("http://x", "vic", "viewer"))
    assert not model.can_command
    model.topology.reset({"version": 1, "switches": {"SW3": True, "SW4": False}, "elements": {}})
    assert model.switch_view("SW4").closed is False and not model.switch_view("SW4").telemetered
    assert model.switch_view("SW4").abnormal  # normally closed, open now
    model.apply(
        Updates(
            snapshot={"points": [point("FR-SW3.SW", 1.0, ("substituted",), "double")], "alarms": []}
        )
    )
    model.set_connection(ConnectionState.CONNECTED)
    v = model.switch_view("SW3")
    assert (v.closed, v.telemetered, v.severity, v.marks) == (False, True, "substituted", "S")
    model.set_tags(
        [
            {
                "id": 1,
                "target": "FR-SW3",
                "kind": "hold",
                "owner": "olga",
                "reason": "work",
                "time": 0.0,
            }
        ]
    )
    assert model.switch_view("SW3").tag == "hold"
