"""Initial warehouse schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _pg() -> bool:
    """Secondary indexes are created on PostgreSQL only (see auterity.schema)."""
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("signup_ts", sa.DateTime(), nullable=False, comment="UTC"),
        sa.Column("country", sa.String(2), comment="ISO 3166-1 alpha-2"),
        sa.Column("region", sa.String(16), comment="sales region, e.g. EMEA, NA, APAC, LATAM"),
        sa.Column("segment", sa.String(32)),
        sa.Column("plan", sa.String(32)),
        sa.Column("email", sa.String(255), comment="PII"),
        sa.Column("name", sa.String(255), comment="PII"),
        comment="One row per customer account.",
    )
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("ts", sa.DateTime(), nullable=False, comment="UTC"),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("channel", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.CheckConstraint(
            "status IN ('completed', 'refunded', 'failed')", name="ck_orders_status"
        ),
        comment="Orders; revenue counts status 'completed'.",
    )
    op.create_table(
        "product_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), comment="NULL for anonymous visits"),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("ts", sa.DateTime(), nullable=False, comment="UTC"),
        sa.Column("event_type", sa.String(16), nullable=False),
        sa.CheckConstraint(
            "event_type IN ('visit', 'signup', 'activation', 'purchase')",
            name="ck_product_events_event_type",
        ),
        comment="Funnel events: visit, signup, activation, purchase.",
    )
    op.create_table(
        "models",
        sa.Column("model_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64)),
        sa.Column("input_price_per_1k", sa.Double(), comment="list price per 1k input tokens"),
        sa.Column("output_price_per_1k", sa.Double(), comment="list price per 1k output tokens"),
        sa.Column("pricing_kind", sa.String(16), nullable=False, server_default="per_token"),
        sa.Column(
            "pricing_config",
            sa.Text(),
            comment="JSON: tiers for 'tiered', monthly_cost for 'flat' (self-hosted)",
        ),
        sa.Column("hosting", sa.String(16), nullable=False, server_default="api"),
        sa.CheckConstraint(
            "pricing_kind IN ('per_token', 'tiered', 'flat')", name="ck_models_pricing_kind"
        ),
        comment="AI models and their pricing.",
    )
    op.create_table(
        "inference_events",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("ts", sa.DateTime(), nullable=False, comment="UTC"),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("feature", sa.String(64), comment="product feature or workflow that called"),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column(
            "cost", sa.Double(), comment="as reported by the source; NULL = compute from pricing"
        ),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("quality", sa.Double(), comment="0..1 evaluation score, NULL if not scored"),
        sa.Column("feedback", sa.SmallInteger(), comment="user feedback: 1 up, -1 down, NULL none"),
        sa.CheckConstraint(
            "status IN ('ok', 'error', 'timeout')", name="ck_inference_events_status"
        ),
        comment="One row per model request.",
    )
    op.create_table(
        "report_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("notebook", sa.String(128), nullable=False),
        sa.Column("parameter_set", sa.String(128)),
        sa.Column("parameters", sa.Text(), comment="JSON of the values used"),
        sa.Column("trigger", sa.String(16), nullable=False, comment="manual | schedule"),
        sa.Column("job_id", sa.String(128), comment="schedule job, if any"),
        sa.Column("acting_user", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, comment="running | ok | failed"),
        sa.Column("started_at", sa.DateTime(), nullable=False, comment="UTC"),
        sa.Column("finished_at", sa.DateTime(), comment="UTC"),
        sa.Column("duration_s", sa.Double()),
        sa.Column("error_cell", sa.Integer()),
        sa.Column("error_message", sa.Text()),
        sa.Column("output_dir", sa.Text()),
        sa.Column("outputs", sa.Text(), comment="JSON: kind -> path"),
        sa.Column("delivery_status", sa.String(32)),
        sa.Column("delivery_error", sa.Text()),
        sa.Column("pruned", sa.Boolean(), nullable=False, server_default=sa.false()),
        comment="Every notebook run, manual or scheduled.",
    )
    op.create_table(
        "audit_log",
        sa.Column("audit_id", sa.String(64), primary_key=True),
        sa.Column("ts", sa.DateTime(), nullable=False, comment="UTC"),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(64)),
        sa.Column("object_id", sa.String(256)),
        sa.Column("details", sa.Text(), comment="JSON"),
        comment="Who did what, when: runs, exports, emails, access decisions, data changes.",
    )
    op.create_table(
        "warehouse_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text()),
        sa.Column("updated_at", sa.DateTime(), nullable=False, comment="UTC"),
        comment="Small key/value state: data version (cache invalidation), demo manifest.",
    )
    if _pg():
        op.create_index("ix_customers_signup_ts", "customers", ["signup_ts"])
        op.create_index("ix_orders_ts", "orders", ["ts"])
        op.create_index("ix_orders_customer_id", "orders", ["customer_id"])
        op.create_index("ix_product_events_ts", "product_events", ["ts"])
        op.create_index("ix_inference_events_ts", "inference_events", ["ts"])
        op.create_index("ix_inference_events_model_ts", "inference_events", ["model_id", "ts"])
        op.create_index(
            "ix_report_runs_notebook", "report_runs", ["notebook", "parameter_set", "started_at"]
        )
        op.create_index("ix_audit_log_ts", "audit_log", ["ts"])


def downgrade() -> None:
    for table in (
        "warehouse_meta",
        "audit_log",
        "report_runs",
        "inference_events",
        "models",
        "product_events",
        "orders",
        "customers",
    ):
        op.drop_table(table)
