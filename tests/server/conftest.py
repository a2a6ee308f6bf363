"""A real control centre with its API on a loopback socket, polling a simulated Modbus RTU."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from websockets.asyncio.client import ClientConnection, connect

from protocols.base import DoubleState
from rig.field import SimulatedField
from scada.config import parse_config
from server.api import ApiServer, create_app
from server.auth import Role
from server.wiring import ControlCentre
from tests.conftest import wait_for
from tests.e2e.test_acquisition import config_doc
from tests.scada.test_historian import postgres_url

ADMIN_PASSWORD = "admin-secret-1"
PASSWORDS = {
    "admin": ADMIN_PASSWORD,
    "olga": "operator-secret",
    "vic": "viewer-secret",
    "erin": "engineer-secret",
}
ROLES = {"olga": Role.OPERATOR, "vic": Role.VIEWER, "erin": Role.ENGINEER}
P_HIGH = 5.0


def scada_doc(ports: dict[str, int] | None = None) -> dict[str, Any]:
    """One Modbus RTU: breaker with SBO control and check-back, FPI, P (high limit), E."""
    doc = config_doc("modbus", ["RTU1"])
    for point in doc["templates"]["t"]["points"]:
        if point["name"] == "P":
            point["limits"] = {"high": P_HIGH}
    for device in doc["devices"]:
        if ports:
            device["port"] = ports[device["name"]]
    return doc


@dataclass
class Rig:
    """A simulated field, a control centre over it and its API, with a user per role."""

    field: SimulatedField
    cc: ControlCentre
    api: ApiServer
    scada_file: Path
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/api/ws"

    def client(self, user: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=15)

    async def login(self, user: str) -> str:
        async with self.client() as c:
            r = await c.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
        assert r.status_code == 200, r.text
        self.tokens[user] = r.json()["token"]
        return self.tokens[user]

    async def console(self, user: str, resume: dict[str, Any] | None = None) -> Console:
        ws = await connect(self.ws_url)
        await ws.send(json.dumps({"type": "hello", "token": self.tokens[user], "resume": resume}))
        console = Console(ws)
        welcome = await console.recv()
        assert welcome["type"] == "welcome", welcome
        console.start = welcome["start"]
        return console


class Console:
    """A test console: applies snapshots and batches as an HMI would, checking ``seq``."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.start = ""
        self.epoch: str | None = None
        self.seq: int | None = None
        self.points: dict[str, dict[str, Any]] = {}
        self.alarms: dict[int, dict[str, Any]] = {}
        self.transitions: list[dict[str, Any]] = []
        self.snapshots = 0
        self.pongs = 0

    async def recv(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await self.ws.recv())
        return message

    def apply(self, m: dict[str, Any]) -> None:
        if m["type"] == "pong":
            self.pongs += 1
        elif m["type"] == "snapshot":
            self.snapshots += 1
            self.epoch, self.seq = m["epoch"], m["seq"]
            self.points = {p["name"]: p for p in m["points"]}
            self.alarms = {a["id"]: a for a in m["alarms"]}
        elif m["type"] == "changes":
            assert m["epoch"] == self.epoch and self.seq is not None
            assert m["seq"] == self.seq + 1, f"batch {m['seq']} after {self.seq}: a gap"
            self.seq = m["seq"]
            for p in m["points"]:
                self.points[p["name"]].update(p)
            for t in m["alarms"]:
                self.transitions.append(t)
                a = t["alarm"]
                if a["state"] == "closed":
                    self.alarms.pop(a["id"], None)
                else:
                    self.alarms[a["id"]] = a

    async def until(self, predicate: Callable[[Console], bool], timeout: float, what: str) -> None:
        async def run() -> None:
            while not predicate(self):
                self.apply(await self.recv())

        try:
            await asyncio.wait_for(run(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"console: timed out after {timeout:g} s waiting for {what}"
            ) from None

    def value(self, point: str) -> float | None:
        v: float | None = self.points[point]["value"]
        return v

    async def close(self) -> None:
        await self.ws.close()


async def wait_for_async(
    predicate: Callable[[], Awaitable[bool]], timeout: float, what: str
) -> None:
    """Poll an async ``predicate`` until true, or fail naming ``what``."""
    start = time.monotonic()
    while not await predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


def write_yaml(path: Path, doc: Any) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The server's ``database`` settings: an SQLite file, or (``indirect`` param
    ``"postgresql"``) a fresh schema on the local test PostgreSQL, dropped after."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield {"url": f"sqlite:///{tmp_path / 'historian.sqlite'}"}
        return
    url, reason = postgres_url()
    if url is None:
        pytest.skip(f"PostgreSQL test server not reachable: {reason}")
    schema = f"pyadms_test_{uuid.uuid4().hex[:12]}"
    yield {"url": url, "schema": schema}
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
async def rig(
    tmp_path: Path, database: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rig]:
    field = SimulatedField(parse_config([("field.yaml", scada_doc())]))
    await field.start()
    field.set("RTU1.CB", float(DoubleState.ON))
    field.set("RTU1.FPI", 0)
    field.set("RTU1.P", 1.5)
    field.set("RTU1.E", 1000)
    ports = {name: dev.port for name, dev in field.devices.items()}
    scada_file = write_yaml(tmp_path / "scada.yaml", scada_doc(ports))
    server_file = write_yaml(
        tmp_path / "server.yaml",
        {
            "scada": ["scada.yaml"],
            "database": database,
            "api": {"port": 0, "push_interval_s": 0.05},
            "historian": {"flush_interval_s": 0.1, "customers_served": 1000},
            # cheap hashes: the tests log in a lot (the production cost is argon2-cffi's default)
            "users": {"hash_time_cost": 1, "hash_memory_kib": 8192},
        },
    )
    monkeypatch.setenv("PYADMS_ADMIN_PASSWORD", ADMIN_PASSWORD)
    cc = ControlCentre.from_settings(server_file)
    await cc.start()
    for user, role in ROLES.items():
        # hashing takes a while: off the loop, which polls the RTU meanwhile
        await asyncio.to_thread(cc.users.create, user, PASSWORDS[user], role)
    api = ApiServer(create_app(cc), "127.0.0.1", 0)
    await api.start()
    r = Rig(field, cc, api, scada_file)
    try:
        await wait_for(lambda: cc.pointdb.get("RTU1.P").value == pytest.approx(1.5), 10, "values")
        for user in PASSWORDS:
            await r.login(user)
        yield r
    finally:
        await api.stop()
        await cc.stop()
        await field.stop()
