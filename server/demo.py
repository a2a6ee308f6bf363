"""``pyadms demo``: rig, control centre and console on a bundled network, in one command.

The power-flow rig serves every device of the network's generated SCADA
configuration over real IEC-104 / Modbus links; the control centre (FEPs,
point database, alarms, historian in a temporary SQLite file, API) polls
them; the console connects to the API. Without a display the demo runs
headless and prints the API address, the login and a status line (or renders
the console to a PNG with ``--screenshot``).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from dataclasses import dataclass, field

from models.binding import BindingOptions, bind_config
from models.loader import DEFAULT_NETWORK, load_network
from rig.grid import GridOptions, GridSimulator
from server.api import ApiServer, create_app
from server.api.network import install_network
from server.auth import Role
from server.settings import ApiSettings, ServerSettings
from server.wiring import ControlCentre

DEMO_USER = "demo"
DEMO_PASSWORD = "demo"  # noqa: S105 - a throw-away account of a local demo


@dataclass
class _Running:
    ready: threading.Event = field(default_factory=threading.Event)
    url: str = ""
    error: BaseException | None = None
    loop: asyncio.AbstractEventLoop | None = None
    stop: asyncio.Event | None = None
    cc: ControlCentre | None = None
    devices: int = 0


async def _serve(network: str, port: int, running: _Running) -> None:
    running.loop = asyncio.get_running_loop()
    running.stop = asyncio.Event()
    model = load_network(network)
    cfg = bind_config(model, BindingOptions())
    print(f"demo: {network}: {len(cfg.devices)} devices; starting the rig", file=sys.stderr)
    grid = GridSimulator(model, cfg, GridOptions(noise_pct=0.5, time_scale=60))
    await grid.start()
    cc = ControlCentre(
        grid.field.resolved_config(),
        settings=ServerSettings(api=ApiSettings(port=port)),
        network=load_network(network),
    )
    await cc.start()
    running.cc, running.devices = cc, len(cfg.devices)
    api: ApiServer | None = None
    service = None
    try:
        await asyncio.to_thread(cc.users.create, DEMO_USER, DEMO_PASSWORD, Role.OPERATOR)
        app = create_app(cc)
        service = install_network(app)
        api = ApiServer(app, "127.0.0.1", port)
        await api.start()
        running.url = f"http://127.0.0.1:{api.port}"
        running.ready.set()
        await running.stop.wait()
    finally:
        if api is not None:
            await api.stop()
        if service is not None:
            service.close()
        await cc.stop()
        await grid.stop()


def _has_display() -> bool:
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and platform != "offscreen":
        return True
    return not platform and bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(
    network: str = DEFAULT_NETWORK,
    seconds: float | None = None,
    port: int = 8400,
    screenshot: str | None = None,
) -> int:
    running = _Running()

    def serve() -> None:
        try:
            asyncio.run(_serve(network, port, running))
        except BaseException as exc:  # noqa: BLE001 - reported on the main thread
            running.error = exc
            running.ready.set()

    thread = threading.Thread(target=serve, name="pyadms-demo-server", daemon=True)
    thread.start()
    running.ready.wait()
    if running.error is not None:
        raise running.error
    print(
        f"demo: control centre at {running.url} (user {DEMO_USER!r}, password "
        f"{DEMO_PASSWORD!r}); Ctrl-C stops",
        file=sys.stderr,
    )
    try:
        if screenshot:
            from hmi.app import render_screenshot

            _wait_connected(running, 60)
            render_screenshot(running.url, DEMO_USER, DEMO_PASSWORD, screenshot, settle_s=3.0)
            print(f"demo: console rendered to {screenshot}", file=sys.stderr)
        elif _has_display() and seconds is None:
            from hmi.app import run_console

            return run_console(running.url, DEMO_USER, DEMO_PASSWORD)
        else:
            _headless(running, seconds)
    except KeyboardInterrupt:
        pass
    finally:
        if running.loop is not None and running.stop is not None:
            running.loop.call_soon_threadsafe(running.stop.set)
        thread.join(30)
    return 0


def _wait_connected(running: _Running, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    assert running.cc is not None
    while running.cc.fep.connected_count() < running.devices and time.monotonic() < deadline:
        time.sleep(0.2)


def _headless(running: _Running, seconds: float | None) -> None:
    print("demo: no display: running headless (pyadms hmi --server URL connects a console)")
    start = time.monotonic()
    assert running.cc is not None
    while seconds is None or time.monotonic() - start < seconds:
        cc = running.cc
        alarms = ", ".join(f"{state}: {n}" for state, n in cc.alarms.counts().items())
        print(
            f"demo: {cc.fep.connected_count()}/{running.devices} devices connected, "
            f"{len(cc.pointdb)} points; alarms {alarms}",
            flush=True,
        )
        time.sleep(min(5.0, seconds or 5.0))
