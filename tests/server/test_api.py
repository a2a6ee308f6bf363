"""The API over real sockets: a simulated Modbus RTU -> control centre -> HTTP and WebSocket."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from websockets.exceptions import ConnectionClosed

from protocols.base import DoubleState
from tests.conftest import wait_for
from tests.server.conftest import P_HIGH, Rig, wait_for_async


async def test_login_and_roles(rig: Rig) -> None:
    async with rig.client() as anon:
        r = await anon.post("/api/login", json={"username": "vic", "password": "wrong-password"})
        assert r.status_code == 401
        r = await anon.get("/api/points")
        assert r.status_code == 401 and "bearer" in r.json()["detail"]
        assert (await anon.get("/api/health")).json()["status"] == "ok"
    async with rig.client("vic") as viewer:
        points = (await viewer.get("/api/points")).json()
        assert {p["name"] for p in points} == {"RTU1.CB", "RTU1.FPI", "RTU1.P", "RTU1.E"}
        r = await viewer.post("/api/control/select", json={"point": "RTU1.CB", "value": 0})
        assert r.status_code == 403
        assert "needs role operator" in r.json()["detail"] and "vic is viewer" in r.json()["detail"]
    assert rig.field.commands == []
    async with rig.client("olga") as operator:
        assert (await operator.post("/api/config/reload")).status_code == 403
        assert (await operator.get("/api/audit")).status_code == 403
    async with rig.client("erin") as engineer:
        assert (await engineer.get("/api/users")).status_code == 403
        trail = (await engineer.get("/api/audit")).json()
    refused = [
        (a["user"], a["target"], a["result"]) for a in trail if a["result"].startswith("refused")
    ]
    assert ("vic", "", "refused: bad credentials or disabled") in refused
    assert ("vic", "POST /api/control/select", "refused: 403 forbidden") in refused
    assert ("olga", "POST /api/config/reload", "refused: 403 forbidden") in refused
    assert ("olga", "GET /api/audit", "refused: 403 forbidden") in refused
    assert ("erin", "GET /api/users", "refused: 403 forbidden") in refused
    async with rig.client("admin") as admin:
        assert (await admin.get("/api/users")).status_code == 200


async def test_sbo_over_the_api_operates_the_device(rig: Rig) -> None:
    async with rig.client("olga") as op:
        r = await op.post("/api/control/select", json={"point": "RTU1.CB", "value": 0})
        sel = r.json()
        assert r.status_code == 200 and sel["status"] == "selected", sel
        other = await rig.client("admin").post(
            "/api/control/select", json={"point": "RTU1.CB", "value": 0}
        )
        assert other.json() == {
            "status": "refused",
            "reason": "already selected by olga",
            "selection_id": None,
            "point": "RTU1.CB",
            "value": 0.0,
            "expires_in_s": None,
        }
        r = await op.post("/api/control/execute", json={"selection_id": sel["selection_id"]})
        assert r.json() == {"status": "confirmed", "reason": ""}
        assert rig.field.get("RTU1.CB") == DoubleState.OFF
        assert (await op.get("/api/points/RTU1.CB")).json()["value"] == DoubleState.OFF
        # the commanded opening is no alarm
        assert not [a for a in (await op.get("/api/alarms")).json() if a["point"] == "RTU1.CB"]
        r = await op.post("/api/control/direct", json={"point": "RTU1.NOPE", "value": 1})
        assert r.status_code == 404 and "RTU1.NOPE" in r.json()["detail"]
        r = await op.post("/api/control/select", json={"point": "RTU1.CB", "value": "x"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "value"]
    trail = rig.cc.historian.audit_trail(user="olga")
    assert [(a.action, a.target, a.result) for a in trail] == [
        ("login", "", "ok"),
        ("select", "RTU1.CB", "selected"),
        ("command", "RTU1.CB", "confirmed"),
        ("command", "RTU1.NOPE", "refused: unknown point"),
    ]
    assert rig.cc.archiver.flush(10)
    soe = rig.cc.historian.soe(device="RTU1")
    assert [(s.point, s.text, s.commanded) for s in soe] == [("RTU1.CB", "OPEN", True)]


async def test_tags_block_commands_over_the_api(rig: Rig) -> None:
    async with rig.client("olga") as op:
        r = await op.post(
            "/api/tags", json={"target": "RTU1", "kind": "do_not_operate", "reason": "crew on site"}
        )
        assert r.status_code == 201
        tag = r.json()
        r = await op.post("/api/control/direct", json={"point": "RTU1.CB", "value": 0})
        assert r.json()["status"] == "refused" and "do_not_operate on RTU1 by olga" in r.text
        assert [t["id"] for t in (await op.get("/api/tags?target=RTU1.CB")).json()] == [tag["id"]]
        assert (await op.delete(f"/api/tags/{tag['id']}")).status_code == 204
        assert (await op.delete(f"/api/tags/{tag['id']}")).status_code == 404
        r = await op.post(
            "/api/tags", json={"target": "RTU9", "kind": "hold", "reason": "no such device"}
        )
        assert r.status_code == 404 and "RTU9" in r.text
    assert rig.field.commands == []


async def test_alarm_over_websocket_acknowledged_over_api_and_archived(rig: Rig) -> None:
    console = await rig.console("olga")
    try:
        await console.until(lambda c: c.seq is not None, 5, "snapshot")
        assert console.start == "snapshot" and console.value("RTU1.P") == 1.5
        assert console.points["RTU1.P"]["quality_flags"] == []
        rig.field.set("RTU1.P", P_HIGH + 1)
        await console.until(
            lambda c: any(a["point"] == "RTU1.P" for a in c.alarms.values()), 10, "the H alarm"
        )
        alarm = next(a for a in console.alarms.values() if a["point"] == "RTU1.P")
        assert alarm["detail"] == "H" and alarm["state"] == "unacknowledged"
        assert console.value("RTU1.P") == P_HIGH + 1
        async with rig.client("olga") as op:
            r = await op.post(f"/api/alarms/{alarm['id']}/ack")
            assert r.status_code == 200 and r.json()["ack_operator"] == "olga"
            await console.until(
                lambda c: c.alarms[alarm["id"]]["state"] == "acknowledged", 5, "the ack"
            )

            async def archived() -> list[dict[str, object]]:
                r = await op.get("/api/alarms/history", params={"alarm_id": alarm["id"]})
                return list(r.json())

            history: list[dict[str, object]] = []

            async def poll() -> bool:
                history[:] = await archived()
                return any(h["transition"] == "acknowledged" for h in history)

            await wait_for_async(poll, 10, "the ack in the historian")
            ack = next(h for h in history if h["transition"] == "acknowledged")
            assert ack["operator"] == "olga" and ack["point"] == "RTU1.P"
            assert (await op.post("/api/alarms/999/ack")).status_code == 404
    finally:
        await console.close()


async def test_two_consoles_see_the_same_changes(rig: Rig) -> None:
    a = await rig.console("olga")
    b = await rig.console("vic")
    try:
        for c in (a, b):
            await c.until(lambda c: c.seq is not None, 5, "snapshot")
        rig.field.set("RTU1.CB", float(DoubleState.OFF))  # uncommanded: an alarm
        for c in (a, b):
            await c.until(
                lambda c: any(x["point"] == "RTU1.CB" for x in c.alarms.values()), 10, "alarm"
            )
        alarm_id = next(x["id"] for x in a.alarms.values() if x["point"] == "RTU1.CB")
        async with rig.client("olga") as op:
            assert (await op.post("/api/alarms/ack", json={"ids": [alarm_id]})).status_code == 200
        await b.until(lambda c: c.alarms[alarm_id]["acknowledged"], 5, "the ack on console b")
        await a.until(lambda c: c.alarms[alarm_id]["acknowledged"], 5, "the ack on console a")
        assert a.value("RTU1.CB") == b.value("RTU1.CB") == DoubleState.OFF
        await b.ws.send('{"type": "ping"}')
        await b.until(lambda c: c.pongs == 1, 5, "pong")
        async with rig.client("vic") as viewer:
            assert (await viewer.get("/api/health")).json()["consoles"] == 2
            # logging out ends the session, and the console's channel with it
            assert (await viewer.post("/api/logout")).status_code == 204
            assert (await viewer.get("/api/points")).status_code == 401
        with pytest.raises(ConnectionClosed) as closed:
            await b.until(lambda c: False, 5, "the close")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    finally:
        await a.close()
        await b.close()


async def test_console_reconnects_resumes_or_gets_a_snapshot(rig: Rig) -> None:
    c = await rig.console("vic")
    await c.until(lambda c: c.seq is not None, 5, "snapshot")
    rig.field.set("RTU1.P", 2.0)
    await c.until(lambda c: c.value("RTU1.P") == 2.0, 10, "P = 2")
    epoch, seq = c.epoch, c.seq
    await c.close()
    rig.field.set("RTU1.P", 3.0)  # while the console is away
    await wait_for(lambda: rig.cc.push.seq > (seq or 0), 10, "a batch while away")
    await wait_for(lambda: rig.cc.pointdb.get("RTU1.P").value == 3.0, 10, "P = 3")

    # resume: the missed batches, no snapshot
    resumed = await rig.console("vic", resume={"epoch": epoch, "seq": seq})
    assert resumed.start == "resumed"
    resumed.epoch, resumed.seq, resumed.points = epoch, seq, c.points
    await resumed.until(lambda r: r.value("RTU1.P") == 3.0, 10, "missed change")
    assert resumed.snapshots == 0
    await resumed.close()

    # a console from another server run (unknown epoch) gets a consistent snapshot, then changes
    fresh = await rig.console("vic", resume={"epoch": "other", "seq": 5})
    assert fresh.start == "snapshot"
    await fresh.until(lambda f: f.seq is not None, 5, "snapshot")
    assert fresh.value("RTU1.P") == 3.0
    rig.field.set("RTU1.P", 4.0)
    await fresh.until(lambda f: f.value("RTU1.P") == 4.0, 10, "change after the snapshot")
    async with rig.client("vic") as viewer:
        points = {p["name"]: p for p in (await viewer.get("/api/points")).json()}
    for name, p in points.items():
        assert fresh.points[name]["value"] == p["value"], name
        assert fresh.points[name]["quality"] == p["quality"], name
    await fresh.close()


async def test_websocket_refuses_a_bad_token(rig: Rig) -> None:
    rig.tokens["nobody"] = "not-a-token"
    try:
        await rig.console("nobody")
    except AssertionError as exc:
        assert "invalid or expired token" in str(exc)
    else:
        raise AssertionError("a console with a bad token was welcomed")


async def test_config_reload_with_a_malformed_file_keeps_the_running_config(rig: Rig) -> None:
    good = rig.scada_file.read_text()
    doc = yaml.safe_load(good)
    doc["devices"][0]["timeout_s"] = 99  # longer than the scan period
    doc["devices"][0]["port"] = "not a port"
    rig.scada_file.write_text(yaml.safe_dump(doc))
    before = rig.cc.pointdb.get("RTU1.P")
    async with rig.client("erin") as eng:
        r = await eng.post("/api/config/reload")
        assert r.status_code == 422, r.text
        body = r.json()
        assert "not reloaded" in body["detail"]
        keys = {(i["device"], i["key"]) for i in body["issues"]}
        assert ("RTU1", "port") in keys
        assert all(i["file"] == str(rig.scada_file) for i in body["issues"])
        assert rig.cc.pointdb.get("RTU1.P") == before and rig.cc.fep.link_state("RTU1")
        assert (await eng.get("/api/config")).json()["devices"] == 1

        Path(rig.scada_file).write_text("devices: [unclosed")
        r = await eng.post("/api/config/reload")
        assert r.status_code == 422 and "not valid yaml" in r.json()["issues"][0]["message"]

        rig.scada_file.write_text(good)
        r = await eng.post("/api/config/reload")
        assert r.status_code == 200
        assert r.json() == {
            "devices_added": [],
            "devices_removed": [],
            "devices_changed": [],
            "points_added": 0,
            "points_removed": 0,
        }
        trail = (await eng.get("/api/audit", params={"user": "erin"})).json()
    assert [a["result"] for a in trail if a["action"] == "config reload"] == [
        "refused: 1 issue(s)",
        "refused: 1 issue(s)",
        "applied",
    ]


async def test_points_substitution_and_records(rig: Rig) -> None:
    async with rig.client("olga") as op:
        r = await op.post("/api/points/RTU1.P/substitute", json={"value": 7.5})
        assert r.status_code == 200 and r.json()["quality_flags"] == ["substituted"]
        r = await op.post("/api/points/RTU1.CB/substitute", json={"value": 7.5})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "value"]
        assert "RTU1.CB" in r.json()["detail"][0]["msg"]
        r = await op.delete("/api/points/RTU1.P/substitute")
        assert r.json()["value"] == 1.5 and "substituted" not in r.json()["quality_flags"]
        assert (await op.get("/api/points/RTU9.X")).status_code == 404
        assert (await op.get("/api/points/bad name")).status_code == 422
        devices = (await op.get("/api/devices")).json()
        assert devices == [
            {
                "name": "RTU1",
                "protocol": "modbus",
                "kind": "rtu",
                "enabled": True,
                "link_up": True,
                "points": 4,
            }
        ]
        assert rig.cc.archiver.flush(10)
        samples = (await op.get("/api/history/RTU1.P")).json()
        values = [s["value"] for s in samples]
        # (a link hiccup would add a sample of the same value with another quality)
        assert [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]] == [1.5, 7.5, 1.5]
        assert {s["quality"] for s in samples if s["value"] == 7.5} == {16}  # substituted
        r = await op.get("/api/history/RTU1.P/aggregate", params={"interval_s": 3600})
        assert r.status_code == 200 and 3 <= sum(a["count"] for a in r.json()) <= len(samples)
        r = await op.get("/api/events", params={"device": "RTU1", "start_s": 5, "end_s": 1})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "end_s"]
        r = await op.get("/api/reliability", params={"start_s": 0, "end_s": 1e9})
        assert r.status_code == 200 and r.json()["customers_served"] == 1000
        assert (await op.get("/api/breakers")).status_code == 200
        assert (await op.get("/api/outages", params={"current": True})).json() == []


async def test_user_administration(rig: Rig) -> None:
    async with rig.client("admin") as admin:
        r = await admin.post(
            "/api/users", json={"username": "nina", "password": "nina-secret", "role": "viewer"}
        )
        assert r.status_code == 201 and r.json()["role"] == "viewer"
        r = await admin.post(
            "/api/users", json={"username": "nina", "password": "nina-secret", "role": "viewer"}
        )
        assert r.status_code == 409 and "nina" in r.json()["detail"]
        r = await admin.post("/api/users", json={"username": "x", "password": "short", "role": "a"})
        assert r.status_code == 422
        assert {e["loc"][-1] for e in r.json()["detail"]} == {"password", "role"}
        r = await admin.patch("/api/users/admin", json={"role": "viewer"})
        assert r.status_code == 409
        assert (await admin.delete("/api/users/admin")).status_code == 409
        # changing a user's role ends their sessions
        r = await admin.patch("/api/users/olga", json={"role": "viewer"})
        assert r.status_code == 200 and r.json()["role"] == "viewer"
    async with rig.client("olga") as olga:
        assert (await olga.get("/api/me")).status_code == 401
    await rig.login("olga")
    async with rig.client("olga") as olga:
        me = (await olga.get("/api/me")).json()
        assert me["role"] == "viewer"
        r = await olga.post(
            "/api/me/password", json={"old_password": "wrong", "new_password": "new-secret-1"}
        )
        assert r.status_code == 403
        r = await olga.post(
            "/api/me/password",
            json={"old_password": "operator-secret", "new_password": "new-secret-1"},
        )
        assert r.status_code == 204
        assert (await olga.get("/api/me")).status_code == 401  # every session ended
    async with rig.client() as anon:
        r = await anon.post("/api/login", json={"username": "olga", "password": "new-secret-1"})
        assert r.status_code == 200
    async with rig.client("admin") as admin:
        assert (await admin.delete("/api/users/nina")).status_code == 204
        assert (await admin.get("/api/users/nina")).status_code == 404
