"""A real control centre over a power-flow rig, served on a thread, for console tests.

The server (rig, FEPs, point database, alarms, historian, API with the
network routes) runs its own asyncio loop on a background thread; the
console under test runs Qt on the test's thread and its API client on a
third. Qt uses the offscreen platform: no display is needed.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio
import functools
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from models.binding import BindingOptions, bind_config
from models.gis_export import to_feature_collection
from models.loader import load_network
from rig.grid import GridOptions, GridSimulator
from server.api import ApiServer, create_app
from server.api.network import NetworkService, install_network
from server.auth import Role
from server.settings import ApiSettings, HistorianSettings, ServerSettings, UserSettings
from server.wiring import ControlCentre

if TYPE_CHECKING:
    from pytestqt.qtbot import QtBot

    from hmi.app import Console

T = TypeVar("T")

PASSWORDS = {"olga": "operator-secret", "vic": "viewer-secret"}
ROLES = {"olga": Role.OPERATOR, "vic": Role.VIEWER}


class LiveServer:
    """Rig + control centre + API for one bundled network, on a thread of its own."""

    def __init__(
        self, network: str = "baran_wu", noise_pct: float = 0.5, scan_period_s: float = 0.25
    ) -> None:
        self.network = network
        self.noise_pct = noise_pct
        self.scan_period_s = scan_period_s
        self.grid: GridSimulator | None = None
        self.cc: ControlCentre | None = None
        self.api: ApiServer | None = None
        self.service: NetworkService | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=f"server-{network}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 90) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"server for {self.network} not up after {timeout:g} s")
        if self._error is not None:
            raise RuntimeError(f"server for {self.network} failed to start") from self._error
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        model = load_network(self.network)
        cfg = bind_config(
            model,
            BindingOptions(
                scan_period_s=self.scan_period_s,
                timeout_s=self.scan_period_s,
                checkback_timeout_s=2.0,
            ),
        )
        grid = GridSimulator(
            model,
            cfg,
            GridOptions(noise_pct=self.noise_pct, time_scale=0, update_period_s=0.5, seed=3),
        )
        await grid.start()
        self.grid = grid
        settings = ServerSettings(
            api=ApiSettings(port=0, push_interval_s=0.05),
            historian=HistorianSettings(flush_interval_s=0.1, customers_served=5000),
            users=UserSettings(hash_time_cost=1, hash_memory_kib=8192),
        )
        # the control centre's topology follows a model of its own, not the rig's
        cc = ControlCentre(
            grid.field.resolved_config(), settings=settings, network=load_network(self.network)
        )
        await cc.start()
        self.cc = cc
        try:
            for user, role in ROLES.items():
                await asyncio.to_thread(cc.users.create, user, PASSWORDS[user], role)
            deadline = time.monotonic() + 30
            while cc.fep.connected_count() < len(cfg.devices):
                if time.monotonic() > deadline:
                    raise TimeoutError("not every device connected")
                await asyncio.sleep(0.05)
            app = create_app(cc)
            self.service = install_network(app)
            await self.start_api(app)
            self._ready.set()
            await self._stop.wait()
        finally:
            if self.api is not None:
                await self.api.stop()
            if self.service is not None:
                self.service.close()
            await cc.stop()
            await grid.stop()

    async def start_api(self, app: Any = None) -> None:
        """Serve (again) on the same port: consoles see a drop and reconnect."""
        app = app if app is not None else self.api.app  # type: ignore[union-attr]
        self.api = ApiServer(app, "127.0.0.1", self.port)
        await self.api.start()
        self.port = self.api.port

    async def stop_api(self) -> None:
        assert self.api is not None
        await self.api.stop()

    # -------------------------------------------------------------- helpers
    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 30) -> T:
        """Call ``fn`` on the server's loop (where its state lives) and wait for the result."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper(), timeout)


@functools.cache
def _collection_text(name: str) -> str:
    return json.dumps(to_feature_collection(load_network(name), include_changes=False))


def collection(name: str) -> dict[str, Any]:
    """A bundled network as ``GET /api/network`` serves it (a fresh copy each call)."""
    return json.loads(_collection_text(name))


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a server-side predicate from the test thread (no Qt events needed)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = LiveServer().start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def open_console(qtbot: QtBot, server: LiveServer) -> Iterator[Callable[[str], Console]]:
    """Open logged-in consoles on ``server`` (``open_console(user)``); closed after the test."""
    from hmi.app import Console  # Qt is loaded for the console tests only

    opened: list[Console] = []

    def open_as(user: str) -> Console:
        console = Console(server.url)
        opened.append(console)
        qtbot.addWidget(console.window)
        console.login(user, PASSWORDS[user])
        console.window.resize(1400, 900)
        console.window.show()
        console.start()
        qtbot.waitUntil(console.ready, timeout=20_000)
        return console

    yield open_as
    for console in opened:
        console.close()
