"""Alembic migrations of the warehouse schema (see :mod:`auterity.warehouse`)."""
