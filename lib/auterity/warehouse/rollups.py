"""Daily rollups of ``inference_events``, maintained in the transaction that writes events.

The ModelHub questions asked most (the leaderboard of a period, by the API, dashboards
and reports alike) read every event of the period; over months of a busy warehouse that
is millions of rows per question. Two small tables answer them instead:

* ``inference_daily``: per local day (in the business time zone) and model, the sums a
  leaderboard is built from: requests by status, tokens, quality count/sum/sum of
  squares, reported costs, and the tokens of requests still to be priced;
* ``inference_latency_daily``: per local day and model, a histogram of the latencies of
  successful requests over logarithmic buckets (bucket ``i`` holds ``(GAMMA**(i-1),
  GAMMA**i]`` ms, :data:`ZERO_BUCKET` holds zero).

Sums and counts are exact. Percentiles from the histogram are within a stated relative
error: each order statistic is replaced by its bucket's representative ``2 GAMMA**i /
(GAMMA + 1)``, which is within ``(GAMMA - 1) / (GAMMA + 1)`` (:data:`LATENCY_ERROR`,
0.99 %) of every value in the bucket, and an interpolated percentile (``percentile_cont``)
is a positive combination of two order statistics, so it keeps the same bound.

Every write of events refreshes the days it touched (:func:`refresh_range`, called by
the one load path inside its transaction), and rewrites of the whole table rebuild the
rollups (:func:`rebuild`): readers see events and rollups change together. The rollups
are cut in one time zone (``warehouse_meta`` key :data:`TZ_KEY`); a question asked in
another zone, or by a reader whose row filters reach ``inference_events``, reads the raw
table (:func:`usable`). Row scopes deny the rollup tables to readers with row filters
(:mod:`auterity.metrics.scoping`), so they cannot be read around a filter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from sqlalchemy.sql.elements import ColumnElement

from auterity import config
from auterity._time import business_tz, utcnow
from auterity.warehouse import dialect, schema
from auterity.warehouse import scope as scopes
from auterity.warehouse.engine import connect, ensure_schema

E = schema.inference_events
DAILY = schema.inference_daily
LATENCY = schema.inference_latency_daily

GAMMA = 1.02
"""Ratio of a latency bucket's upper bound to its lower bound."""
LATENCY_ERROR = (GAMMA - 1) / (GAMMA + 1)
"""Largest relative error of a percentile read from the latency histogram (0.99 %)."""
ZERO_BUCKET = -1_000_000
"""The bucket of latencies of zero (or below): read back as 0."""
TZ_KEY = "rollup_tz"
"""``warehouse_meta`` key: the time zone the rollups' days are cut in (absent: not built)."""
VERSION_KEY = "rollup_data_version"
"""``warehouse_meta`` key: the data version the rollups match. A write that changed data
without refreshing them (e.g. someone's own SQL followed by ``mark_data_changed``) leaves
it behind: readers then use the raw events, and the next write of events rebuilds."""
DATA_VERSION = "data_version"
"""``warehouse_meta`` key of the data version (as :mod:`auterity.warehouse.writes`)."""
REFRESHED = "auterity_rollups_refreshed"
"""``Connection.info`` flag: this transaction brought the rollups up to date."""


def enabled() -> bool:
    """Whether readers may use the rollups (``AUTERITY_ROLLUPS``, default on)."""
    value = (config.value(config.ENV_ROLLUPS) or "on").strip().lower()
    return value not in {"0", "off", "false", "no"}


def _bucket(latency: ColumnElement[float]) -> ColumnElement[int]:
    """The histogram bucket of a latency (ms)."""
    return sa.case(
        (
            latency > 0,
            sa.cast(sa.func.ceil(sa.func.ln(latency) / math.log(GAMMA)), sa.Integer()),
        ),
        else_=ZERO_BUCKET,
    )


def bucket_value(bucket: np.ndarray) -> np.ndarray:
    """The latency a bucket stands for (its representative; 0 for :data:`ZERO_BUCKET`)."""
    bucket = np.asarray(bucket, dtype="float64")
    value = 2.0 * np.power(GAMMA, bucket) / (GAMMA + 1.0)
    return np.where(bucket == ZERO_BUCKET, 0.0, value)


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return sa.case((condition, 1), else_=0)


def _daily_select(tz: str, lo: datetime | None, hi: datetime | None) -> sa.Select:
    """Per local day and model: the sums of ``inference_daily``."""
    day = sa.cast(dialect.period_start(E.c.ts, "day", tz), sa.Date()).label("day")
    # requests still to be priced, as auterity.modelhub.pricing defines them (that layer
    # sits above this one; the rollup-against-raw tests compare the costs it builds)
    pending = sa.and_(E.c.cost.is_(None), E.c.status != "error")
    statement = sa.select(
        day,
        E.c.model_id,
        sa.func.count().label("requests"),
        sa.func.sum(_flag(E.c.status == "ok")).label("ok_requests"),
        sa.func.sum(_flag(E.c.status == "error")).label("errors"),
        sa.func.sum(_flag(E.c.status == "timeout")).label("timeouts"),
        sa.func.sum(E.c.input_tokens).label("input_tokens"),
        sa.func.sum(E.c.output_tokens).label("output_tokens"),
        sa.func.count(E.c.quality).label("quality_n"),
        dialect.to_float(sa.func.sum(E.c.quality)).label("quality_sum"),
        dialect.to_float(sa.func.sum(E.c.quality * E.c.quality)).label("quality_sumsq"),
        dialect.to_float(sa.func.sum(E.c.cost)).label("reported_cost"),
        sa.func.sum(_flag(pending)).label("pending"),
        dialect.to_float(sa.func.sum(sa.case((pending, E.c.input_tokens)))).label("pending_input"),
        dialect.to_float(sa.func.sum(sa.case((pending, E.c.output_tokens)))).label(
            "pending_output"
        ),
    )
    return _within(statement, lo, hi).group_by(day, E.c.model_id)


def _latency_select(tz: str, lo: datetime | None, hi: datetime | None) -> sa.Select:
    """Per local day, model and bucket: successful requests (the latency histogram)."""
    day = sa.cast(dialect.period_start(E.c.ts, "day", tz), sa.Date()).label("day")
    bucket = _bucket(E.c.latency_ms).label("bucket")
    statement = sa.select(day, E.c.model_id, bucket, sa.func.count().label("requests")).where(
        E.c.status == "ok"
    )
    return _within(statement, lo, hi).group_by(day, E.c.model_id, bucket)


def _within(statement: sa.Select, lo: datetime | None, hi: datetime | None) -> sa.Select:
    if lo is not None:
        statement = statement.where(E.c.ts >= lo)
    if hi is not None:
        statement = statement.where(E.c.ts < hi)
    return statement


def _lock(conn: Connection) -> None:
    """On PostgreSQL, take the lock event loads take (refreshes of a day never race)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": "auterity_load:inference_events"},
        )


def _write(conn: Connection, tz: str, lo: datetime | None, hi: datetime | None) -> None:
    daily = _daily_select(tz, lo, hi)
    conn.execute(sa.insert(DAILY).from_select([c.name for c in daily.selected_columns], daily))
    latency = _latency_select(tz, lo, hi)
    conn.execute(
        sa.insert(LATENCY).from_select([c.name for c in latency.selected_columns], latency)
    )


def built_tz(conn: Connection) -> str | None:
    """The zone the rollups are cut in, or None when they are not built."""
    return _meta(conn, TZ_KEY)


def _meta(conn: Connection, key: str) -> str | None:
    meta = schema.warehouse_meta
    value = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
    return str(value) if value else None


def _set_meta(conn: Connection, key: str, value: str) -> None:
    meta = schema.warehouse_meta
    conn.execute(sa.delete(meta).where(meta.c.key == key))
    conn.execute(sa.insert(meta).values(key=key, value=value, updated_at=utcnow()))


def current(conn: Connection, version: str | None) -> bool:
    """Whether the rollups match data version ``version`` (see :data:`VERSION_KEY`)."""
    return version is not None and _meta(conn, VERSION_KEY) == version


def set_version(conn: Connection, version: str) -> None:
    """Record that the rollups match data version ``version`` (they were just rebuilt)."""
    conn.info.pop(REFRESHED, None)
    _set_meta(conn, VERSION_KEY, version)


def mark_current(conn: Connection, old: str | None, new: str, *, rollups_unaffected: bool) -> None:
    """Record, as data version ``old`` becomes ``new``, whether the rollups still match:
    yes if this transaction refreshed them, or changed nothing they hold
    (``rollups_unaffected``) while they matched ``old``; otherwise they are behind until
    the next write of events rebuilds them."""
    if conn.info.pop(REFRESHED, False) or (rollups_unaffected and current(conn, old)):
        _set_meta(conn, VERSION_KEY, new)


def rebuild(conn: Connection, tz: str | None = None) -> None:
    """Recompute the rollups from every event, inside ``conn``'s transaction.

    Parameters
    ----------
    conn : Connection
        A write connection (the caller's transaction).
    tz : str, optional
        Zone to cut days in; default ``AUTERITY_TIMEZONE``.
    """
    tz = business_tz(tz)
    _lock(conn)
    conn.execute(sa.delete(DAILY))
    conn.execute(sa.delete(LATENCY))
    _write(conn, tz, None, None)
    _set_meta(conn, TZ_KEY, tz)
    conn.info[REFRESHED] = True


def rebuild_warehouse(url: str | URL | None = None, tz: str | None = None) -> dict[str, int]:
    """Rebuild the rollups of a warehouse in one transaction (``auterity db rollups``).

    Needed only for a warehouse whose rollups were never built (e.g. upgraded from before
    they existed and not written since) or to cut them in another zone; writes keep them
    current otherwise.

    Returns
    -------
    dict
        Rows of each rollup table.
    """
    ensure_schema(url)
    with connect(url, write=True) as conn:
        rebuild(conn, tz)
        conn.info.pop(REFRESHED, None)
        version = _meta(conn, DATA_VERSION)
        if version is not None:
            _set_meta(conn, VERSION_KEY, version)
        return {
            table.name: int(
                conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            )
            for table in (DAILY, LATENCY)
        }


def refresh_range(conn: Connection, lo: datetime | None, hi: datetime | None) -> None:
    """Recompute the rollups of the local days holding UTC instants ``lo..hi`` (inclusive).

    Called inside the transaction that wrote (or deleted) events in that range. The
    rollups are rebuilt whole when they are not built yet or were cut in another zone.
    Without a range (nothing written) nothing happens.
    """
    if lo is None or hi is None:
        return
    tz = business_tz(None)
    if built_tz(conn) != tz or not current(conn, _meta(conn, DATA_VERSION)):
        rebuild(conn, tz)  # never built, another zone, or behind a write that skipped them
        return
    first, last = _local_date(lo, tz), _local_date(hi, tz) + timedelta(days=1)
    _lock(conn)
    for table in (DAILY, LATENCY):
        conn.execute(sa.delete(table).where(table.c.day >= first, table.c.day < last))
    _write(conn, tz, *dialect.utc_bounds(first, last, tz))
    conn.info[REFRESHED] = True


def _local_date(instant: datetime, tz: str) -> date:
    """The local date in ``tz`` of a naive UTC instant."""
    return instant.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(tz)).date()


def usable(tz: str, url: str | URL | None = None) -> bool:
    """Whether a question in zone ``tz``, read in the current scope, may use the rollups.

    Not when they are switched off, not built, cut in another zone, or when the reader's
    row filters reach ``inference_events`` (the rollups hold every customer's requests).
    """
    if not enabled():
        return False
    scope = scopes.current()
    if scope is not None and (
        E.name in scope.rows or E.name in scope.deny or DAILY.name in scope.deny
    ):
        return False
    with connect(url) as conn:
        return built_tz(conn) == tz and current(conn, _meta(conn, DATA_VERSION))


def percentiles(histogram: pd.DataFrame, ps: Sequence[float], by: str) -> pd.DataFrame:
    """Continuous percentiles of each group from an aggregated latency histogram.

    Parameters
    ----------
    histogram : pandas.DataFrame
        Columns ``by``, ``bucket``, ``requests`` (one row per group and bucket).
    ps : sequence of float
        Percentiles in 0..100, e.g. ``(50, 95, 99)``.
    by : str
        The group column.

    Returns
    -------
    pandas.DataFrame
        One row per group: ``by`` and ``p<N>_latency_ms`` for each percentile, each within
        :data:`LATENCY_ERROR` (relative) of the exact ``percentile_cont``.
    """
    columns = [f"p{p:g}_latency_ms" for p in ps]
    if histogram.empty:
        return pd.DataFrame(columns=[by, *columns])
    rows = []
    for group, part in histogram.sort_values([by, "bucket"]).groupby(by, sort=False):
        counts = part["requests"].to_numpy(dtype="int64")
        values = bucket_value(part["bucket"].to_numpy())
        ends = np.cumsum(counts)  # order statistics 0..ends[i]-1 lie in bucket <= i
        total = int(ends[-1])
        row: dict[str, object] = {by: group}
        for p, column in zip(ps, columns, strict=True):
            h = p / 100.0 * (total - 1)
            lo, hi = math.floor(h), math.ceil(h)
            v_lo = values[np.searchsorted(ends, lo, side="right")]
            v_hi = values[np.searchsorted(ends, hi, side="right")]
            row[column] = float(v_lo + (h - lo) * (v_hi - v_lo))
        rows.append(row)
    return pd.DataFrame(rows, columns=[by, *columns])
