"""Online ADMS end to end: grid rig -> real protocols -> control centre -> API (R-DMS-1/2/3/4/5).

Every test runs the power-flow rig (each RTU/FRTU a real outstation on
loopback), a control centre with the network model and the HTTP/WebSocket
API, and drives the ADMS through the API as a console would. mv_oberrhein
(63 devices) runs once for the module and is put back to normal after each
test; the baran_wu tests start their own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from models.binding import BindingOptions, bind_config
from models.loader import load_network
from protocols.base import Quality
from rig.grid import GridOptions, GridSimulator
from server.api import ApiServer, create_app
from server.auth import Role
from server.settings import (
    AdmsSettings,
    ApiSettings,
    HistorianSettings,
    ServerSettings,
    UserSettings,
)
from server.wiring import ControlCentre
from tests.conftest import wait_for

SCAN_S = 1.0
#: long enough for a loaded machine; the stuck-switch test waits for it once
CHECKBACK_S = 5.0
NOISE_PCT = 1.0
PASSWORDS = {"olga": "operator-secret", "vic": "viewer-secret"}
ROLES = {"olga": Role.OPERATOR, "vic": Role.VIEWER}
#: generous: the machine is shared with other test runs
TIMEOUT_S = 30.0


@dataclass
class Live:
    """A grid rig, a control centre with the network and the ADMS, and its API."""

    network: str
    grid: GridSimulator
    cc: ControlCentre
    api: ApiServer
    normal: dict[str, bool]
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, user: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.AsyncClient(base_url=self.api.url, headers=headers, timeout=60)

    async def get(self, path: str, user: str = "vic") -> Any:
        async with self.client(user) as c:
            r = await c.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    async def post(self, path: str, user: str = "olga", **kw: Any) -> httpx.Response:
        async with self.client(user) as c:
            return await c.post(path, **kw)

    async def plan_until(
        self, predicate: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """Poll ``GET /api/adms/plans`` until a plan satisfies ``predicate``."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for plan in await self.get("/api/adms/plans"):
                if predicate(plan):
                    return plan
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {TIMEOUT_S:g} s waiting for {what}")
            await asyncio.sleep(0.05)

    def audit(self, action: str) -> list[Any]:
        return [r for r in self.cc.historian.audit_trail() if r.action == action]

    def energised(self, element: str) -> bool:
        return self.grid.topology.state.is_energised(element)

    async def settled(self) -> None:
        """Every value good, and the control centre shows every switch as the rig has it."""
        cc, grid = self.cc, self.grid
        assert cc.adms is not None
        adms = cc.adms
        names = cc.pointdb.names()
        await wait_for(
            lambda: all(cc.pointdb.get(n).quality == Quality.GOOD for n in names),
            TIMEOUT_S,
            "good values",
        )
        switches = set(adms.binding.status_points.values())
        await wait_for(
            lambda: all(
                adms.binding.switch_closed(s) == grid.topology.is_closed(s) for s in switches
            ),
            TIMEOUT_S,
            "switch states in the control centre",
        )


async def start_live(network: str, flisr_mode: str = "advisory") -> Live:
    model = load_network(network)
    cfg = bind_config(
        model,
        BindingOptions(scan_period_s=SCAN_S, timeout_s=SCAN_S, checkback_timeout_s=CHECKBACK_S),
    )
    grid = GridSimulator(
        model,
        cfg,
        GridOptions(noise_pct=NOISE_PCT, time_scale=0, update_period_s=0.5, seed=7),
    )
    await grid.start()
    settings = ServerSettings(
        api=ApiSettings(port=0, push_interval_s=0.05),
        historian=HistorianSettings(flush_interval_s=0.1),
        users=UserSettings(hash_time_cost=1, hash_memory_kib=8192),
        # the rig's noise is the measurements' accuracy
        adms=AdmsSettings(
            flisr_mode=flisr_mode,  # type: ignore[arg-type]
            v_sigma_pct=NOISE_PCT,
            pq_sigma_pct=NOISE_PCT,
            i_sigma_pct=NOISE_PCT,
        ),
    )
    cc = ControlCentre(
        grid.field.resolved_config(), settings=settings, network=load_network(network)
    )
    await cc.start()
    api = ApiServer(create_app(cc), "127.0.0.1", 0)
    await api.start()
    normal = {s: grid.topology.is_closed(s) for s in grid.model.ids("switch")}
    live = Live(network, grid, cc, api, normal)
    try:
        for user, role in ROLES.items():
            await asyncio.to_thread(cc.users.create, user, PASSWORDS[user], role)
            async with httpx.AsyncClient(base_url=api.url, timeout=30) as c:
                r = await c.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
            assert r.status_code == 200, r.text
            live.tokens[user] = r.json()["token"]
        await wait_for(
            lambda: cc.fep.connected_count() == len(cfg.devices), TIMEOUT_S, "every link up"
        )
        await live.settled()
        assert cc.adms is not None
        await asyncio.wait_for(cc.adms.ready(), TIMEOUT_S)
    except BaseException:
        await stop_live(live)
        raise
    return live


async def stop_live(live: Live) -> None:
    await live.api.stop()
    await live.cc.stop()
    await live.grid.stop()


async def back_to_normal(live: Live) -> None:
    """Clear faults and failures, put every switch back in its normal state."""
    grid = live.grid
    grid.clear_fault()
    for name in list(grid.bindings):
        grid.restore_measurement(name)
    for device in grid.field.devices.values():
        device.behaviour.stuck = False
    for switch, closed in live.normal.items():
        if grid.topology.is_closed(switch) != closed:
            grid.set_switch(switch, closed, cause="test reset")
    assert live.cc.adms is not None
    live.cc.adms.flisr_mode = "advisory"
    await live.settled()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def oberrhein_live() -> AsyncIterator[Live]:
    live = await start_live("mv_oberrhein")
    yield live
    await stop_live(live)


@pytest_asyncio.fixture(loop_scope="module")
async def oberrhein(oberrhein_live: Live) -> AsyncIterator[Live]:
    yield oberrhein_live
    await back_to_normal(oberrhein_live)


@pytest.fixture
async def baran_advisory() -> AsyncIterator[Live]:
    live = await start_live("baran_wu", "advisory")
    yield live
    await stop_live(live)


@pytest.fixture
async def baran_automatic() -> AsyncIterator[Live]:
    live = await start_live("baran_wu", "automatic")
    yield live
    await stop_live(live)


def step_states(plan: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(s["action"], s["element"], s["state"]) for s in plan["steps"]]


# ------------------------------------------------------------ state estimation
@pytest.mark.asyncio(loop_scope="module")
async def test_estimate_on_demand_matches_the_rig_and_is_pushed(oberrhein: Live) -> None:
    live = oberrhein
    async with live.client("vic") as c:
        r = await c.post("/api/adms/estimate")
    assert r.status_code == 403  # operators run estimates
    ws = await connect(live.api.url.replace("http", "ws", 1) + "/api/ws")
    try:
        await ws.send(json.dumps({"type": "hello", "token": live.tokens["vic"], "resume": None}))
        assert json.loads(await ws.recv())["type"] == "welcome"
        snapshot = json.loads(await ws.recv())
        assert snapshot["type"] == "snapshot" and set(snapshot["adms"]) == {"estimate", "plans"}
        r = await live.post("/api/adms/estimate")
        assert r.status_code == 200, r.text
        result = r.json()

        async def pushed() -> None:
            while True:
                m = json.loads(await ws.recv())
                if any(i.get("estimate", {}).get("id") == result["id"] for i in m.get("adms", [])):
                    return

        await asyncio.wait_for(pushed(), TIMEOUT_S)
    finally:
        await ws.close()
    assert result["trigger"] == "demand" and result["converged"], result["message"]
    assert result["chi2"]["passed"] is True and not result["bad_data"]
    assert not result["unobservable"] and result["error"] is None
    truth = live.grid.net.res_bus.vm_pu
    for gid, true in zip(live.grid.model.ids("bus"), truth.tolist(), strict=True):
        if true == true:  # energised in the rig's power flow (not NaN)
            assert result["buses"][gid]["vm_pu"] == pytest.approx(true, abs=0.02), gid
    assert result["branches"]["L133"]["p_from_mw"] is not None
    assert (await live.get("/api/adms/estimate"))["id"] >= result["id"]
    audit = live.audit("adms estimate")
    assert audit and audit[-1].user == "olga" and audit[-1].result == "converged"


@pytest.mark.asyncio(loop_scope="module")
async def test_gross_measurement_error_is_identified(oberrhein: Live) -> None:
    live = oberrhein
    point = "SS1.B39.V"
    wrong = live.grid.true_values()[point] * 1.15  # 15 sigma
    live.grid.fail_measurement(point, "frozen")
    live.grid.field.set(point, wrong)
    await wait_for(
        lambda: abs(live.cc.pointdb.get(point).value - wrong) < 1e-3, TIMEOUT_S, "wrong value"
    )
    r = await live.post("/api/adms/estimate")
    result = r.json()
    assert result["converged"], result["message"]
    assert [b["point"] for b in result["bad_data"]] == [point]
    assert result["bad_data"][0]["normalised_residual"] > 3
    assert result["bad_data"][0]["measurement"] == "bus B39 v"
    assert result["chi2"]["passed"] is True  # after removing it


@pytest.mark.asyncio(loop_scope="module")
async def test_bad_quality_excluded_and_unobservable_area_reported(oberrhein: Live) -> None:
    live = oberrhein
    points = ["SS2.B318.V", "SS2.B319.V"]  # substation SS2's only voltages
    for point in points:
        live.grid.fail_measurement(point, "invalid")
    await wait_for(
        lambda: all(live.cc.pointdb.get(p).quality & Quality.INVALID for p in points),
        TIMEOUT_S,
        "invalid quality",
    )
    result = (await live.post("/api/adms/estimate")).json()
    assert set(points) <= set(result["excluded"])
    [area] = [a for a in result["unobservable"] if "B318" in a["buses"]]
    assert area["no_voltage_reference"]
    assert "voltage" in area["reason"]
    assert result["buses"]["B318"]["vm_pu"] is None
    assert result["buses"]["B39"]["vm_pu"] is not None  # SS1's island is still estimated


# ---------------------------------------------------------------------- FLISR
@pytest.mark.asyncio(loop_scope="module")
async def test_automatic_flisr_locates_isolates_and_restores(oberrhein: Live) -> None:
    live = oberrhein
    assert live.cc.adms is not None
    live.cc.adms.flisr_mode = "automatic"
    report = live.grid.inject_fault("L133")
    assert report.protection == "SW321"
    plan = await live.plan_until(
        lambda p: p["app"] == "flisr" and p["state"] in ("done", "failed"), "FLISR executed"
    )
    assert plan["state"] == "done", plan
    assert plan["mode"] == "automatic" and plan["approved_by"] == "adms"
    steps = step_states(plan)
    assert all(state == "done" for _, _, state in steps)
    isolation = [a for a, _, _ in steps].index("close")
    assert isolation >= 1 and {a for a, _, _ in steps[:isolation]} == {"open"}
    assert ("close", "SW321", "done") in steps  # the tripped breaker re-closed upstream
    assert {a for a, _, _ in steps[isolation:]} == {"close"}  # and a tie downstream
    assert all(s["point"] for s in plan["steps"])
    details = plan["details"]
    assert details["lockouts"] == ["SW321"] and details["fpis"] == {"FPI-SW60": True}
    assert "L133" in details["location"]["lines"]
    # the rig agrees with the plan: the fault zone is dead, everything else it restores is live
    assert not live.energised("L133")
    dead = {gid for gid in live.grid.model.ids("load") if not live.energised(gid)}
    assert dead == set(details["plan"]["unrestored_loads"])
    commands = [r for r in live.audit("command") if r.user == "adms"]
    assert [r.target for r in commands] == [s["point"] for s in plan["steps"]]
    assert all(r.result == "confirmed" for r in commands)
    assert live.audit("adms execute")[-1].user == "adms"


@pytest.mark.asyncio
async def test_advisory_plan_is_approved_over_the_api_and_executes(baran_advisory: Live) -> None:
    live = baran_advisory
    live.grid.inject_fault("L5")
    plan = await live.plan_until(lambda p: p["app"] == "flisr", "a proposed FLISR plan")
    assert plan["state"] == "proposed" and plan["mode"] == "advisory"
    assert all(s["state"] == "pending" for s in plan["steps"])
    assert live.grid.topology.is_closed("SW2")  # nothing operated before approval
    pid = plan["id"]
    r = await live.post(f"/api/adms/plans/{pid}/approve", user="vic")
    assert r.status_code == 403
    r = await live.post("/api/adms/plans/flisr-999/approve")
    assert r.status_code == 404 and "flisr-999" in r.json()["detail"]
    r = await live.post(f"/api/adms/plans/{pid}/approve")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "executing" and r.json()["approved_by"] == "olga"
    done = await live.plan_until(
        lambda p: p["id"] == pid and p["state"] in ("done", "failed"), "plan executed"
    )
    assert done["state"] == "done", done
    assert all(s["state"] == "done" for s in done["steps"])
    assert not live.energised("L5")
    for s in done["steps"]:
        assert live.grid.topology.is_closed(s["element"]) == (s["action"] == "close")
    r = await live.post(f"/api/adms/plans/{pid}/approve")
    assert r.status_code == 409 and "done" in r.json()["detail"]
    approvals = live.audit("adms approve")
    assert [(a.user, a.target, a.result) for a in approvals] == [
        ("olga", "flisr-999", "refused: unknown plan"),
        ("olga", pid, "executing"),
        ("olga", pid, f"refused: plan {pid} is done"),
    ]
    commands = [r.target for r in live.audit("command") if r.user == "olga"]
    assert commands == [s["point"] for s in done["steps"]]


@pytest.mark.asyncio
async def test_stuck_switch_during_flisr_replans(baran_advisory: Live) -> None:
    live = baran_advisory
    live.grid.inject_fault("L8")
    plan = await live.plan_until(lambda p: p["app"] == "flisr", "a proposed FLISR plan")
    stuck = plan["steps"][0]["element"]  # the first isolation switch will not move
    assert plan["steps"][0]["action"] == "open"
    live.grid.field.devices[f"FR-{stuck}"].behaviour.stuck = True
    r = await live.post(f"/api/adms/plans/{plan['id']}/approve")
    assert r.status_code == 200, r.text
    plan = await live.plan_until(
        lambda p: p["id"] == plan["id"] and p["state"] in ("done", "failed"), "FLISR executed"
    )
    assert plan["state"] == "done", plan
    failed = [s for s in plan["steps"] if s["state"] == "failed"]
    assert [(s["element"], s["action"]) for s in failed] == [(stuck, "open")]
    assert "check-back" in failed[0]["message"]
    details = plan["details"]
    assert details["failed_switches"] == [stuck] and len(details["replans"]) == 1
    assert "(re-planned)" in plan["summary"]
    after = plan["steps"][failed[0]["index"] + 1 :]
    assert all(s["element"] != stuck for s in after if s["state"] == "done")
    assert live.grid.topology.is_closed(stuck)  # it never moved
    assert not live.energised("L8")  # isolated past it
    for s in after:
        if s["state"] == "done":
            assert live.grid.topology.is_closed(s["element"]) == (s["action"] == "close")
    assert details["customers_restored"] > 0


@pytest.mark.asyncio
async def test_fault_without_restoration_path_step_by_step_then_reject(
    baran_advisory: Live,
) -> None:
    live = baran_advisory
    live.grid.inject_fault("L0")  # next to the only source: nothing can feed the rest
    plan = await live.plan_until(lambda p: p["app"] == "flisr", "a proposed FLISR plan")
    details = plan["details"]
    assert details["customers_restored"] == 0
    assert (
        details["customers_without_path"]
        == details["customers_interrupted"] - (details["customers_in_fault_zone"])
    )
    assert "no restoration path" in plan["summary"]
    assert {s["action"] for s in plan["steps"]} == {"open"}
    pid = plan["id"]
    r = await live.post(f"/api/adms/plans/{pid}/step")
    assert r.status_code == 200, r.text
    stepped = r.json()
    assert stepped["state"] == "executing"
    first = stepped["steps"][0]
    assert first["state"] == "done" and not live.grid.topology.is_closed(first["element"])
    assert all(s["state"] == "pending" for s in stepped["steps"][1:])
    r = await live.post(f"/api/adms/plans/{pid}/reject", json={"reason": "crew on site"})
    assert r.status_code == 200, r.text
    rejected = r.json()
    assert rejected["state"] == "rejected"
    assert all(s["state"] == "skipped" for s in rejected["steps"][1:])
    assert all(live.grid.topology.is_closed(s["element"]) for s in rejected["steps"][1:])
    r = await live.post(f"/api/adms/plans/{pid}/step")
    assert r.status_code == 409 and "rejected" in r.json()["detail"]
    assert [(a.user, a.result) for a in live.audit("adms step")] == [
        ("olga", "done: confirmed by check-back"),
        ("olga", f"refused: plan {pid} is rejected"),
    ]
    [reject] = live.audit("adms reject")
    assert (reject.user, reject.target, reject.details) == ("olga", pid, "crew on site")


# ------------------------------------------------- reconfiguration and volt-VAR
@pytest.mark.asyncio
async def test_reconfiguration_proposal_executes_close_before_open(baran_advisory: Live) -> None:
    live = baran_advisory
    r = await live.post("/api/adms/reconfigure")
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["app"] == "reconfiguration" and plan["state"] == "proposed"
    details = plan["details"]
    assert details["loss_kw_after"] < details["loss_kw_before"]
    assert details["validation"] == []
    actions = [s["action"] for s in plan["steps"]]
    assert actions and actions == ["close", "open"] * (len(actions) // 2)
    r = await live.post(f"/api/adms/plans/{plan['id']}/approve")
    assert r.status_code == 200, r.text
    done = await live.plan_until(
        lambda p: p["id"] == plan["id"] and p["state"] in ("done", "failed"), "executed"
    )
    assert done["state"] == "done", done
    for s in done["steps"]:
        assert live.grid.topology.is_closed(s["element"]) == (s["action"] == "close")
    assert all(live.energised(gid) for gid in live.grid.model.ids("load"))
    assert not live.grid.topology.state.paralleled_feeders


@pytest.mark.asyncio(loop_scope="module")
async def test_voltvar_proposal_moves_the_tap_changer(oberrhein: Live) -> None:
    live = oberrhein
    r = await live.post("/api/adms/voltvar", json={"objective": "sideways"})
    assert r.status_code == 422
    before = int(live.grid.net.trafo.at[live.grid.model.index_of("trafo", "TR114"), "tap_pos"])
    live.grid.set_tap("TR114", -9)  # +13.5 %: the busbar voltage is far above the band
    plan: dict[str, Any] | None = None
    try:
        await wait_for(
            lambda: live.cc.pointdb.get("SS1.TR114.TAP").value == -9, TIMEOUT_S, "tap -9"
        )
        r = await live.post("/api/adms/voltvar", json={"objective": "losses"})
        assert r.status_code == 200, r.text
        plan = r.json()
        assert plan["app"] == "voltvar" and plan["details"]["objective"] == "losses"
        [step] = [s for s in plan["steps"] if s["element"] == "TR114"]
        assert step["action"] == "set" and step["point"] == "SS1.TR114.TAP"
        assert step["value"] > -9
        r = await live.post(f"/api/adms/plans/{plan['id']}/approve")
        assert r.status_code == 200, r.text
        done = await live.plan_until(
            lambda p: p["id"] == plan["id"] and p["state"] in ("done", "failed"), "executed"
        )
        assert done["state"] == "done", done
        net, model = live.grid.net, live.grid.model
        for s in done["steps"]:
            table = "trafo" if s["element"] in model.ids("trafo") else "shunt"
            column = "tap_pos" if table == "trafo" else "step"
            assert net[table].at[model.index_of(table, s["element"]), column] == s["value"]
        moves = [r for r in live.audit("command") if r.target == "SS1.TR114.TAP"]
        assert len(moves) == step["value"] + 9 and all(r.user == "olga" for r in moves)
    finally:
        changes = plan["details"]["changes"] if plan is not None else {}
        for gid, (was, _) in {**changes, "TR114": (before, None)}.items():
            if gid in live.grid.model.ids("trafo"):
                live.grid.set_tap(gid, int(was))
            else:
                live.grid.set_capacitor_step(gid, int(was))
        await wait_for(
            lambda: live.cc.pointdb.get("SS1.TR114.TAP").value == before, TIMEOUT_S, "tap back"
        )
