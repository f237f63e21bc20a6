"""Scheduled runs: the slot ledger that keeps the daemon and run-due from double-running.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "report_runs",
        sa.Column("scheduled_for", sa.DateTime(), comment="UTC cron slot of a scheduled run"),
    )
    op.create_table(
        "schedule_slots",
        sa.Column("job_name", sa.String(128), primary_key=True),
        sa.Column("scheduled_for", sa.DateTime(), primary_key=True, comment="UTC"),
        sa.Column(
            "status", sa.String(16), nullable=False, comment="claimed | done | error | interrupted"
        ),
        sa.Column("run_id", sa.String(64), comment="report_runs.run_id of the run"),
        sa.Column("claimed_at", sa.DateTime(), nullable=False, comment="UTC"),
        sa.Column("claimed_by", sa.String(255), comment="host:pid of the claiming process"),
        sa.Column("detail", sa.Text(), comment="why a slot ended in error or was interrupted"),
        comment="One row per cron slot a scheduler took on: claiming it is what runs it.",
    )


def downgrade() -> None:
    op.drop_table("schedule_slots")
    op.drop_column("report_runs", "scheduled_for")
