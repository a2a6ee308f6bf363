"""The historian's tables (SQLAlchemy Core), as the latest migration leaves them.

Times are POSIX seconds in double precision (``*_s``); SOE source times are
integer milliseconds (``source_time_ms``). The migrations in
``scada/historian/migrations`` create and evolve these tables; a test checks
that a migrated database matches this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

__all__ = [
    "ALARMS",
    "ALARM_TRANSITIONS",
    "AUDIT",
    "BREAKERS",
    "ENERGY_BLOCKS",
    "EVENTS",
    "MEASUREMENTS",
    "METADATA",
    "OUTAGES",
    "POINTS",
    "SOE",
    "STATUSES",
    "USERS",
]

#: a 64-bit key that is SQLite's rowid alias there (so it autoincrements cheaply)
BigId = BigInteger().with_variant(Integer, "sqlite")

METADATA = MetaData()

POINTS = Table(
    "points",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("device", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("unit", String(32), nullable=False, server_default=""),
    Column("description", Text, nullable=False, server_default=""),
    Column("element", String(200)),
    Column("archive_deadband", Double, nullable=False, server_default="0"),
    #: False once the point left the configuration (its history stays)
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("updated_s", Double, nullable=False),
)

# The value tables carry no foreign key to ``points``: a per-row check halves
# PostgreSQL's insert rate, and catalogue rows are never deleted (a point that
# leaves the configuration is marked inactive), so ids stay valid.
MEASUREMENTS = Table(
    "measurements",
    METADATA,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("point_id", Integer, nullable=False),
    #: the source time where the device gave one, else the receive time
    Column("time_s", Double, nullable=False),
    Column("value", Double),
    Column("quality", Integer, nullable=False),
    Column("receive_time_s", Double, nullable=False),
    #: written by the periodic snapshot rather than by exception
    Column("snapshot", Boolean, nullable=False, server_default="0"),
    Index("ix_measurements_point_time", "point_id", "time_s"),
)

STATUSES = Table(
    "statuses",
    METADATA,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("point_id", Integer, nullable=False),
    Column("time_s", Double, nullable=False),
    Column("value", Double),
    Column("quality", Integer, nullable=False),
    Column("receive_time_s", Double, nullable=False),
    Index("ix_statuses_point_time", "point_id", "time_s"),
)

EVENTS = Table(
    "events",
    METADATA,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("time_s", Double, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("device", String(100)),
    Column("point", String(200)),
    Column("message", Text, nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Index("ix_events_time", "time_s"),
    Index("ix_events_device_time", "device", "time_s"),
)

ALARMS = Table(
    "alarms",
    METADATA,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("source", String(200), nullable=False),
    Column("condition", String(16), nullable=False),
    Column("tag", String(100), nullable=False, server_default=""),
    Column("detail", String(100), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("message", Text, nullable=False),
    Column("device", String(100)),
    Column("point", String(200)),
    Column("value", Double),
    Column("normal", Double),
    Column("raised_time_s", Double, nullable=False),
    Column("receive_time_s", Double, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("acknowledged", Boolean, nullable=False),
    Column("ack_operator", String(100)),
    Column("ack_time_s", Double),
    Column("cleared_time_s", Double),
    Column("shelved_until_s", Double),
    Column("suppressed_by", String(200)),
    #: unacknowledged / acknowledged / cleared / closed
    Column("state", String(16), nullable=False),
    Column("updated_s", Double, nullable=False),
    Index("ix_alarms_state", "state"),
    Index("ix_alarms_device_time", "device", "raised_time_s"),
)

ALARM_TRANSITIONS = Table(
    "alarm_transitions",
    METADATA,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("alarm_id", BigInteger, ForeignKey("alarms.id"), nullable=False),
    Column("time_s", Double, nullable=False),
    Column("transition", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("message", Text, nullable=False),
    Column("value", Double),
    Column("operator", String(100)),
    Index("ix_alarm_transitions_alarm", "alarm_id"),
    Index("ix_alarm_transitions_time", "time_s"),
)

SOE = Table(
    "soe",
    METADATA,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("point", String(200), nullable=False),
    Column("device", String(100), nullable=False),
    Column("value", Double, nullable=False),
    Column("previous", Double, nullable=False),
    Column("text", String(32), nullable=False),
    Column("source_time_ms", BigInteger),
    Column("receive_time_s", Double, nullable=False),
    Column("quality", Integer, nullable=False),
    Column("commanded", Boolean, nullable=False),
    Index("ix_soe_receive_time", "receive_time_s"),
    Index("ix_soe_device", "device", "receive_time_s"),
)

ENERGY_BLOCKS = Table(
    "energy_blocks",
    METADATA,
    Column("feeder", String(100), primary_key=True),
    #: 900 (15-minute blocks) or 3600 (hourly)
    Column("duration_s", Integer, primary_key=True),
    Column("start_s", Double, primary_key=True),
    Column("energy_kwh", Double),
    #: complete / estimated / missing
    Column("quality", String(10), nullable=False),
    #: counter / integrated
    Column("method", String(12), nullable=False),
    Column("computed_s", Double, nullable=False),
)

BREAKERS = Table(
    "breakers",
    METADATA,
    Column("point", String(200), primary_key=True),
    Column("device", String(100), nullable=False),
    Column("element", String(200)),
    #: OPEN / CLOSED / INTERMEDIATE / INDETERMINATE / ON / OFF
    Column("state", String(16), nullable=False),
    Column("value", Double),
    Column("quality", Integer, nullable=False),
    Column("changed_s", Double),
    Column("last_trip_s", Double),
    Column("last_trip_cause", Text),
    Column("expected_outage_s", Double),
    Column("updated_s", Double, nullable=False),
)

OUTAGES = Table(
    "outages",
    METADATA,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("device", String(200), nullable=False),
    Column("feeder", String(100)),
    Column("cause", Text, nullable=False),
    Column("start_s", Double, nullable=False),
    Column("end_s", Double),
    Column("customers", Integer, nullable=False),
    Column("planned", Boolean, nullable=False, server_default="0"),
    Index("ix_outages_start", "start_s"),
    Index("ix_outages_end", "end_s"),
)

#: append-only (the initial migration adds triggers that refuse UPDATE and DELETE)
AUDIT = Table(
    "audit",
    METADATA,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("time_s", Double, nullable=False),
    Column("user_name", String(100), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target", String(200), nullable=False, server_default=""),
    Column("details", Text, nullable=False, server_default=""),
    Column("result", String(200), nullable=False),
    Index("ix_audit_time", "time_s"),
    Index("ix_audit_user_time", "user_name", "time_s"),
)

#: API accounts (migration 0002): argon2 password hashes, roles viewer/operator/engineer/admin
USERS = Table(
    "users",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("enabled", Boolean, nullable=False, server_default="1"),
    Column("created_s", Double, nullable=False),
    Column("updated_s", Double, nullable=False),
)
