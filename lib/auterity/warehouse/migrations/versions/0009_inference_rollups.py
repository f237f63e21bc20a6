"""Daily rollups of ``inference_events`` (per model, and a latency histogram).

The tables start empty and unbuilt (no ``rollup_tz`` in ``warehouse_meta``), so readers
use the raw events until the next write of events builds them, or ``auterity db
rollups`` does (see :mod:`auterity.warehouse.rollups`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

LOCAL_DAY = "local day (warehouse_meta rollup_tz)"


def upgrade() -> None:
    op.create_table(
        "inference_daily",
        sa.Column("day", sa.Date(), nullable=False, comment=LOCAL_DAY),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("ok_requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("timeouts", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("quality_n", sa.BigInteger(), nullable=False),
        sa.Column("quality_sum", sa.Double()),
        sa.Column("quality_sumsq", sa.Double()),
        sa.Column("reported_cost", sa.Double(), comment="sum of reported costs; NULL: none"),
        sa.Column("pending", sa.BigInteger(), nullable=False, comment="requests still to price"),
        sa.Column("pending_input", sa.Double()),
        sa.Column("pending_output", sa.Double()),
        comment="Rollup of inference_events per local day and model (auterity.warehouse.rollups).",
    )
    op.create_table(
        "inference_latency_daily",
        sa.Column("day", sa.Date(), nullable=False, comment=LOCAL_DAY),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False, comment="log bucket of latency_ms"),
        sa.Column("requests", sa.BigInteger(), nullable=False, comment="successful requests"),
        comment="Latency histogram of successful requests per local day and model (rollup).",
    )
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_inference_daily_day", "inference_daily", ["day", "model_id"])
        op.create_index(
            "ix_inference_latency_daily_day", "inference_latency_daily", ["day", "model_id"]
        )


def downgrade() -> None:
    op.drop_table("inference_latency_daily")
    op.drop_table("inference_daily")
