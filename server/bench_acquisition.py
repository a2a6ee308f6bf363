"""``pyadms bench acquisition``: simulated RTUs -> protocols -> FEP processes -> control centre.

Processes, all on this machine, talking to the parent in JSON lines on
stdin/stdout:

- *rig* workers serve a slice of the devices each (:class:`rig.field.SimulatedField`)
  and change values at a known rate;
- *FEP* workers run the front end of a slice each: the protocol masters, a
  :class:`~scada.fep.FrontEnd` and a local :class:`~scada.pointdb.PointDB`
  (raw -> engineering units, deadband, link supervision and comm-fail). They
  forward every change batch of that database to the control centre over a
  Unix socket, as the architecture's separate FEP processes do;
- one *control centre* worker runs :class:`~server.wiring.ControlCentre`
  (point database, alarms, historian, push) for the whole configuration. Its
  devices are disabled there, since their masters run in the FEP processes,
  and it applies the forwarded batches to its point database.

Why the FEPs are processes of their own: c104 keeps a mutex locked while its
thread waits for the GIL, and a c104 thread that waits more than 100 ms for
such a mutex aborts the process. In a process that also runs the control
centre, long GIL holds (encoding a push message of 30,000 points, historian
writes, ADMS studies) made one FEP process with 1,000 IEC-104 RTUs abort or
stall (measured); lean FEP processes hold 1,000 (100 links) with p99 0.1 s.

What it takes for 3,000 devices / 90,000 points on two cores at 1,000
changes/s (1.1 % of the points per second): ``--protocol iec104:1000
dnp3:1500 modbus:500 --rtus 3000 --changes-per-s 1000
--iec104-stations-per-port 50`` with the default scan periods gave p99 0.78 s,
all connected, ~1.3 cores for rig, FEPs and control centre together:

- IEC-104 and DNP3 report changes themselves: IEC-104 spontaneously, DNP3
  with unsolicited responses (the rig's outstations send them), so their
  scan period only paces supervision (IEC t3, DNP3 event poll): 2 s and 10 s.
  Modbus is polled: its scan period bounds its latency (0.8 s for p99 < 1 s),
  and at ~500 us of CPU per poll (pymodbus client and server) it is the
  costliest protocol per device, hence 500 of the 3,000.
- The rig serves IEC-104 RTUs 50 to a c104 server (each server's accept
  thread polls every 10 ms: 1,000 servers idle at 1.6 cores).
- The FEP's :class:`~protocols.base.UpdateSink` and the control centre's
  intake batch changes (10 ms / 20 ms): alarms, historian and push cost per
  batch far more than per change.

Latency without a shared clock object: the rig sets each changed point to
``time.time() % 1000`` and the control centre computes
``(time.time() % 1000 - value) % 1000`` when the change reaches its point
database's subscribers: field change -> control-centre point database,
through sockets, protocol stacks, the FEP and the forwarding.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import shutil
import struct
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

PROTOCOLS = ("iec104", "dnp3", "modbus")
#: devices one FEP worker holds by default, per protocol (``--fep-processes`` overrides)
DEVICES_PER_FEP = {"iec104": 1000, "dnp3": 1500, "modbus": 250}
#: devices one rig worker serves
DEVICES_PER_RIG = {"iec104": 500, "dnp3": 1500, "modbus": 250}
BASE_PORT = {"iec104": 20000, "dnp3": 22000, "modbus": 28000}
#: DNP3 analogs travel as 32-bit integers in unsolicited responses (the rig's
#: outstations cannot choose float event variations): raw = value / this
DNP3_ANALOG_SCALE = 1e-4

#: environment variable passing the log levels (root, pymodbus) to the workers
_LOG_LEVELS = "PYADMS_BENCH_LOG_LEVELS"
#: a forwarded frame: kind (0 = point handles as JSON, 1 = change records), length
_FRAME = struct.Struct("<BI")
#: the control centre applies forwarded changes at most this often
_CC_APPLY_S = 0.02
_RECORD = np.dtype([("h", "<i8"), ("v", "<f8"), ("q", "<u4"), ("st", "<f8"), ("rt", "<f8")])


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
    point: dict[str, Any] = {
        "name": "A{i}",
        "kind": "analog",
        "address": 1 if protocol == "iec104" else 0,
        "repeat": points,
    }
    if protocol == "dnp3":
        point["scale"] = DNP3_ANALOG_SCALE
    return point


def build_config(
    shares: dict[str, int],
    points_per_rtu: int,
    scan_period_s: dict[str, float],
    stations_per_port: int = 1,
) -> dict[str, Any]:
    """Templates and devices for the benchmark (ports fixed below the ephemeral range).

    With ``stations_per_port`` > 1, IEC-104 RTUs are served ``stations_per_port``
    to a port (one common address each, like RTUs behind a gateway): a c104
    server costs ~4.7 MB and an accept thread polling every 10 ms, so 1,000 of
    them would take the rig most of this machine's two cores. The FEP side then
    shares one TCP link per port, one master per RTU.
    """
    templates = {
        f"bench_{p}": {"points": [_template(p, points_per_rtu)]} for p in shares if shares[p]
    }
    devices: list[dict[str, Any]] = []
    for protocol, count in shares.items():
        per_port = stations_per_port if protocol == "iec104" else 1
        last_port = BASE_PORT[protocol] + math.ceil(count / per_port) - 1
        if any(BASE_PORT[protocol] < base <= last_port for base in BASE_PORT.values()):
            raise ValueError(f"{count} {protocol} devices need ports up to {last_port}: too many")
        scan = scan_period_s[protocol]
        for i in range(count):
            devices.append(
                {
                    "name": f"{protocol.upper()}_{i + 1:04d}",
                    "template": f"bench_{protocol}",
                    "protocol": protocol,
                    "port": BASE_PORT[protocol] + i // per_port,
                    "address": 1 + i % per_port,
                    "scan_period_s": scan,
                    "timeout_s": min(1.0, scan),
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
        if name not in PROTOCOLS:
            raise ValueError(f"unknown protocol {name!r}")
    return shares


def parse_scan_periods(entries: list[str]) -> dict[str, float]:
    """``["0.5"]`` -> 0.5 s for all; ``["1", "dnp3=5", "modbus=0.8"]`` -> per protocol."""
    periods = dict.fromkeys(PROTOCOLS, 1.0)
    for entry in entries:
        name, _, value = entry.rpartition("=")
        if name and name not in PROTOCOLS:
            raise ValueError(f"--scan-period-s {entry!r}: unknown protocol {name!r}")
        for protocol in [name] if name else PROTOCOLS:
            periods[protocol] = float(value)
    return periods


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
    def __init__(self, role: str, args: list[str]) -> None:
        self.role = role
        # the workers log as the CLI was told to (-v), pymodbus's flood included
        levels = f"{logging.getLogger().level},{logging.getLogger('pymodbus').level}"
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "server.bench_acquisition", role, *args],
            env={**os.environ, _LOG_LEVELS: levels},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise RuntimeError(f"{self.role} worker exited with {self.proc.wait()}") from None

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.role} worker exited with {self.proc.wait()}")
        result: dict[str, Any] = json.loads(line)
        return result

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(message)
        return self.receive()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _devices_file(workdir: Path, names: list[str]) -> str:
    fd, path = tempfile.mkstemp(suffix=".json", dir=workdir)
    with os.fdopen(fd, "w") as f:
        json.dump(names, f)
    return path


def run(
    protocols: list[str],
    rtus: int,
    points_per_rtu: int,
    seconds: float,
    changes_per_s: float,
    fep_processes: int,
    scan_period_s: dict[str, float],
    progress: ProgressFactory,
    stations_per_port: int = 1,
    dnp3_unsolicited: bool = True,
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
    socket_path = str(workdir / "cc.sock")
    workers: list[_Worker] = []
    load_before = os.getloadavg()[0]
    try:
        rate = changes_per_s / max(1, len(cfg.devices))
        rigs = [
            _Worker(
                "rig",
                [
                    str(config_file),
                    _devices_file(workdir, g),
                    str(rate * len(g)),
                    "unsolicited" if dnp3_unsolicited else "polled",
                ],
            )
            for g in rig_groups
        ]
        workers += rigs
        report = progress("bench: rig processes ready")
        for n, w in enumerate(rigs, 1):
            w.receive()
            report(n, len(rigs))
        cc = _Worker("cc", [str(config_file), socket_path])
        workers.append(cc)
        cc.receive()
        t_connect = time.monotonic()
        feps = [
            _Worker("fep", [str(config_file), _devices_file(workdir, g), socket_path])
            for g in fep_groups
        ]
        workers += feps
        connected = _wait_connected(feps, len(cfg.devices), progress("bench: RTUs connected"))
        connect_s = time.monotonic() - t_connect
        time.sleep(2 * max(scan_period_s.values()))  # start-up values settle
        for w in [cc, *feps]:
            w.send({"measure": True})
        cpu0 = psutil.cpu_times()
        for w in rigs:
            w.send({"go": seconds})
        for w in rigs:
            w.receive()
        cpu1 = psutil.cpu_times()
        # the last changes' polls complete
        time.sleep(max(scan_period_s[p] for p in shares if shares[p]) + 1.0)
        # the FEPs report before the rig stops: its outstations going away is no link loss
        fep_results = [w.ask({"report": True}) for w in feps]
        cc_result = cc.ask({"report": True})
        rig_results = [w.ask({"stop": True}) for w in rigs]
    finally:
        for w in workers:
            w.close()
        shutil.rmtree(workdir, ignore_errors=True)
    changes = sum(r["changes"] for r in rig_results)
    lat = np.asarray(cc_result["latencies"], dtype=float)
    codes = np.asarray(cc_result["protocols"], dtype=np.int64)
    busy = sum(cpu1) - cpu1.idle - cpu1.iowait - (sum(cpu0) - cpu0.idle - cpu0.iowait)
    per_protocol = {}
    for code, protocol in enumerate(PROTOCOLS):
        mine = lat[codes == code]
        if shares.get(protocol) and mine.size:
            per_protocol[protocol] = {
                "samples": int(mine.size),
                "latency_p50_s": round(float(np.percentile(mine, 50)), 4),
                "latency_p99_s": round(float(np.percentile(mine, 99)), 4),
            }
    fep_rss = sum(r["rss_mb"] for r in fep_results)
    fep_cpu = sum(r["cpu_s"] for r in fep_results)

    def cores(results: list[dict[str, Any]]) -> float:
        return round(sum(r["cpu_s"] / r["wall_s"] for r in results), 3)

    return {
        "protocols": shares,
        "rtus": len(cfg.devices),
        "points": cfg.point_count,
        "connected_rtus": sum(r["connected"] for r in fep_results),
        "connected_at_start": connected,
        "connect_s": round(connect_s, 1),
        "fep_processes": len(fep_groups),
        "rtus_per_fep_process": max(len(g) for g in fep_groups),
        "iec104_links_per_fep_process": max(r["iec104_links"] for r in fep_results),
        "rig_processes": len(rig_groups),
        "seconds": seconds,
        "field_changes": changes,
        "updates": int(lat.size),
        "updates_per_s": round(lat.size / seconds),
        "latency_samples": int(lat.size),
        "latency_p50_s": round(float(np.percentile(lat, 50)), 4) if lat.size else None,
        "latency_p99_s": round(float(np.percentile(lat, 99)), 4) if lat.size else None,
        "latency_max_s": round(float(lat.max()), 4) if lat.size else None,
        "lost_changes_pct": round(100 * (1 - lat.size / changes), 2) if changes else None,
        "by_protocol": per_protocol,
        "rss_mb": round(cc_result["rss_mb"] + fep_rss, 1),
        "cpu_s": round(cc_result["cpu_s"] + fep_cpu, 2),
        "cc_rss_mb": round(cc_result["rss_mb"], 1),
        "cc_cpu_s": round(cc_result["cpu_s"], 2),
        "fep_rss_mb": round(fep_rss, 1),
        "fep_cpu_s": round(fep_cpu, 2),
        "rig_rss_mb": round(sum(r["rss_mb"] for r in rig_results), 1),
        "rig_cpu_s": round(sum(r["cpu_s"] for r in rig_results), 2),
        "cores": {
            "control_centre": cores([cc_result]),
            "feps": cores(fep_results),
            "rig": cores(rig_results),
        },
        "machine_cpu_busy_pct": round(100 * busy / (seconds * (psutil.cpu_count() or 1)), 1),
        "load_avg_1m_before": round(load_before, 2),
        "scan_period_s": {p: scan_period_s[p] for p in shares if shares[p]},
        "dnp3_unsolicited": dnp3_unsolicited,
        "iec104_stations_per_port": stations_per_port,
    }


def _wait_connected(feps: list[_Worker], total: int, report: Callable[[int, int], None]) -> int:
    deadline = time.monotonic() + max(60.0, total * 0.05)
    while True:
        done = sum(w.ask({"status": True})["connected"] for w in feps)
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


class _Meter:
    """CPU and wall time of this process since :meth:`start`, and its memory."""

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def usage(self) -> dict[str, float]:
        return {
            "cpu_s": time.process_time() - self._cpu,
            "wall_s": time.monotonic() - self._wall,
            "rss_mb": psutil.Process().memory_info().rss / 2**20,
        }


async def _rig_worker(config_file: str, devices_file: str, rate: float, dnp3: str) -> None:
    from rig.field import SimulatedField

    options = {"dnp3": {"unsolicited": dnp3 == "unsolicited"}}
    field = SimulatedField(_subset(config_file, devices_file), outstation_options=options)
    await field.start()
    points = [p for d in field.devices.values() for p in d.by_name]
    _say({"ready": len(field.devices)})
    reader = await _lines()
    go = json.loads(await reader.readline())
    meter = _Meter()
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
    _say({"changes": changes, **meter.usage()})
    await field.stop()


async def _fep_worker(config_file: str, devices_file: str, socket_path: str) -> None:
    """A FEP process: masters, FrontEnd and local PointDB; changes go to the control centre."""
    # no server.wiring here: it imports the network and ADMS stack (~250 MB per process)
    from protocols.registry import master_class
    from scada.events import EventLog
    from scada.fep import FrontEnd
    from scada.pointdb import ChangeBatch, PointDB

    cfg = _subset(config_file, devices_file)
    pointdb = PointDB(capacity=max(1024, cfg.point_count))
    pointdb.define(p for dp in cfg.expand() for p in dp.points)
    _, writer = await asyncio.open_unix_connection(socket_path)
    names = json.dumps(pointdb.handles()).encode()
    writer.write(_FRAME.pack(0, len(names)) + names)

    def forward(batch: ChangeBatch) -> None:
        records = np.empty(len(batch), _RECORD)
        records["h"] = batch.handles
        records["v"] = batch.values
        records["q"] = batch.quality
        records["st"] = batch.source_time
        records["rt"] = batch.receive_time
        writer.write(_FRAME.pack(1, records.nbytes) + records.tobytes())

    pointdb.subscribe(forward)
    fep = FrontEnd(pointdb, EventLog(), lambda protocol, *args: master_class(protocol)(*args))
    await fep.start(cfg)
    iec104_links = len({(d.host, d.port) for d in cfg.devices.values() if d.protocol == "iec104"})
    reader = await _lines()
    meter = _Meter()
    while True:
        msg = json.loads(await reader.readline())
        if "status" in msg:
            _say({"connected": fep.connected_count()})
        elif "measure" in msg:
            meter.start()
        elif "report" in msg:
            _say(
                {"connected": fep.connected_count(), "iec104_links": iec104_links, **meter.usage()}
            )
            break
    writer.close()
    await fep.stop()


async def _cc_worker(config_file: str, socket_path: str) -> None:
    """The control centre: every point, alarms, historian, push; fed by the FEP processes."""
    from scada.pointdb import ChangeBatch
    from server.wiring import ControlCentre

    cfg = load_config([config_file])
    remote = {n: d.model_copy(update={"enabled": False}) for n, d in cfg.devices.items()}
    cc = ControlCentre(ScadaConfig(cfg.templates, remote, cfg.sources))
    samples: list[np.ndarray] = []
    sample_protocols: list[np.ndarray] = []
    measuring = False
    capacity = max(1024, cfg.point_count)  # the point database's, as ControlCentre sizes it
    last = np.full(capacity, np.nan)
    protocol_of = np.full(capacity, -1, dtype=np.int64)

    def on_change(batch: ChangeBatch) -> None:
        # only a new value is a field change: a refresh after a link recovery
        # re-reports old values (their "latency" would be their age)
        new = (batch.quality == 0) & (batch.values != last[batch.handles])
        last[batch.handles] = batch.values
        if measuring and new.any():
            values = batch.values[new]
            samples.append((time.time() % 1000.0 - values) % 1000.0)
            sample_protocols.append(protocol_of[batch.handles[new]])

    cc.pointdb.subscribe(on_change)
    await cc.start()
    codes = {p: n for n, p in enumerate(PROTOCOLS)}
    for name, handle in cc.pointdb.handles().items():
        protocol_of[handle] = codes[cfg.devices[name.split(".", 1)[0]].protocol]

    connections: set[asyncio.Task[Any]] = set()
    loop = asyncio.get_running_loop()
    pending: list[np.ndarray] = []  # forwarded records, central handles
    apply_due = 0.0
    apply_timer: asyncio.TimerHandle | None = None

    def apply_pending() -> None:
        # every FEP's changes of the last _CC_APPLY_S in one batch: the subscribers'
        # (alarms, historian, push) work is per batch far more than per change
        nonlocal apply_due, apply_timer
        apply_timer = None
        apply_due = loop.time() + _CC_APPLY_S
        r = np.concatenate(pending)
        pending.clear()
        cc.pointdb.apply(r["h"], r["v"], r["q"], r["st"], r["rt"])

    def receive(records: np.ndarray) -> None:
        nonlocal apply_timer
        pending.append(records)
        if apply_timer is None:
            apply_timer = loop.call_at(max(apply_due, loop.time()), apply_pending)

    async def serve_fep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        central = np.zeros(0, dtype=np.int64)
        try:
            while True:
                kind, size = _FRAME.unpack(await reader.readexactly(_FRAME.size))
                payload = await reader.readexactly(size)
                if kind == 0:
                    local = json.loads(payload)
                    central = np.zeros(max(local.values(), default=-1) + 1, dtype=np.int64)
                    for name, handle in local.items():
                        central[handle] = cc.pointdb.handle(name)
                    continue
                records = np.frombuffer(payload, _RECORD).copy()
                records["h"] = central[records["h"]]
                receive(records)
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(serve_fep, socket_path)
    _say({"ready": True})
    reader = await _lines()
    meter = _Meter()
    while True:
        msg = json.loads(await reader.readline())
        if "measure" in msg:
            measuring = True
            meter.start()
        elif "report" in msg:
            measuring = False
            lat = np.concatenate(samples) if samples else np.zeros(0)
            prot = np.concatenate(sample_protocols) if sample_protocols else np.zeros(0)
            _say(
                {
                    "latencies": lat.round(5).tolist(),
                    "protocols": prot.tolist(),
                    **meter.usage(),
                }
            )
            break
    server.close()
    if connections:  # the FEP processes close their ends once they reported
        await asyncio.wait(connections, timeout=30)
    await cc.stop()


def _worker_main(argv: list[str]) -> None:
    role, *args = argv
    root, pymodbus = (int(n) for n in os.environ.get(_LOG_LEVELS, "30,50").split(","))
    logging.basicConfig(
        level=root, format=f"%(asctime)s %(levelname)s {role} %(name)s: %(message)s"
    )
    logging.getLogger("pymodbus").setLevel(pymodbus)
    if role == "rig":
        asyncio.run(_rig_worker(args[0], args[1], float(args[2]), args[3]))
    elif role == "fep":
        asyncio.run(_fep_worker(*args))
    else:
        asyncio.run(_cc_worker(*args))


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
