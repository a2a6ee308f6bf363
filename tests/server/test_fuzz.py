"""Fuzz the API from its published OpenAPI schema (schemathesis) over a real socket.

Every operation but logout (which would end the fuzzer's own session) gets
valid-by-the-schema cases and invalid ones: ``ADMIN_EXAMPLES`` of each as
admin (the role that reaches every route), then ``VIEWER_EXAMPLES`` as viewer
(refusals). Pass: no response is a 5xx, every documented response matches its
schema, every 403 of the viewer is in the audit trail, and afterwards the
database is intact (audit trail unchanged up to the fuzz and still
append-only, catalogue unchanged, accounts well-formed, admin untouched,
SQLite integrity check ok) and the server still logs in, serves and commands.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import select, text

from protocols.base import DoubleState
from scada.historian.schema import POINTS, USERS
from server.auth import Role
from tests.server.conftest import ADMIN_PASSWORD, Rig

#: cases per operation and generation mode, as admin and (checking refusals) as viewer
ADMIN_EXAMPLES = 15
VIEWER_EXAMPLES = 3
SKIP = {("POST", "/api/logout")}


def fuzz(base_url: str, token: str, examples: int) -> Counter[str]:
    """Run the cases (blocking: call in a thread).

    Returns the number of cases per generation mode and per response status.
    """
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    counts: Counter[str] = Counter()
    with requests.Session() as session:

        def cases(op: Any, mode: GenerationMode) -> None:
            @given(case=op.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                response = case.call(base_url=base_url, session=session, headers=headers)
                counts[mode.value] += 1
                counts[str(response.status_code)] += 1
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:500]}"
                )
                case.validate_response(
                    response,
                    checks=[not_a_server_error, response_schema_conformance],
                    headers=headers,
                )

            try:
                run()
            except Unsatisfiable:
                # nothing to get wrong: an operation without parameters or body
                assert mode == GenerationMode.NEGATIVE, f"{op.method} {op.path}"

        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()  # the published schema itself is broken
            op = result.ok()
            if (op.method.upper(), op.path) not in SKIP:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    cases(op, mode)
    return counts


def database_state(rig: Rig) -> dict[str, Any]:
    with rig.cc.historian.engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        return {
            "catalogue": [tuple(r) for r in conn.execute(select(POINTS).order_by(POINTS.c.id))],
            "users": [r._asdict() for r in conn.execute(select(USERS).order_by(USERS.c.id))],
            # PostgreSQL has no such check; its constraints and types are what holds there
            "integrity": conn.execute(text("PRAGMA integrity_check")).scalar_one()
            if sqlite
            else "ok",
        }


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~2,500 real HTTP cases: a minute on a quiet machine, more when shared
@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
async def test_fuzz_the_api_from_its_schema(rig: Rig) -> None:
    before_trail = rig.cc.historian.audit_trail()
    before = database_state(rig)

    admin = await asyncio.to_thread(fuzz, rig.url, rig.tokens["admin"], ADMIN_EXAMPLES)
    viewer = await asyncio.to_thread(fuzz, rig.url, rig.tokens["vic"], VIEWER_EXAMPLES)

    cases = {
        who: c["positive"] + c["negative"] for who, c in (("admin", admin), ("viewer", viewer))
    }
    print(f"\nfuzz: {cases} cases; admin statuses {dict(admin)}; viewer statuses {dict(viewer)}")
    assert cases["admin"] >= 1000 and admin["200"] > 0 and admin["422"] > 0
    assert not [code for code in (*admin, *viewer) if code.isdigit() and int(code) >= 500]
    after_trail = rig.cc.historian.audit_trail(limit=100_000)
    assert after_trail[: len(before_trail)] == before_trail
    ids = [a.id for a in after_trail]
    assert ids == sorted(set(ids))
    # every 403 of the viewer was audited: lack of role, or a wrong old password
    refused = [
        a
        for a in after_trail[len(before_trail) :]
        if a.user == "vic" and a.result in ("refused: 403 forbidden", "refused: wrong old password")
    ]
    assert len(refused) == viewer["403"] > 0
    after = database_state(rig)
    assert after["integrity"] == "ok"
    assert after["catalogue"] == before["catalogue"]
    by_name = {u["username"]: u for u in after["users"]}
    for u in after["users"]:
        assert u["password_hash"].startswith("$argon2id$") and Role(u["role"])
    assert by_name["admin"] == next(u for u in before["users"] if u["username"] == "admin")
    with rig.cc.historian.engine.begin() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("DELETE FROM audit"))

    # the server still logs in, serves and commands
    async with rig.client() as anon:
        r = await anon.post("/api/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200
    await rig.login("olga")
    async with rig.client("olga") as op:
        r = await op.post("/api/control/direct", json={"point": "RTU1.CB", "value": 0})
        assert r.json()["status"] == "confirmed", r.text
    assert rig.field.get("RTU1.CB") == DoubleState.OFF
