"""Business analytics: KPI summary with deltas, cohorts, funnel, breakdowns, top movers.

Built on the metric layer (:mod:`auterity.metrics`); the few questions the metric layer
cannot express as one aggregate (cohort retention, churn) are single SQL statements here.
Every function takes local dates in the business time zone, ``start`` inclusive and
``end`` exclusive, and returns a small pandas DataFrame of aggregates. Point-in-time KPIs
(WAU, MAU, churn) keep one definition whatever a report's length: they are taken as of
its end (:data:`ACTIVE_WINDOWS`, :data:`CHURN_DAYS`, :func:`kpi_anchors`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from auterity import metrics
from auterity._time import business_tz
from auterity.errors import ConfigError
from auterity.warehouse import cache, dialect, schema

KPI_METRICS = (
    "revenue",
    "orders",
    "average_order_value",
    "new_customers",
    "conversion_rate",
    "arpu",
)
"""The KPI summary's metrics, besides active customers and churn."""
ACTIVE_WINDOWS = {"wau": 7, "mau": 30}
"""WAU and MAU: distinct active customers in this many days ending at the period end,
whatever the length of the report's period (data before the period is read)."""
CHURN_DAYS = 30
"""Churn window: of the customers with a completed order in the ``CHURN_DAYS`` days before
the last ``CHURN_DAYS`` days up to the as-of date, the share without one in those last
days. The KPI is taken as of the period end, whatever the period's length."""
KPI_LABELS = {
    "dau": "DAU (daily average)",
    "wau": f"WAU (last {ACTIVE_WINDOWS['wau']} days)",
    "mau": f"MAU (last {ACTIVE_WINDOWS['mau']} days)",
    "churn_rate": f"Churn ({CHURN_DAYS}-day)",
}
"""Labels of the KPIs :func:`kpi_summary` computes itself (the others come from the catalog);
each says the window its definition uses."""

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


def _good_news(delta: float, good: str) -> bool | None:
    """Whether a change is good news for a metric whose good direction is ``good``."""
    if delta != delta or delta == 0 or good == "neutral":  # NaN, no change, neutral
        return None
    return (delta > 0) == (good == "up")


# --------------------------------------------------------------------------- KPIs


def _churn_counts(
    windows: Sequence[tuple[datetime, datetime, datetime]], url: str | None
) -> list[tuple[int, int]]:
    """``(base, churned)`` for each ``(lo, mid, hi)`` of UTC instants, in one statement.

    ``base`` counts customers with a completed order in ``[lo, mid)``, ``churned`` those of
    them without one in ``[mid, hi)``. The windows of different triples may overlap.
    """
    orders = schema.orders

    def active(lo: datetime, hi: datetime) -> sa.ColumnElement[int]:
        return sa.func.max(sa.case(((orders.c.ts >= lo) & (orders.c.ts < hi), 1), else_=0))

    flags = []
    for i, (lo, mid, hi) in enumerate(windows):
        flags += [active(lo, mid).label(f"before{i}"), active(mid, hi).label(f"after{i}")]
    per_customer = (
        sa.select(orders.c.customer_id, *flags)
        .where(
            orders.c.status == "completed",
            sa.or_(*((orders.c.ts >= lo) & (orders.c.ts < hi) for lo, _, hi in windows)),
        )
        .group_by(orders.c.customer_id)
        .subquery()
    )
    columns = []
    for i in range(len(windows)):
        before, after = per_customer.c[f"before{i}"], per_customer.c[f"after{i}"]
        columns.append(sa.func.coalesce(sa.func.sum(before), 0).label(f"base{i}"))
        columns.append(sa.func.coalesce(sa.func.sum(before * (1 - after)), 0).label(f"churned{i}"))
    row = cache.fetch(sa.select(*columns), url=url).iloc[0]
    return [(int(row[f"base{i}"]), int(row[f"churned{i}"])) for i in range(len(windows))]


def _churn_windows(as_of: date, days: int, tz: str) -> tuple[datetime, datetime, datetime]:
    """UTC bounds of the two ``days``-long windows before the local date ``as_of``."""
    lo, mid = dialect.utc_bounds(as_of - timedelta(days=2 * days), as_of - timedelta(days=days), tz)
    _, hi = dialect.utc_bounds(as_of - timedelta(days=days), as_of, tz)
    return lo, mid, hi


def churn_rate(
    start: date, end: date, *, tz: str | None = None, url: str | None = None
) -> dict[str, float]:
    """Customer churn between two explicit windows: of the customers who ordered in the
    equally long range before ``start``, the share who placed no completed order in
    ``[start, end)``. (The KPI is :func:`churn_as_of`, with a fixed window.)

    Returns
    -------
    dict
        ``{"base": customers active before, "churned": of those, inactive now,
        "churn_rate": churned / base (NaN if base is 0)}``.
    """
    tz = business_tz(tz)
    previous = start - (end - start)
    lo, mid = dialect.utc_bounds(previous, start, tz)
    _, hi = dialect.utc_bounds(start, end, tz)
    ((base, churned),) = _churn_counts([(lo, mid, hi)], url)
    return _churn_result(base, churned)


def churn_as_of(
    as_of: date,
    *,
    days: int = CHURN_DAYS,
    tz: str | None = None,
    url: str | None = None,
) -> dict[str, float]:
    """The churn KPI as of a date: of the customers with a completed order in the ``days``
    days before the last ``days`` days up to ``as_of`` (exclusive), the share with none in
    those last ``days`` days.

    Parameters
    ----------
    as_of : date
        Local date the KPI is taken at (exclusive: a period's end).
    days : int
        Window length (default :data:`CHURN_DAYS`).
    tz, url : optional
        Business time zone and warehouse URL.

    Returns
    -------
    dict
        ``{"base", "churned", "churn_rate"}`` as :func:`churn_rate`.

    Raises
    ------
    ConfigError
        ``days`` not a positive integer.
    """
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigError(f"days must be a positive integer (got {days!r})")
    ((base, churned),) = _churn_counts([_churn_windows(as_of, days, business_tz(tz))], url)
    return _churn_result(base, churned)


def _churn_result(base: int, churned: int) -> dict[str, float]:
    """The churn dict of :func:`churn_rate` and :func:`churn_as_of` (NaN without a base)."""
    return {"base": base, "churned": churned, "churn_rate": churned / base if base else math.nan}


def kpi_anchors(start: date, end: date) -> dict[str, date]:
    """The dates point-in-time KPIs (WAU, MAU, churn) are taken at, for each comparison.

    The period's end, the previous period's end (``start``) and last year's end, so each
    comparison shows the same KPI, same definition, as another report would have shown it.
    """
    return {window: span[1] for window, span in metrics.comparison_windows(start, end).items()}


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
    WAU and MAU (distinct active customers in the 7 and 30 days ending at the period end,
    :data:`ACTIVE_WINDOWS`, reading data before the period when it is shorter). Churn is
    :func:`churn_as_of` the period end (:data:`CHURN_DAYS`). These keep their definition
    whatever the period's length: their ``previous`` and ``last_year`` values are the same
    KPIs as of the previous period's end and last year's end (:func:`kpi_anchors`).

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
    tz = business_tz(tz)
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
        else _empty_row("dau", KPI_LABELS["dau"], "count", "up"),
    )
    anchors = kpi_anchors(start, end)
    if active_ok:
        rows[4:4] = _active_rows(anchors, where, tz, catalog, url)
    else:  # e.g. a sales channel: using the product has none
        rows[4:4] = [_empty_row(kpi, KPI_LABELS[kpi], "count", "up") for kpi in ACTIVE_WINDOWS]
    if where:  # churn has no breakdown: say so rather than show an unfiltered number
        rows.append(_empty_row("churn_rate", KPI_LABELS["churn_rate"], "percent", "down"))
    else:
        counts = _churn_counts([_churn_windows(a, CHURN_DAYS, tz) for a in anchors.values()], url)
        values = {
            window: _churn_result(base, churned)["churn_rate"]
            for window, (base, churned) in zip(anchors, counts, strict=True)
        }
        rows.append(
            _anchored_row("churn_rate", KPI_LABELS["churn_rate"], "percent", "down", values)
        )
    out = pd.DataFrame(rows)
    out["good_news"] = [
        _good_news(d, g) for d, g in zip(out["previous_delta"], out["good"], strict=True)
    ]
    return out


def _anchored_row(
    metric: str, label: str, unit: str, good: str, values: Mapping[str, float]
) -> dict:
    """A KPI row from its values at the anchors of :func:`kpi_anchors`, with deltas."""
    current = values["current"]
    row = {"metric": metric, "label": label, "unit": unit, "good": good, "current": current}
    for window in ("previous", "last_year"):
        base = values[window]
        row[window] = base
        row[f"{window}_delta"] = current - base
        row[f"{window}_delta_pct"] = (current - base) / abs(base) if base else float("nan")
    return row


def _active_rows(
    anchors: Mapping[str, date],
    where: Mapping | None,
    tz: str,
    catalog: metrics.Catalog,
    url: str | None,
) -> list[dict]:
    """WAU and MAU rows: distinct active customers in the days before each anchor.

    One statement for the six windows (they overlap for periods shorter than 30 days).
    """
    windows = {
        f"{kpi}:{which}": (anchor - timedelta(days=days), anchor)
        for kpi, days in ACTIVE_WINDOWS.items()
        for which, anchor in anchors.items()
    }
    frame = metrics.query_windows(
        ["active_customers"], windows, where=where, tz=tz, catalog=catalog, url=url
    )
    counts = dict(zip(frame["period"], frame["active_customers"], strict=True))
    return [
        _anchored_row(
            kpi,
            KPI_LABELS[kpi],
            "count",
            "up",
            {which: float(counts.get(f"{kpi}:{which}") or 0) for which in anchors},
        )
        for kpi in ACTIVE_WINDOWS
    ]


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
        tz=business_tz(tz),
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
    return _anchored_row("dau", KPI_LABELS["dau"], "count", "up", values)


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
    tz = business_tz(tz)
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


_TOP_CUSTOMER_FILTERS = {
    "region": ("customers", "region"),
    "segment": ("customers", "segment"),
    "country": ("customers", "country"),
    "plan": ("customers", "plan"),
    "channel": ("orders", "channel"),
}


def top_customers(
    start: date,
    end: date,
    *,
    n: int = 10,
    where: Mapping[str, str | Sequence[str]] | None = None,
    tz: str | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """The customers with the most revenue in ``[start, end)``, who they are included.

    Name and email are personal data: a reader whose role may not see them gets the
    database's keyed pseudonyms instead (the row scope of
    :mod:`auterity.warehouse.scope`), with the same ranking and numbers.

    Parameters
    ----------
    start, end : date
        Local dates in the business time zone; ``end`` exclusive.
    n : int
        How many customers (1..1000).
    where : mapping, optional
        ``region``, ``segment``, ``country``, ``plan`` (the customer's) or ``channel``
        (the order's) -> value or values.

    Returns
    -------
    pandas.DataFrame
        ``customer_id, name, email, region, segment, revenue, orders``, most revenue first.
    """
    if not 1 <= n <= 1000:
        raise ConfigError(f"n must be between 1 and 1000, not {n}")
    tz = business_tz(tz)
    lo, hi = dialect.utc_bounds(start, end, tz)
    c, o = schema.customers, schema.orders
    conditions = [o.c.ts >= lo, o.c.ts < hi, o.c.status == "completed"]
    for name, value in (where or {}).items():
        if name not in _TOP_CUSTOMER_FILTERS:
            raise ConfigError(
                f"top customers filter by {', '.join(_TOP_CUSTOMER_FILTERS)}, not {name!r}"
            )
        table, column = _TOP_CUSTOMER_FILTERS[name]
        values = [value] if isinstance(value, str) else list(value)
        conditions.append((c if table == "customers" else o).c[column].in_(values))
    revenue = dialect.to_float(sa.func.sum(o.c.amount))
    stmt = (
        sa.select(
            c.c.customer_id,
            c.c.name,
            c.c.email,
            c.c.region,
            c.c.segment,
            revenue.label("revenue"),
            sa.func.count().label("orders"),
        )
        .select_from(o.join(c, o.c.customer_id == c.c.customer_id))
        .where(*conditions)
        .group_by(c.c.customer_id, c.c.name, c.c.email, c.c.region, c.c.segment)
        .order_by(revenue.desc(), c.c.customer_id)
        .limit(n)
    )
    return cache.fetch(stmt, url=url)
