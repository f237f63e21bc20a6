"""Scheduled slots count their attempts, so a slot cut short is run again at most once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATUS_COMMENT = "claimed | done | error | interrupted | lost"


def upgrade() -> None:
    op.add_column(
        "schedule_slots",
        sa.Column(
            "attempt",
            sa.Integer(),
            nullable=False,
            server_default="1",
            comment="1 for the slot's run, 2 for its one re-run after an interruption",
        ),
    )
    if op.get_bind().dialect.name == "postgresql":  # DuckDB keeps no column comments
        op.alter_column(
            "schedule_slots",
            "status",
            existing_type=sa.String(16),
            existing_nullable=False,
            comment=STATUS_COMMENT,
            existing_comment="claimed | done | error | interrupted",
        )


def downgrade() -> None:
    op.drop_column("schedule_slots", "attempt")
