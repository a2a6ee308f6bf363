"""Power-flow rig -> real protocols -> control centre: measurements, controls, topology, faults.

mv_oberrhein (63 devices, IEC 104 + Modbus) runs once for the module; the fault
sequences use baran_wu with some FRTUs on DNP3 and Modbus.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from models.binding import BindingOptions, bind_config
from models.gis_import import from_geojson
from models.loader import load_network
from models.network import NetworkModel
from models.topology import TopologyProcessor
from protocols.base import CommandStatus, DoubleState, Quality
from rig.grid import LOAD_PROFILE, MEASURED, DailyProfile, GridOptions, GridSimulator
from rig.scenario import Scenario, ScenarioError, ScenarioFailed
from scada.config import ScadaConfig
from server.topology import TopologyFeed
from server.wiring import ControlCentre
from tests.conftest import wait_for
from tests.models.netfactory import small_network

SCAN_S = 0.5
NOISE_PCT = 1.0
ON, OFF = float(DoubleState.ON), float(DoubleState.OFF)


@dataclass
class Rig:
    grid: GridSimulator
    cc: ControlCentre
    topology: TopologyFeed
    start_s: float

    def value(self, point: str) -> float:
        return self.cc.pointdb.get(point).value

    def quality(self, point: str) -> Quality:
        return self.cc.pointdb.get(point).quality

    def shows(self, point: str, value: float) -> Callable[[], bool]:
        """A predicate: the point database has ``value`` for ``point``."""
        return lambda: self.value(point) == value

    def point(self, element: str) -> str:
        """The (first) point bound to ``element``."""
        return next(
            p.name
            for dp in self.grid.config.expand()
            for p in dp.points
            if p.template.element == element
        )


def options(**kw: Any) -> BindingOptions:
    return BindingOptions(scan_period_s=SCAN_S, timeout_s=SCAN_S, **kw)


async def start_rig(model: NetworkModel, cfg: ScadaConfig, grid_options: GridOptions) -> Rig:
    t0 = time.perf_counter()
    grid = GridSimulator(model, cfg, grid_options)
    await grid.start()
    start_s = time.perf_counter() - t0
    cc = ControlCentre(grid.field.resolved_config())
    await cc.start()
    await wait_for(lambda: cc.fep.connected_count() == len(cfg.devices), 30, "every link up")
    names = cc.pointdb.names()
    await wait_for(
        lambda: all(cc.pointdb.get(n).quality == Quality.GOOD for n in names), 15, "good values"
    )
    config = cc.fep.config
    assert config is not None
    feed = TopologyFeed(TopologyProcessor(model.copy()), cc.pointdb, config)
    feed.sync()
    return Rig(grid, cc, feed, start_s)


async def stop_rig(rig: Rig) -> None:
    rig.topology.close()
    await rig.cc.stop()
    await rig.grid.stop()


def pf_dead_buses(grid: GridSimulator) -> set[str]:
    """Buses without a power-flow voltage: de-energised by the physics, not the topology."""
    vm = grid.net.res_bus.vm_pu.to_numpy(float)
    return {gid for gid, v in zip(grid.model.ids("bus"), vm, strict=True) if math.isnan(v)}


def upstream_fpis(model: NetworkModel, line: str) -> tuple[set[str], set[str]]:
    """FPIs (at switches) whose opening de-energises ``line``, and those whose opening doesn't."""
    up: set[str] = set()
    down: set[str] = set()
    study = TopologyProcessor(model.copy())
    net = model.net
    for gid, et, element in zip(model.ids("fpi"), net.fpi.et, net.fpi.element, strict=True):
        assert et == "switch"
        switch = model.gis_id_of("switch", int(element))
        study.set_switch(switch, False)
        (down if study.state.is_energised(line) else up).add(gid)
        study.set_switch(switch, True)
    return up, down


# ----------------------------------------------------------------- mv_oberrhein
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def oberrhein() -> AsyncIterator[Rig]:
    model = load_network("mv_oberrhein")
    cfg = bind_config(model, options())
    rig = await start_rig(
        model, cfg, GridOptions(noise_pct=NOISE_PCT, time_scale=0, update_period_s=0.5, seed=7)
    )
    yield rig
    await stop_rig(rig)


@pytest.mark.asyncio(loop_scope="module")
async def test_measurements_match_the_power_flow_within_noise(oberrhein: Rig) -> None:
    rig = oberrhein
    assert len(rig.grid.field.devices) == len(rig.grid.config.devices) >= 40
    truth = rig.grid.true_values()
    analog = [name for name, m in rig.grid.bindings.items() if m.quantity in MEASURED]
    assert len(analog) > 90
    sigmas = []
    for name in analog:
        true, got = truth[name], rig.value(name)
        sigma = NOISE_PCT / 100 * abs(true)
        assert abs(got - true) <= 5 * sigma + 1e-6, f"{name}: {got} vs {true}"
        if sigma > 0:
            sigmas.append(abs(got - true) / sigma)
    for name in rig.grid.bindings.keys() - set(analog):
        assert rig.value(name) == pytest.approx(truth[name]), name
    print(
        f"\nrig start {rig.start_s:.2f} s; {len(analog)} analogs: "
        f"mean |dev| {np.mean(sigmas):.2f} sigma, max {np.max(sigmas):.2f} sigma"
    )
    assert 0.3 < float(np.mean(sigmas)) < 1.5  # the noise is there, and of the configured size


@pytest.mark.asyncio(loop_scope="module")
async def test_opening_a_switch_deenergises_exactly_the_downstream_buses(oberrhein: Rig) -> None:
    rig = oberrhein
    point = rig.point("switch:SW188")
    before_cc = rig.topology.processor.state.deenergised_buses
    before_pf = pf_dead_buses(rig.grid)
    assert before_cc == before_pf
    result = await rig.cc.fep.command(point, 0, operator="test")
    assert result.status == CommandStatus.CONFIRMED, result
    assert not rig.grid.topology.is_closed("SW188")
    dead = pf_dead_buses(rig.grid) - before_pf
    assert len(dead) == 8
    await wait_for(
        lambda: rig.topology.processor.state.deenergised_buses - before_cc == dead,
        5,
        "control-centre topology",
    )
    await wait_for(lambda: rig.value("FR-SW188.I") == 0.0, 5, "no current through it")
    result = await rig.cc.fep.command(point, 1, operator="test")
    assert result.status == CommandStatus.CONFIRMED, result
    await wait_for(
        lambda: rig.topology.processor.state.deenergised_buses == before_cc, 5, "restored"
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_tap_and_der_setpoint_controls_change_the_network(oberrhein: Rig) -> None:
    rig = oberrhein
    v_before = rig.grid.true_values()["SS1.B39.V"]
    tap = rig.value("SS1.TR114.TAP")
    result = await rig.cc.fep.command("SS1.TR114.TAP", +1)
    assert result.status == CommandStatus.CONFIRMED, result
    assert rig.grid.net.trafo.at[rig.grid.model.index_of("trafo", "TR114"), "tap_pos"] == tap + 1
    assert abs(rig.grid.true_values()["SS1.B39.V"] - v_before) > 0.1  # 1.5 % of 20 kV per step
    assert (await rig.cc.fep.command("SS1.TR114.TAP", -1)).status == CommandStatus.CONFIRMED

    der = next(d for d in rig.grid.config.devices if d.startswith("DER-"))
    rating = rig.value(f"{der}.PSET")
    assert rig.grid.true_values()[f"{der}.P"] > 0.1
    result = await rig.cc.fep.command(f"{der}.PSET", 0.1)  # over Modbus
    assert result.status == CommandStatus.CONFIRMED, result
    assert rig.grid.true_values()[f"{der}.P"] == pytest.approx(0.1)
    await wait_for(lambda: abs(rig.value(f"{der}.P") - 0.1) < 0.006, 5, "curtailed output")
    assert (await rig.cc.fep.command(f"{der}.PSET", rating)).status == CommandStatus.CONFIRMED


@pytest.mark.asyncio(loop_scope="module")
async def test_fault_trips_the_nearest_recloser_and_sets_upstream_fpis(oberrhein: Rig) -> None:
    rig = oberrhein
    up, down = upstream_fpis(rig.grid.model, "L43")
    assert len(up) == 6 and down
    dead_before = pf_dead_buses(rig.grid)
    behind = TopologyProcessor(rig.grid.model.copy())
    behind.set_switch("SW234", False)
    report = rig.grid.inject_fault("L43")
    assert report.protection == "SW234" and set(report.fpis) == up
    assert set(report.deenergised_buses) == behind.state.deenergised_buses - dead_before
    assert set(report.deenergised_buses) == pf_dead_buses(rig.grid) - dead_before
    try:
        await wait_for(lambda: rig.value("FR-SW234.SW") == OFF, 5, "recloser open")
        await wait_for(lambda: rig.value("FR-SW234.TRIP") == 1, 5, "recloser trip flag")
        for fpi in up | down:
            point = rig.point(f"fpi:{fpi}")
            want = 1.0 if fpi in up else 0.0
            await wait_for(rig.shows(point, want), 5, f"{point} = {want}")
        assert rig.value(rig.point("switch:SW321")) == ON  # the feeder breaker stays closed
        assert rig.value(rig.point("switch:SW321:trip")) == 0
        await wait_for(
            lambda: (
                rig.topology.processor.state.deenergised_buses
                == set(report.deenergised_buses) | dead_before
            ),
            5,
            "downstream de-energised in the control centre",
        )
    finally:
        rig.grid.clear_fault()
        result = await rig.cc.fep.command("FR-SW234.SW", 1)
    assert result.status == CommandStatus.CONFIRMED, result
    await wait_for(lambda: rig.value("FR-SW234.TRIP") == 0, 5, "trip reset by the close")
    assert all(rig.value(rig.point(f"fpi:{f}")) == 0 for f in up)


# ------------------------------------------------------------------- baran_wu
@pytest.fixture
async def baran() -> AsyncIterator[Rig]:
    model = load_network("baran_wu")
    cfg = bind_config(
        model,
        options(
            protocols={"FR-SW1": "dnp3", "FR-SW2": "dnp3", "FR-SW3": "modbus"},
            checkback_timeout_s=3.0,  # the stuck switch waits for it
        ),
    )
    rig = await start_rig(
        model,
        cfg,
        GridOptions(time_scale=0, update_period_s=0, trip_delay_s=0.05, reclose_interval_s=0.4),
    )
    yield rig
    await stop_rig(rig)


def record(rig: Rig, point: str) -> list[float]:
    """Every reported value of ``point`` from now on."""
    handle = rig.cc.pointdb.handle(point)
    seen: list[float] = []
    rig.cc.pointdb.subscribe(
        lambda batch: seen.extend(batch.values[batch.handles == handle].tolist())
    )
    return seen


async def test_reclose_attempts_then_lockout(baran: Rig) -> None:
    rig = baran
    up, _ = upstream_fpis(rig.grid.model, "L9")
    assert {"FPI-SW1", "FPI-SW2", "FPI-SW3"} <= up  # FPIs on DNP3 and Modbus FRTUs
    assert "FPI-SW4" not in up
    cb = record(rig, "SS1.F1.CB")
    report = rig.grid.inject_fault("L9", reclose_attempts=2)
    assert report.protection == "CB1"
    await wait_for(lambda: "CB1" in rig.grid.lockouts, 5, "lockout")
    operations = [(e.switch, e.closed, e.cause) for e in rig.grid.switch_log]
    assert operations == [
        ("CB1", False, "protection"),
        ("CB1", True, "reclose"),
        ("CB1", False, "protection"),
        ("CB1", True, "reclose"),
        ("CB1", False, "protection"),
    ]
    # the control centre saw the breaker go (and, as events allow, come back)
    await wait_for(lambda: rig.value("SS1.F1.CB") == OFF, 5, "breaker open")
    assert cb[0] == OFF and cb[-1] == OFF and cb.count(ON) <= 2
    for point in (rig.point(f"fpi:{fpi}") for fpi in up):
        await wait_for(rig.shows(point, 1), 5, point)
    assert rig.value("FR-SW4.FPI") == 0
    await wait_for(lambda: rig.value("SS1.F1.TRIP") == 1, 5, "breaker trip flag")
    await wait_for(lambda: rig.topology.processor.state.energised_buses == {"B0"}, 5, "feeder dead")
    # de-energised parts report 0 (FR-SW1 is polled over DNP3)
    await wait_for(lambda: rig.value("SS1.F1.P") == 0 and rig.value("FR-SW1.I") == 0, 5, "zero")


async def test_temporary_fault_recloses_and_closing_onto_a_fault_trips(baran: Rig) -> None:
    rig = baran
    rig.grid.inject_fault("L20", reclose_attempts=1)
    rig.grid.clear_fault("L20")
    await wait_for(lambda: len(rig.grid.switch_log) == 2, 5, "reclose")
    assert [(e.closed, e.cause) for e in rig.grid.switch_log] == [
        (False, "protection"),
        (True, "reclose"),
    ]
    assert not rig.grid.lockouts and rig.grid.faults == {}
    await wait_for(lambda: rig.value("SS1.F1.CB") == ON, 5, "closed again")
    await wait_for(lambda: rig.value("SS1.F1.TRIP") == 0, 5, "trip reset")
    # a permanent fault behind an open switch: closing the switch onto it trips the breaker
    result = await rig.cc.fep.command("FR-SW1.SW", 0)  # over DNP3
    assert result.status == CommandStatus.CONFIRMED, result
    report = rig.grid.inject_fault("L9")
    assert report.protection is None and rig.grid.tripped == frozenset()
    await rig.cc.fep.command("FR-SW1.SW", 1)
    await wait_for(lambda: rig.value("SS1.F1.CB") == OFF, 5, "breaker trips")
    assert rig.grid.tripped == {"CB1"} and rig.grid.lockouts == {"CB1"}
    assert [(e.switch, e.closed, e.cause) for e in rig.grid.switch_log[-3:]] == [
        ("SW1", False, "command"),
        ("SW1", True, "command"),
        ("CB1", False, "protection"),
    ]


async def test_measurement_failures_comm_loss_and_stuck_switch(baran: Rig) -> None:
    rig = baran
    rig.grid.fail_measurement("SS1.F1.P", "invalid")
    await wait_for(lambda: Quality.INVALID in rig.quality("SS1.F1.P"), 5, "invalid")
    await rig.grid.field.stop_device("SS1")
    await wait_for(lambda: Quality.COMM_FAIL in rig.quality("SS1.F1.CB"), 5, "comm loss")
    await rig.grid.field.start_device("SS1")
    await wait_for(lambda: rig.quality("SS1.F1.CB") == Quality.GOOD, 15, "comm restored")
    # still failed after the restart
    await wait_for(lambda: Quality.INVALID in rig.quality("SS1.F1.P"), 5, "invalid again")
    rig.grid.field.behaviour("FR-SW7").stuck = True
    result = await rig.cc.fep.command("FR-SW7.SW", 0)
    assert result.status == CommandStatus.TIMED_OUT, result
    assert rig.grid.topology.is_closed("SW7") and rig.value("FR-SW7.SW") == ON
    rig.grid.restore_measurement("SS1.F1.P")
    await wait_for(lambda: rig.quality("SS1.F1.P") == Quality.GOOD, 5, "valid again")
    frozen = rig.grid.true_values()["SS1.F1.Q"]  # no noise: what the RTU reports now
    rig.grid.fail_measurement("SS1.F1.Q", "frozen")
    p_before = rig.grid.true_values()["SS1.F1.P"]
    rig.grid.scale_loads(0.5)
    p_after = rig.grid.true_values()["SS1.F1.P"]
    assert p_after < 0.6 * p_before
    await wait_for(lambda: rig.value("SS1.F1.P") == pytest.approx(p_after, rel=1e-5), 5, "P")
    assert rig.value("SS1.F1.Q") == pytest.approx(frozen, rel=1e-6)
    assert rig.grid.true_values()["SS1.F1.Q"] < 0.6 * frozen
    rig.grid.restore_measurement("SS1.F1.Q")
    await wait_for(
        lambda: (
            rig.value("SS1.F1.Q") == pytest.approx(rig.grid.true_values()["SS1.F1.Q"], rel=1e-5)
        ),
        5,
        "follows again",
    )


async def test_scenario_drives_the_grid(baran: Rig) -> None:
    rig = baran
    scenario = Scenario.model_validate(
        {
            "steps": [
                {"at_s": 0, "time_scale": 0},
                {"at_s": 0, "load": {"scale": 0.5}},
                {"at_s": 0, "load": {"element": "LD18", "p_mw": 0.5}},
                {"at_s": 0, "fault": {"line": "L30"}},
                {"at_s": 0, "expect": {"point": "SS1.F1.CB", "value": OFF, "timeout_s": 2}},
                {"at_s": 0.1, "clear_fault": {}},
                {"at_s": 0.1, "expect": {"point": "SS1.F1.TRIP", "value": 1, "timeout_s": 2}},
                {"at_s": 0.1, "measurement": {"point": "FR-SW5.I", "failure": "invalid"}},
            ]
        }
    )
    await scenario.run(rig.grid.field, rig.grid)
    assert rig.grid.faults == {} and rig.grid.fpis_set == frozenset()
    net = rig.grid.net
    ld18 = rig.grid.model.index_of("load", "LD18")
    assert net.load.at[ld18, "p_mw"] * net.load.at[ld18, "scaling"] == pytest.approx(0.5)
    await wait_for(lambda: Quality.INVALID in rig.quality("FR-SW5.I"), 5, "invalid")
    with pytest.raises(ScenarioError, match="needs a power-flow rig"):
        scenario.check(rig.grid.field)
    bad = Scenario.model_validate({"steps": [{"at_s": 0, "fault": {"line": "NOPE"}}]})
    with pytest.raises(ScenarioError, match="no line 'NOPE'"):
        await bad.run(rig.grid.field, rig.grid)
    failing = Scenario.model_validate(
        {"steps": [{"at_s": 0, "expect": {"point": "SS1.F1.CB", "value": ON, "timeout_s": 0.1}}]}
    )
    with pytest.raises(ScenarioFailed):
        await failing.run(rig.grid.field, rig.grid)


# ------------------------------------------------------- small network, clock
async def test_capacitor_steps_and_daily_profile_clock() -> None:
    model = from_geojson(small_network())
    cfg = bind_config(model, options())
    rig = await start_rig(
        model, cfg, GridOptions(time_scale=0, update_period_s=0.05, start_hour=3.0)
    )
    try:
        q = rig.grid.true_values()["CAP-C4.Q"]
        assert q < 0 and rig.value("CAP-C4.STEP") == 1
        result = await rig.cc.fep.command("CAP-C4.STEP", -1)
        assert result.status == CommandStatus.CONFIRMED, result
        assert rig.grid.true_values()["CAP-C4.Q"] == 0
        assert (await rig.cc.fep.command("CAP-C4.STEP", +1)).status == CommandStatus.CONFIRMED
        assert rig.grid.true_values()["CAP-C4.Q"] == pytest.approx(q)
        # the clock runs at 2 simulated hours per second from 03:00; loads follow the profile
        net = rig.grid.net
        base = net.load.scaling.to_numpy(float) / LOAD_PROFILE.at(3.0)
        night = rig.grid.true_values()["SS1.F1.P"]
        rig.grid.set_time_scale(7200)
        await wait_for(lambda: rig.grid.sim_hour >= 4.0, 5, "simulated time passing")
        rig.grid.set_time_scale(0)
        hour = rig.grid.sim_hour
        assert net.load.scaling.to_numpy(float) == pytest.approx(base * LOAD_PROFILE.at(hour))
        now = rig.grid.true_values()["SS1.F1.P"]
        assert now != pytest.approx(night, rel=1e-3)
        await wait_for(lambda: rig.value("SS1.F1.P") == pytest.approx(now), 5, "reported")
    finally:
        await stop_rig(rig)


def test_daily_profile_interpolates_periodically() -> None:
    p = DailyProfile((0.0, 1.0))  # 00:00 -> 0, 12:00 -> 1
    assert p.at(6) == pytest.approx(0.5)
    assert p.at(18) == pytest.approx(0.5)
    assert p.at(24 + 12) == pytest.approx(1.0)
    assert DailyProfile((0.7,)).at(13.3) == 0.7
