"""The ADMS routes on a SCADA-only server (no network model): 404 saying why."""

from __future__ import annotations

from tests.server.conftest import Rig

ROUTES = [
    ("GET", "/api/adms/estimate"),
    ("POST", "/api/adms/estimate"),
    ("GET", "/api/adms/plans"),
    ("GET", "/api/adms/plans/flisr-1"),
    ("POST", "/api/adms/plans/flisr-1/approve"),
    ("POST", "/api/adms/plans/flisr-1/step"),
    ("POST", "/api/adms/plans/flisr-1/reject"),
    ("POST", "/api/adms/reconfigure"),
    ("POST", "/api/adms/voltvar"),
]


async def test_adms_routes_need_a_network_model(rig: Rig) -> None:
    assert rig.cc.adms is None
    async with rig.client("olga") as c, rig.client() as anon:
        for method, path in ROUTES:
            r = await c.request(method, path)
            assert r.status_code == 404, (method, path)
            assert "no network model" in r.json()["detail"], (method, path)
            assert (await anon.request(method, path)).status_code == 401, (method, path)
