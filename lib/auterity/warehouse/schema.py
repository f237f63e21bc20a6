"""The warehouse schema, declared once with SQLAlchemy Core.

This is a documented data contract: users load their own data into these tables, so
table and column names are stable. Timestamps are stored as UTC without a zone; the
business time zone (``AUTERITY_TIMEZONE``) only decides day/week/month boundaries.

Relationships (``orders.customer_id`` -> ``customers.customer_id`` and so on) are
documented, not enforced as foreign keys: DuckDB cannot cascade deletes and enforces
keys row by row on bulk loads, so referential checks belong to ingest validation.

Secondary indexes are created on PostgreSQL only, and on DuckDB the event tables
(``orders``, ``product_events``, ``inference_events``) carry no primary-key index either:
their keys are kept unique by the one load path (:mod:`auterity.ingest.load`, which
upserts by key under DuckDB's single writer), and an index over hundreds of millions of
keys would make every bulk load several times slower. DuckDB answers the analytic scans
we run from its min/max zone maps (rows arrive in time order); an ART index would only
slow bulk loads and pin memory.

Alembic migrations (``auterity/migrations``) create and upgrade these tables; a test
checks that the migrated database matches this module exactly.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

INFERENCE_STATUSES = ("ok", "error", "timeout")
FUNNEL_STEPS = ("visit", "signup", "activation", "purchase")
ORDER_STATUSES = ("completed", "refunded", "failed")
PRICING_KINDS = ("per_token", "tiered", "flat")


def _pg_index(name: str, *columns: sa.Column) -> sa.Index:
    """An index created on PostgreSQL only (see the module docstring)."""
    return sa.Index(name, *columns).ddl_if(dialect="postgresql")


def _in_check(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    """A CHECK constraint limiting ``column`` to ``values``."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=name)


customers = sa.Table(
    "customers",
    metadata,
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
_pg_index("ix_customers_signup_ts", customers.c.signup_ts)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("order_id", sa.String(64), primary_key=True),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("ts", sa.DateTime(), nullable=False, comment="UTC"),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("channel", sa.String(32)),
    sa.Column("status", sa.String(16), nullable=False),
    _in_check("status", ORDER_STATUSES, "ck_orders_status"),
    comment="Orders; revenue counts status 'completed'.",
)
_pg_index("ix_orders_ts", orders.c.ts)
_pg_index("ix_orders_customer_id", orders.c.customer_id)

product_events = sa.Table(
    "product_events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("customer_id", sa.String(64), comment="NULL for anonymous visits"),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("ts", sa.DateTime(), nullable=False, comment="UTC"),
    sa.Column("event_type", sa.String(16), nullable=False),
    _in_check("event_type", FUNNEL_STEPS, "ck_product_events_event_type"),
    comment="Funnel events: visit, signup, activation, purchase.",
)
_pg_index("ix_product_events_ts", product_events.c.ts)

models = sa.Table(
    "models",
    metadata,
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
    _in_check("pricing_kind", PRICING_KINDS, "ck_models_pricing_kind"),
    comment="AI models and their pricing.",
)

inference_events = sa.Table(
    "inference_events",
    metadata,
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
    _in_check("status", INFERENCE_STATUSES, "ck_inference_events_status"),
    comment="One row per model request.",
)
_pg_index("ix_inference_events_ts", inference_events.c.ts)
_pg_index("ix_inference_events_model_ts", inference_events.c.model_id, inference_events.c.ts)

inference_daily = sa.Table(
    "inference_daily",
    metadata,
    sa.Column("day", sa.Date(), nullable=False, comment="local day (warehouse_meta rollup_tz)"),
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
_pg_index("ix_inference_daily_day", inference_daily.c.day, inference_daily.c.model_id)

inference_latency_daily = sa.Table(
    "inference_latency_daily",
    metadata,
    sa.Column("day", sa.Date(), nullable=False, comment="local day (warehouse_meta rollup_tz)"),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("bucket", sa.Integer(), nullable=False, comment="log bucket of latency_ms"),
    sa.Column("requests", sa.BigInteger(), nullable=False, comment="successful requests"),
    comment="Latency histogram of successful requests per local day and model (rollup).",
)
_pg_index(
    "ix_inference_latency_daily_day",
    inference_latency_daily.c.day,
    inference_latency_daily.c.model_id,
)

report_runs = sa.Table(
    "report_runs",
    metadata,
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
    sa.Column("worker_host", sa.String(255), comment="host of the process running it"),
    sa.Column("worker_pid", sa.Integer(), comment="pid of the process running it"),
    sa.Column("scheduled_for", sa.DateTime(), comment="UTC cron slot of a scheduled run"),
    sa.Column("read_as", sa.String(128), comment="user whose role the run read as"),
    sa.Column("read_as_role", sa.String(128), comment="that user's role at the time"),
    comment="Every notebook run, manual or scheduled.",
)
_pg_index(
    "ix_report_runs_notebook",
    report_runs.c.notebook,
    report_runs.c.parameter_set,
    report_runs.c.started_at,
)

schedule_slots = sa.Table(
    "schedule_slots",
    metadata,
    sa.Column("job_name", sa.String(128), primary_key=True),
    sa.Column("scheduled_for", sa.DateTime(), primary_key=True, comment="UTC"),
    sa.Column(
        "status",
        sa.String(16),
        nullable=False,
        comment="claimed | done | error | interrupted | lost",
    ),
    sa.Column("run_id", sa.String(64), comment="report_runs.run_id of the run"),
    sa.Column("claimed_at", sa.DateTime(), nullable=False, comment="UTC"),
    sa.Column("claimed_by", sa.String(255), comment="host:pid of the claiming process"),
    sa.Column("detail", sa.Text(), comment="why a slot ended in error or was interrupted"),
    sa.Column(
        "attempt",
        sa.Integer(),
        nullable=False,
        server_default="1",
        comment="1 for the slot's run, 2 for its one re-run after an interruption",
    ),
    comment="One row per cron slot a scheduler took on: claiming it is what runs it.",
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("audit_id", sa.String(64), primary_key=True),
    sa.Column("ts", sa.DateTime(), nullable=False, comment="UTC"),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("object_type", sa.String(64)),
    sa.Column("object_id", sa.String(256)),
    sa.Column("details", sa.Text(), comment="JSON"),
    comment="Who did what, when: runs, exports, emails, access decisions, data changes.",
)
_pg_index("ix_audit_log_ts", audit_log.c.ts)

warehouse_meta = sa.Table(
    "warehouse_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text()),
    sa.Column("updated_at", sa.DateTime(), nullable=False, comment="UTC"),
    comment="Small key/value state: data version (cache invalidation), demo manifest.",
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("quarantine_id", sa.String(64), primary_key=True, comment="stable per source row"),
    sa.Column("table_name", sa.String(64), nullable=False, comment="the table it was meant for"),
    sa.Column("reason", sa.Text(), nullable=False, comment="every check it failed"),
    sa.Column("source", sa.String(512), nullable=False, comment="file, source database, OTLP"),
    sa.Column("batch_id", sa.String(64), nullable=False),
    sa.Column("row_number", sa.Integer(), comment="position in its file or batch (0-based)"),
    sa.Column("raw", sa.Text(), comment="JSON: the row as it came"),
    sa.Column("quarantined_at", sa.DateTime(), nullable=False, comment="UTC"),
    comment="Rows that failed the data contract on the way in: nothing is dropped silently.",
)
_pg_index("ix_quarantine_table_at", quarantine.c.table_name, quarantine.c.quarantined_at)

users = sa.Table(
    "users",
    metadata,
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

NO_KEY_INDEX_ON_DUCKDB = ("orders", "product_events", "inference_events")
"""Event tables whose primary key is not indexed on DuckDB (see the module docstring)."""

DATA_TABLES = ("customers", "orders", "product_events", "models", "inference_events")
"""Tables holding analysed data (what demo-data and ingest write)."""

ROLLUP_TABLES = ("inference_daily", "inference_latency_daily")
"""Aggregates of data tables kept by :mod:`auterity.warehouse.rollups` (no customer key)."""

TIME_COLUMNS = {
    "customers": "signup_ts",
    "orders": "ts",
    "product_events": "ts",
    "inference_events": "ts",
}
"""The time column of each event-like table."""
