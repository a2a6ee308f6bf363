"""Initial historian schema.

Points catalogue, measurement and status archives, events, alarms and their
transitions, SOE, energy blocks, breakers, outages and the append-only audit trail.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "points",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("device", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False, server_default=""),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("element", sa.String(200)),
        sa.Column("archive_deadband", sa.Double(), nullable=False, server_default="0"),
        sa.Column("active", sa.Boolean(), nullable=False, server_default="1"),
        sa.Column("updated_s", sa.Double(), nullable=False),
    )
    for name in ("measurements", "statuses"):
        op.create_table(
            name,
            sa.Column("id", BigId, primary_key=True, autoincrement=True),
            # no foreign key: see scada/historian/schema.py
            sa.Column("point_id", sa.Integer(), nullable=False),
            sa.Column("time_s", sa.Double(), nullable=False),
            sa.Column("value", sa.Double()),
            sa.Column("quality", sa.Integer(), nullable=False),
            sa.Column("receive_time_s", sa.Double(), nullable=False),
            *(
                [sa.Column("snapshot", sa.Boolean(), nullable=False, server_default="0")]
                if name == "measurements"
                else []
            ),
        )
        op.create_index(f"ix_{name}_point_time", name, ["point_id", "time_s"])
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("time_s", sa.Double(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("device", sa.String(100)),
        sa.Column("point", sa.String(200)),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
    )
    op.create_index("ix_events_time", "events", ["time_s"])
    op.create_index("ix_events_device_time", "events", ["device", "time_s"])
    op.create_table(
        "alarms",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("condition", sa.String(16), nullable=False),
        sa.Column("tag", sa.String(100), nullable=False, server_default=""),
        sa.Column("detail", sa.String(100), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("device", sa.String(100)),
        sa.Column("point", sa.String(200)),
        sa.Column("value", sa.Double()),
        sa.Column("normal", sa.Double()),
        sa.Column("raised_time_s", sa.Double(), nullable=False),
        sa.Column("receive_time_s", sa.Double(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("acknowledged", sa.Boolean(), nullable=False),
        sa.Column("ack_operator", sa.String(100)),
        sa.Column("ack_time_s", sa.Double()),
        sa.Column("cleared_time_s", sa.Double()),
        sa.Column("shelved_until_s", sa.Double()),
        sa.Column("suppressed_by", sa.String(200)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("updated_s", sa.Double(), nullable=False),
    )
    op.create_index("ix_alarms_state", "alarms", ["state"])
    op.create_index("ix_alarms_device_time", "alarms", ["device", "raised_time_s"])
    op.create_table(
        "alarm_transitions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("alarm_id", sa.BigInteger(), sa.ForeignKey("alarms.id"), nullable=False),
        sa.Column("time_s", sa.Double(), nullable=False),
        sa.Column("transition", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("value", sa.Double()),
        sa.Column("operator", sa.String(100)),
    )
    op.create_index("ix_alarm_transitions_alarm", "alarm_transitions", ["alarm_id"])
    op.create_index("ix_alarm_transitions_time", "alarm_transitions", ["time_s"])
    op.create_table(
        "soe",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("point", sa.String(200), nullable=False),
        sa.Column("device", sa.String(100), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("previous", sa.Double(), nullable=False),
        sa.Column("text", sa.String(32), nullable=False),
        sa.Column("source_time_ms", sa.BigInteger()),
        sa.Column("receive_time_s", sa.Double(), nullable=False),
        sa.Column("quality", sa.Integer(), nullable=False),
        sa.Column("commanded", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_soe_receive_time", "soe", ["receive_time_s"])
    op.create_index("ix_soe_device", "soe", ["device", "receive_time_s"])
    op.create_table(
        "energy_blocks",
        sa.Column("feeder", sa.String(100), primary_key=True),
        sa.Column("duration_s", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("start_s", sa.Double(), primary_key=True),
        sa.Column("energy_kwh", sa.Double()),
        sa.Column("quality", sa.String(10), nullable=False),
        sa.Column("method", sa.String(12), nullable=False),
        sa.Column("computed_s", sa.Double(), nullable=False),
    )
    op.create_table(
        "breakers",
        sa.Column("point", sa.String(200), primary_key=True),
        sa.Column("device", sa.String(100), nullable=False),
        sa.Column("element", sa.String(200)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Double()),
        sa.Column("quality", sa.Integer(), nullable=False),
        sa.Column("changed_s", sa.Double()),
        sa.Column("last_trip_s", sa.Double()),
        sa.Column("last_trip_cause", sa.Text()),
        sa.Column("expected_outage_s", sa.Double()),
        sa.Column("updated_s", sa.Double(), nullable=False),
    )
    op.create_table(
        "outages",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("device", sa.String(200), nullable=False),
        sa.Column("feeder", sa.String(100)),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("start_s", sa.Double(), nullable=False),
        sa.Column("end_s", sa.Double()),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("planned", sa.Boolean(), nullable=False, server_default="0"),
    )
    op.create_index("ix_outages_start", "outages", ["start_s"])
    op.create_index("ix_outages_end", "outages", ["end_s"])
    op.create_table(
        "audit",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("time_s", sa.Double(), nullable=False),
        sa.Column("user_name", sa.String(100), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("target", sa.String(200), nullable=False, server_default=""),
        sa.Column("details", sa.Text(), nullable=False, server_default=""),
        sa.Column("result", sa.String(200), nullable=False),
    )
    op.create_index("ix_audit_time", "audit", ["time_s"])
    op.create_index("ix_audit_user_time", "audit", ["user_name", "time_s"])
    _audit_append_only()


def _audit_append_only() -> None:
    """Make the database itself refuse to change or delete audit records."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'audit trail is append-only (% refused)', TG_OP; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_no_{verb.lower()} BEFORE {verb} ON audit "
                f"BEGIN SELECT RAISE(ABORT, 'audit trail is append-only ({verb} refused)'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_append_only ON audit")
        op.execute("DROP FUNCTION audit_append_only()")
    for table in (
        "audit",
        "outages",
        "breakers",
        "energy_blocks",
        "soe",
        "alarm_transitions",
        "alarms",
        "events",
        "statuses",
        "measurements",
        "points",
    ):
        op.drop_table(table)
