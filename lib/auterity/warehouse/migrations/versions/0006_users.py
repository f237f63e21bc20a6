"""Users who may sign in, each with a role of parameters/access.yml.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(64), nullable=False, comment="a role of parameters/access.yml"),
        sa.Column("password_hash", sa.String(255), nullable=False, comment="argon2id"),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column(
            "failed_logins",
            sa.Integer(),
            nullable=False,
            server_default="0",
            comment="failed logins since the last good one (backoff, lockout)",
        ),
        sa.Column("locked_until", sa.DateTime(), comment="UTC; no login before"),
        sa.Column("last_login_at", sa.DateTime(), comment="UTC"),
        sa.Column("created_at", sa.DateTime(), nullable=False, comment="UTC"),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False, comment="UTC"),
        sa.Column("changed_by", sa.String(128), nullable=False),
        comment="Who may sign in, with which role (grants: parameters/access.yml).",
    )


def downgrade() -> None:  # pragma: no cover - forward-only in practice
    op.drop_table("users")
