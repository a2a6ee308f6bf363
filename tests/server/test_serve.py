"""Serving: TLS (HTTPS and WSS), the server configuration file, and ``pyadms server`` itself."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from protocols.base import DoubleState
from rig.field import SimulatedField
from scada.config import ConfigError, parse_config
from server.api import ApiServer, create_app
from server.settings import ServerSettings, load_settings
from server.wiring import ControlCentre
from tests.server.conftest import scada_doc, write_yaml

ROOT = Path(__file__).resolve().parents[2]
CHEAP_HASHES = {"hash_time_cost": 1, "hash_memory_kib": 8192}


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(  # noqa: S603 - fixed arguments
        [  # noqa: S607 - openssl from PATH
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def empty_cc(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ControlCentre]:
    monkeypatch.setenv("PYADMS_ADMIN_PASSWORD", "admin-secret-1")
    cc = ControlCentre(
        parse_config([]), settings=ServerSettings.model_validate({"users": CHEAP_HASHES})
    )
    await cc.start()
    yield cc
    await cc.stop()


async def test_https_and_wss_with_a_self_signed_certificate(
    empty_cc: ControlCentre, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    api = ApiServer(create_app(empty_cc), "127.0.0.1", 0, tls_cert=cert, tls_key=key)
    await api.start()
    try:
        assert api.url.startswith("https://")
        async with httpx.AsyncClient(
            base_url=api.url, verify=ssl.create_default_context(cafile=str(cert))
        ) as client:
            assert (await client.get("/api/health")).json()["status"] == "ok"
            r = await client.post(
                "/api/login", json={"username": "admin", "password": "admin-secret-1"}
            )
            token = r.json()["token"]
        context = ssl.create_default_context(cafile=str(cert))
        ws_url = api.url.replace("https", "wss") + "/api/ws"
        async with connect(ws_url, ssl=context) as ws:
            await ws.send(json.dumps({"type": "hello", "token": token}))
            assert json.loads(await ws.recv())["type"] == "welcome"
            assert json.loads(await ws.recv())["type"] == "snapshot"
        async with httpx.AsyncClient(base_url=api.url.replace("https", "http")) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get("/api/health")
        async with httpx.AsyncClient(base_url=api.url) as unverified:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await unverified.get("/api/health")
    finally:
        await api.stop()


def test_server_configuration_file(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    (tmp_path / "tls").mkdir()
    for p in certificate:
        p.rename(tmp_path / "tls" / p.name)
    f = write_yaml(
        tmp_path / "server.yaml",
        {
            "scada": ["field.yaml"],
            "api": {"port": 8443, "tls_cert": "tls/cert.pem", "tls_key": "tls/key.pem"},
            "control": {"select_timeout_s": 10},
        },
    )
    s = load_settings(f)
    assert s.scada == [tmp_path / "field.yaml"]
    assert s.api.tls_cert == tmp_path / "tls" / "cert.pem"
    assert s.database.url == f"sqlite:///{tmp_path / 'pyadms.sqlite'}"
    assert s.control.select_timeout_s == 10

    bad = write_yaml(
        tmp_path / "bad.yaml",
        {"api": {"port": 99999, "tls_key": "tls/key.pem"}, "control": {"select_timeout": 3}},
    )
    with pytest.raises(ConfigError) as err:
        load_settings(bad)
    keys = {i.key for i in err.value.issues}
    assert keys == {"api.port", "control.select_timeout"}
    assert all(i.file == str(bad) for i in err.value.issues)

    scada = write_yaml(tmp_path / "field.yaml", scada_doc())
    with pytest.raises(ConfigError, match="this is a scada configuration"):
        load_settings(scada)
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "missing.yaml")


async def _line(stream: asyncio.StreamReader, pattern: str, timeout: float) -> re.Match[str]:
    """The first line matching ``pattern`` (earlier lines are skipped)."""

    async def scan() -> re.Match[str]:
        while line := (await stream.readline()).decode():
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"the server exited before printing {pattern!r}")

    return await asyncio.wait_for(scan(), timeout)


async def test_pyadms_server_runs_headless_and_reloads_on_sighup(tmp_path: Path) -> None:
    field = SimulatedField(parse_config([("field.yaml", scada_doc())]))
    await field.start()
    field.set("RTU1.CB", float(DoubleState.ON))
    field.set("RTU1.P", 1.5)
    ports = {"RTU1": field.devices["RTU1"].port}
    doc = scada_doc(ports)
    scada = write_yaml(tmp_path / "field.yaml", doc)
    server_file = write_yaml(
        tmp_path / "server.yaml",
        {"scada": ["field.yaml"], "api": {"port": 0}, "users": CHEAP_HASHES},
    )
    env = {k: v for k, v in os.environ.items() if k != "PYADMS_ADMIN_PASSWORD"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "server", "--config", str(server_file),
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        password = (await _line(proc.stderr, r"with password (\S+) - shown once", 30))[1]
        url = (await _line(proc.stderr, r"API at (http://127\.0\.0\.1:\d+)", 30))[1]
        assert (tmp_path / "pyadms.sqlite").exists()
        async with httpx.AsyncClient(base_url=url) as client:
            r = await client.post("/api/login", json={"username": "admin", "password": password})
            assert r.status_code == 200, r.text
            client.headers["Authorization"] = f"Bearer {r.json()['token']}"

            async def value() -> float | None:
                v: float | None = (await client.get("/api/points/RTU1.P")).json()["value"]
                return v

            for _ in range(200):
                if await value() == 1.5:
                    break
                await asyncio.sleep(0.05)
            assert await value() == 1.5
            doc["devices"].append(
                {**doc["devices"][0], "name": "RTU2", "address": 9, "enabled": False}
            )
            write_yaml(scada, doc)
            proc.send_signal(signal.SIGHUP)
            m = await _line(proc.stderr, r"configuration reloaded: (.*)|reload refused", 10)
            assert m[1] == "devices +1 -0 ~0; points +4 -0", m[0]
            assert (await client.get("/api/config")).json()["devices"] == 2
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await field.stop()
