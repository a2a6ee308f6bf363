"""Alembic migrations of the historian schema; run by :func:`scada.historian.db.migrate`."""
