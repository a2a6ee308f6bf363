"""Accounts in the historian database (SQLite and PostgreSQL), roles and sessions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from scada.historian import Historian
from server.auth import (
    USERS,
    Role,
    Sessions,
    UnknownUserError,
    User,
    UserExistsError,
    UserStore,
)
from tests.scada.test_historian import Target, target  # noqa: F401 - the fixture

CHEAP = PasswordHasher(time_cost=1, memory_cost=8192)


@pytest.fixture
def store(target: Target) -> Iterator[UserStore]:  # noqa: F811 - the fixture
    h = Historian(target[0], schema=target[1])
    yield UserStore(h.engine, CHEAP)
    h.close()


def test_accounts_passwords_and_bootstrap(store: UserStore) -> None:
    assert store.bootstrap("admin", "first-secret")
    assert not store.bootstrap("root", "other-secret")  # only into an empty table
    store.create("olga", "operator-secret", Role.OPERATOR)
    with pytest.raises(UserExistsError, match="'olga'"):
        store.create("olga", "x" * 8, Role.VIEWER)
    assert [(u.username, u.role) for u in store.accounts()] == [
        ("admin", Role.ADMIN),
        ("olga", Role.OPERATOR),
    ]
    user = store.authenticate("olga", "operator-secret")
    assert user is not None and user.role == Role.OPERATOR
    assert store.authenticate("olga", "wrong") is None
    assert store.authenticate("nobody", "operator-secret") is None
    store.update("olga", enabled=False)
    assert store.authenticate("olga", "operator-secret") is None
    store.update("olga", enabled=True, role=Role.ENGINEER, password="new-secret")
    assert store.authenticate("olga", "operator-secret") is None
    user = store.authenticate("olga", "new-secret")
    assert user is not None and user.role == Role.ENGINEER
    with store.engine.connect() as conn:
        hashes = [h for (h,) in conn.execute(select(USERS.c.password_hash))]
    assert all(h.startswith("$argon2id$") and "secret" not in h for h in hashes)
    store.delete("olga")
    with pytest.raises(UnknownUserError, match="'olga'"):
        store.get("olga")
    with pytest.raises(UnknownUserError):
        store.update("olga", role=Role.VIEWER)


def test_a_stronger_hash_setting_rehashes_at_the_next_login(store: UserStore) -> None:
    store.create("vic", "viewer-secret", Role.VIEWER)
    stronger = UserStore(store.engine, PasswordHasher(time_cost=2, memory_cost=8192))
    assert stronger.authenticate("vic", "viewer-secret") is not None
    with store.engine.connect() as conn:
        (h,) = conn.execute(select(USERS.c.password_hash)).one()
    assert "t=2" in h
    assert stronger.authenticate("vic", "viewer-secret") is not None


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.OPERATOR)
    assert not Role.VIEWER.allows(Role.OPERATOR) and not Role.ENGINEER.allows(Role.ADMIN)


def test_sessions_expire_and_are_revoked() -> None:
    now = [1000.0]
    sessions = Sessions(ttl_s=60, clock=lambda: now[0])
    olga = User("olga", Role.OPERATOR, True, 0, 0)
    a, b = sessions.issue(olga), sessions.issue(olga)
    assert a.token != b.token and len(a.token) >= 43 and a.expires_s == 1060
    assert sessions.get(a.token) == a
    assert sessions.revoke(a.token) and sessions.get(a.token) is None
    now[0] = 1060
    assert sessions.get(b.token) is None  # expired
    c = sessions.issue(olga)
    assert sessions.revoke_user("olga") == 1 and sessions.get(c.token) is None
