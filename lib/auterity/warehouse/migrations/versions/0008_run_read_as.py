"""Record whom a report run read as, so its files are shown only to who may see them.

``acting_user`` names who started a run (the OS user when nobody was named);
``read_as`` is the user whose role shaped what the run read (``--as``; NULL: nobody, so
every row and PII) and ``read_as_role`` that user's role at the time.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "report_runs",
        sa.Column("read_as", sa.String(128), comment="user whose role the run read as"),
    )
    op.add_column(
        "report_runs",
        sa.Column("read_as_role", sa.String(128), comment="that user's role at the time"),
    )


def downgrade() -> None:
    op.drop_column("report_runs", "read_as_role")
    op.drop_column("report_runs", "read_as")
