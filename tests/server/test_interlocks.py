"""Network interlocks, breaker table and outages over the real server, API and protocols.

mv_oberrhein's power-flow rig (IEC 104 and Modbus outstations) under a
control centre with the network model, served over HTTP: closing onto a
locked-out section and paralleling feeders are refused over the API and
audited (issue 4 control safety, R-OPS-3); the circuit-breaker table lists
the feeder breakers and reclosers with their last trip, and trips make
outage records with the customers the network knows (R-REC-1, R-REC-3).

The tests share one rig (start-up is the slow part) and each puts the
network back as it found it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from adms.sections import SectionGraph
from models.binding import BindingOptions, bind_config
from models.loader import load_network
from protocols.base import DoubleState, Quality
from rig.grid import GridOptions, GridSimulator
from scada.config import ConfigError
from scada.pointdb import PointDB
from server.api import ApiServer, create_app
from server.auth import Role
from server.interlocks import NetworkInterlocks
from server.settings import (
    ApiSettings,
    ControlSettings,
    HistorianSettings,
    ServerSettings,
    UserSettings,
    load_settings,
)
from server.wiring import ControlCentre
from tests.conftest import wait_for

ON, OFF = float(DoubleState.ON), float(DoubleState.OFF)
PASSWORDS = {"olga": "operator-secret", "vic": "viewer-secret", "erin": "engineer-secret"}
ROLES = {"olga": Role.OPERATOR, "vic": Role.VIEWER, "erin": Role.ENGINEER}
#: generous: two cores shared with other test runs
WAIT_S = 20.0

on_the_rig = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Server:
    grid: GridSimulator
    cc: ControlCentre
    api: ApiServer
    tokens: dict[str, str]

    def client(self, user: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api.url,
            headers={"Authorization": f"Bearer {self.tokens[user]}"},
            timeout=30,
        )

    def value(self, point: str) -> float:
        return self.cc.pointdb.get(point).value

    async def shows(self, point: str, value: float, what: str) -> None:
        await wait_for(lambda: self.value(point) == value, WAIT_S, f"{what} ({point} = {value:g})")

    async def command(self, user: str, point: str, value: float) -> dict[str, Any]:
        async with self.client(user) as c:
            r = await c.post("/api/control/direct", json={"point": point, "value": value})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def faults(self) -> list[dict[str, Any]]:
        async with self.client("vic") as c:
            r = await c.get("/api/control/faults")
        assert r.status_code == 200, r.text
        faults: list[dict[str, Any]] = r.json()
        return faults

    async def audit(self, since: float) -> list[dict[str, Any]]:
        async with self.client("erin") as c:
            r = await c.get("/api/audit", params={"start": since})
        assert r.status_code == 200, r.text
        records: list[dict[str, Any]] = r.json()
        return records

    async def restore(self, closed: dict[str, str]) -> None:
        """Clear faults and put switches (GIS id -> status point) back closed, rig-side."""
        self.grid.clear_fault()
        for switch, point in closed.items():
            if not self.grid.topology.is_closed(switch):
                self.grid.set_switch(switch, True)
            await self.shows(point, ON, f"{switch} closed again")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    model = load_network("mv_oberrhein")
    cfg = bind_config(
        model, BindingOptions(scan_period_s=0.5, timeout_s=0.5, checkback_timeout_s=5.0)
    )
    grid = GridSimulator(model, cfg, GridOptions(time_scale=0, update_period_s=0.5, seed=5))
    await grid.start()
    settings = ServerSettings(
        control=ControlSettings(allow_parallel=[("SS2-F1", "SS2-F2")]),
        api=ApiSettings(port=0, push_interval_s=0.05),
        historian=HistorianSettings(flush_interval_s=0.1),
        users=UserSettings(hash_time_cost=1, hash_memory_kib=8192),
    )
    # the control centre's model is its own, as in a real deployment
    cc = ControlCentre(
        grid.field.resolved_config(), settings=settings, network=load_network("mv_oberrhein")
    )
    await cc.start()
    api = ApiServer(create_app(cc), "127.0.0.1", 0)
    try:
        for user, role in ROLES.items():
            await asyncio.to_thread(cc.users.create, user, PASSWORDS[user], role)
        await wait_for(lambda: cc.fep.connected_count() == len(cfg.devices), 60, "every link")
        names = cc.pointdb.names()
        await wait_for(
            lambda: all(cc.pointdb.get(n).quality == Quality.GOOD for n in names), 60, "values"
        )
        await api.start()
        tokens = {}
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as c:
            for user, password in PASSWORDS.items():
                r = await c.post("/api/login", json={"username": user, "password": password})
                assert r.status_code == 200, r.text
                tokens[user] = r.json()["token"]
        yield Server(grid, cc, api, tokens)
    finally:
        await api.stop()
        await cc.stop()
        await grid.stop()


@on_the_rig
async def test_paralleling_feeders_is_refused_unless_allowed(server: Server) -> None:
    since = time.time()
    async with server.client("olga") as op:
        # SW48 ties SS1-F1 to SS2-F1 (two substations)
        r = await op.post("/api/control/select", json={"point": "FR-SW48.SW", "value": 1})
        assert r.status_code == 200 and r.json()["status"] == "refused", r.text
        assert r.json()["reason"] == (
            "interlock feeder paralleling: closing SW48 would parallel feeders SS1-F1 and "
            "SS2-F1 (not allowed by control.allow_parallel)"
        )
    # SW311 ties the two feeders of SS1: not in the allowed pairs either
    result = await server.command("olga", "FR-SW311.SW", 1)
    assert result["status"] == "refused" and "SS1-F1 and SS1-F2" in result["reason"]
    assert not server.grid.topology.is_closed("SW48")
    assert not server.grid.topology.is_closed("SW311")
    # the allowed pair (SS2-F1, SS2-F2): SW107 closes in parallel, then opens again
    try:
        assert (await server.command("olga", "FR-SW107.SW", 1))["status"] == "confirmed"
        assert server.grid.topology.is_closed("SW107")
    finally:
        assert (await server.command("olga", "FR-SW107.SW", 0))["status"] == "confirmed"
    # within one feeder a close makes a loop, not a parallel: SW14 (SS2-F2 on both ends)
    assert server.cc.control.refusal("FR-SW14.SW", 1) is None
    records = await server.audit(since)
    refused = [
        (a["action"], a["target"], a["result"])
        for a in records
        if a["result"].startswith("refused")
    ]
    assert ("select", "FR-SW48.SW", f"refused: {r.json()['reason']}") in refused
    assert ("command", "FR-SW311.SW", f"refused: {result['reason']}") in refused


@on_the_rig
async def test_a_reconfiguration_order_may_parallel_feeders_make_before_break(
    server: Server,
) -> None:
    """control.allow_parallel_in_orders: the ADMS order closes a tie between two feeders and
    opens the loop in its next step; the same close by hand stays refused (above)."""
    assert server.cc.network is not None
    before = {s: server.grid.topology.is_closed(s) for s in server.cc.network.ids("switch")}
    async with server.client("olga") as op:
        r = await op.post("/api/adms/reconfigure")
        assert r.status_code == 200, r.text
        plan = r.json()
        steps = [(s["action"], s["element"]) for s in plan["steps"]]
        assert steps and [a for a, _ in steps] == ["close", "open"] * (len(steps) // 2)
        # its first tie joins two feeders: by hand, that close is refused
        first = plan["steps"][0]["point"]
        assert "feeder paralleling" in (server.cc.control.refusal(first, 1) or "")
        r = await op.post(f"/api/adms/plans/{plan['id']}/approve")
        assert r.status_code == 200, r.text

        async def finished() -> dict[str, Any]:
            r = await op.get(f"/api/adms/plans/{plan['id']}")
            body: dict[str, Any] = r.json()
            return body

        done: dict[str, Any] = {}

        async def poll() -> bool:
            done.update(await finished())
            return done["state"] in ("done", "failed")

        await wait_for_async(poll, "the reconfiguration order finished", timeout=60)
    try:
        assert done["state"] == "done", done
        for action, switch in steps:
            assert server.grid.topology.is_closed(switch) is (action == "close"), switch
    finally:
        # back to the state before: close first, then open (the rig has no interlocks)
        for switch, closed in sorted(before.items(), key=lambda kv: not kv[1]):
            if server.grid.topology.is_closed(switch) != closed:
                server.grid.set_switch(switch, closed)
        await wait_for(
            lambda: (
                server.cc.topology is not None
                and all(server.cc.topology.processor.is_closed(s) == c for s, c in before.items())
            ),
            WAIT_S,
            "the switches back as before",
        )


@on_the_rig
async def test_a_tagged_device_is_refused_before_any_interlock(server: Server) -> None:
    async with server.client("olga") as op:
        r = await op.post(
            "/api/tags", json={"target": "FR-SW48", "kind": "hold", "reason": "crew at SW48"}
        )
        assert r.status_code == 201, r.text
        tag = r.json()["id"]
        try:
            for value in (0, 1):  # opening passes the interlocks; the tag refuses both
                result = await server.command("olga", "FR-SW48.SW", value)
                assert result["status"] == "refused"
                assert result["reason"] == "tag hold on FR-SW48 by olga: crew at SW48"
        finally:
            assert (await op.delete(f"/api/tags/{tag}")).status_code == 204


@on_the_rig
async def test_locked_out_section_until_isolated_and_repaired(server: Server) -> None:
    """A fault on L43: SW234 (recloser) locks out, FPIs up to SW68 saw the fault current."""
    grid, since = server.grid, time.time()
    try:
        report = grid.inject_fault("L43")
        assert report.protection == "SW234" and "FPI-SW68" in report.fpis
        await server.shows("FR-SW234.SW", OFF, "the recloser trips")
        await server.shows("FR-SW68.FPI", 1, "the FPI before the fault")

        async def located() -> bool:
            faults = await server.faults()
            return bool(faults) and faults[0]["upstream_fpi"] == "FPI-SW68"

        await wait_for_async(located, "the fault located behind FPI-SW68")
        [fault] = await server.faults()
        assert (fault["device"], fault["buses"], fault["lines"]) == ("SW234", ["B159"], ["L43"])
        assert fault["tripped_out"] and "FPI-SW68" in fault["indicating_fpis"]

        # closing the recloser, or backfeeding through a tie, would energise the fault
        async with server.client("olga") as op:
            r = await op.post("/api/control/select", json={"point": "FR-SW234.SW", "value": 1})
        assert r.json()["status"] == "refused", r.text
        assert r.json()["reason"] == (
            "interlock locked-out section: closing SW234 would energise the faulted section "
            "behind SW234 (B159, L43; located by FPI FPI-SW68)"
        )
        tie = await server.command("olga", "FR-SW107.SW", 1)  # a paralleling pair allowed
        assert tie["status"] == "refused" and "locked-out section: closing SW107" in tie["reason"]

        # the breaker table and the outage record (customers from the network model)
        assert server.cc.archiver.flush(WAIT_S)
        async with server.client("vic") as c:
            breakers = {b["point"]: b for b in (await c.get("/api/breakers")).json()}
            outages = (await c.get("/api/outages", params={"current": True})).json()
        assert set(breakers) == {
            "SS1.F1.CB",
            "SS1.F2.CB",
            "SS2.F1.CB",
            "SS2.F2.CB",
            "FR-SW96.SW",
            "FR-SW136.SW",
            "FR-SW149.SW",
            "FR-SW234.SW",
        }
        recloser = breakers["FR-SW234.SW"]
        assert recloser["state"] == "OPEN" and recloser["last_trip_s"] >= since
        assert "protection trip" in recloser["last_trip_cause"]
        assert breakers["SS2.F2.CB"]["state"] == "CLOSED"
        assert breakers["SS2.F2.CB"]["last_trip_s"] is None
        [outage] = outages
        assert (outage["device"], outage["feeder"], outage["customers"]) == (
            "FR-SW234.SW",
            "SS2-F2",
            5160,
        )

        # isolate (an opening is never refused), then the recloser may close
        assert (await server.command("olga", "FR-SW68.SW", 0))["status"] == "confirmed"
        assert (await server.command("olga", "FR-SW234.SW", 1))["status"] == "confirmed"
        await server.shows("FR-SW234.TRIP", 0, "the trip indication reset by the close")
        await wait_for_async(
            lambda: _tripped_out(server, False), "the recloser no longer tripped out"
        )
        # the FPIs still say where the fault is: the isolated section stays locked out
        refused = await server.command("olga", "FR-SW68.SW", 1)
        assert refused["status"] == "refused"
        assert "closing SW68 would energise the faulted section behind SW234" in refused["reason"]

        grid.clear_fault()  # repaired: the FPIs reset
        await wait_for_async(lambda: _no_faults(server), "the section released by the FPI reset")
        assert (await server.command("olga", "FR-SW68.SW", 1))["status"] == "confirmed"
        assert server.cc.archiver.flush(WAIT_S)
        async with server.client("vic") as c:
            [ended] = [
                o for o in (await c.get("/api/outages")).json() if o["device"] == "FR-SW234.SW"
            ]
        assert ended["end_s"] is not None and ended["end_s"] >= ended["start_s"]
        actions = [(a["action"], a["target"], a["result"]) for a in await server.audit(since)]
        assert ("select", "FR-SW234.SW", f"refused: {r.json()['reason']}") in actions
    finally:
        await server.restore({"SW234": "FR-SW234.SW", "SW68": "FR-SW68.SW"})


@on_the_rig
async def test_a_fault_without_fpis_stays_locked_out_until_an_operator_releases_it(
    server: Server,
) -> None:
    """A fault on L193, right behind SS2-F2's breaker SW321: no FPI sees it."""
    grid, since = server.grid, time.time()
    try:
        assert grid.inject_fault("L193").protection == "SW321"
        await server.shows("SS2.F2.CB", OFF, "the feeder breaker trips")
        await server.shows("SS2.F2.TRIP", 1, "its trip indication")
        await wait_for_async(lambda: _tripped_out(server, True), "the section locked out")
        [fault] = await server.faults()
        assert fault["device"] == "SW321" and fault["evidence_fpis"] == []
        assert fault["upstream_fpi"] is None and "L193" in fault["lines"]
        grid.clear_fault()  # repaired, but nothing in the field says so
        result = await server.command("olga", "SS2.F2.CB", 1)
        assert result["status"] == "refused"
        assert (
            "behind SW321" in result["reason"]
            and "located by the trip of SW321" in (result["reason"])
        )
        assert server.cc.archiver.flush(WAIT_S)
        async with server.client("vic") as viewer:
            [outage] = (await viewer.get("/api/outages", params={"current": True})).json()
            assert (outage["device"], outage["customers"]) == ("SS2.F2.CB", 10510)
            denied = await viewer.post(
                "/api/control/faults/SW321/release", json={"reason": "viewer tries"}
            )
            assert denied.status_code == 403
        async with server.client("olga") as op:
            missing = await op.post("/api/control/faults/SW9/release", json={"reason": "x"})
            assert missing.status_code == 404 and "SW9" in missing.text
            released = await op.post(
                "/api/control/faults/SW321/release", json={"reason": "cable end repaired"}
            )
            assert released.status_code == 204, released.text
        assert await server.faults() == []
        assert (await server.command("olga", "SS2.F2.CB", 1))["status"] == "confirmed"
        actions = [(a["action"], a["target"], a["result"]) for a in await server.audit(since)]
        assert ("fault release", "SW321", "released") in actions
        assert ("fault release", "SW9", "refused: no locked-out section") in actions
        details = [a["details"] for a in await server.audit(since) if a["target"] == "SW321"]
        assert "cable end repaired" in details
    finally:
        await server.restore({"SW321": "SS2.F2.CB"})


async def _tripped_out(server: Server, tripped: bool) -> bool:
    faults = await server.faults()
    return bool(faults) and faults[0]["tripped_out"] is tripped


async def _no_faults(server: Server) -> bool:
    return await server.faults() == []


async def wait_for_async(predicate: Any, what: str, timeout: float = WAIT_S) -> None:
    """Poll an async predicate (a coroutine function) until true, or fail naming ``what``."""
    start = time.monotonic()
    while not await predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


# --------------------------------------------------------------- configuration
def test_unknown_feeders_in_the_allowed_pairs_are_named() -> None:
    model = load_network("mv_oberrhein")
    with pytest.raises(ConfigError) as err:
        NetworkInterlocks(
            SectionGraph(model), PointDB(), allow_parallel=[("SS1-F1", "SS9-F1"), ("X", "SS1-F2")]
        )
    assert [(i.key, i.message.split(" (")[0]) for i in err.value.issues] == [
        ("control.allow_parallel.0", "unknown feeder 'SS9-F1'"),
        ("control.allow_parallel.1", "unknown feeder 'X'"),
    ]


def test_a_pair_of_one_feeder_is_a_settings_error(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text("control: {allow_parallel: [[SS1-F1, SS1-F1]]}\n")
    with pytest.raises(ConfigError, match="key 'control.allow_parallel': .*'SS1-F1' twice"):
        load_settings(path)


def test_closes_are_refused_until_the_topology_is_known() -> None:
    model = load_network("baran_wu")
    db = PointDB()
    db.define(p for dp in bind_config(model).expand() for p in dp.points)
    interlocks = NetworkInterlocks(SectionGraph(model), db)
    reasons = {rule.name: rule.check("FR-SW1.SW", 1) for rule in interlocks.rules}
    assert set(reasons.values()) == {
        "the network topology is not known yet (interlocks not started)"
    }
    assert all(rule.check("FR-SW1.SW", 0) is None for rule in interlocks.rules)
