"""Alembic revision scripts (Alembic loads them by file, this makes them part of the package)."""
