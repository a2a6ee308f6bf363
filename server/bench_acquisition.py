"""``pyadms bench acquisition``: simulated RTUs -> real protocols -> FEPs -> point database.

The parent process writes a configuration (one template per protocol, all
points analog so every change carries its own timestamp), then starts *rig*
worker processes that serve the RTUs and *FEP* worker processes that poll them,
each over a slice of the devices. Workers talk to the parent in JSON lines on
stdin/stdout.

Latency without a shared clock object: the rig sets each changed point to
``time.time() % 1000`` (float32 keeps 0.1 ms there) and the FEP side computes
``(time.time() % 1000 - value) % 1000`` when the change reaches the point
database's subscribers, i.e. field change -> point database, through sockets,
protocol stacks, raw -> engineering conversion and deadband/quality handling.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import yaml

from scada.config import ScadaConfig, load_config

ProgressFactory = Callable[[str], Callable[[int, int], None]]

#: devices one worker process holds, per protocol (c104 runs a thread per connection)
DEVICES_PER_FEP = {"iec104": 250, "dnp3": 500, "modbus": 500}
DEVICES_PER_RIG = {"iec104": 250, "dnp3": 500, "modbus": 500}
BASE_PORT = {"iec104": 20000, "dnp3": 24000, "modbus": 28000}


def _template(protocol: str, points: int) -> dict[str, Any]:
    if protocol == "modbus":
        return {
            "name": "A{i}",
            "kind": "analog",
            "address": 0,
            "repeat": points,
            "address_step": 2,
            "table": "input_register",
            "dtype": "float32",
        }
    return {
        "name": "A{i}",
        "kind": "analog",
        "address": 1 if protocol == "iec104" else 0,
        "repeat": points,
    }


def build_config(
    shares: dict[str, int],
    points_per_rtu: int,
    scan_period_s: float,
    stations_per_port: int = 1,
) -> dict[str, Any]:
    """Templates and devices for the benchmark (ports fixed below the ephemeral range).

    With ``stations_per_port`` > 1, IEC-104 RTUs are served ``stations_per_port``
    to a port (one common address each, like RTUs behind a gateway): a c104
    server costs ~4.7 MB and an accept thread, so 1,000 of them would take the
    rig most of this machine's two cores. The FEP side then shares one TCP link
    per port, one master per RTU.
    """
    templates = {
        f"bench_{p}": {"points": [_template(p, points_per_rtu)]} for p in shares if shares[p]
    }
    devices: list[dict[str, Any]] = []
    for protocol, count in shares.items():
        per_port = stations_per_port if protocol == "iec104" else 1
        for i in range(count):
            devices.append(
                {
                    "name": f"{protocol.upper()}_{i + 1:04d}",
                    "template": f"bench_{protocol}",
                    "protocol": protocol,
                    "port": BASE_PORT[protocol] + i // per_port,
                    "address": 1 + i % per_port,
                    "scan_period_s": scan_period_s,
                    "timeout_s": min(1.0, scan_period_s),
                    "integrity_period_s": 0,
                    "reconnect_min_s": 0.5,
                    "reconnect_max_s": 5.0,
                }
            )
    return {"templates": templates, "devices": devices}


def parse_shares(protocols: list[str], rtus: int) -> dict[str, int]:
    """``["iec104"]`` -> all RTUs on IEC-104; ``["iec104:1000", "dnp3:500"]`` -> counts."""
    shares: dict[str, int] = {}
    plain = [p for p in protocols if ":" not in p]
    for entry in protocols:
        if ":" in entry:
            name, count = entry.split(":", 1)
            shares[name] = int(count)
    rest = rtus - sum(shares.values())
    for n, name in enumerate(plain):
        shares[name] = rest // len(plain) + (1 if n < rest % len(plain) else 0)
    for name in shares:
        if name not in BASE_PORT:
            raise ValueError(f"unknown protocol {name!r}")
    return shares


def _slices(cfg: ScadaConfig, per_process: dict[str, int]) -> list[list[str]]:
    groups: list[list[str]] = []
    by_protocol: dict[str, list[str]] = {}
    for name, dev in cfg.devices.items():
        by_protocol.setdefault(dev.protocol, []).append(name)
    for protocol, names in by_protocol.items():
        n = per_process[protocol]
        groups.extend(names[i : i + n] for i in range(0, len(names), n))
    return groups


class _Worker:
    def __init__(self, role: str, config: Path, devices: list[str], extra: list[str]) -> None:
        self.role = role
        devices_file = Path(tempfile.mkstemp(suffix=".json", dir=config.parent)[1])
        devices_file.write_text(json.dumps(devices))
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "server.bench_acquisition",
                role,
                str(config),
                str(devices_file),
                *extra,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.role} worker exited with {self.proc.wait()}")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def run(
    protocols: list[str],
    rtus: int,
    points_per_rtu: int,
    seconds: float,
    changes_per_s: float,
    fep_processes: int,
    scan_period_s: float,
    progress: ProgressFactory,
    stations_per_port: int = 1,
) -> dict[str, Any]:
    shares = parse_shares(protocols, rtus)
    workdir = Path(tempfile.mkdtemp(prefix="pyadms-bench-"))
    config_file = workdir / "bench.yaml"
    config_file.write_text(
        yaml.safe_dump(build_config(shares, points_per_rtu, scan_period_s, stations_per_port))
    )
    cfg = load_config([config_file])
    rig_groups = _slices(cfg, DEVICES_PER_RIG)
    if fep_processes:
        names = list(cfg.devices)
        size = math.ceil(len(names) / fep_processes)
        fep_groups = [names[i : i + size] for i in range(0, len(names), size)]
    else:
        fep_groups = _slices(cfg, DEVICES_PER_FEP)
    workers: list[_Worker] = []
    try:
        rate = changes_per_s / max(1, len(cfg.devices))
        rigs = [_Worker("rig", config_file, g, [str(rate * len(g))]) for g in rig_groups]
        workers += rigs
        report = progress("bench: rig processes ready")
        for n, w in enumerate(rigs, 1):
            w.receive()
            report(n, len(rigs))
        t_connect = time.monotonic()
        feps = [_Worker("fep", config_file, g, []) for g in fep_groups]
        workers += feps
        connected = _wait_connected(feps, len(cfg.devices), progress("bench: RTUs connected"))
        connect_s = time.monotonic() - t_connect
        for w in feps:
            w.send({"measure": True})
        for w in rigs:
            w.send({"go": seconds})
        for w in rigs:
            w.receive()
        time.sleep(2 * scan_period_s + 0.5)  # let the last changes' polls complete
        changes = 0
        for w in rigs:
            w.send({"stop": True})
            changes += w.receive()["changes"]
        results = []
        for w in feps:
            w.send({"report": True})
            results.append(w.receive())
    finally:
        for w in workers:
            w.close()
    lat = np.concatenate(
        [np.asarray(r["latencies"], dtype=float) for r in results] or [np.zeros(0)]
    )
    updates = sum(r["updates"] for r in results)
    return {
        "protocols": shares,
        "rtus": len(cfg.devices),
        "points": cfg.point_count,
        "connected_rtus": sum(r["connected"] for r in results),
        "connected_at_start": connected,
        "connect_s": round(connect_s, 1),
        "fep_processes": len(fep_groups),
        "rtus_per_fep_process": max(len(g) for g in fep_groups),
        "rig_processes": len(rig_groups),
        "seconds": seconds,
        "field_changes": changes,
        "updates": updates,
        "updates_per_s": round(updates / seconds),
        "latency_samples": int(lat.size),
        "latency_p50_s": round(float(np.percentile(lat, 50)), 4) if lat.size else None,
        "latency_p99_s": round(float(np.percentile(lat, 99)), 4) if lat.size else None,
        "latency_max_s": round(float(lat.max()), 4) if lat.size else None,
        "lost_changes_pct": round(100 * (1 - lat.size / changes), 2) if changes else None,
        "rss_mb": round(sum(r["rss_mb"] for r in results), 1),
        "cpu_s": round(sum(r["cpu_s"] for r in results), 2),
        "scan_period_s": scan_period_s,
        "iec104_stations_per_port": stations_per_port,
    }


def _wait_connected(feps: list[_Worker], total: int, report: Callable[[int, int], None]) -> int:
    deadline = time.monotonic() + max(60.0, total * 0.2)
    while True:
        counts = []
        for w in feps:
            w.send({"status": True})
            counts.append(w.receive()["connected"])
        done = sum(counts)
        report(min(done, total), total)
        if done >= total or time.monotonic() > deadline:
            return done
        time.sleep(0.5)


# ------------------------------------------------------------------ workers
def _subset(config_file: str, devices_file: str) -> ScadaConfig:
    cfg = load_config([config_file])
    names = json.loads(Path(devices_file).read_text())
    return ScadaConfig(cfg.templates, {n: cfg.devices[n] for n in names}, cfg.sources)


async def _lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _rig_worker(config_file: str, devices_file: str, rate: float) -> None:
    from rig.field import SimulatedField

    field = SimulatedField(_subset(config_file, devices_file))
    await field.start()
    points = [p for d in field.devices.values() for p in d.by_name]
    _say({"ready": len(field.devices)})
    reader = await _lines()
    go = json.loads(await reader.readline())
    rng = np.random.default_rng(os.getpid())
    changes = 0
    tick = 0.01
    end = time.monotonic() + go["go"]
    carry = 0.0
    next_tick = time.monotonic()
    while time.monotonic() < end:
        carry += rate * tick
        k, carry = int(carry), carry - int(carry)
        now = time.time() % 1000.0
        for i in rng.integers(0, len(points), k):
            field.set(points[i], now)
        changes += k
        next_tick += tick
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    _say({"finished": True})
    await reader.readline()
    _say({"changes": changes})
    await field.stop()


async def _fep_worker(config_file: str, devices_file: str) -> None:
    from scada.pointdb import ChangeBatch
    from server.wiring import ControlCentre

    cfg = _subset(config_file, devices_file)
    cc = ControlCentre(cfg)
    samples: list[np.ndarray] = []
    measuring = False
    updates = 0

    last = np.full(cfg.point_count, np.nan)

    def on_change(batch: ChangeBatch) -> None:
        nonlocal updates
        # only a new value is a field change: a refresh after a link recovery
        # re-reports old values (their "latency" would be their age)
        new = (batch.quality == 0) & (batch.values != last[batch.handles])
        last[batch.handles] = batch.values
        if not measuring:
            return
        values = batch.values[new]
        updates += len(values)
        samples.append((time.time() % 1000.0 - values) % 1000.0)

    cc.pointdb.subscribe(on_change)
    await cc.start()
    reader = await _lines()
    cpu0 = time.process_time()
    while True:
        msg = json.loads(await reader.readline())
        if "status" in msg:
            _say({"connected": cc.fep.connected_count()})
        elif "measure" in msg:
            measuring = True
            cpu0 = time.process_time()
        elif "report" in msg:
            measuring = False
            lat = np.concatenate(samples) if samples else np.zeros(0)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            _say(
                {
                    "connected": cc.fep.connected_count(),
                    "updates": updates,
                    "latencies": lat.round(5).tolist(),
                    "rss_mb": psutil.Process().memory_info().rss / 2**20,
                    "cpu_s": time.process_time() - cpu0,
                    "max_rss_mb": usage.ru_maxrss / 1024,
                }
            )
            break
    await cc.stop()


def _worker_main(argv: list[str]) -> None:
    role, config_file, devices_file, *rest = argv
    if role == "rig":
        asyncio.run(_rig_worker(config_file, devices_file, float(rest[0])))
    else:
        asyncio.run(_fep_worker(config_file, devices_file))


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
