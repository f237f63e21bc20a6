"""ModelHub analytics: usage, latency, errors, tokens, cost, quality, SLOs, drift, savings.

Every question is answered by SQLAlchemy Core statements over ``inference_events`` (joined
to ``models``) run through :func:`auterity.cache.fetch`; aggregation happens in the
warehouse, and pandas only ever sees aggregates (rows per model, per day, per bin...). The
SQL is portable between DuckDB and PostgreSQL.

Time ranges
-----------
``start`` is inclusive and ``end`` exclusive, both dates in the business time zone ``tz``
(default ``AUTERITY_TIMEZONE``). They are converted to UTC bounds and the raw ``ts``
column is filtered with them; days are cut in ``tz``.

Latency
-------
Latency percentiles are over successful requests (``status = 'ok'``) only: timeouts are
recorded at the timeout limit and errors fail fast, so mixing them in would describe the
failure modes, not the model. Failures are reported as rates instead. Percentiles are
continuous (``percentile_cont``, i.e. linear interpolation).

Cost (no model silently shows $0)
---------------------------------
The effective cost of a request is, in this order:

* the ``cost`` reported by the source, when not NULL (also for errors);
* 0 for an error with no reported cost (failed calls are not billed);
* ``per_token`` models: ``input_tokens / 1000 * input_price_per_1k +
  output_tokens / 1000 * output_price_per_1k``, computed in SQL;
* ``tiered`` models: the tiers of ``pricing_config`` (``up_to_tokens`` bounds on the
  monthly volume of input + output tokens) are applied in Python to each calendar month's
  (UTC) billed tokens, aggregated in SQL (:func:`_tiered_cost`); the month's cost is
  prorated to requests by their share of the month's tokens (:func:`_tier_price`). This
  takes two more statements (the monthly volumes, then the report again with the month
  prices) and happens only when a tiered model has requests without a reported cost;
* ``flat`` (self-hosted) models: the flat fee below, plus any reported costs. Reports
  broken down by feature or customer, and savings, share it out by requests.

A request that cannot be priced (a per-token model without prices, or a model missing
from ``models``) makes the cost of its group NaN, with a warning, rather than $0.

Flat fees
---------
A flat model's ``monthly_cost`` accrues only on the local days (in ``tz``) it is
deployed, whatever the traffic on each day: from ``deployed_on`` in its
``pricing_config`` (an ISO date), else the day of its first request, up to
``retired_on`` (exclusive: the first day it no longer runs), else through the day of
its last request. First and last requests are those of the whole warehouse, not of the
report's period: a model still serving after a period's end is deployed to that end,
and for a period ending today (data up to now) a model that served today is deployed
through today; a model with no request since some day and no ``retired_on`` is taken as
switched off after that day (set ``retired_on``, or keep it serving, to say otherwise).
On each deployed day the fee is ``monthly_cost / days in that month``, so a whole
month costs ``monthly_cost`` and a partial month its share of days. Every view sums the
same daily accrual (:meth:`FlatFee.daily`): the leaderboard, the daily trend (whose days
add up to the leaderboard), the cost breakdowns, savings, and what emails, dashboards
and insights show from them. A model with neither date nor any request is never billed.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from auterity import dialect, schema
from auterity.cache import fetch
from auterity.config import get_settings, parameters_dir, validate_timezone
from auterity.errors import ConfigError

log = logging.getLogger("auterity.modelhub")

E = schema.inference_events
M = schema.models

Z95 = 1.959963984540054
"""Two-sided 95 % quantile of the standard normal distribution."""

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
SLO_COLUMNS = [
    "model_id",
    "name",
    "latency_percentile",
    "latency_target_ms",
    "error_rate_target",
    "latency_ms",
    "error_rate",
    "days",
    "days_met",
    "compliance",
    "status",
]
DRIFT_COLUMNS = [
    "metric",
    "psi",
    "ks_statistic",
    "ks_pvalue",
    "n_reference",
    "n_current",
    "level",
]
SAVINGS_COLUMNS = [
    "feature",
    "current_model",
    "candidate_model",
    "current_quality",
    "candidate_quality",
    "quality_gap",
    "current_cost_per_request",
    "candidate_cost_per_request",
    "current_requests",
    "est_monthly_savings",
    "evidence",
]

SLO_FIELDS = ("latency_percentile", "latency_ms", "error_rate")
SLO_FILE = "slos.yml"

DRIFT_METRICS = ("input_tokens", "output_tokens", "latency_ms", "quality")
PSI_MODERATE = 0.1
"""PSI from which drift is 'moderate' (common credit-risk convention)."""
PSI_SIGNIFICANT = 0.25
"""PSI from which drift is 'significant'."""
KS_ALPHA = 0.01
"""A KS p-value below this raises a PSI level of 'none' to 'moderate'."""
PSI_EPSILON = 1e-4
"""Bin shares below this are raised to it in the PSI (empty bins would be infinite)."""


# --------------------------------------------------------------------------- arguments


def _tz(tz: str | None) -> str:
    """The business time zone: ``tz`` if given (validated), else the setting."""
    return validate_timezone(tz) if tz else get_settings().timezone


def _as_date(value: Any, name: str) -> date:
    """A date from a date (or datetime, or ISO string), else a ConfigError naming ``name``."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"{name} must be a date such as 2026-01-31 (got {value!r})")


@dataclass(frozen=True)
class _Period:
    """A local date range ``[start, end)`` and its UTC bounds."""

    start: date
    end: date
    tz: str
    lo: datetime
    hi: datetime

    @property
    def days(self) -> int:
        """Number of local days in the period."""
        return (self.end - self.start).days

    def where(self) -> ColumnElement[bool]:
        """Filter of the raw ``ts`` column on the UTC bounds."""
        return sa.and_(E.c.ts >= self.lo, E.c.ts < self.hi)


def _period(start: Any, end: Any, tz: str | None, what: str = "period") -> _Period:
    """Validate a period and compute its UTC bounds."""
    zone = _tz(tz)
    first, last = (
        _as_date(start, f"the start of the {what}"),
        _as_date(end, f"the end of the {what}"),
    )
    if last <= first:
        raise ConfigError(
            f"the end of the {what} ({last}) must be after its start ({first}); the end is "
            "exclusive"
        )
    lo, hi = dialect.utc_bounds(first, last, zone)
    return _Period(first, last, zone, lo, hi)


def _model_list(models: str | Iterable[str] | None, catalogue: pd.DataFrame) -> list[str] | None:
    """The requested model ids (None for all), each checked against the models table."""
    if models is None:
        return None
    wanted = [models] if isinstance(models, str) else list(models)
    if not wanted:
        raise ConfigError("models is empty; pass None for every model")
    known = set(catalogue["model_id"])
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise ConfigError(
            f"unknown model id(s): {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(known))})"
        )
    return list(dict.fromkeys(wanted))


# --------------------------------------------------------------------------- pricing maths


def _tiers(model_id: str, config: Mapping[str, Any]) -> list[tuple[float, float, float]]:
    """Validated tiers as (monthly token bound, input, output price per 1k); last is open."""
    raw = config.get("tiers")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            f"models.pricing_config of {model_id!r}: 'tiers' must be a non-empty list"
        )
    tiers: list[tuple[float, float, float]] = []
    previous = 0.0
    for i, tier in enumerate(raw):
        try:
            upper = tier.get("up_to_tokens")
            upper = math.inf if upper is None or i == len(raw) - 1 else float(upper)
            prices = float(tier["input_price_per_1k"]), float(tier["output_price_per_1k"])
        except (AttributeError, KeyError, TypeError, ValueError):
            raise ConfigError(
                f"models.pricing_config of {model_id!r}: tier {i + 1} needs up_to_tokens "
                "(null for the last) and numeric input_price_per_1k, output_price_per_1k"
            ) from None
        if upper <= previous:
            raise ConfigError(
                f"models.pricing_config of {model_id!r}: up_to_tokens must increase (tier {i + 1})"
            )
        tiers.append((upper, *prices))
        previous = upper
    return tiers


def _tiered_cost(
    input_tokens: float, output_tokens: float, tiers: Sequence[tuple[float, float, float]]
) -> float:
    """Cost of a month's billed tokens: each tier's slice of the volume at its prices."""
    # The volume is input + output tokens; a tier's slice has the month's input/output mix.
    total = float(input_tokens) + float(output_tokens)
    if total <= 0:
        return 0.0
    cost, lower = 0.0, 0.0
    for upper, price_in, price_out in tiers:
        share = max(0.0, min(total, upper) - lower) / total
        cost += share * (input_tokens * price_in + output_tokens * price_out) / 1000
        lower = upper
        if lower >= total:
            break
    return cost


def _tier_price(
    input_tokens: float, output_tokens: float, tiers: Sequence[tuple[float, float, float]]
) -> float:
    """Price per token of a month: its tiered cost prorated by token share."""
    total = float(input_tokens) + float(output_tokens)
    return _tiered_cost(input_tokens, output_tokens, tiers) / total if total > 0 else 0.0


@dataclass(frozen=True)
class FlatFee:
    """A flat-priced (self-hosted) model's monthly fee and the local days it is deployed.

    Attributes
    ----------
    monthly_cost : float
        The fee of a whole calendar month.
    first, until : date
        Deployed from ``first`` (inclusive) to ``until`` (exclusive), local dates; empty
        (``until <= first``) when the model was not deployed. For a report these are the
        deployed days within its period (a deployment reaching beyond the period is cut
        at its edges, which changes nothing inside it).
    """

    monthly_cost: float
    first: date
    until: date

    def daily(self, days: pd.DatetimeIndex) -> np.ndarray:
        """The fee accrued on each local day of ``days`` (midnights).

        The monthly cost over the number of days of that day's month while deployed, 0
        outside ``[first, until)``: the one rule every view sums (leaderboard, daily trend,
        cost breakdowns, savings), so partial months are prorated alike everywhere.
        """
        fee = self.monthly_cost / days.days_in_month.to_numpy(dtype=float)
        deployed = (days >= pd.Timestamp(self.first)) & (days < pd.Timestamp(self.until))
        return np.where(np.asarray(deployed), fee, 0.0)

    def total(self, start: date, end: date) -> float:
        """The fee of the local period ``[start, end)``: :meth:`daily` summed over its days."""
        lo, hi = max(start, self.first), min(end, self.until)
        if hi <= lo:
            return 0.0
        return float(self.daily(pd.date_range(lo, hi - timedelta(days=1), freq="D")).sum())


def _month_floor(instant: datetime) -> datetime:
    """Start of the (UTC) calendar month containing ``instant``."""
    return datetime(instant.year, instant.month, 1)


def _next_month(instant: datetime) -> datetime:
    """Start of the month after the one containing ``instant``."""
    return datetime(instant.year + instant.month // 12, instant.month % 12 + 1, 1)


# --------------------------------------------------------------------------- pricing SQL


def _pending(c: Any) -> ColumnElement[bool]:
    """Rows whose cost must be computed: no reported cost and not an error."""
    return sa.and_(c.cost.is_(None), c.status != "error")


@dataclass(frozen=True)
class _Pricing:
    """The models table and what pricing a period needs beyond plain SQL."""

    # Costs are computed after aggregation: each statement aggregates per model (and its
    # other keys) the reported costs and the tokens of the requests still to be priced
    # (parts), then joins ``models`` to the few aggregated rows and prices those tokens
    # (cost). Tiered models need per-month prices that depend on the month's whole volume;
    # they are computed only when some of their requests lack a cost (_fetch_priced), and
    # are then applied row by row (parts).

    period: _Period
    catalogue: pd.DataFrame
    tiers: dict[str, list[tuple[float, float, float]]]
    flat: dict[str, FlatFee]
    tier_rates: dict[str, list[tuple[datetime, datetime, float]]] | None = None

    def parts(self, c: Any) -> list[ColumnElement[Any]]:
        """Aggregates over raw rows (columns ``c``) that the effective cost is built from."""
        pending = _pending(c)
        parts = [
            dialect.to_float(sa.func.sum(c.cost)).label("reported_cost"),
            sa.func.sum(_flag(pending)).label("pending"),
            dialect.to_float(sa.func.sum(sa.case((pending, c.input_tokens)))).label(
                "pending_input"
            ),
            dialect.to_float(sa.func.sum(sa.case((pending, c.output_tokens)))).label(
                "pending_output"
            ),
        ]
        if self.tier_rates is not None:
            tokens = dialect.to_float(c.input_tokens + c.output_tokens)
            whens = [
                (sa.and_(c.model_id == model_id, c.ts >= lo, c.ts < hi), tokens * price)
                for model_id, months in self.tier_rates.items()
                for lo, hi, price in months
            ]
            tiered = sa.case((pending, sa.case(*whens))) if whens else sa.null()
            parts.append(dialect.to_float(sa.func.sum(tiered)).label("tiered_cost"))
        return parts

    def cost(self, agg: Any) -> ColumnElement[Any]:
        """Effective cost of aggregated rows (``parts`` columns ``agg``, ``models`` joined).

        NULL when requests cannot be priced. Flat models give their reported costs only:
        callers add the period's fee.
        """
        tiered = agg.tiered_cost if self.tier_rates is not None else sa.null()
        computed = sa.case(
            (agg.pending == 0, 0.0),
            (
                M.c.pricing_kind == "per_token",
                agg.pending_input * M.c.input_price_per_1k / 1000.0
                + agg.pending_output * M.c.output_price_per_1k / 1000.0,
            ),
            (M.c.pricing_kind == "flat", 0.0),
            (M.c.pricing_kind == "tiered", tiered),
            else_=sa.null(),
        )
        return sa.func.coalesce(agg.reported_cost, 0.0) + computed

    def tier_pending(self, agg: Any) -> ColumnElement[Any]:
        """Requests of tiered models still to be priced (they need the tier prices)."""
        return sa.case((M.c.pricing_kind == "tiered", agg.pending), else_=0)

    def flat_fees(self) -> dict[str, float]:
        """Each flat model's fee for the period (only the days it was deployed)."""
        return {m: fee.total(self.period.start, self.period.end) for m, fee in self.flat.items()}

    def with_tier_rates(self, url: str | None) -> _Pricing:
        """A copy with the per-month prices of every tiered model in the period."""
        rates: dict[str, list[tuple[datetime, datetime, float]]] = {}
        if self.tiers:
            volumes = _tier_volumes(list(self.tiers), self.period, url)
            for model_id, month, tokens_in, tokens_out in volumes.itertuples(index=False):
                lo = pd.Timestamp(month).to_pydatetime()
                price = _tier_price(tokens_in, tokens_out, self.tiers[model_id])
                rates.setdefault(model_id, []).append((lo, _next_month(lo), price))
        return replace(self, tier_rates=rates)


def _with_models(agg: sa.Subquery) -> sa.Join:
    """Aggregated rows LEFT JOIN models (rows of models missing there stay, unpriced)."""
    return agg.outerjoin(M, M.c.model_id == agg.c.model_id)


def _priced_select(agg: sa.Subquery, pricing: Any, *extra: ColumnElement[Any]) -> sa.Select:
    """Aggregated rows (all their columns) with their effective cost, joined to models."""
    return sa.select(
        agg,
        *extra,
        dialect.to_float(pricing.cost(agg.c)).label("cost"),
        pricing.tier_pending(agg.c).label("tier_pending"),
    ).select_from(_with_models(agg))


def _fetch_priced(
    build: Callable[[_Pricing], sa.Select], pricing: _Pricing, url: str | None
) -> pd.DataFrame:
    """Run ``build(pricing)`` (it returns ``tier_pending``); again with tier prices if needed."""
    # Usually (tiered models report their costs) this is one statement and one scan.
    frame = fetch(build(pricing), url=url)
    if pricing.tiers and not frame.empty and _int(frame["tier_pending"]).sum() > 0:
        frame = fetch(build(pricing.with_tier_rates(url)), url=url)
    return frame


def _catalogue(url: str | None) -> pd.DataFrame:
    """The ``models`` table (a small dimension table) with parsed pricing configs."""
    frame = fetch(
        sa.select(
            M.c.model_id,
            M.c.name,
            M.c.provider,
            M.c.pricing_kind,
            M.c.input_price_per_1k,
            M.c.output_price_per_1k,
            M.c.pricing_config,
        ).order_by(M.c.model_id),
        url=url,
    )
    configs = []
    for model_id, text in zip(frame["model_id"], frame["pricing_config"], strict=True):
        try:
            configs.append(json.loads(text) if isinstance(text, str) and text else {})
        except json.JSONDecodeError:
            raise ConfigError(f"models.pricing_config of {model_id!r} is not valid JSON") from None
    frame["config"] = configs
    return frame


def _config_date(model_id: str, config: Mapping[str, Any], key: str) -> date | None:
    """An optional ISO date of a pricing config, else a ConfigError naming model and key."""
    value = config.get(key)
    if value is None:
        return None
    try:
        return date.fromisoformat(value) if isinstance(value, str) else _as_date(value, key)
    except (ConfigError, ValueError):
        raise ConfigError(
            f"models.pricing_config of {model_id!r}: {key!r} must be a date such as "
            f"2026-01-31 (got {value!r})"
        ) from None


def _traffic_days(model_ids: list[str], period: _Period, url: str | None) -> dict[str, tuple]:
    """Per model, the local days of ``period`` between its first and last request (over the
    whole warehouse) as ``(first, until)``, ``until`` exclusive; empty when none fall in it.

    One statement of scalar subqueries per model: whether any request comes before the
    period and after it (``LIMIT 1``: the scan stops at the first one; an index lookup on
    PostgreSQL), and the first and last request inside it. Global ``min``/``max`` would
    read the model's whole history on every report.
    """

    def one(model_id: str) -> sa.Select:
        mine = E.c.model_id == model_id

        def exists(*where: ColumnElement[bool]) -> Any:
            probe = sa.select(sa.literal(1)).select_from(E).where(mine, *where).limit(1)
            return probe.scalar_subquery()

        def inside(agg: Any) -> Any:
            return sa.select(agg(E.c.ts)).where(mine, period.where()).scalar_subquery()

        return sa.select(
            sa.literal(model_id, sa.String()).label("model_id"),
            exists(E.c.ts < period.lo).label("before"),
            exists(E.c.ts >= period.hi).label("after"),
            inside(sa.func.min).label("first_ts"),
            inside(sa.func.max).label("last_ts"),
        )

    selects = [one(m) for m in model_ids]
    frame = fetch(selects[0] if len(selects) == 1 else sa.union_all(*selects), url=url)

    def local_day(ts: Any) -> date:
        return pd.Timestamp(ts).tz_localize("UTC").tz_convert(period.tz).date()

    out: dict[str, tuple] = {}
    for row in frame.itertuples(index=False):
        seen_inside = pd.notna(row.first_ts)
        if pd.notna(row.before):
            first = period.start
        else:  # the first request is in the period, or after it (then nothing is in it)
            first = local_day(row.first_ts) if seen_inside else period.end
        if pd.notna(row.after):
            until = period.end
        else:  # the last request is in the period, or before it
            until = local_day(row.last_ts) + timedelta(days=1) if seen_inside else period.start
        out[str(row.model_id)] = (first, until)
    return out


def _flat_fees(catalogue: pd.DataFrame, period: _Period, url: str | None) -> dict[str, FlatFee]:
    """Each flat model's fee and its deployed days in ``period`` (module docstring)."""
    configured: dict[str, tuple[float, date | None, date | None]] = {}
    for row in catalogue.itertuples(index=False):
        if row.pricing_kind != "flat":
            continue
        fee = row.config.get("monthly_cost")
        if not isinstance(fee, int | float) or isinstance(fee, bool) or fee < 0:
            raise ConfigError(
                f"models.pricing_config of flat-priced {row.model_id!r} needs a "
                "non-negative number 'monthly_cost'"
            )
        deployed = _config_date(row.model_id, row.config, "deployed_on")
        retired = _config_date(row.model_id, row.config, "retired_on")
        if deployed is not None and retired is not None and retired <= deployed:
            raise ConfigError(
                f"models.pricing_config of {row.model_id!r}: 'retired_on' ({retired}) must be "
                f"after 'deployed_on' ({deployed})"
            )
        configured[row.model_id] = (float(fee), deployed, retired)
    # Only models missing a date need their traffic (one statement for all of them).
    unknown = [m for m, (_, first, until) in configured.items() if first is None or until is None]
    traffic = _traffic_days(unknown, period, url) if unknown else {}
    out: dict[str, FlatFee] = {}
    for model_id, (fee, first, until) in configured.items():
        seen_first, seen_until = traffic.get(model_id, (period.start, period.start))
        out[model_id] = FlatFee(
            fee, first if first is not None else seen_first, until or seen_until
        )
    return out


def _pricing(period: _Period, url: str | None) -> _Pricing:
    """Pricing for a period: the catalogue, tier definitions and flat fees."""
    catalogue = _catalogue(url)
    tiers: dict[str, list[tuple[float, float, float]]] = {}
    for row in catalogue.itertuples(index=False):
        if row.pricing_kind == "tiered":
            tiers[row.model_id] = _tiers(row.model_id, row.config)
    return _Pricing(period, catalogue, tiers, _flat_fees(catalogue, period, url))


def _tier_volumes(model_ids: list[str], period: _Period, url: str | None) -> pd.DataFrame:
    """Billed (non-error) input and output tokens per tiered model and UTC month."""
    first = _month_floor(period.lo)
    last = period.hi if _month_floor(period.hi) == period.hi else _next_month(period.hi)
    rows = (
        sa.select(
            E.c.model_id,
            sa.func.date_trunc("month", E.c.ts, type_=sa.DateTime()).label("month"),
            E.c.input_tokens,
            E.c.output_tokens,
        )
        .where(
            E.c.model_id.in_(model_ids),
            E.c.ts >= first,
            E.c.ts < last,
            E.c.status != "error",
        )
        .subquery()
    )
    stmt = (
        sa.select(
            rows.c.model_id,
            rows.c.month,
            dialect.to_float(sa.func.sum(rows.c.input_tokens)).label("input_tokens"),
            dialect.to_float(sa.func.sum(rows.c.output_tokens)).label("output_tokens"),
        )
        .group_by(rows.c.model_id, rows.c.month)
        .order_by(rows.c.model_id, rows.c.month)
    )
    return fetch(stmt, url=url)


def _unpriced_warning(keys: Iterable[Any], where: str) -> None:
    """Log the groups whose cost is NaN because some requests could not be priced."""
    bad = sorted({str(k) for k in keys})
    if bad:
        log.warning(
            "%s: cost is unknown for %s (requests of models without prices); shown as NaN",
            where,
            ", ".join(bad),
        )


def _ok_latency() -> ColumnElement[Any]:
    """Latency of successful requests, NULL otherwise (percentiles ignore NULLs)."""
    return sa.case((E.c.status == "ok", E.c.latency_ms), else_=sa.null()).label("ok_latency")


def _raw_rows(*where: ColumnElement[bool], day: str | None = None) -> sa.Select:
    """The raw columns the statements aggregate (a projection; plus the local ``day``)."""
    columns: list[ColumnElement[Any]] = [
        E.c.model_id,
        E.c.feature,
        E.c.customer_id,
        E.c.ts,
        E.c.status,
        E.c.input_tokens,
        E.c.output_tokens,
        E.c.cost,
        E.c.quality,
        _ok_latency(),
    ]
    if day is not None:
        columns.append(dialect.period_start(E.c.ts, "day", day).label("day"))
    return sa.select(*columns).where(*where)


def _latency_percentiles(
    latency: ColumnElement[Any], ps: Sequence[int]
) -> list[ColumnElement[Any]]:
    """``p<N>_latency_ms`` columns computed together in one sort."""
    together = [p / 100 for p in ps]
    return [
        dialect.percentile_of_many(latency, p / 100, together).label(f"p{p}_latency_ms") for p in ps
    ]


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """1 where ``condition`` holds, else 0 (for conditional counts)."""
    return sa.case((condition, 1), else_=0)


def _int(series: pd.Series) -> pd.Series:
    """An integer column from SQL sums/counts (NULL as 0)."""
    return pd.to_numeric(series).fillna(0).astype("int64")


def _num(series: pd.Series) -> pd.Series:
    """A float column from SQL results (NULL as NaN, Decimal as float)."""
    return pd.to_numeric(series, errors="coerce").astype("float64")


def _quality_ci(mean: pd.Series, std: pd.Series, n: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Normal 95 % confidence interval of a mean from its standard deviation and count."""
    half = Z95 * std / np.sqrt(n.where(n > 1))
    return mean - half, mean + half


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
        is the effective cost (module docstring); the quality interval is a normal 95 %
        interval of the mean of the scored requests.

    Raises
    ------
    ConfigError
        End not after start, unknown time zone or model id.
    """
    period = _period(start, end, tz)
    pricing = _pricing(period, url)
    wanted = _model_list(models, pricing.catalogue)

    def statement(pricing: _Pricing) -> sa.Select:
        rows = _raw_rows(period.where()).subquery()
        r = rows.c
        agg = (
            sa.select(
                r.model_id,
                sa.func.count().label("requests"),
                sa.func.sum(_flag(r.status == "ok")).label("ok_requests"),
                sa.func.sum(_flag(r.status == "error")).label("errors"),
                sa.func.sum(_flag(r.status == "timeout")).label("timeouts"),
                *_latency_percentiles(r.ok_latency, (50, 95, 99)),
                sa.func.sum(r.input_tokens).label("input_tokens"),
                sa.func.sum(r.output_tokens).label("output_tokens"),
                sa.func.count(r.quality).label("quality_n"),
                dialect.to_float(sa.func.avg(r.quality)).label("quality_mean"),
                dialect.to_float(sa.func.stddev_samp(r.quality)).label("quality_std"),
                *pricing.parts(r),
            )
            .group_by(r.model_id)
            .subquery()
        )
        return _priced_select(agg, pricing, M.c.name, M.c.provider)

    frame = _idle_flat_models(_fetch_priced(statement, pricing, url), pricing)
    if frame.empty:
        return pd.DataFrame(columns=LEADERBOARD_COLUMNS)
    for col in ("requests", "ok_requests", "errors", "timeouts", "input_tokens", "output_tokens"):
        frame[col] = _int(frame[col])
    for col in ("p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "cost", "quality_mean"):
        frame[col] = _num(frame[col])
    frame["quality_n"] = _int(frame["quality_n"])
    frame["name"] = frame["name"].fillna(frame["model_id"])
    frame["provider"] = frame["provider"].fillna("unknown")
    frame["share_of_traffic"] = frame["requests"] / frame["requests"].sum()
    frame["error_rate"] = frame["errors"] / frame["requests"]
    frame["timeout_rate"] = frame["timeouts"] / frame["requests"]
    frame["cost"] += frame["model_id"].map(pricing.flat_fees()).fillna(0.0)
    _unpriced_warning(frame.loc[frame["cost"].isna(), "model_id"], "leaderboard")
    frame["cost_per_1k_ok"] = (
        frame["cost"] / frame["ok_requests"].where(frame["ok_requests"] > 0) * 1000
    )
    frame["quality_ci_low"], frame["quality_ci_high"] = _quality_ci(
        frame["quality_mean"], _num(frame["quality_std"]), frame["quality_n"]
    )
    if wanted is not None:
        frame = frame[frame["model_id"].isin(wanted)]
    frame = frame.sort_values(["requests", "model_id"], ascending=[False, True])
    return frame[LEADERBOARD_COLUMNS].reset_index(drop=True)


def _idle_flat_models(frame: pd.DataFrame, pricing: _Pricing) -> pd.DataFrame:
    """``frame`` plus a row of zero requests for each flat model deployed in the period
    without a request in it (its fee accrues all the same, and a leaderboard that left it
    out would understate the period's cost)."""
    fees = pricing.flat_fees()
    seen = set(frame["model_id"]) if not frame.empty else set()
    idle = [m for m, fee in fees.items() if fee > 0 and m not in seen]
    if not idle:
        return frame
    names = pricing.catalogue.set_index("model_id")
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
        every day it is deployed (module docstring, "Flat fees"), traffic or not, so daily
        costs add up to the leaderboard's.
        ``error_rate`` counts status 'error'; latencies are over 'ok' requests.

    Raises
    ------
    ConfigError
        End not after start, unknown time zone or model id.
    """
    period = _period(start, end, tz)
    pricing = _pricing(period, url)
    wanted = _model_list(models, pricing.catalogue)
    where = [period.where()]
    if wanted is not None:
        where.append(E.c.model_id.in_(wanted))

    def statement(pricing: _Pricing) -> sa.Select:
        rows = _raw_rows(*where, day=period.tz).subquery()
        r = rows.c
        agg = (
            sa.select(
                r.model_id,
                r.day,
                sa.func.count().label("requests"),
                sa.func.sum(_flag(r.status == "error")).label("errors"),
                *_latency_percentiles(r.ok_latency, (50, 95)),
                dialect.to_float(sa.func.avg(r.quality)).label("quality_mean"),
                *pricing.parts(r),
            )
            .group_by(r.model_id, r.day)
            .subquery()
        )
        return _priced_select(agg, pricing)

    frame = _fetch_priced(statement, pricing, url)
    days = dialect.period_index(period.start, period.end, "day")
    ids = wanted if wanted is not None else sorted(frame["model_id"].unique())
    full = pd.MultiIndex.from_product([ids, days], names=["model_id", "day"])
    frame["day"] = pd.to_datetime(frame["day"]).astype("datetime64[ns]")
    frame = frame.set_index(["model_id", "day"]).reindex(full).reset_index()
    frame["requests"] = _int(frame["requests"])
    for col in ("p50_latency_ms", "p95_latency_ms", "quality_mean", "cost"):
        frame[col] = _num(frame[col])
    frame["error_rate"] = _int(frame["errors"]) / frame["requests"].where(frame["requests"] > 0)
    unpriced = (frame["requests"] > 0) & frame["cost"].isna()
    frame["unpriced"] = unpriced.astype(int)
    _unpriced_warning(frame.loc[unpriced, "model_id"], "daily_trend")
    frame["cost"] = frame["cost"].fillna(0.0)
    for model_id, fee in pricing.flat.items():
        mask = frame["model_id"] == model_id
        frame.loc[mask, "cost"] += fee.daily(pd.DatetimeIndex(frame.loc[mask, "day"]))
    frame.loc[unpriced, "cost"] = np.nan
    frame = frame.sort_values(["model_id", "day"])
    return frame[DAILY_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------- cost breakdowns


def _cost_rollup(
    key: str, period: _Period, wanted: list[str] | None, limit: int | None
) -> Callable[[_Pricing], sa.Select]:
    """A statement builder: requests, tokens and cost per ``key``, flat fees shared by requests."""
    # One statement: aggregate per (key, model) over the raw rows, price the aggregates, add
    # each flat model's fee in proportion to the key's share of that model's requests (a
    # window over the aggregated rows), then total per key, largest cost first.
    where = [period.where()]
    if wanted is not None:
        where.append(E.c.model_id.in_(wanted))

    def statement(pricing: _Pricing) -> sa.Select:
        rows = _raw_rows(*where).subquery()
        r = rows.c
        per_model = (
            sa.select(
                r[key].label("key"),
                r.model_id,
                sa.func.count().label("requests"),
                sa.func.sum(r.input_tokens).label("input_tokens"),
                sa.func.sum(r.output_tokens).label("output_tokens"),
                *pricing.parts(r),
            )
            .group_by(r[key], r.model_id)
            .subquery()
        )
        p = per_model.c
        fees = pricing.flat_fees()
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
                (pricing.cost(p) + fee * share).label("cost"),
                pricing.tier_pending(p).label("tier_pending"),
            ).select_from(_with_models(per_model))
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
                sa.func.sum(_flag(a.cost.is_(None))).label("unpriced"),
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
        frame[col] = _int(frame[col])
    frame["cost"] = _num(frame["cost"])
    frame["share_of_cost"] = frame["cost"] / _num(frame["total_cost"])
    _unpriced_warning(frame.loc[frame["unpriced"] > 0, key], where)
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
    period = _period(start, end, tz)
    pricing = _pricing(period, url)
    wanted = _model_list(models, pricing.catalogue)
    frame = _fetch_priced(_cost_rollup("feature", period, wanted, None), pricing, url)
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
    period = _period(start, end, tz)
    pricing = _pricing(period, url)
    wanted = _model_list(models, pricing.catalogue)
    rollup = _cost_rollup("customer_id", period, wanted, limit)
    customers = schema.customers

    def statement(pricing: _Pricing) -> sa.Select:
        top = rollup(pricing).subquery()
        return (
            sa.select(top, customers.c.segment, customers.c.plan, customers.c.region)
            .select_from(top.outerjoin(customers, customers.c.customer_id == top.c.key))
            .order_by(sa.nulls_last(top.c.cost.desc()), top.c.key)
        )

    frame = _finish_rollup(
        _fetch_priced(statement, pricing, url), "customer_id", "cost_by_customer"
    )
    columns = ["customer_id", "segment", "plan", "region", "requests", "input_tokens"]
    columns += ["output_tokens", "cost", "cost_per_request", "share_of_cost"]
    return frame[columns].reset_index(drop=True)


# --------------------------------------------------------------------------- SLOs


def _slo_number(value: Any, where: str, field: str) -> float:
    """A number from the SLO file, else a ConfigError naming the place and field."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{where}: {field} must be a number (got {value!r})")
    return float(value)


def _slo_fields(raw: Any, where: str) -> dict[str, float]:
    """The validated fields of one SLO block (default or a model's override)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(SLO_FIELDS)}")
    out: dict[str, float] = {}
    for field, value in raw.items():
        if field not in SLO_FIELDS:
            raise ConfigError(
                f"{where}: unknown field {field!r} (allowed: {', '.join(SLO_FIELDS)})"
            )
        number = _slo_number(value, where, field)
        if field == "latency_percentile" and not 50 <= number <= 99.9:
            raise ConfigError(
                f"{where}: latency_percentile must be between 50 and 99.9 (got {value})"
            )
        if field == "latency_ms" and number <= 0:
            raise ConfigError(f"{where}: latency_ms must be a positive number of ms (got {value})")
        if field == "error_rate" and not 0 <= number <= 1:
            raise ConfigError(
                f"{where}: error_rate must be a fraction between 0 and 1 (got {value})"
            )
        out[field] = number
    return out


def _validate_slos(raw: Any, source: str) -> dict[str, Any]:
    """Validate SLO definitions (``default`` plus per-model overrides) and merge them."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping with 'default' and 'models'")
    extra = set(raw) - {"default", "models"}
    if extra:
        raise ConfigError(
            f"{source}: unknown section(s) {', '.join(map(repr, sorted(extra)))} "
            "(allowed: default, models)"
        )
    default = _slo_fields(raw.get("default"), f"{source}: default")
    missing = [f for f in SLO_FIELDS if f not in default]
    if missing:
        raise ConfigError(f"{source}: default: missing field(s) {', '.join(missing)}")
    overrides = raw.get("models") or {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{source}: models must map model ids to SLO fields")
    merged = {
        str(model_id): {**default, **_slo_fields(fields, f"{source}: model {model_id!r}")}
        for model_id, fields in overrides.items()
    }
    return {"default": default, "models": merged}


def load_slos(path: str | Path | None = None) -> dict[str, Any]:
    """Load and validate the model SLOs.

    Parameters
    ----------
    path : str or Path, optional
        YAML file; default ``parameters/slos.yml``. It holds a ``default`` block with
        ``latency_percentile`` (50..99.9), ``latency_ms`` (target, > 0) and
        ``error_rate`` (target fraction of failed requests, 0..1), and optional per-model
        overrides under ``models: {model_id: {field: value}}``.

    Returns
    -------
    dict
        ``{"default": {...}, "models": {model_id: {...}}}``, every model entry complete
        (its overrides on top of the default).

    Raises
    ------
    ConfigError
        Missing or unreadable file, bad YAML, unknown section or field, missing target, or
        a value out of range; the message names the file, the model and the field.
    """
    import yaml

    file = Path(path) if path is not None else parameters_dir() / SLO_FILE
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the SLO file {file}: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return _validate_slos(raw, str(file))


def _slo_for(slos: Mapping[str, Any], model_id: str) -> dict[str, float]:
    """The SLO that applies to a model."""
    return slos["models"].get(model_id, slos["default"])


def _pct_label(p: float) -> str:
    """Column label of a latency percentile, e.g. p99_9."""
    return "p" + f"{p:g}".replace(".", "_")


def slo_report(
    start: date,
    end: date,
    *,
    tz: str | None = None,
    slos: Mapping[str, Any] | str | Path | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """SLO compliance per model: the share of days meeting both latency and error targets.

    Parameters
    ----------
    start, end : date
        Local dates in ``tz``; ``start`` inclusive, ``end`` exclusive.
    tz : str, optional
        Business time zone (days are cut there); default ``AUTERITY_TIMEZONE``.
    slos : dict, str or Path, optional
        SLO definitions as returned by :func:`load_slos` (or a path to such a YAML file);
        default ``parameters/slos.yml``.
    url : str, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        One row per model with traffic: ``model_id, name, latency_percentile,
        latency_target_ms, error_rate_target, latency_ms, error_rate, days, days_met,
        compliance, status``. A day (local, with traffic for the model) is met when its
        latency percentile over 'ok' requests is at most the target and its error rate
        (share of requests with status error or timeout) at most the target;
        ``compliance = days_met / days``. ``latency_ms`` and ``error_rate`` are over the
        whole period, and ``status`` is 'met' when both meet the targets, else 'breached'.
        Sorted by compliance, worst first. Daily and whole-period statistics come from one
        statement (``GROUPING SETS``); models without traffic are not listed.
    """
    period = _period(start, end, tz)
    if slos is None or isinstance(slos, str | Path):
        definitions = load_slos(slos)
    else:
        definitions = _validate_slos(slos, "slos argument")
    catalogue = _catalogue(url)
    percentiles = sorted(
        {d["latency_percentile"] for d in [definitions["default"], *definitions["models"].values()]}
    )
    rows = (
        sa.select(
            E.c.model_id,
            dialect.period_start(E.c.ts, "day", period.tz).label("day"),
            _flag(E.c.status != "ok").label("failed"),
            _ok_latency(),
        )
        .where(period.where())
        .subquery()
    )
    r = rows.c
    stmt = sa.select(
        r.model_id,
        r.day,
        sa.func.count().label("requests"),
        sa.func.sum(r.failed).label("failed"),
        *[
            dialect.percentile_of_many(r.ok_latency, p / 100, [q / 100 for q in percentiles]).label(
                _pct_label(p)
            )
            for p in percentiles
        ],
    ).group_by(sa.func.grouping_sets(sa.tuple_(r.model_id, r.day), sa.tuple_(r.model_id)))
    frame = fetch(stmt, url=url)
    if frame.empty:
        return pd.DataFrame(columns=SLO_COLUMNS)
    frame["error_rate"] = _int(frame["failed"]) / _int(frame["requests"])
    out = []
    for model_id, group in frame.groupby("model_id", sort=True):
        slo = _slo_for(definitions, model_id)
        label = _pct_label(slo["latency_percentile"])
        daily = group[group["day"].notna()]
        whole = group[group["day"].isna()].iloc[0]
        latency = _num(daily[label])
        met = (latency <= slo["latency_ms"]) & (daily["error_rate"] <= slo["error_rate"])
        overall_latency = float(whole[label]) if pd.notna(whole[label]) else math.nan
        ok = overall_latency <= slo["latency_ms"] and whole["error_rate"] <= slo["error_rate"]
        out.append(
            {
                "model_id": model_id,
                "latency_percentile": slo["latency_percentile"],
                "latency_target_ms": slo["latency_ms"],
                "error_rate_target": slo["error_rate"],
                "latency_ms": overall_latency,
                "error_rate": float(whole["error_rate"]),
                "days": len(daily),
                "days_met": int(met.sum()),
                "compliance": float(met.sum()) / len(daily),
                "status": "met" if ok else "breached",
            }
        )
    report = pd.DataFrame(out).merge(catalogue[["model_id", "name"]], on="model_id", how="left")
    report["name"] = report["name"].fillna(report["model_id"])
    report = report.sort_values(["compliance", "model_id"])
    return report[SLO_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------- drift


def _drift_column(metric: str) -> ColumnElement[Any]:
    """The raw column a drift metric is measured on."""
    return {
        "input_tokens": E.c.input_tokens,
        "output_tokens": E.c.output_tokens,
        "latency_ms": E.c.latency_ms,
        "quality": E.c.quality,
    }[metric]


def _edge(value: Any) -> float:
    """A bin edge rounded to 12 significant digits, so DuckDB and PostgreSQL bin alike."""
    # Their interpolated percentiles may differ in the last bit; a value equal to an edge
    # would then fall in different bins.
    return float(f"{float(value):.12g}")


def _psi(reference: np.ndarray, current: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two binned count vectors (shares floored at epsilon)."""
    p = np.maximum(reference / reference.sum(), epsilon)
    q = np.maximum(current / current.sum(), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def _binned_ks(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest CDF gap at the bin edges: a lower bound of the exact two-sample KS statistic."""
    cdf_ref = np.cumsum(reference) / reference.sum()
    cdf_cur = np.cumsum(current) / current.sum()
    return float(np.max(np.abs(cdf_ref - cdf_cur)))


def _ks_pvalue(statistic: float, n_reference: int, n_current: int) -> float:
    """Two-sided KS p-value with the effective sample size n1*n2/(n1+n2)."""
    from scipy.stats import kstwo

    n_eff = max(1, round(n_reference * n_current / (n_reference + n_current)))
    return float(kstwo.sf(statistic, n_eff))


def _drift_level(psi: float, ks_pvalue: float) -> str:
    """none / moderate / significant by PSI; a significant KS test lifts none to moderate."""
    if math.isnan(psi):
        return "insufficient data"
    if psi >= PSI_SIGNIFICANT:
        return "significant"
    if psi >= PSI_MODERATE or ks_pvalue < KS_ALPHA:
        return "moderate"
    return "none"


def drift(
    reference: tuple[date, date],
    current: tuple[date, date],
    *,
    model: str | None = None,
    feature: str | None = None,
    metrics: Sequence[str] = DRIFT_METRICS,
    bins: int = 20,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Distribution drift of request metrics between a reference and a current window.

    Binning happens in SQL: one statement computes the reference window's quantile edges
    (``percentile_cont(k / bins)``, k = 1..bins-1) of every metric, a second counts rows per
    window and bin (bin = number of edges the value exceeds), for all metrics at once.
    Only successful requests (status 'ok') are compared; quality only where scored.

    Parameters
    ----------
    reference, current : tuple of date
        ``(start, end)`` local dates in ``tz``, end exclusive; the windows must not overlap.
    model, feature : str, optional
        Restrict to one model and/or one feature.
    metrics : sequence of str
        Any of input_tokens, output_tokens, latency_ms, quality.
    bins : int
        Number of reference-quantile bins (2..100).
    tz : str, optional
        Business time zone; default ``AUTERITY_TIMEZONE``.
    url : str, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, psi, ks_statistic, ks_pvalue, n_reference, n_current, level``.
        ``psi`` is the population stability index over the bins (shares floored at
        ``PSI_EPSILON``). ``ks_statistic`` is the binned Kolmogorov-Smirnov statistic, the
        largest gap of the two empirical CDFs at the bin edges: a lower bound of the exact
        two-sample statistic; ``ks_pvalue`` is from ``scipy.stats.kstwo`` with the
        effective size n1*n2/(n1+n2). ``level``: 'none' (PSI < 0.1), 'moderate'
        (0.1 <= PSI < 0.25, or PSI < 0.1 with a KS p-value < 0.01), 'significant'
        (PSI >= 0.25), or 'insufficient data' when a window has no values. The bin edges
        are in ``frame.attrs["edges"]``.

    Raises
    ------
    ConfigError
        Bad or overlapping windows, unknown metric or model, bins out of range.
    """
    windows = []
    for name, window in (("reference", reference), ("current", current)):
        if not isinstance(window, Sequence) or isinstance(window, str) or len(window) != 2:
            raise ConfigError(f"the {name} window must be a (start, end) pair of dates")
        windows.append(_period(window[0], window[1], tz, f"{name} window"))
    ref, cur = windows
    if ref.lo < cur.hi and cur.lo < ref.hi:
        raise ConfigError(
            f"the reference window {ref.start}..{ref.end} and the current window "
            f"{cur.start}..{cur.end} overlap"
        )
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in names if m not in DRIFT_METRICS]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(
            f"metrics must be distinct names among {', '.join(DRIFT_METRICS)} (got {names!r})"
        )
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 100:
        raise ConfigError(f"bins must be an integer between 2 and 100 (got {bins!r})")
    base = [E.c.status == "ok"]
    if model is not None:
        _model_list([model], _catalogue(url))
        base.append(E.c.model_id == model)
    if feature is not None:
        base.append(E.c.feature == feature)

    # 1. The reference window's quantile edges of every metric, in one statement.
    columns = []
    for metric in names:
        col = _drift_column(metric)
        columns.append(sa.func.count(col).label(f"n__{metric}"))
        points = [k / bins for k in range(1, bins)]
        columns += [
            dialect.percentile_of_many(col, k / bins, points).label(f"e{k}__{metric}")
            for k in range(1, bins)
        ]
    edge_row = fetch(sa.select(*columns).where(ref.where(), *base), url=url).iloc[0]
    edges = {
        m: np.array([_edge(edge_row[f"e{k}__{m}"]) for k in range(1, bins)])
        for m in names
        if int(edge_row[f"n__{m}"] or 0) > 0
    }

    # 2. Rows per window and bin, every metric in one statement.
    selects = []
    for metric in names:
        col = _drift_column(metric)
        bin_expr: ColumnElement[Any] = sa.literal(0)  # no reference values: count only
        if metric in edges:
            bin_expr = sa.case((col > float(edges[metric][0]), 1), else_=0)
            for edge in edges[metric][1:]:
                bin_expr = bin_expr + sa.case((col > float(edge), 1), else_=0)
        rows = (
            sa.select(
                sa.case((ref.where(), 0), else_=1).label("window"),
                bin_expr.label("bin"),
            )
            .where(
                *base,
                col.is_not(None),
                sa.or_(ref.where(), cur.where()),
            )
            .subquery()
        )
        selects.append(
            sa.select(
                sa.literal(metric, sa.String()).label("metric"),
                rows.c.window,
                rows.c.bin,
                sa.func.count().label("n"),
            ).group_by(rows.c.window, rows.c.bin)
        )
    counts = fetch(sa.union_all(*selects), url=url)

    out = []
    for metric in names:
        result = {"metric": metric, "psi": math.nan, "ks_statistic": math.nan}
        result["ks_pvalue"] = math.nan
        hist = np.zeros((2, bins))
        mine = counts[counts["metric"] == metric]
        for window, b, n in zip(mine["window"], mine["bin"], mine["n"], strict=True):
            hist[int(window), int(b)] += int(n)
        n_ref, n_cur = int(hist[0].sum()), int(hist[1].sum())
        if n_ref and n_cur:
            result["psi"] = _psi(hist[0], hist[1])
            result["ks_statistic"] = _binned_ks(hist[0], hist[1])
            result["ks_pvalue"] = _ks_pvalue(result["ks_statistic"], n_ref, n_cur)
        result.update(n_reference=n_ref, n_current=n_cur)
        result["level"] = _drift_level(result["psi"], result["ks_pvalue"])
        out.append(result)
    frame = pd.DataFrame(out, columns=DRIFT_COLUMNS)
    frame.attrs["edges"] = {m: e.tolist() for m, e in edges.items()}
    return frame


# --------------------------------------------------------------------------- savings


def savings(
    start: date,
    end: date,
    *,
    tolerance: float = 0.02,
    min_quality_n: int = 200,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Cheaper models that serve a feature about as well as the model currently serving it.

    For each feature and each model serving it in the period (the current model), a
    candidate is another model serving the same feature that is cheaper per request
    (effective cost, flat fees shared out by requests) and whose mean quality on the
    feature is within ``tolerance`` of the current model's: ``candidate_mean >=
    current_mean - tolerance`` and the upper end of the candidate's 95 % interval
    ``>= current_mean - tolerance``. Both need ``min_quality_n`` scored requests.

    Parameters
    ----------
    start, end : date
        Local dates in ``tz``; ``start`` inclusive, ``end`` exclusive.
    tolerance : float
        Quality loss accepted (absolute, on the 0..1 scale).
    min_quality_n : int
        Scored requests needed on the feature by both models.
    tz : str, optional
        Business time zone; default ``AUTERITY_TIMEZONE``.
    url : str, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        Columns ``feature, current_model, candidate_model, current_quality,
        candidate_quality, quality_gap, current_cost_per_request,
        candidate_cost_per_request, current_requests, est_monthly_savings, evidence``,
        largest saving first. ``est_monthly_savings`` = the current model's requests on the
        feature scaled to 30 days x the difference in cost per request; ``quality_gap`` =
        current - candidate quality.
    """
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not 0 <= tolerance < 1
    ):
        raise ConfigError(f"tolerance must be a number in [0, 1) (got {tolerance!r})")
    if isinstance(min_quality_n, bool) or not isinstance(min_quality_n, int) or min_quality_n < 2:
        raise ConfigError(f"min_quality_n must be an integer >= 2 (got {min_quality_n!r})")
    period = _period(start, end, tz)
    pricing = _pricing(period, url)

    def statement(pricing: _Pricing) -> sa.Select:
        rows = _raw_rows(period.where()).subquery()
        r = rows.c
        agg = (
            sa.select(
                r.feature,
                r.model_id,
                sa.func.count().label("requests"),
                sa.func.count(r.quality).label("quality_n"),
                dialect.to_float(sa.func.avg(r.quality)).label("quality_mean"),
                dialect.to_float(sa.func.stddev_samp(r.quality)).label("quality_std"),
                *pricing.parts(r),
            )
            .group_by(r.feature, r.model_id)
            .subquery()
        )
        return _priced_select(agg, pricing)

    frame = _fetch_priced(statement, pricing, url)
    if frame.empty:
        return pd.DataFrame(columns=SAVINGS_COLUMNS)
    for col in ("requests", "quality_n"):
        frame[col] = _int(frame[col])
    for col in ("cost", "quality_mean", "quality_std"):
        frame[col] = _num(frame[col])
    fees = pricing.flat_fees()
    model_requests = frame.groupby("model_id")["requests"].transform("sum")
    frame["cost"] += frame["model_id"].map(fees).fillna(0.0) * frame["requests"] / model_requests
    frame["cpr"] = frame["cost"] / frame["requests"]
    _, frame["ci_high"] = _quality_ci(
        frame["quality_mean"], frame["quality_std"], frame["quality_n"]
    )
    scored = frame[frame["feature"].notna() & (frame["quality_n"] >= min_quality_n)]
    pairs = scored.merge(scored, on="feature", suffixes=("_cur", "_cand"))
    floor = pairs["quality_mean_cur"] - tolerance
    pairs = pairs[
        (pairs["model_id_cur"] != pairs["model_id_cand"])
        & (pairs["cpr_cand"] < pairs["cpr_cur"])
        & (pairs["quality_mean_cand"] >= floor)
        & (pairs["ci_high_cand"] >= floor)
    ]
    months = 30.0 / period.days
    out = pd.DataFrame(
        {
            "feature": pairs["feature"],
            "current_model": pairs["model_id_cur"],
            "candidate_model": pairs["model_id_cand"],
            "current_quality": pairs["quality_mean_cur"],
            "candidate_quality": pairs["quality_mean_cand"],
            "quality_gap": pairs["quality_mean_cur"] - pairs["quality_mean_cand"],
            "current_cost_per_request": pairs["cpr_cur"],
            "candidate_cost_per_request": pairs["cpr_cand"],
            "current_requests": pairs["requests_cur"],
            "est_monthly_savings": pairs["requests_cur"]
            * months
            * (pairs["cpr_cur"] - pairs["cpr_cand"]),
            "quality_n_cur": pairs["quality_n_cur"],
            "quality_n_cand": pairs["quality_n_cand"],
        }
    )
    out["evidence"] = [
        f"On {row.feature}, {row.candidate_model} scores {row.candidate_quality:.3f} "
        f"(n={row.quality_n_cand:,}) vs {row.current_quality:.3f} (n={row.quality_n_cur:,}) "
        f"for {row.current_model} at ${row.candidate_cost_per_request:.5f} vs "
        f"${row.current_cost_per_request:.5f} per request; {row.current_requests:,} requests "
        f"in {period.days} days, about ${row.est_monthly_savings:,.0f} a month saved."
        for row in out.itertuples(index=False)
    ]
    out = out.sort_values(["est_monthly_savings", "feature"], ascending=[False, True])
    return out[SAVINGS_COLUMNS].reset_index(drop=True)


__all__ = [
    "DRIFT_METRICS",
    "LEADERBOARD_COLUMNS",
    "FlatFee",
    "cost_by_customer",
    "cost_by_feature",
    "daily_trend",
    "drift",
    "leaderboard",
    "load_slos",
    "savings",
    "slo_report",
]
