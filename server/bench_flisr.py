"""``pyadms bench flisr``: a fault on the grid rig, automatic FLISR through the real protocols.

One process runs the grid rig (:class:`rig.grid.GridSimulator`, every RTU
and FRTU a real IEC-104 / Modbus outstation on loopback) and a control
centre with the network model and the online ADMS in automatic FLISR mode
(:class:`server.wiring.ControlCentre`). Once every link is up, every value
good and the first state estimate made, a permanent fault is injected on a
line (protection trips the nearest breaker or recloser, which locks out;
FPIs on the supply path pick up). The control centre sees the trip and the
FPIs over the protocols, locates, plans, and executes every step by
select-before-operate with check-back.

Figures:
- ``plan_ms``: fault location and planning on the snapshot (``locate_ms`` +
  ``plan_ms`` of the plan), ``trigger_to_plan_ms`` from the FLISR trigger
  (after ``flisr_delay_s``) to the plan, snapshot included;
- ``detect_s``: fault injection to the plan's creation (trip and FPIs over
  the protocols, the FLISR delay, planning);
- ``fault_to_restored_s``: fault injection to the check-back of the last
  restoration (close) step;
- ``customers_restored_pct``: customers the rig shows supplied again at the
  end, of the restorable ones (interrupted by the trip, less those in the
  isolated fault zone the plan could not restore by design).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from models.binding import BindingOptions, bind_config
from models.loader import load_network
from protocols.base import Quality
from rig.grid import GridOptions, GridSimulator
from server.settings import AdmsSettings, ServerSettings, UserSettings
from server.wiring import ControlCentre

__all__ = ["run"]

#: the default fault: restoration both upstream (re-closing the feeder breaker) and downstream
DEFAULT_FAULT = "L133"


async def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench flisr: no {what} after {timeout:g} s")
        await asyncio.sleep(0.02)


def _customers(grid: GridSimulator) -> dict[str, int]:
    net = grid.net
    counts = net.load["customers"] if "customers" in net.load.columns else [1] * len(net.load)
    return {gid: int(c) for gid, c in zip(grid.model.ids("load"), counts, strict=True)}


def _energised_loads(grid: GridSimulator) -> set[str]:
    state = grid.topology.state
    return {gid for gid in grid.model.ids("load") if state.is_energised(gid)}


async def _run(
    network: str,
    fault: str,
    scan_period_s: float,
    stuck: list[str],
    timeout_s: float,
) -> dict[str, Any]:
    model = load_network(network)
    config = bind_config(
        model, BindingOptions(scan_period_s=scan_period_s, timeout_s=min(scan_period_s, 2.0))
    )
    grid = GridSimulator(model, config, GridOptions(noise_pct=0.5, time_scale=0, seed=1))
    t_start = time.perf_counter()
    await grid.start()
    adms = AdmsSettings(flisr_mode="automatic")
    settings = ServerSettings(adms=adms, users=UserSettings(hash_time_cost=1, hash_memory_kib=8192))
    cc = ControlCentre(
        grid.field.resolved_config(), settings=settings, network=load_network(network)
    )
    await cc.start()
    try:
        assert cc.adms is not None
        service = cc.adms
        devices = len(config.devices)
        await _wait(lambda: cc.fep.connected_count() == devices, 60, "links up")
        names = cc.pointdb.names()
        await _wait(
            lambda: all(cc.pointdb.get(n).quality == Quality.GOOD for n in names), 60, "good values"
        )
        await service.ready()
        await service.run_estimate("demand")
        startup_s = time.perf_counter() - t_start
        for switch in stuck:
            device = f"FR-{switch}"
            if device not in grid.field.devices:
                raise ValueError(f"bench flisr: no FRTU {device} for stuck switch {switch}")
            grid.field.devices[device].behaviour.stuck = True

        customers = _customers(grid)
        before = _energised_loads(grid)
        t_fault = time.time()
        report = grid.inject_fault(fault)
        interrupted = before - _energised_loads(grid)
        await _wait(
            lambda: any(
                p.app == "flisr" and not p.open and not p.busy for p in service.plans.values()
            ),
            timeout_s,
            "FLISR plan executed",
        )
        plan = next(p for p in service.plans.values() if p.app == "flisr")
        view = plan.view()
        details = view["details"]
        restored = interrupted & _energised_loads(grid)
        zone = int(details.get("customers_in_fault_zone", 0))
        n_interrupted = sum(customers[gid] for gid in interrupted)
        n_restored = sum(customers[gid] for gid in restored)
        restorable = n_interrupted - zone
        closes = [s for s in view["steps"] if s["action"] == "close" and s["state"] == "done"]
        executed = [s for s in view["steps"] if s["finished"] is not None]
        timings = details.get("timings_ms", {})
        return {
            "network": network,
            "buses": len(model.net.bus),
            "devices": devices,
            "protocols": sorted({d.protocol for d in config.devices.values()}),
            "scan_period_s": scan_period_s,
            "flisr_delay_s": adms.flisr_delay_s,
            "fault_line": fault,
            "tripped": report.protection,
            "fpis_picked_up": len(report.fpis),
            "plan_id": view["id"],
            "plan_state": view["state"],
            "summary": view["summary"],
            "located_zone": details.get("location", {}).get("lines"),
            "plan_ms": round(timings.get("locate_ms", 0.0) + timings.get("plan_ms", 0.0), 3),
            "trigger_to_plan_ms": timings.get("trigger_to_plan_ms"),
            "detect_s": round(view["created"] - t_fault, 3),
            "fault_to_restored_s": round(max(s["finished"] for s in closes) - t_fault, 3)
            if closes
            else None,
            "fault_to_last_step_s": round(max(s["finished"] for s in executed) - t_fault, 3)
            if executed
            else None,
            "steps": [
                f"{s['action']} {s['element']}: {s['state']}"
                + (f" ({s['message']})" if s["state"] != "done" else "")
                for s in view["steps"]
            ],
            "stuck": stuck,
            "replans": len(details.get("replans", [])),
            "customers_interrupted": n_interrupted,
            "customers_in_fault_zone": zone,
            "customers_restorable": restorable,
            "customers_without_path": details.get("customers_without_path"),
            "customers_restored": n_restored,
            "customers_restored_pct": round(100.0 * n_restored / restorable, 2)
            if restorable > 0
            else None,
            "startup_s": round(startup_s, 2),
            "load_average": os.getloadavg()[0],
        }
    finally:
        await cc.stop()
        await grid.stop()


def run(
    network: str = "mv_oberrhein",
    fault: str = DEFAULT_FAULT,
    *,
    scan_period_s: float = 2.0,
    stuck: list[str] | None = None,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Inject ``fault`` on ``network``'s rig and time automatic FLISR (module doc)."""
    return asyncio.run(_run(network, fault, scan_period_s, list(stuck or []), timeout_s))
