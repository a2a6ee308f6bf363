"""Users, roles, password hashing and login sessions of the control centre's API.

Contract:
- Roles are ordered: viewer < operator < engineer < admin; a role may do what
  every lower role may (:meth:`Role.allows`). What each needs is decided by
  the API (commands: operator; configuration: engineer; users: admin).
- :class:`UserStore` keeps accounts in the historian database (table
  ``users``, created by the historian's migration 0002) with argon2id
  password hashes (argon2-cffi defaults); its methods are thread-safe and
  blocking (hashing takes tens of milliseconds on purpose): call them off the
  event loop.
- :meth:`UserStore.authenticate` spends the same hashing work whether or not
  the account exists, so response time does not reveal user names.
- :class:`Sessions` issues random bearer tokens (256 bits) that expire
  ``ttl_s`` after login; they live in memory (a server restart logs everyone
  out) and are revoked on logout, and when an account is changed or removed.
"""

from __future__ import annotations

import enum
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    Engine,
    Row,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from scada.historian.schema import USERS

__all__ = [
    "Role",
    "Session",
    "Sessions",
    "UnknownUserError",
    "User",
    "UserError",
    "UserExistsError",
    "UserStore",
]


class UserError(Exception):
    """A user account operation that cannot be done (names the account)."""


class UnknownUserError(UserError, KeyError):
    """No account of that name."""


class UserExistsError(UserError):
    """An account of that name exists already."""


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ENGINEER = "engineer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return self.rank >= needed.rank


_RANKS = {r: i for i, r in enumerate(Role)}


@dataclass(frozen=True, slots=True)
class User:
    """An account as the API shows it (never the hash)."""

    username: str
    role: Role
    enabled: bool
    created_s: float
    updated_s: float


class UserStore:
    """Accounts in the historian database."""

    def __init__(self, engine: Engine, hasher: PasswordHasher | None = None) -> None:
        self.engine = engine
        self._hasher = hasher or PasswordHasher()
        # verified against when the account does not exist, so both paths cost the same
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    def _error(self, what: str, exc: SQLAlchemyError) -> UserError:
        return UserError(f"users ({self.engine.url.render_as_string()}): {what}: {exc}")

    def count(self) -> int:
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(USERS)).scalar_one())
        except SQLAlchemyError as exc:
            raise self._error("count", exc) from exc

    def accounts(self) -> list[User]:
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(USERS).order_by(USERS.c.username))
                return [_user(r) for r in rows]
        except SQLAlchemyError as exc:
            raise self._error("list", exc) from exc

    def get(self, username: str) -> User:
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(USERS).where(USERS.c.username == username)).first()
        except SQLAlchemyError as exc:
            raise self._error(f"read {username!r}", exc) from exc
        if row is None:
            raise UnknownUserError(f"user {username!r} does not exist")
        return _user(row)

    def create(self, username: str, password: str, role: Role) -> User:
        now = time.time()
        row = {
            "username": username,
            "password_hash": self._hasher.hash(password),
            "role": role.value,
            "enabled": True,
            "created_s": now,
            "updated_s": now,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(USERS).values(row))
        except IntegrityError:
            raise UserExistsError(f"user {username!r} exists already") from None
        except SQLAlchemyError as exc:
            raise self._error(f"create {username!r}", exc) from exc
        return self.get(username)

    def update(
        self,
        username: str,
        *,
        role: Role | None = None,
        password: str | None = None,
        enabled: bool | None = None,
    ) -> User:
        values: dict[str, object] = {"updated_s": time.time()}
        if role is not None:
            values["role"] = role.value
        if password is not None:
            values["password_hash"] = self._hasher.hash(password)
        if enabled is not None:
            values["enabled"] = enabled
        try:
            with self.engine.begin() as conn:
                done = conn.execute(
                    update(USERS).where(USERS.c.username == username).values(values)
                )
        except SQLAlchemyError as exc:
            raise self._error(f"update {username!r}", exc) from exc
        if done.rowcount == 0:
            raise UnknownUserError(f"user {username!r} does not exist")
        return self.get(username)

    def delete(self, username: str) -> None:
        try:
            with self.engine.begin() as conn:
                done = conn.execute(delete(USERS).where(USERS.c.username == username))
        except SQLAlchemyError as exc:
            raise self._error(f"delete {username!r}", exc) from exc
        if done.rowcount == 0:
            raise UnknownUserError(f"user {username!r} does not exist")

    def authenticate(self, username: str, password: str) -> User | None:
        """The enabled account whose password this is, or None (same work either way)."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(USERS).where(USERS.c.username == username)).first()
        except SQLAlchemyError as exc:
            raise self._error(f"read {username!r}", exc) from exc
        stored = self._dummy if row is None else row.password_hash
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or not row.enabled:
            return None
        if self._hasher.check_needs_rehash(stored):
            self.update(username, password=password)
        return _user(row)

    def bootstrap(self, username: str, password: str) -> bool:
        """Create ``username`` as admin if there is no account at all; True if created."""
        if self.count():
            return False
        self.create(username, password, Role.ADMIN)
        return True


def _user(row: Row[Any]) -> User:
    return User(
        username=row.username,
        role=Role(row.role),
        enabled=bool(row.enabled),
        created_s=row.created_s,
        updated_s=row.updated_s,
    )


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    username: str
    role: Role
    #: wall-clock expiry, POSIX seconds
    expires_s: float


class Sessions:
    """Bearer tokens of logged-in users (in memory, thread-safe)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._by_token: dict[str, Session] = {}

    def issue(self, user: User) -> Session:
        session = Session(
            secrets.token_urlsafe(32), user.username, user.role, self._clock() + self.ttl_s
        )
        with self._lock:
            self._expire()
            self._by_token[session.token] = session
        return session

    def get(self, token: str) -> Session | None:
        """The live session of ``token``, or None (unknown, revoked or expired)."""
        with self._lock:
            session = self._by_token.get(token)
            if session is not None and session.expires_s <= self._clock():
                del self._by_token[token]
                return None
            return session

    def revoke(self, token: str) -> bool:
        with self._lock:
            return self._by_token.pop(token, None) is not None

    def revoke_user(self, username: str) -> int:
        """End every session of ``username``; returns how many there were."""
        with self._lock:
            gone = [t for t, s in self._by_token.items() if s.username == username]
            for t in gone:
                del self._by_token[t]
            return len(gone)

    def _expire(self) -> None:
        now = self._clock()
        for t in [t for t, s in self._by_token.items() if s.expires_s <= now]:
            del self._by_token[t]
