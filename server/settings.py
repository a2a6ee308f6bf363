"""The server's own configuration file (YAML or TOML).

Contract:
- :func:`load_settings` reads one file into :class:`ServerSettings`. Relative
  paths in it (scada configuration files, TLS certificate and key) are taken
  relative to the file's directory; an absent ``database.url`` means an SQLite
  file ``pyadms.sqlite`` next to it.
- Errors raise :class:`scada.config.ConfigError`, each issue naming the file
  and the dotted key (``api.port``), like the scada configuration's errors.
- ``ServerSettings()`` (no file) is valid: no scada files, a temporary
  historian, the API on 127.0.0.1:8080 without TLS. :class:`server.wiring.ControlCentre`
  uses it when given no settings.

Example::

    scada: [field.yaml]
    network: mv_oberrhein          # a bundled network's name or a model file (optional)
    database: {url: "postgresql+psycopg://scada@db/pyadms"}
    api: {host: 0.0.0.0, port: 8443, tls_cert: cert.pem, tls_key: key.pem}
    control: {select_timeout_s: 30, allow_parallel: [[SS1-F1, SS1-F2]]}
    historian: {flush_interval_s: 1.0}
    adms: {estimate_period_s: 10, flisr_mode: automatic}
    users: {admin: admin, admin_password_env: PYADMS_ADMIN_PASSWORD}
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from scada.config import ConfigError, ConfigIssue

__all__ = [
    "AdmsSettings",
    "ApiSettings",
    "ControlSettings",
    "DatabaseSettings",
    "HistorianSettings",
    "ServerSettings",
    "UserSettings",
    "load_settings",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Strict):
    #: SQLAlchemy URL: ``sqlite:///path`` or ``postgresql+psycopg://user@host/db``;
    #: None: ``pyadms.sqlite`` beside the settings file (a temporary file without one)
    url: str | None = None
    #: PostgreSQL schema for every table (created if missing)
    db_schema: str | None = Field(default=None, alias="schema")


class ApiSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: PEM files; both or neither (HTTPS and WSS when given)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: a login's bearer token expires this long after it was issued
    session_ttl_s: float = Field(default=12 * 3600.0, gt=0)
    #: consoles get point, alarm and topology changes batched over this period
    push_interval_s: float = Field(default=0.1, gt=0, le=5)
    #: batches kept for consoles that reconnect and resume
    resume_batches: int = Field(default=600, ge=0)

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        return self


class ControlSettings(_Strict):
    #: an operator's selection is released after this long without execute
    select_timeout_s: float = Field(default=30.0, gt=0)
    #: feeder pairs that may run in parallel (a tie closed between two energised feeders,
    #: e.g. a make-before-break transfer): [[SS1-F1, SS1-F2], ...]; any other paralleling
    #: is refused by the ``feeder paralleling`` interlock (:mod:`server.interlocks`)
    allow_parallel: list[tuple[str, str]] = Field(default_factory=list)
    #: and any two feeders of one substation may
    allow_parallel_same_substation: bool = False
    #: a switch order's make-before-break close (an ADMS plan whose next step opens the
    #: loop it makes, validated on the model with its loop flows) may parallel any
    #: feeders for the moment between the two steps; operators' own closes never may
    allow_parallel_in_orders: bool = True

    @field_validator("allow_parallel")
    @classmethod
    def _distinct_pairs(cls, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for a, b in pairs:
            if a == b:
                raise ValueError(f"a pair names two feeders, got {a!r} twice")
        return pairs


class HistorianSettings(_Strict):
    flush_interval_s: float = Field(default=1.0, gt=0)
    snapshot_period_s: float = Field(default=300.0, gt=0)
    #: customers supplied by each breaker status point (automatic outage records)
    breaker_customers: dict[str, int] = Field(default_factory=dict)
    #: customers served by the whole system, for the reliability indices
    customers_served: int | None = Field(default=None, gt=0)


class UserSettings(_Strict):
    #: the account created on first start, when the users table is empty
    admin: str = Field(default="admin", min_length=1, max_length=100)
    #: environment variable holding its password; unset: one is generated and printed once
    admin_password_env: str = "PYADMS_ADMIN_PASSWORD"  # noqa: S105 - a variable name
    #: argon2id cost of password hashes (argon2-cffi's defaults; lower only for tests)
    hash_time_cost: int = Field(default=3, ge=1, le=20)
    hash_memory_kib: int = Field(default=65536, ge=1024, le=4 * 1024 * 1024)


class AdmsSettings(_Strict):
    """The online ADMS applications (:mod:`server.adms`), run when a network model is loaded."""

    #: state estimation runs at least this often
    estimate_period_s: float = Field(default=10.0, gt=0)
    #: and after relevant changes (switching, trips, bad quality), at most this often
    estimate_min_interval_s: float = Field(default=2.0, ge=0)
    #: FLISR plans are proposed for approval, or executed at once
    flisr_mode: Literal["advisory", "automatic"] = "advisory"
    #: FLISR starts this long after the last trip/FPI change (longer than the reclose dead time)
    flisr_delay_s: float = Field(default=0.5, ge=0)
    #: measurement accuracy (one standard deviation), percent of the value; at least the
    #: point's deadband
    v_sigma_pct: float = Field(default=0.5, gt=0)
    pq_sigma_pct: float = Field(default=1.0, gt=0)
    i_sigma_pct: float = Field(default=1.0, gt=0)
    #: operating limits the plans respect (voltage band, branch loading)
    vm_min_pu: float = Field(default=0.95, gt=0)
    vm_max_pu: float = Field(default=1.05, gt=0)
    max_loading_percent: float = Field(default=100.0, gt=0)


class ServerSettings(_Strict):
    """Everything ``pyadms server`` needs besides the scada configuration itself."""

    #: scada configuration files (templates and devices), merged in order
    scada: list[Path] = Field(default_factory=list)
    #: the network model (a bundled network's name or a model file) for topology,
    #: interlocks and the ADMS applications; None: SCADA only
    network: str | None = None
    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    control: ControlSettings = ControlSettings()
    historian: HistorianSettings = HistorianSettings()
    users: UserSettings = UserSettings()
    adms: AdmsSettings = AdmsSettings()


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        return tomllib.loads(text)
    return yaml.safe_load(text) or {}


def _resolve(base: Path, p: Path | None) -> Path | None:
    return None if p is None or p.is_absolute() else base / p


def load_settings(path: str | Path) -> ServerSettings:
    """Read and validate a server configuration file; raise :class:`ConfigError`."""
    file = Path(path)
    try:
        raw = _read(file)
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(file), "file not found")]) from None
    except (yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        kind = file.suffix.lstrip(".") or "YAML"
        raise ConfigError([ConfigIssue(str(file), f"not valid {kind}: {exc}")]) from None
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue(str(file), "the top level must be a mapping")])
    if "templates" in raw or "devices" in raw:
        raise ConfigError(
            [
                ConfigIssue(
                    str(file),
                    "this is a scada configuration (templates, devices), not a server "
                    "configuration: list it under 'scada:' in one, or use --scada",
                )
            ]
        )
    try:
        settings = ServerSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            [
                ConfigIssue(str(file), e["msg"], key=".".join(str(p) for p in e["loc"]) or None)
                for e in exc.errors()
            ]
        ) from None
    base = file.resolve().parent
    api = settings.api.model_copy(
        update={
            "tls_cert": _resolve(base, settings.api.tls_cert) or settings.api.tls_cert,
            "tls_key": _resolve(base, settings.api.tls_key) or settings.api.tls_key,
        }
    )
    issues = [
        ConfigIssue(str(file), f"file not found: {p}", key=f"api.{key}")
        for key, p in (("tls_cert", api.tls_cert), ("tls_key", api.tls_key))
        if p is not None and not p.is_file()
    ]
    if issues:
        raise ConfigError(issues)
    database = settings.database
    if database.url is None:
        database = database.model_copy(update={"url": f"sqlite:///{base / 'pyadms.sqlite'}"})
    network = settings.network
    if network is not None and (base / network).is_file():
        network = str(base / network)
    return settings.model_copy(
        update={
            "scada": [_resolve(base, p) or p for p in settings.scada],
            "network": network,
            "api": api,
            "database": database,
        }
    )
