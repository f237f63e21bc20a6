"""Business analytics: KPI summary with deltas, cohorts, funnel, breakdowns, top movers.

Built on the metric layer (:mod:`auterity.metrics`); the few questions the metric layer
cannot express as one aggregate (cohort retention, churn) are single SQL statements here.
Every function takes local dates in the business time zone, ``start`` inclusive and
``end`` exclusive, and returns a small pandas DataFrame of aggregates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from itertools import pairwise

import numpy as np
import pandas as pd
import sqlalchemy as sa

from auterity import cache, dialect, metrics, schema
from auterity.config import get_settings, validate_timezone
from auterity.errors import ConfigError

KPI_METRICS = (
    "revenue",
    "orders",
    "average_order_value",
    "new_customers",
    "conversion_rate",
    "arpu",
)
"""The KPI summary's metrics, besides active customers and churn."""

_DELTA_COLUMNS = (
    "current",
    "previous",
    "previous_delta",
    "previous_delta_pct",
    "last_year",
    "last_year_delta",
    "last_year_delta_pct",
)
FUNNEL_STEPS = (
    ("visit", "visits"),
    ("signup", "signups"),
    ("activation", "activations"),
    ("purchase", "purchases"),
)


def _tz(tz: str | None) -> str:
    """The business time zone (validated)."""
    return validate_timezone(tz or get_settings().timezone)


def _good_news(delta: float, good: str) -> bool | None:
    """Whether a change is good news for a metric whose good direction is ``good``."""
    if delta != delta or delta == 0 or good == "neutral":  # NaN, no change, neutral
        return None
    return (delta > 0) == (good == "up")


# --------------------------------------------------------------------------- KPIs


def _churn_counts(bounds: Sequence[datetime], url: str | None) -> list[tuple[int, int]]:
    """``(base, churned)`` for each pair of consecutive windows between ``bounds``.

    ``bounds`` are ascending UTC instants ``b0 < b1 < ... < bn``; for ``i >= 1`` the result
    counts customers with a completed order in ``[b(i-1), b(i))`` and, of those, the ones
    without one in ``[b(i), b(i+1))``. One statement serves every pair.
    """
    orders = schema.orders
    flags = [
        sa.func.max(sa.case(((orders.c.ts >= lo) & (orders.c.ts < hi), 1), else_=0)).label(f"w{i}")
        for i, (lo, hi) in enumerate(pairwise(bounds))
    ]
    per_customer = (
        sa.select(orders.c.customer_id, *flags)
        .where(orders.c.status == "completed", orders.c.ts >= bounds[0], orders.c.ts < bounds[-1])
        .group_by(orders.c.customer_id)
        .subquery()
    )
    columns = []
    for i in range(len(bounds) - 2):
        before, now = per_customer.c[f"w{i}"], per_customer.c[f"w{i + 1}"]
        columns.append(sa.func.coalesce(sa.func.sum(before), 0).label(f"base{i}"))
        columns.append(sa.func.coalesce(sa.func.sum(before * (1 - now)), 0).label(f"churned{i}"))
    row = cache.fetch(sa.select(*columns), url=url).iloc[0]
    return [(int(row[f"base{i}"]), int(row[f"churned{i}"])) for i in range(len(bounds) - 2)]


def churn_rate(
    start: date, end: date, *, tz: str | None = None, url: str | None = None
) -> dict[str, float]:
    """Customer churn: of the customers who ordered in the equally long range before
    ``start``, the share who placed no completed order in ``[start, end)``.

    Returns
    -------
    dict
        ``{"base": customers active before, "churned": of those, inactive now,
        "churn_rate": churned / base (NaN if base is 0)}``.
    """
    tz = _tz(tz)
    previous = start - (end - start)
    lo, mid = dialect.utc_bounds(previous, start, tz)
    _, hi = dialect.utc_bounds(start, end, tz)
    ((base, churned),) = _churn_counts([lo, mid, hi], url)
    return {
        "base": base,
        "churned": churned,
        "churn_rate": churned / base if base else float("nan"),
    }


def kpi_summary(
    start: date,
    end: date,
    *,
    where: Mapping[str, str | Sequence[str]] | None = None,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """The headline KPIs of a period with deltas against the previous period and last year.

    Active customers appear three ways: DAU (mean daily active customers over the period),
    WAU and MAU (distinct active customers in the last 7 and 30 days of the period).

    Parameters
    ----------
    start, end : date
        Local dates, ``end`` exclusive.
    where : mapping, optional
        Dimension filters (region, country, segment, plan, channel, ...). A KPI that
        cannot be filtered that way (e.g. conversion by region: visits are anonymous;
        active customers by sales channel) is returned without values, not unfiltered.
    tz, url : optional
        Business time zone and warehouse URL.

    Returns
    -------
    pandas.DataFrame
        One row per KPI: ``metric, label, unit, good, current, previous, previous_delta,
        previous_delta_pct, last_year, last_year_delta, last_year_delta_pct, good_news``.
    """
    tz = _tz(tz)
    catalog = metrics.load_catalog()
    # A KPI that cannot be filtered the way asked (e.g. visits are anonymous, so conversion
    # has no region) is shown empty rather than unfiltered.
    usable = [m for m in KPI_METRICS if catalog.filterable(m, where)]
    table = metrics.compare(
        usable, start=start, end=end, where=where, tz=tz, catalog=catalog, url=url
    ).set_index("metric")
    rows = []
    for name in KPI_METRICS:
        if name in table.index:
            rows.append({"metric": name, **table.loc[name].to_dict()})
        else:
            metric = catalog.metric(name)
            rows.append(_empty_row(name, metric.label, metric.unit, metric.good))
    active_ok = catalog.filterable("active_customers", where)
    rows.insert(
        3,
        _dau_row(start, end, where, tz, catalog, url)
        if active_ok
        else _empty_row("dau", "DAU (daily average)", "count", "up"),
    )
    for label, days in (("wau", 7), ("mau", 30)):
        if not active_ok:  # e.g. a sales channel: using the product has none
            rows.insert(
                4 if label == "wau" else 5,
                _empty_row(label, f"{label.upper()} (last {days} days)", "count", "up"),
            )
            continue
        last = metrics.compare(
            ["active_customers"],
            start=max(start, end - timedelta(days=days)),
            end=end,
            where=where,
            tz=tz,
            catalog=catalog,
            url=url,
        )
        row = last.iloc[0].to_dict()
        row.update(metric=label, label=f"{label.upper()} (last {days} days)")
        rows.insert(4 if label == "wau" else 5, row)
    length = end - start
    b0, b1 = dialect.utc_bounds(start - 2 * length, start - length, tz)
    _, b2 = dialect.utc_bounds(start - length, start, tz)
    _, b3 = dialect.utc_bounds(start, end, tz)
    (base_before, churned_before), (base_now, churned_now) = _churn_counts([b0, b1, b2, b3], url)
    churn_now = churned_now / base_now if base_now else float("nan")
    churn_before = churned_before / base_before if base_before else float("nan")
    rows.append(
        {
            "metric": "churn_rate",
            "label": "Churn",
            "unit": "percent",
            "good": "down",
            "current": churn_now,
            "previous": churn_before,
            "previous_delta": churn_now - churn_before,
            "previous_delta_pct": (churn_now - churn_before) / churn_before
            if churn_before
            else float("nan"),
            "last_year": float("nan"),
            "last_year_delta": float("nan"),
            "last_year_delta_pct": float("nan"),
        }
    )
    if where:  # churn has no breakdown: say so rather than show an unfiltered number
        rows[-1].update(
            current=float("nan"),
            previous=float("nan"),
            previous_delta=float("nan"),
            previous_delta_pct=float("nan"),
        )
    out = pd.DataFrame(rows)
    out["good_news"] = [
        _good_news(d, g) for d, g in zip(out["previous_delta"], out["good"], strict=True)
    ]
    return out


def _empty_row(metric: str, label: str, unit: str, good: str) -> dict:
    """A KPI row without values (the KPI cannot be filtered the way asked)."""
    return {
        "metric": metric,
        "label": label,
        "unit": unit,
        "good": good,
        **dict.fromkeys(_DELTA_COLUMNS, float("nan")),
    }


SPARKLINE_METRICS = {
    "revenue": "revenue",
    "orders": "orders",
    "average_order_value": "average_order_value",
    "dau": "active_customers",
    "new_customers": "new_customers",
    "conversion_rate": "conversion_rate",
    "arpu": "arpu",
}
"""KPI of :func:`kpi_summary` -> the metric whose daily values draw its sparkline (WAU, MAU
and churn are period figures with no meaningful daily series)."""


def kpi_daily(
    start: date,
    end: date,
    *,
    where: Mapping[str, str | Sequence[str]] | None = None,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Daily values of the KPIs that have a daily series, for sparklines; one statement.

    Parameters
    ----------
    start, end : date
        Local dates, ``end`` exclusive.
    where : mapping, optional
        Dimension filters; KPIs that cannot be filtered that way are left out (as
        :func:`kpi_summary` shows them empty).
    tz, url : optional
        Business time zone and warehouse URL.

    Returns
    -------
    pandas.DataFrame
        Index ``period`` (every local day), one column per KPI name of
        :data:`SPARKLINE_METRICS` that applies (``dau`` is daily active customers).
    """
    catalog = metrics.load_catalog()
    wanted = {
        kpi: metric
        for kpi, metric in SPARKLINE_METRICS.items()
        if catalog.filterable(metric, where)
    }
    if not wanted:
        return pd.DataFrame(index=pd.DatetimeIndex([], name="period"))
    daily = metrics.query(
        sorted(set(wanted.values())),
        start=start,
        end=end,
        grain="day",
        where=where,
        tz=_tz(tz),
        catalog=catalog,
        url=url,
    )
    out = pd.DataFrame({kpi: daily[metric].astype(float) for kpi, metric in wanted.items()})
    out.index = pd.DatetimeIndex(pd.to_datetime(daily["period"]), name="period")
    return out


def _dau_row(
    start: date,
    end: date,
    where: Mapping | None,
    tz: str,
    catalog: metrics.Catalog,
    url: str | None,
) -> dict:
    """DAU as the mean of daily active customers, now, in the period before, a year ago.

    One statement: daily active customers over the three windows.
    """
    spans = metrics.comparison_windows(start, end)
    # per day, so the windows may overlap (periods over half a year overlap last year's)
    daily = metrics.query_windows(
        ["active_customers"], spans, grain="day", where=where, tz=tz, catalog=catalog, url=url
    )
    days = pd.to_datetime(daily["period"]).dt.date
    zero_filled = catalog.metric("active_customers").additive
    values = {}
    for label, (a, b) in spans.items():
        inside = daily.loc[(days >= a) & (days < b), "active_customers"].astype(float)
        if zero_filled:  # a day without requests had no active customers
            values[label] = float(inside.sum()) / (b - a).days
        else:
            values[label] = float(inside.mean()) if len(inside) else float("nan")
    current = values["current"]
    row = {
        "metric": "dau",
        "label": "DAU (daily average)",
        "unit": "count",
        "good": "up",
        "current": current,
    }
    for window in ("previous", "last_year"):
        base = values[window]
        row[window] = base
        row[f"{window}_delta"] = current - base
        row[f"{window}_delta_pct"] = (current - base) / base if base else float("nan")
    return row


# --------------------------------------------------------------------------- cohorts


def cohort_retention(
    start: date,
    end: date,
    *,
    max_age: int = 12,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Monthly signup cohorts and the share of each still ordering N months later.

    A customer belongs to the cohort of the (local) month they signed up in, for signups in
    ``[start, end)``; they are retained in month N if they placed a completed order in the
    N-th calendar month after their signup month (N = 0 is the signup month). Orders up
    to ``end`` are counted. One SQL statement.

    Returns
    -------
    pandas.DataFrame
        Index ``cohort`` (month start), column ``size`` (customers who signed up), then
        columns ``0..max_age`` with the retained share (NaN for months not yet reached).
    """
    tz = _tz(tz)
    lo, hi = dialect.utc_bounds(start, end, tz)
    c, o = schema.customers, schema.orders
    cohort = dialect.period_start(c.c.signup_ts, "month", tz)
    order_month = dialect.period_start(o.c.ts, "month", tz)

    def months(expr: sa.ColumnElement) -> sa.ColumnElement:
        return sa.extract("year", expr) * 12 + sa.extract("month", expr)

    age = sa.cast(months(order_month) - months(cohort), sa.Integer)
    active = (
        sa.select(
            cohort.label("cohort"),
            age.label("age"),
            sa.func.count(sa.distinct(o.c.customer_id)).label("customers"),
        )
        .select_from(c.join(o, o.c.customer_id == c.c.customer_id))
        .where(c.c.signup_ts >= lo, c.c.signup_ts < hi, o.c.status == "completed", o.c.ts < hi)
        .group_by(sa.literal_column("1"), sa.literal_column("2"))
    )
    sizes = (
        sa.select(
            cohort.label("cohort"),
            sa.cast(sa.literal(-1), sa.Integer).label("age"),
            sa.func.count().label("customers"),
        )
        .where(c.c.signup_ts >= lo, c.c.signup_ts < hi)
        .group_by(sa.literal_column("1"))
    )
    frame = cache.fetch(sa.union_all(active, sizes), url=url)
    if frame.empty:
        return pd.DataFrame(columns=["size", *range(max_age + 1)])
    frame["cohort"] = pd.to_datetime(frame["cohort"])
    size = frame[frame["age"] == -1].set_index("cohort")["customers"].astype(int).sort_index()
    counts = frame[(frame["age"] >= 0) & (frame["age"] <= max_age)].pivot_table(
        index="cohort", columns="age", values="customers", aggfunc="sum"
    )
    counts = counts.reindex(index=size.index, columns=range(max_age + 1))
    share = counts.div(size, axis=0)
    # Months a cohort has not reached yet are unknown, not zero.
    last_month = pd.Timestamp(end - timedelta(days=1)).to_period("M")
    for cohort_start in share.index:
        reached = (last_month - pd.Timestamp(cohort_start).to_period("M")).n
        share.loc[cohort_start, [a for a in share.columns if a > reached]] = np.nan
        share.loc[cohort_start, [a for a in share.columns if a <= reached]] = share.loc[
            cohort_start, [a for a in share.columns if a <= reached]
        ].fillna(0.0)
    share.insert(0, "size", size)
    share.index.name = "cohort"
    return share


# --------------------------------------------------------------------------- funnel


def funnel(
    start: date,
    end: date,
    *,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """The visit -> signup -> activation -> purchase funnel of a period (one SQL statement).

    Returns
    -------
    pandas.DataFrame
        One row per step: ``step, count, conversion_from_previous, conversion_from_start,
        drop_off`` (the share lost since the previous step).
    """
    names = [metric for _, metric in FUNNEL_STEPS]
    totals = metrics.query(names, start=start, end=end, grain=None, tz=tz, url=url).iloc[0]
    rows, previous, first = [], None, float(totals[names[0]])
    for step, metric in FUNNEL_STEPS:
        count = float(totals[metric])
        conversion = count / previous if previous else float("nan")
        rows.append(
            {
                "step": step,
                "count": int(count),
                "conversion_from_previous": conversion if previous is not None else 1.0,
                "conversion_from_start": count / first if first else float("nan"),
                "drop_off": 1 - conversion if previous else float("nan"),
            }
        )
        previous = count
    rows[0]["drop_off"] = 0.0
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- breakdowns


def breakdown(
    metric: str,
    by: str,
    start: date,
    end: date,
    *,
    where: Mapping[str, str | Sequence[str]] | None = None,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """A metric broken down by one dimension, with each value's share of the total.

    Returns
    -------
    pandas.DataFrame
        ``<by>, <metric>, share`` sorted by the metric, largest first. ``share`` is only
        given for additive metrics (sums and counts).
    """
    frame = metrics.query(
        [metric], start=start, end=end, grain=None, by=[by], where=where, tz=tz, url=url
    ).drop(columns="period")
    definition = metrics.load_catalog().metric(metric)
    total = frame[metric].sum()
    additive = definition.additive and not definition.derived
    frame["share"] = frame[metric] / total if additive and total else float("nan")
    return frame.sort_values(metric, ascending=False).reset_index(drop=True)


def top_movers(
    metric: str,
    by: str,
    current: tuple[date, date],
    previous: tuple[date, date] | None = None,
    *,
    where: Mapping[str, str | Sequence[str]] | None = None,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Which values of a dimension explain a metric's change between two periods.

    For sums and counts, each value's contribution is its own change, and contributions
    add up to the total change. For ratios (e.g. conversion rate, average order value) the
    change is split into a *rate* effect (the value's ratio moved) and a *mix* effect (its
    share of the denominator moved); the two add up to the total change too.

    ``previous`` defaults to the range of equal length just before ``current``.

    Returns
    -------
    pandas.DataFrame
        ``<by>, previous, current, delta, contribution, share_of_change`` (plus
        ``rate_effect`` and ``mix_effect`` for ratios), largest absolute contribution first.
    """
    if previous is None:
        previous = (current[0] - (current[1] - current[0]), current[0])
    catalog = metrics.load_catalog()
    definition = catalog.metric(metric)
    if definition.derived and definition.aggregate != "ratio":
        raise ConfigError(
            f"top movers need a sum, count or ratio metric; {metric!r} is a {definition.aggregate}"
        )
    if not definition.derived and not definition.additive:
        raise ConfigError(
            f"top movers need a sum, count or ratio metric; {metric!r} is a "
            f"{definition.aggregate} (its change does not split across {by})"
        )
    parts = list(definition.operands) if definition.derived else [metric]
    for part in parts:
        if catalog.metric(part).derived:
            raise ConfigError(f"top movers need {metric!r}'s parts to be sums or counts")
    names = list(dict.fromkeys([*parts, metric]))
    frame = metrics.query_windows(
        names,
        {"current": current, "previous": previous},
        by=[by],
        where=where,
        tz=tz,
        catalog=catalog,
        url=url,
    )
    wide = frame.pivot_table(
        index=by, columns="period", values=names, aggfunc="first", dropna=False
    )
    out = pd.DataFrame(index=wide.index)
    for window in ("previous", "current"):
        column = (metric, window)
        out[window] = wide.get(column, np.nan)
        if definition.derived:
            for part in parts:
                column = (part, window)
                out[f"{part}_{window}"] = wide.get(column, np.nan)
    if definition.derived:
        out = out.fillna({f"{p}_{w}": 0.0 for p in parts for w in ("previous", "current")})
    if not definition.derived:
        out = out.fillna({"previous": 0.0, "current": 0.0})
        out["delta"] = out["current"] - out["previous"]
        out["contribution"] = out["delta"]
    else:
        num, den = parts
        totals = {
            w: (out[f"{num}_{w}"].sum(), out[f"{den}_{w}"].sum()) for w in ("previous", "current")
        }
        ratio_prev = totals["previous"][0] / totals["previous"][1] if totals["previous"][1] else 0
        weight = {
            w: out[f"{den}_{w}"] / totals[w][1] if totals[w][1] else 0.0
            for w in ("previous", "current")
        }
        rate = {
            w: (out[f"{num}_{w}"] / out[f"{den}_{w}"]).where(out[f"{den}_{w}"] > 0)
            for w in ("previous", "current")
        }
        out["delta"] = out["current"] - out["previous"]
        out["rate_effect"] = (weight["current"] * (rate["current"] - rate["previous"])).fillna(0)
        out["mix_effect"] = (weight["current"] - weight["previous"]) * (
            rate["previous"].fillna(ratio_prev) - ratio_prev
        )
        # A value that only exists now contributes its own rate at its new weight.
        new = rate["previous"].isna() & rate["current"].notna()
        out.loc[new, "mix_effect"] = (weight["current"] * (rate["current"] - ratio_prev))[new]
        out["contribution"] = out["rate_effect"] + out["mix_effect"]
    total_change = out["contribution"].sum()
    out["share_of_change"] = out["contribution"] / total_change if total_change else np.nan
    out = out.drop(
        columns=[f"{p}_{w}" for p in parts for w in ("previous", "current")]
        if definition.derived
        else []
    )
    out = out.reindex(out["contribution"].abs().sort_values(ascending=False).index)
    return out.reset_index()
