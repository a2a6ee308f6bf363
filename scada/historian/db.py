"""Engines for the historian and running its migrations.

Contract:
- :func:`create_historian_engine` takes an SQLAlchemy URL: ``sqlite:///path``
  (the default kind; WAL journal, ``synchronous=NORMAL``, foreign keys on, a
  busy timeout so readers and the archiver's writer share the file) or
  ``postgresql+psycopg://user@host:port/db``; ``schema`` puts every table of
  a PostgreSQL historian in that schema (created if missing).
- :func:`migrate` brings the database to the newest revision with Alembic,
  from the scripts packaged in ``scada/historian/migrations``; no alembic.ini
  is needed. It is safe to call on every start.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from protocols.base import ProtocolError

__all__ = [
    "MIGRATIONS",
    "HistorianError",
    "create_historian_engine",
    "current_revision",
    "head_revision",
    "migrate",
]

MIGRATIONS = Path(__file__).parent / "migrations"
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class HistorianError(ProtocolError):
    """The historian database cannot be used (names the URL, table or record)."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the archiver; NORMAL: a commit survives a process kill
    # (only an OS crash or power loss may lose the last transactions)
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def create_historian_engine(url: str, *, schema: str | None = None, echo: bool = False) -> Engine:
    """An engine for ``url``; raises :class:`HistorianError` for an unusable URL or schema."""
    try:
        parsed = make_url(url)
    except SQLAlchemyError as exc:
        raise HistorianError(f"historian URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        if schema is not None:
            raise HistorianError(f"historian URL {url!r}: 'schema' is for PostgreSQL only")
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # the archiver writes on its own thread; SQLite connections are used one thread at a time
        connect_args["check_same_thread"] = False
    elif backend == "postgresql":
        if schema is not None:
            if not _SCHEMA_NAME.match(schema):
                raise HistorianError(f"historian schema {schema!r} is not a plain identifier")
            connect_args["options"] = f"-csearch_path={schema}"
    else:
        raise HistorianError(f"historian URL {url!r}: only sqlite and postgresql are supported")
    engine = create_engine(url, connect_args=connect_args, echo=echo, pool_pre_ping=True)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif schema is not None:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return engine


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (default: the newest)."""
    cfg = _config()
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except SQLAlchemyError as exc:
        raise HistorianError(
            f"historian {engine.url.render_as_string()}: migration to {revision} failed: {exc}"
        ) from exc


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()
