"""The ``pyadms`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.errors import ModelError
from protocols.base import ProtocolError
from rig.scenario import ScenarioError
from scada.config import ConfigError, load_config
from server import study

if TYPE_CHECKING:
    from models.binding import BindingOptions
    from rig.field import SimulatedField
    from rig.grid import GridSimulator
    from rig.scenario import Scenario

__all__ = ["main"]

log = logging.getLogger("pyadms")


def progress(label: str) -> Callable[[int, int], None]:
    """A progress reporter for long start-ups, on stderr (one line, rewritten)."""
    tty = sys.stderr.isatty()

    def report(done: int, total: int) -> None:
        if tty:
            end = "\n" if done == total else ""
            print(f"\r{label}: {done}/{total}", end=end, file=sys.stderr, flush=True)
        elif done == total or done % max(1, total // 10) == 0:
            print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)

    return report


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


async def _until_stopped(reload: Callable[[], Any] | None = None) -> None:
    """Wait for SIGINT/SIGTERM; SIGHUP calls ``reload``."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reload()))
    await stop.wait()


# ---------------------------------------------------------------- commands
def cmd_config_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    print(
        f"ok: {len(cfg.templates)} templates, {len(cfg.devices)} devices, {cfg.point_count} points"
    )
    return 0


def cmd_rig(args: argparse.Namespace) -> int:
    from rig.field import SimulatedField
    from rig.scenario import load_scenario

    if args.network:
        return _rig_network(args)
    if not args.config:
        print("pyadms rig: give --config FILE... or --network NAME_OR_FILE", file=sys.stderr)
        return 2
    cfg = load_config(args.config)
    scenario = load_scenario(args.scenario) if args.scenario else None

    async def run() -> None:
        field = SimulatedField(cfg)
        await field.start(progress("rig: devices serving"))
        _write_ports(field, args)
        print(f"rig: {len(field.devices)} devices serving", file=sys.stderr, flush=True)
        try:
            await _serve(field, scenario, args.stay)
        finally:
            await field.stop()

    asyncio.run(run())
    return 0


def _binding_options(args: argparse.Namespace) -> BindingOptions:
    from models.binding import BindingOptions, parse_protocol_map

    return BindingOptions(
        protocols=parse_protocol_map(args.protocol_map or []),
        base_port=args.base_port,
        scan_period_s=args.scan_period_s,
        timeout_s=min(1.0, args.scan_period_s),
        der_min_mw=args.der_min_mw,
        meter_min_mw=args.meter_min_mw,
    )


def _rig_network(args: argparse.Namespace) -> int:
    """``pyadms rig --network``: the power-flow rig on a network's (generated) configuration."""
    t0 = time.perf_counter()
    from models.binding import bind_config
    from models.loader import load_network
    from rig.grid import GridOptions, GridSimulator
    from rig.scenario import load_scenario

    model = load_network(args.network)
    cfg = load_config(args.config) if args.config else bind_config(model, _binding_options(args))
    scenario = load_scenario(args.scenario) if args.scenario else None
    grid = GridSimulator(
        model,
        cfg,
        GridOptions(
            noise_pct=args.noise_pct,
            time_scale=args.time_scale,
            start_hour=args.start_hour,
            update_period_s=args.update_period_s,
            seed=args.seed,
        ),
    )
    print(
        f"rig: {model.name}: {len(cfg.devices)} devices, {cfg.point_count} points "
        f"({time.perf_counter() - t0:.1f} s); first power flow...",
        file=sys.stderr,
        flush=True,
    )

    async def run() -> None:
        await grid.start(progress("rig: devices serving"))
        _write_ports(grid.field, args)
        if args.config_out:
            from models.binding import config_document, dump_yaml

            dump_yaml(
                config_document(grid.field.resolved_config()),
                args.config_out,
                header=f"pyadms rig --network {args.network}: the devices as served (ports)",
            )
        print(
            f"rig: {len(grid.field.devices)} devices serving after "
            f"{time.perf_counter() - t0:.1f} s; simulated time {grid.sim_hour:.2f} h, "
            f"time scale {grid.time_scale:g}",
            file=sys.stderr,
            flush=True,
        )
        try:
            await _serve(grid.field, scenario, args.stay, grid)
        finally:
            await grid.stop()

    asyncio.run(run())
    return 0


def _write_ports(field: SimulatedField, args: argparse.Namespace) -> None:
    if args.ports_out:
        ports = {name: dev.port for name, dev in field.devices.items()}
        Path(args.ports_out).write_text(json.dumps(ports, indent=2))


async def _serve(
    field: SimulatedField,
    scenario: Scenario | None,
    stay: bool,
    grid: GridSimulator | None = None,
) -> None:
    """Run the scenario (if any), then serve until stopped (or return when it ends)."""
    if scenario is None:
        await _until_stopped()
        return
    task = asyncio.ensure_future(scenario.run(field, grid))
    stopper = asyncio.ensure_future(_until_stopped())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
        print("rig: scenario finished", file=sys.stderr)
        if stay:
            await stopper
        else:
            stopper.cancel()
    else:
        task.cancel()


def cmd_network_bind(args: argparse.Namespace) -> int:
    from models.binding import bind, dump_yaml
    from models.loader import load_network
    from scada.config import parse_config

    model = load_network(args.network)
    doc = bind(model, _binding_options(args))
    cfg = parse_config([(args.out, doc)])
    dump_yaml(
        doc,
        args.out,
        header=(
            f"SCADA configuration of network {model.name} ({model.source}),\n"
            "generated by `pyadms network bind`. Edit freely: every point's `element`\n"
            "names the model element it measures or controls (models/binding.py)."
        ),
    )
    print(f"{args.out}: {len(cfg.devices)} devices, {cfg.point_count} points")
    return 0


def _server_settings(args: argparse.Namespace) -> Any:
    """The server settings from ``--config``, or defaults around ``--scada`` files."""
    from server.settings import ApiSettings, DatabaseSettings, ServerSettings, load_settings

    if args.config:
        settings = load_settings(args.config)
    else:
        settings = ServerSettings(
            scada=[Path(p) for p in args.scada], database=DatabaseSettings(url=args.database)
        )
    api: ApiSettings = settings.api
    if args.host is not None:
        api = api.model_copy(update={"host": args.host})
    if args.port is not None:
        api = api.model_copy(update={"port": args.port})
    network = args.network if args.network is not None else settings.network
    return settings.model_copy(update={"api": api, "network": network})


def cmd_server(args: argparse.Namespace) -> int:
    from server.api import ApiServer, create_app
    from server.api.network import install_network
    from server.wiring import ControlCentre

    settings = _server_settings(args)
    cc = ControlCentre.from_settings(settings)
    app = create_app(cc)
    api = ApiServer(
        app,
        settings.api.host,
        settings.api.port,
        tls_cert=settings.api.tls_cert,
        tls_key=settings.api.tls_key,
    )

    async def reload() -> None:
        try:
            report = await cc.reload()
            print(f"server: configuration reloaded: {report}", file=sys.stderr)
        except (ConfigError, ScenarioError) as exc:
            print(f"server: reload refused, running configuration kept:\n{exc}", file=sys.stderr)

    async def run() -> int:
        cc.events.subscribe(lambda e: print(f"event: {e.kind} {e.device or ''} {e.message}"))
        await cc.start()
        service = install_network(app) if cc.network is not None else None
        try:
            if cc.bootstrap_password is not None:
                print(
                    f"server: created account {settings.users.admin!r} (admin) with password "
                    f"{cc.bootstrap_password} - shown once, change it",
                    file=sys.stderr,
                )
            try:
                await api.start()
            except OSError as exc:
                print(
                    f"server: cannot listen on {settings.api.host}:{settings.api.port}: {exc}",
                    file=sys.stderr,
                )
                return 1
            print(
                f"server: {len(cc.fep.device_names())} devices, {len(cc.pointdb)} points; "
                f"API at {api.url} (WebSocket /api/ws, schema /openapi.json); "
                "SIGHUP reloads the scada configuration",
                file=sys.stderr,
                flush=True,
            )
            try:
                await _until_stopped(reload)
            finally:
                await api.stop()
        finally:
            if service is not None:
                service.close()
            await cc.stop()
        return 0

    return asyncio.run(run())


def cmd_demo(args: argparse.Namespace) -> int:
    from server import demo

    return demo.run(args.network, args.seconds, args.port, args.screenshot)


def cmd_hmi(args: argparse.Namespace) -> int:
    from hmi.app import command  # Qt is loaded for this command only

    return command(
        args.server,
        args.user,
        args.password,
        screenshot=args.screenshot,
        layout=args.layout,
        focus=args.focus,
        settle_s=args.settle_s,
    )


def cmd_bench_hmi(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from hmi.bench import run

    _print_json(run())
    return 0


def cmd_bench_pointdb(args: argparse.Namespace) -> int:
    from server import bench_pointdb

    _print_json(bench_pointdb.run(points=args.points, batch=args.batch, seconds=args.seconds))
    return 0


def cmd_bench_alarms(args: argparse.Namespace) -> int:
    from server import bench_history

    _print_json(bench_history.run_alarms(alarms=args.alarms, seconds=args.seconds))
    return 0


def cmd_bench_historian(args: argparse.Namespace) -> int:
    from server import bench_history

    _print_json(bench_history.run_historian(seconds=args.seconds, postgres_url=args.postgres_url))
    return 0


def cmd_bench_flisr(args: argparse.Namespace) -> int:
    from server import bench_flisr

    _print_json(
        bench_flisr.run(
            args.network, args.fault, scan_period_s=args.scan_period_s, stuck=args.stuck
        )
    )
    return 0


def cmd_bench_topology(args: argparse.Namespace) -> int:
    from models.topology import benchmark

    _print_json(benchmark(args.network, args.changes, seed=args.seed))
    return 0


def cmd_bench_acquisition(args: argparse.Namespace) -> int:
    from server import bench_acquisition

    result = bench_acquisition.run(
        protocols=args.protocol,
        rtus=args.rtus,
        points_per_rtu=args.points_per_rtu,
        seconds=args.seconds,
        changes_per_s=args.changes_per_s,
        fep_processes=args.fep_processes,
        scan_period_s=bench_acquisition.parse_scan_periods(args.scan_period_s),
        progress=progress,
        stations_per_port=args.iec104_stations_per_port,
        dnp3_unsolicited=not args.dnp3_polled,
    )
    _print_json(result)
    return 0


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyadms", description="pyadms: distribution SCADA/ADMS control centre"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = sub.add_parser("config", help="check configuration files")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser("check", help="validate templates and devices")
    check.add_argument("config", nargs="+", help="YAML/TOML files, merged in order")
    check.set_defaults(func=cmd_config_check)

    rig = sub.add_parser(
        "rig",
        help="run simulated RTUs for a configuration, or a power-flow rig for a network",
    )
    rig.add_argument("--config", nargs="+", help="YAML/TOML files (with --network: its binding)")
    rig.add_argument(
        "--network", help="bundled network name or model file: serve its bound devices"
    )
    _binding_arguments(rig)
    rig.add_argument("--noise-pct", type=float, default=0.0, help="measurement noise, %% (1 sigma)")
    rig.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="simulated seconds per real second (1440: a day per minute; 0: frozen)",
    )
    rig.add_argument("--start-hour", type=float, default=12.0, help="simulated time of day")
    rig.add_argument(
        "--update-period-s", type=float, default=1.0, help="power flow and refresh period"
    )
    rig.add_argument("--seed", type=int, help="noise seed (reproducible measurements)")
    rig.add_argument("--scenario", help="scenario file (YAML/TOML) of timed steps")
    rig.add_argument("--stay", action="store_true", help="keep serving after the scenario ends")
    rig.add_argument("--ports-out", help="write the actual port of each device here (JSON)")
    rig.add_argument(
        "--config-out", help="write the configuration as served (actual ports) here (YAML)"
    )
    rig.set_defaults(func=cmd_rig)

    network = sub.add_parser("network", help="network model tools")
    network_sub = network.add_subparsers(dest="network_command", required=True, metavar="ACTION")
    bind = network_sub.add_parser(
        "bind", help="generate the SCADA configuration (devices, points) of a network"
    )
    bind.add_argument("--network", required=True, help="bundled network name or model file")
    bind.add_argument("--out", required=True, help="YAML file to write")
    _binding_arguments(bind)
    bind.set_defaults(func=cmd_network_bind)

    server = sub.add_parser(
        "server",
        help="run the control centre headless, with its API",
        description="FEPs, point database, alarms, historian, control and the API in one "
        "process. SIGHUP re-reads the scada configuration files without a restart.",
    )
    source = server.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--config",
        metavar="FILE",
        help="server configuration (YAML/TOML): scada files, database URL, API host/port, "
        "TLS certificate and key, select timeout, first admin account, flush interval",
    )
    source.add_argument(
        "--scada",
        nargs="+",
        metavar="FILE",
        help="scada configuration files (templates, devices) with default server settings",
    )
    server.add_argument(
        "--database",
        metavar="URL",
        help="with --scada: historian URL (sqlite:///path or postgresql+psycopg://...); "
        "default: a temporary SQLite file, removed on exit",
    )
    server.add_argument(
        "--network",
        metavar="NAME_OR_FILE",
        help="network model (bundled name or file) for topology, interlocks and ADMS "
        "(overrides the configuration's 'network')",
    )
    server.add_argument("--host", help="API address (overrides the configuration)")
    server.add_argument("--port", type=int, help="API port (overrides the configuration)")
    server.set_defaults(func=cmd_server)

    demo = sub.add_parser(
        "demo", help="power-flow rig + control centre + console on a bundled network"
    )
    demo.add_argument("--network", default="mv_oberrhein", help="bundled name or model file")
    demo.add_argument("--port", type=int, default=8400, help="API port (0 = any free port)")
    demo.add_argument(
        "--seconds", type=float, help="run headless this long (default: console until closed)"
    )
    demo.add_argument("--screenshot", help="render the console to this PNG and stop")
    demo.set_defaults(func=cmd_demo)

    hmi = sub.add_parser("hmi", help="the operator console (PySide6), or a PNG of it")
    hmi.add_argument("--server", default="http://127.0.0.1:8080", help="control centre URL")
    hmi.add_argument("--user", help="user name (asked for when missing)")
    hmi.add_argument("--password", help="default: $PYADMS_PASSWORD; asked for when missing")
    hmi.add_argument("--screenshot", metavar="FILE.png", help="render the console to a PNG, exit")
    hmi.add_argument("--layout", choices=["geographic", "schematic"], default="geographic")
    hmi.add_argument("--focus", help="with --screenshot: zoom onto this element id")
    hmi.add_argument("--settle-s", type=float, default=2.0, help="with --screenshot")
    hmi.set_defaults(func=cmd_hmi)

    bench = sub.add_parser("bench", help="benchmarks that print JSON figures")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    hmi_bench = bench_sub.add_parser(
        "hmi", help="console: mv_oberrhein diagram load and frame time at 1,000 updates/s"
    )
    hmi_bench.add_argument("--json", action="store_true", help="print JSON (the only format)")
    hmi_bench.set_defaults(func=cmd_bench_hmi)

    pdb = bench_sub.add_parser("pointdb", help="in-process point database ingest")
    pdb.add_argument("--points", type=int, default=90_000)
    pdb.add_argument("--batch", type=int, default=10_000)
    pdb.add_argument("--seconds", type=float, default=3.0)
    pdb.add_argument("--json", action="store_true", help="print JSON (the only format)")
    pdb.set_defaults(func=cmd_bench_pointdb)

    alarms = bench_sub.add_parser("alarms", help="alarm flood while measuring acquisition latency")
    alarms.add_argument("--alarms", type=int, default=10_000)
    alarms.add_argument("--seconds", type=float, default=10.0)
    alarms.add_argument("--json", action="store_true", help="print JSON (the only format)")
    alarms.set_defaults(func=cmd_bench_alarms)

    hist = bench_sub.add_parser(
        "historian", help="values archived per second, SQLite and PostgreSQL"
    )
    hist.add_argument("--seconds", type=float, default=5.0)
    hist.add_argument("--postgres-url", help="default: the local server (127.0.0.1:5432/test)")
    hist.add_argument("--json", action="store_true", help="print JSON (the only format)")
    hist.set_defaults(func=cmd_bench_historian)

    flisr = bench_sub.add_parser(
        "flisr", help="fault on the grid rig, automatic FLISR through the real protocols"
    )
    flisr.add_argument("--network", default="mv_oberrhein", help="bundled network or file")
    flisr.add_argument("--fault", default="L133", help="id of the line to fault")
    flisr.add_argument("--scan-period-s", type=float, default=2.0, help="devices' scan period")
    flisr.add_argument(
        "--stuck", nargs="*", default=[], help="switches whose FRTU accepts but never operates"
    )
    flisr.add_argument("--json", action="store_true", help="print JSON (the only format)")
    flisr.set_defaults(func=cmd_bench_flisr)

    topo = bench_sub.add_parser("topology", help="topology processor: switch change updates")
    topo.add_argument("--network", default="mv_oberrhein", help="bundled network or file")
    topo.add_argument("--changes", type=int, default=1000, help="random switch toggles")
    topo.add_argument("--seed", type=int, default=0)
    topo.add_argument("--json", action="store_true", help="print JSON (the only format)")
    topo.set_defaults(func=cmd_bench_topology)

    acq = bench_sub.add_parser(
        "acquisition", help="simulated RTUs -> FEPs -> point database over real sockets"
    )
    acq.add_argument(
        "--protocol",
        nargs="+",
        default=["iec104"],
        metavar="PROTO[:SHARE]",
        help="iec104, dnp3, modbus; several with shares, e.g. iec104:1000 dnp3:1000 modbus:1000",
    )
    acq.add_argument("--rtus", type=int, default=10)
    acq.add_argument("--points-per-rtu", type=int, default=30)
    acq.add_argument("--seconds", type=float, default=20.0, help="measuring time")
    acq.add_argument("--changes-per-s", type=float, default=1000.0, help="field changes/s, total")
    acq.add_argument(
        "--fep-processes", type=int, default=0, help="FEP processes (0 = as the protocols need)"
    )
    acq.add_argument(
        "--scan-period-s",
        nargs="+",
        default=["2", "dnp3=10", "modbus=0.8"],
        metavar="[PROTO=]SECONDS",
        help="scan period, for all or per protocol (default: 2 dnp3=10 modbus=0.8: IEC-104 "
        "and DNP3 report changes themselves, Modbus is polled)",
    )
    acq.add_argument(
        "--dnp3-polled",
        action="store_true",
        help="the rig's DNP3 outstations send no unsolicited responses (events are polled)",
    )
    acq.add_argument(
        "--iec104-stations-per-port",
        type=int,
        default=1,
        help="IEC-104 RTUs served per rig port (common addresses 1..N), to spare the rig",
    )
    acq.add_argument("--json", action="store_true", help="print JSON (the only format)")
    acq.set_defaults(func=cmd_bench_acquisition)
    study.add_parsers(sub, bench_sub)
    return parser


def _binding_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protocol-map",
        nargs="+",
        metavar="KEY=PROTO",
        help="protocol per device kind (substation, frtu, capacitor, regulator, der, meter), "
        "feeder id or device name, e.g. frtu=dnp3 SS2-F1=dnp3",
    )
    parser.add_argument(
        "--base-port", type=int, default=0, help="device n listens on BASE+n (< 32768; 0: OS)"
    )
    parser.add_argument("--scan-period-s", type=float, default=2.0)
    parser.add_argument(
        "--der-min-mw", type=float, default=0.3, help="DER of at least this get a controller"
    )
    parser.add_argument(
        "--meter-min-mw", type=float, help="loads of at least this get a meter (default: none)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # pymodbus logs every timeout and failed connect at ERROR/WARNING: link loss is already
    # reported once per device by the FEP, so its own flood only shows with -vv
    logging.getLogger("pymodbus").setLevel(level if args.verbose >= 2 else logging.CRITICAL)
    try:
        rc: int = args.func(args)
    except (ConfigError, ScenarioError, ModelError, ProtocolError) as exc:
        print(f"pyadms: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
