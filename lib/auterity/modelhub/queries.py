"""Usage, reliability, latency, cost and quality per model, per day, per feature and per customer.

Every report is answered by SQLAlchemy Core statements over ``inference_events`` (joined
to ``models``) run through :func:`auterity.cache.fetch`; aggregation happens in the
warehouse, and pandas only ever sees aggregates. Periods are local dates (see
:mod:`auterity.modelhub._periods`), latency percentiles are over successful requests and
costs are effective costs (see :mod:`auterity.modelhub.pricing`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from auterity.errors import ConfigError
from auterity.modelhub import _periods, _sql, pricing
from auterity.warehouse import cache, dialect, rollups, schema

E = schema.inference_events
M = schema.models

LEADERBOARD_COLUMNS = [
    "model_id",
    "name",
    "provider",
    "requests",
    "share_of_traffic",
    "ok_requests",
    "error_rate",
    "timeout_rate",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "input_tokens",
    "output_tokens",
    "cost",
    "cost_per_1k_ok",
    "quality_mean",
    "quality_ci_low",
    "quality_ci_high",
    "quality_n",
]
DAILY_COLUMNS = [
    "day",
    "model_id",
    "requests",
    "error_rate",
    "p50_latency_ms",
    "p95_latency_ms",
    "cost",
    "quality_mean",
]


# --------------------------------------------------------------------------- leaderboard


def leaderboard(
    start: date,
    end: date,
    *,
    tz: str | None = None,
    models: str | Iterable[str] | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """One row per model with traffic in the period: volume, reliability, speed, cost, quality.

    A flat-priced model deployed in the period without a request in it has a row too
    (zero requests, its fee as cost): the fee accrues all the same.

    The statistics come from one statement: a single grouped scan of ``inference_events``
    whose per-model aggregates are then left-joined to ``models`` (names, prices).

    Parameters
    ----------
    start, end : date
        Local dates in ``tz``; ``start`` inclusive, ``end`` exclusive.
    tz : str, optional
        Business time zone; default ``AUTERITY_TIMEZONE``.
    models : str or iterable of str, optional
        Only these model ids (``share_of_traffic`` stays relative to all traffic).
    url : str, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        Columns ``model_id, name, provider, requests, share_of_traffic, ok_requests,
        error_rate, timeout_rate, p50_latency_ms, p95_latency_ms, p99_latency_ms,
        input_tokens, output_tokens, cost, cost_per_1k_ok, quality_mean, quality_ci_low,
        quality_ci_high, quality_n``, sorted by requests (descending). Latency percentiles
        are over ``status = 'ok'`` requests; rates are fractions of all requests; ``cost``
        is the effective cost (:mod:`auterity.modelhub.pricing`); the quality interval is a
        normal 95 % interval of the mean of the scored requests.

    Raises
    ------
    ConfigError
        End not after start, unknown time zone or model id.
    """
    period = _periods.parse_period(start, end, tz)
    prices = pricing.for_period(period, url)
    wanted = pricing.check_models(models, prices.catalogue)

    def statement(prices: pricing.Pricing) -> sa.Select:
        rows = _sql.raw_rows(period.where()).subquery()
        r = rows.c
        agg = (
            sa.select(
                r.model_id,
                sa.func.count().label("requests"),
                sa.func.sum(_sql.flag(r.status == "ok")).label("ok_requests"),
                sa.func.sum(_sql.flag(r.status == "error")).label("errors"),
                sa.func.sum(_sql.flag(r.status == "timeout")).label("timeouts"),
                *_sql.latency_percentiles(r.ok_latency, (50, 95, 99)),
                sa.func.sum(r.input_tokens).label("input_tokens"),
                sa.func.sum(r.output_tokens).label("output_tokens"),
                sa.func.count(r.quality).label("quality_n"),
                dialect.to_float(sa.func.avg(r.quality)).label("quality_mean"),
                dialect.to_float(sa.func.stddev_samp(r.quality)).label("quality_std"),
                *prices.parts(r),
            )
            .group_by(r.model_id)
            .subquery()
        )
        return pricing.priced_select(agg, prices, M.c.name, M.c.provider)

    frame = _leaderboard_rollup(period, prices, url)
    if frame is None:
        frame = pricing.fetch_priced(statement, prices, url)
    frame = _idle_flat_models(frame, prices)
    if frame.empty:
        return pd.DataFrame(columns=LEADERBOARD_COLUMNS)
    for col in ("requests", "ok_requests", "errors", "timeouts", "input_tokens", "output_tokens"):
        frame[col] = _sql.as_int(frame[col])
    for col in ("p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "cost", "quality_mean"):
        frame[col] = _sql.as_float(frame[col])
    frame["quality_n"] = _sql.as_int(frame["quality_n"])
    frame["name"] = frame["name"].fillna(frame["model_id"])
    frame["provider"] = frame["provider"].fillna("unknown")
    frame["share_of_traffic"] = frame["requests"] / frame["requests"].sum()
    frame["error_rate"] = frame["errors"] / frame["requests"]
    frame["timeout_rate"] = frame["timeouts"] / frame["requests"]
    frame["cost"] += frame["model_id"].map(prices.flat_fees()).fillna(0.0)
    pricing.warn_unpriced(frame.loc[frame["cost"].isna(), "model_id"], "leaderboard")
    frame["cost_per_1k_ok"] = (
        frame["cost"] / frame["ok_requests"].where(frame["ok_requests"] > 0) * 1000
    )
    frame["quality_ci_low"], frame["quality_ci_high"] = _sql.quality_ci(
        frame["quality_mean"], _sql.as_float(frame["quality_std"]), frame["quality_n"]
    )
    if wanted is not None:
        frame = frame[frame["model_id"].isin(wanted)]
    frame = frame.sort_values(["requests", "model_id"], ascending=[False, True])
    return frame[LEADERBOARD_COLUMNS].reset_index(drop=True)


def _leaderboard_rollup(
    period: _periods.Period, prices: pricing.Pricing, url: str | None
) -> pd.DataFrame | None:
    """The leaderboard's aggregates from the daily rollups (:mod:`auterity.warehouse.rollups`),
    or None when they cannot answer (see :func:`rollups.usable`; or requests of tiered
    models still to be priced, whose month prices apply row by row).

    Counts, sums and costs equal the raw table's; the latency percentiles are within
    :data:`rollups.LATENCY_ERROR` of them; the quality mean and deviation come from the
    count, sum and sum of squares.
    """
    if not rollups.usable(period.tz, url):
        return None
    D, L = schema.inference_daily, schema.inference_latency_daily
    days = sa.and_(D.c.day >= period.start, D.c.day < period.end)
    agg = (
        sa.select(
            D.c.model_id,
            *(
                sa.func.sum(D.c[name]).label(name)
                for name in (
                    "requests",
                    "ok_requests",
                    "errors",
                    "timeouts",
                    "input_tokens",
                    "output_tokens",
                    "quality_n",
                    "pending",
                )
            ),
            *(
                dialect.to_float(sa.func.sum(D.c[name])).label(name)
                for name in (
                    "quality_sum",
                    "quality_sumsq",
                    "reported_cost",
                    "pending_input",
                    "pending_output",
                )
            ),
        )
        .where(days)
        .group_by(D.c.model_id)
        .subquery()
    )
    frame = cache.fetch(pricing.priced_select(agg, prices, M.c.name, M.c.provider), url=url)
    if prices.tiers and not frame.empty and _sql.as_int(frame["tier_pending"]).sum() > 0:
        return None
    n = _sql.as_float(frame["quality_n"])
    total, squares = _sql.as_float(frame["quality_sum"]), _sql.as_float(frame["quality_sumsq"])
    frame["quality_mean"] = total / n.where(n > 0)
    variance = (squares - total * frame["quality_mean"]) / (n - 1).where(n > 1)
    frame["quality_std"] = np.sqrt(variance.clip(lower=0.0))
    histogram = cache.fetch(
        sa.select(L.c.model_id, L.c.bucket, sa.func.sum(L.c.requests).label("requests"))
        .where(L.c.day >= period.start, L.c.day < period.end)
        .group_by(L.c.model_id, L.c.bucket),
        url=url,
    )
    histogram["requests"] = _sql.as_int(histogram["requests"])
    percentiles = rollups.percentiles(histogram, (50, 95, 99), by="model_id")
    return frame.merge(percentiles, on="model_id", how="left")


def _idle_flat_models(frame: pd.DataFrame, prices: pricing.Pricing) -> pd.DataFrame:
    """``frame`` plus a row of zero requests for each flat model deployed in the period
    without a request in it (its fee accrues all the same, and a leaderboard that left it
    out would understate the period's cost)."""
    fees = prices.flat_fees()
    seen = set(frame["model_id"]) if not frame.empty else set()
    idle = [m for m, fee in fees.items() if fee > 0 and m not in seen]
    if not idle:
        return frame
    names = prices.catalogue.set_index("model_id")
    rows = pd.DataFrame(
        {
            "model_id": idle,
            "name": [names.at[m, "name"] for m in idle],
            "provider": [names.at[m, "provider"] for m in idle],
            **dict.fromkeys(
                ("requests", "ok_requests", "errors", "timeouts", "input_tokens", "output_tokens"),
                0,
            ),
            "quality_n": 0,
            "cost": 0.0,  # the fee is added with every other flat model's
        }
    )
    return pd.concat([frame, rows], ignore_index=True) if not frame.empty else rows


# --------------------------------------------------------------------------- daily trend


def daily_trend(
    start: date,
    end: date,
    *,
    models: str | Iterable[str] | None = None,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Per model and local day: requests, error rate, p50/p95 latency, cost and quality.

    Parameters
    ----------
    start, end : date
        Local dates in ``tz``; ``start`` inclusive, ``end`` exclusive.
    models : str or iterable of str, optional
        Model ids to include; default every model with traffic in the period.
    tz : str, optional
        Business time zone (days are cut there); default ``AUTERITY_TIMEZONE``.
    url : str, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        Columns ``day, model_id, requests, error_rate, p50_latency_ms, p95_latency_ms,
        cost, quality_mean``; one row per model and day of the period, sorted by model and
        day. Days without traffic for a model are filled with ``requests`` 0, ``cost`` 0
        and NaN elsewhere, except that a flat-priced (self-hosted) model's fee accrues on
        every day it is deployed (:mod:`auterity.modelhub.flat_fees`), traffic or not, so
        daily costs add up to the leaderboard's.
        ``error_rate`` counts status 'error'; latencies are over 'ok' requests.

    Raises
    ------
    ConfigError
        End not after start, unknown time zone or model id.
    """
    period = _periods.parse_period(start, end, tz)
    prices = pricing.for_period(period, url)
    wanted = pricing.check_models(models, prices.catalogue)
    where = [period.where()]
    if wanted is not None:
        where.append(E.c.model_id.in_(wanted))

    def statement(prices: pricing.Pricing) -> sa.Select:
        rows = _sql.raw_rows(*where, day=period.tz).subquery()
        r = rows.c
        agg = (
            sa.select(
                r.model_id,
                r.day,
                sa.func.count().label("requests"),
                sa.func.sum(_sql.flag(r.status == "error")).label("errors"),
                *_sql.latency_percentiles(r.ok_latency, (50, 95)),
                dialect.to_float(sa.func.avg(r.quality)).label("quality_mean"),
                *prices.parts(r),
            )
            .group_by(r.model_id, r.day)
            .subquery()
        )
        return pricing.priced_select(agg, prices)

    frame = pricing.fetch_priced(statement, prices, url)
    days = dialect.period_index(period.start, period.end, "day")
    ids = wanted if wanted is not None else sorted(frame["model_id"].unique())
    full = pd.MultiIndex.from_product([ids, days], names=["model_id", "day"])
    frame["day"] = pd.to_datetime(frame["day"]).astype("datetime64[ns]")
    frame = frame.set_index(["model_id", "day"]).reindex(full).reset_index()
    frame["requests"] = _sql.as_int(frame["requests"])
    for col in ("p50_latency_ms", "p95_latency_ms", "quality_mean", "cost"):
        frame[col] = _sql.as_float(frame[col])
    frame["error_rate"] = _sql.as_int(frame["errors"]) / frame["requests"].where(
        frame["requests"] > 0
    )
    unpriced = (frame["requests"] > 0) & frame["cost"].isna()
    frame["unpriced"] = unpriced.astype(int)
    pricing.warn_unpriced(frame.loc[unpriced, "model_id"], "daily_trend")
    frame["cost"] = frame["cost"].fillna(0.0)
    for model_id, fee in prices.flat.items():
        mask = frame["model_id"] == model_id
        frame.loc[mask, "cost"] += fee.daily(pd.DatetimeIndex(frame.loc[mask, "day"]))
    frame.loc[unpriced, "cost"] = np.nan
    frame = frame.sort_values(["model_id", "day"])
    return frame[DAILY_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------- cost breakdowns


def _cost_rollup(
    key: str, period: _periods.Period, wanted: list[str] | None, limit: int | None
) -> Callable[[pricing.Pricing], sa.Select]:
    """A statement builder: requests, tokens and cost per ``key``, flat fees shared by requests."""
    # One statement: aggregate per (key, model) over the raw rows, price the aggregates, add
    # each flat model's fee in proportion to the key's share of that model's requests (a
    # window over the aggregated rows), then total per key, largest cost first.
    where = [period.where()]
    if wanted is not None:
        where.append(E.c.model_id.in_(wanted))

    def statement(prices: pricing.Pricing) -> sa.Select:
        rows = _sql.raw_rows(*where).subquery()
        r = rows.c
        per_model = (
            sa.select(
                r[key].label("key"),
                r.model_id,
                sa.func.count().label("requests"),
                sa.func.sum(r.input_tokens).label("input_tokens"),
                sa.func.sum(r.output_tokens).label("output_tokens"),
                *prices.parts(r),
            )
            .group_by(r[key], r.model_id)
            .subquery()
        )
        p = per_model.c
        fees = prices.flat_fees()
        fee: ColumnElement[Any] = (
            sa.case(fees, value=p.model_id, else_=0.0) if fees else sa.literal(0.0, sa.Float())
        )
        share = dialect.to_float(p.requests) / dialect.to_float(
            sa.func.sum(p.requests).over(partition_by=p.model_id)
        )
        allocated = (
            sa.select(
                p.key,
                p.requests,
                p.input_tokens,
                p.output_tokens,
                (prices.cost(p) + fee * share).label("cost"),
                prices.tier_pending(p).label("tier_pending"),
            ).select_from(pricing.with_models(per_model))
        ).subquery()
        a = allocated.c
        total_cost = dialect.to_float(sa.func.sum(a.cost))
        stmt = (
            sa.select(
                a.key,
                sa.func.sum(a.requests).label("requests"),
                sa.func.sum(a.input_tokens).label("input_tokens"),
                sa.func.sum(a.output_tokens).label("output_tokens"),
                total_cost.label("cost"),
                sa.func.sum(_sql.flag(a.cost.is_(None))).label("unpriced"),
                dialect.to_float(sa.func.sum(sa.func.sum(a.cost)).over()).label("total_cost"),
                sa.func.sum(sa.func.sum(a.tier_pending)).over().label("tier_pending"),
            )
            .group_by(a.key)
            .order_by(sa.nulls_last(total_cost.desc()), a.key)
        )
        return stmt.limit(limit) if limit is not None else stmt

    return statement


def _finish_rollup(frame: pd.DataFrame, key: str, where: str) -> pd.DataFrame:
    """Types, cost per request and share of cost for a cost rollup."""
    frame = frame.rename(columns={"key": key})
    for col in ("requests", "input_tokens", "output_tokens", "unpriced"):
        frame[col] = _sql.as_int(frame[col])
    frame["cost"] = _sql.as_float(frame["cost"])
    frame["share_of_cost"] = frame["cost"] / _sql.as_float(frame["total_cost"])
    pricing.warn_unpriced(frame.loc[frame["unpriced"] > 0, key], where)
    frame.loc[frame["unpriced"] > 0, ["cost", "share_of_cost"]] = np.nan
    frame["cost_per_request"] = frame["cost"] / frame["requests"]
    return frame


def cost_by_feature(
    start: date,
    end: date,
    *,
    models: str | Iterable[str] | None = None,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Effective cost, requests and tokens per product feature.

    Parameters
    ----------
    start, end : date
        Local dates in ``tz``; ``start`` inclusive, ``end`` exclusive.
    models : str or iterable of str, optional
        Only requests to these models.
    tz : str, optional
        Business time zone; default ``AUTERITY_TIMEZONE``.
    url : str, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        Columns ``feature, requests, input_tokens, output_tokens, cost, cost_per_request,
        share_of_cost``, most expensive first. Flat (self-hosted) fees are shared out by
        requests; requests without a feature are grouped under a missing feature.
    """
    period = _periods.parse_period(start, end, tz)
    prices = pricing.for_period(period, url)
    wanted = pricing.check_models(models, prices.catalogue)
    frame = pricing.fetch_priced(_cost_rollup("feature", period, wanted, None), prices, url)
    frame = _finish_rollup(frame, "feature", "cost_by_feature")
    columns = ["feature", "requests", "input_tokens", "output_tokens", "cost"]
    return frame[[*columns, "cost_per_request", "share_of_cost"]].reset_index(drop=True)


def cost_by_customer(
    start: date,
    end: date,
    *,
    limit: int = 20,
    models: str | Iterable[str] | None = None,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """The customers with the largest effective model cost, with their segment and plan.

    Parameters
    ----------
    start, end : date
        Local dates in ``tz``; ``start`` inclusive, ``end`` exclusive.
    limit : int
        Number of customers to return (the largest cost first).
    models : str or iterable of str, optional
        Only requests to these models.
    tz : str, optional
        Business time zone; default ``AUTERITY_TIMEZONE``.
    url : str, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id, segment, plan, region, requests, input_tokens,
        output_tokens, cost, cost_per_request, share_of_cost`` (share of the cost of all
        customers in the period). Flat fees are shared out by requests; requests without a
        customer form one row with a missing ``customer_id``.

    Raises
    ------
    ConfigError
        Bad period, model id, or ``limit`` not a positive integer.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a positive integer (got {limit!r})")
    period = _periods.parse_period(start, end, tz)
    prices = pricing.for_period(period, url)
    wanted = pricing.check_models(models, prices.catalogue)
    rollup = _cost_rollup("customer_id", period, wanted, limit)
    customers = schema.customers

    def statement(prices: pricing.Pricing) -> sa.Select:
        top = rollup(prices).subquery()
        return (
            sa.select(top, customers.c.segment, customers.c.plan, customers.c.region)
            .select_from(top.outerjoin(customers, customers.c.customer_id == top.c.key))
            .order_by(sa.nulls_last(top.c.cost.desc()), top.c.key)
        )

    frame = _finish_rollup(
        pricing.fetch_priced(statement, prices, url), "customer_id", "cost_by_customer"
    )
    columns = ["customer_id", "segment", "plan", "region", "requests", "input_tokens"]
    columns += ["output_tokens", "cost", "cost_per_request", "share_of_cost"]
    return frame[columns].reset_index(drop=True)
