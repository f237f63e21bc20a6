"""Record which process runs a report, so a killed run can be detected and closed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "report_runs",
        sa.Column("worker_host", sa.String(255), comment="host of the process running it"),
    )
    op.add_column(
        "report_runs",
        sa.Column("worker_pid", sa.Integer(), comment="pid of the process running it"),
    )


def downgrade() -> None:
    op.drop_column("report_runs", "worker_pid")
    op.drop_column("report_runs", "worker_host")
