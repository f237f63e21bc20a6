"""ModelHub analytics: usage, latency, errors, tokens, cost, quality, SLOs, drift, savings.

Every question is answered by SQLAlchemy Core statements over ``inference_events`` (joined
to ``models``) run through :func:`auterity.warehouse.cache.fetch`; aggregation happens in the
warehouse, and pandas only ever sees aggregates (rows per model, per day, per bin...). The
SQL is portable between DuckDB and PostgreSQL.

Time ranges
-----------
``start`` is inclusive and ``end`` exclusive, both dates in the business time zone ``tz``
(default ``AUTERITY_TIMEZONE``). They are converted to UTC bounds and the raw ``ts``
column is filtered with them; days are cut in ``tz``.

Modules
-------
``queries``
    :func:`leaderboard`, :func:`daily_trend`, :func:`cost_by_feature`,
    :func:`cost_by_customer`.
``pricing``
    The effective cost of requests (per-token prices, monthly tiers; no model silently
    shows $0), the ``models`` table.
``flat_fees``
    Flat-priced (self-hosted) models: the days they are deployed, :class:`FlatFee`.
``slo``
    :func:`load_slos` (``parameters/slos.yml``) and :func:`slo_report`.
``drift_stats``
    :func:`drift`: PSI and binned KS test between two windows.
``substitutes``
    :func:`savings`: cheaper models serving a feature about as well.
``live``
    :func:`realtime_snapshot`: requests/s, p95 latency and error rate of the last minutes.
``_periods``, ``_sql``
    Report periods and the statement pieces the modules above share.

Everything notebooks, reports and the CLI use is importable from here
(``from auterity import modelhub; modelhub.leaderboard(...)``).
"""

from __future__ import annotations

from auterity.modelhub._sql import Z95
from auterity.modelhub.drift_stats import (
    DRIFT_COLUMNS,
    DRIFT_METRICS,
    KS_ALPHA,
    PSI_EPSILON,
    PSI_MODERATE,
    PSI_SIGNIFICANT,
    drift,
)
from auterity.modelhub.flat_fees import FlatFee
from auterity.modelhub.live import realtime_snapshot
from auterity.modelhub.queries import (
    DAILY_COLUMNS,
    LEADERBOARD_COLUMNS,
    cost_by_customer,
    cost_by_feature,
    daily_trend,
    leaderboard,
)
from auterity.modelhub.slo import SLO_COLUMNS, SLO_FIELDS, SLO_FILE, load_slos, slo_report
from auterity.modelhub.substitutes import SAVINGS_COLUMNS, savings

__all__ = [
    "DAILY_COLUMNS",
    "DRIFT_COLUMNS",
    "DRIFT_METRICS",
    "KS_ALPHA",
    "LEADERBOARD_COLUMNS",
    "PSI_EPSILON",
    "PSI_MODERATE",
    "PSI_SIGNIFICANT",
    "SAVINGS_COLUMNS",
    "SLO_COLUMNS",
    "SLO_FIELDS",
    "SLO_FILE",
    "Z95",
    "FlatFee",
    "cost_by_customer",
    "cost_by_feature",
    "daily_trend",
    "drift",
    "leaderboard",
    "load_slos",
    "realtime_snapshot",
    "savings",
    "slo_report",
]
