"""Alembic environment: runs migrations on the connection handed over by auterity.warehouse."""

from __future__ import annotations

from alembic import context
from alembic.ddl.impl import DefaultImpl

from auterity.warehouse.schema import metadata


class DuckDBImpl(DefaultImpl):
    """Alembic has no built-in DuckDB dialect support; DuckDB's DDL is PostgreSQL-like."""

    __dialect__ = "duckdb"
    transactional_ddl = True


connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI directly
    raise RuntimeError("run migrations through `auterity db upgrade`, not the alembic CLI")

context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
