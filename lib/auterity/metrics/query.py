"""Questions to the metric layer: one SQL statement per question, comparisons of periods.

:func:`query` turns a question (metrics, date range, grain, breakdown, filters) into one
SQLAlchemy Core statement: one aggregate sub-select per source table, combined with
``UNION ALL`` and regrouped, with ratios and differences computed on top. Only aggregates
reach pandas; periods without data are filled with zeros (counts, sums) or left empty
(averages, percentiles, ratios) so charts do not lie. :func:`compare` answers "how did
this period do against the previous one and the same period last year".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from auterity._time import business_tz
from auterity.errors import ConfigError
from auterity.metrics.catalog import Catalog, Filter, Metric, load_catalog
from auterity.warehouse import cache, custom, dialect


def _table(name: str) -> sa.Table:
    """A warehouse table the catalogue names (contract or declared in the sources file)."""
    table = custom.find_table(name)
    if table is None:  # the catalogue was validated against another sources file
        raise ConfigError(f"{name!r} is not a warehouse table (any more)")
    return table


def _filter_clause(table: sa.Table, flt: Filter) -> ColumnElement[bool]:
    """SQL for one metric filter."""
    col = table.c[flt.column]
    ops = {
        "=": lambda: col == flt.value,
        "!=": lambda: col != flt.value,
        "<": lambda: col < flt.value,
        "<=": lambda: col <= flt.value,
        ">": lambda: col > flt.value,
        ">=": lambda: col >= flt.value,
        "in": lambda: col.in_(flt.value),
        "not_in": lambda: col.not_in(flt.value),
        "is_null": lambda: col.is_(None),
        "not_null": lambda: col.is_not(None),
    }
    return ops[flt.op]()


def _aggregate(
    metric: Metric, table: sa.Table, siblings: Sequence[Metric] = ()
) -> ColumnElement[Any]:
    """The aggregate expression of a base metric, its filters applied inside (CASE).

    Percentiles of the same column and filters (``siblings``) share one sort."""
    condition = (
        sa.and_(*(_filter_clause(table, f) for f in metric.filters)) if metric.filters else None
    )

    def only(value: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.case((condition, value)) if condition is not None else value

    if metric.aggregate == "count":
        target = table.c[metric.column] if metric.column else sa.literal(1)
        return sa.func.count(only(target))
    assert metric.column is not None  # the catalog requires a column unless counting rows
    column = only(table.c[metric.column])
    if metric.aggregate == "count_distinct":
        return sa.func.count(sa.distinct(column))
    if metric.aggregate == "percentile":
        together = [
            (m.percentile or 0) / 100
            for m in siblings
            if m.aggregate == "percentile"
            and (m.column, m.filters) == (metric.column, metric.filters)
        ]
        p = (metric.percentile or 0) / 100
        if len(set(together) | {p}) == 1:
            return dialect.percentile(column, p)
        return dialect.percentile_of_many(column, p, together)
    func: dict[str, Callable[[ColumnElement[Any]], ColumnElement[Any]]] = {
        "sum": sa.func.sum,
        "avg": sa.func.avg,
        "min": sa.func.min,
        "max": sa.func.max,
    }
    return dialect.to_float(func[metric.aggregate](column))


@dataclass(frozen=True)
class _Window:
    """A labelled time window: [start, end) in local dates."""

    label: str
    start: date
    end: date


def _table_select(
    catalog: Catalog,
    table_name: str,
    bases: list[Metric],
    windows: list[_Window],
    grain: str | None,
    by: Sequence[str],
    where: Mapping[str, Sequence[str]],
    tz: str,
    all_bases: list[Metric],
) -> sa.Select:
    """One table's aggregate sub-select, with NULL columns for other tables' metrics."""
    table = _table(table_name)
    time_column = bases[0].time_column
    assert time_column is not None  # the catalog requires one on every base metric
    time_col = table.c[time_column]
    source: sa.FromClause = table
    joined: dict[str, sa.FromClause] = {}

    def dim_column(name: str) -> ColumnElement[Any]:
        dim = catalog.dimensions[name]
        if dim.table == table_name:
            return table.c[dim.column]
        other = joined.get(dim.table)
        if other is None:
            nonlocal source
            other = _table(dim.table).alias(f"dim_{dim.table}")
            key = catalog.joins[dim.table]
            source = source.outerjoin(other, table.c[key] == other.c[key])
            joined[dim.table] = other
        return other.c[dim.column]

    bounds = [(w.label, *dialect.utc_bounds(w.start, w.end, tz)) for w in windows]
    in_window = sa.or_(*((time_col >= lo) & (time_col < hi) for _, lo, hi in bounds))
    if grain is not None:
        label: ColumnElement[Any] = dialect.period_start(time_col, grain, tz)
    elif len(bounds) == 1:
        label = sa.literal(bounds[0][0])
    else:
        label = sa.case(*(((time_col >= lo) & (time_col < hi), name) for name, lo, hi in bounds))
    columns: list[ColumnElement[Any]] = [label.label("period")]
    columns += [dim_column(d).label(d) for d in by]
    conditions = [in_window]
    for name, values in where.items():
        conditions.append(dim_column(name).in_(list(values)))
    own = {m.name for m in bases}
    for metric in all_bases:
        if metric.name in own:
            columns.append(_aggregate(metric, table, bases).label(metric.name))
        else:
            kind: sa.types.TypeEngine[Any] = (
                sa.BigInteger() if metric.aggregate in ("count", "count_distinct") else sa.Double()
            )
            columns.append(sa.cast(sa.null(), kind).label(metric.name))
    group: list[ColumnElement[Any]] = [sa.literal_column(str(i + 1)) for i in range(1 + len(by))]
    return sa.select(*columns).select_from(source).where(*conditions).group_by(*group)


def _expression(catalog: Catalog, name: str, row: sa.Subquery) -> ColumnElement[Any]:
    """A metric's value over the regrouped rows (derived metrics computed here)."""
    metric = catalog.metric(name)
    if not metric.derived:
        return row.c[name]
    left, right = (_expression(catalog, op, row) for op in metric.operands)
    if metric.aggregate == "ratio":
        return dialect.safe_ratio(left, right)
    return dialect.to_float(left) - dialect.to_float(right)


def build_statement(
    metrics: Sequence[str],
    windows: list[_Window],
    *,
    grain: str | None,
    by: Sequence[str] = (),
    where: Mapping[str, Sequence[str]] | None = None,
    tz: str,
    catalog: Catalog,
) -> sa.Select:
    """The single SQL statement answering a metric question (see :func:`query`)."""
    where = where or {}
    for name in metrics:
        allowed = catalog.allowed_dimensions(name)
        for dim in [*by, *where]:
            if dim not in allowed:
                raise ConfigError(
                    f"metric {name!r} cannot be broken down or filtered by {dim!r} "
                    f"(allowed: {', '.join(allowed) or 'none'})"
                )
    bases: list[Metric] = []
    for name in metrics:
        bases.extend(m for m in catalog.base_metrics(name) if m not in bases)
    by_table: dict[str, list[Metric]] = {}
    for metric in bases:
        assert metric.table is not None
        by_table.setdefault(metric.table, []).append(metric)
    parts = [
        _table_select(catalog, table, ms, windows, grain, by, where, tz, bases)
        for table, ms in by_table.items()
    ]
    combined = (parts[0] if len(parts) == 1 else sa.union_all(*parts)).subquery("parts")
    keys = [combined.c.period, *(combined.c[d] for d in by)]
    regrouped = (
        sa.select(*keys, *(sa.func.max(combined.c[m.name]).label(m.name) for m in bases))
        .group_by(*keys)
        .subquery("totals")
    )
    out_keys = [regrouped.c.period, *(regrouped.c[d] for d in by)]
    return sa.select(
        *out_keys, *(_expression(catalog, m, regrouped).label(m) for m in metrics)
    ).order_by(*out_keys)


def _normalise_where(where: Mapping[str, str | Sequence[str]] | None) -> dict[str, list[str]]:
    """``{dim: value or values}`` -> ``{dim: [values]}``."""
    out: dict[str, list[str]] = {}
    for dim, value in (where or {}).items():
        out[dim] = [value] if isinstance(value, str) else [str(v) for v in value]
    return out


def _fill(
    frame: pd.DataFrame,
    metrics: Sequence[str],
    by: Sequence[str],
    start: date,
    end: date,
    grain: str,
    catalog: Catalog,
) -> pd.DataFrame:
    """Add rows for periods without data: zero for sums/counts, empty for the rest."""
    periods = dialect.period_index(start, end, grain)
    if by:
        combos = frame[list(by)].drop_duplicates()
        if combos.empty:
            return frame
        grid = combos.merge(pd.DataFrame({"period": periods}), how="cross")
    else:
        grid = pd.DataFrame({"period": periods})
    frame = frame.assign(period=pd.to_datetime(frame["period"]))
    full = grid.merge(frame, on=["period", *by], how="left")
    for name in metrics:
        metric = catalog.metric(name)
        if not metric.derived and metric.additive:
            full[name] = full[name].fillna(0)
    return full[["period", *by, *metrics]].sort_values(["period", *by]).reset_index(drop=True)


def query(
    metrics: Sequence[str],
    *,
    start: date,
    end: date,
    grain: str | None = "day",
    by: Sequence[str] = (),
    where: Mapping[str, str | Sequence[str]] | None = None,
    tz: str | None = None,
    catalog: Catalog | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Answer a metric question with one SQL statement.

    Parameters
    ----------
    metrics : sequence of str
        Metric names from the catalog.
    start, end : date
        Local dates in the business time zone; ``start`` inclusive, ``end`` exclusive.
    grain : {"day", "week", "month"} or None
        Time-series grain; None gives one total row per breakdown over the whole range.
    by : sequence of str
        Dimensions to break down by.
    where : mapping, optional
        ``{dimension: value or [values]}`` filters.
    tz : str, optional
        Business time zone (default ``AUTERITY_TIMEZONE``).
    catalog : Catalog, optional
        Metric definitions (default: :func:`load_catalog`).
    url : str, optional
        Warehouse URL.

    Returns
    -------
    pandas.DataFrame
        Columns ``period`` (local period start; the start date for totals), one per
        dimension, one per metric. Every period in the range is present.
    """
    catalog = catalog or load_catalog()
    tz = business_tz(tz)
    if not metrics:
        raise ConfigError("name at least one metric")
    for name in metrics:
        catalog.metric(name)
    for dim in by:
        if dim not in catalog.dimensions:
            raise ConfigError(f"unknown dimension {dim!r} (known: {', '.join(catalog.dimensions)})")
    if grain is not None:
        dialect.check_grain(grain)
    dialect.utc_bounds(start, end, tz)
    wh = _normalise_where(where)
    statement = build_statement(
        metrics,
        [_Window(str(start), start, end)],
        grain=grain,
        by=by,
        where=wh,
        tz=tz,
        catalog=catalog,
    )
    frame = cache.fetch(statement, url=url)
    if grain is None:
        frame["period"] = pd.Timestamp(start)
        for name in metrics:
            metric = catalog.metric(name)
            if not metric.derived and metric.additive:
                frame[name] = frame[name].fillna(0)
        if frame.empty and not by:
            frame = pd.DataFrame(
                [
                    {
                        "period": pd.Timestamp(start),
                        **{
                            m: (
                                0
                                if catalog.metric(m).additive and not catalog.metric(m).derived
                                else None
                            )
                            for m in metrics
                        },
                    }
                ]
            )
        return frame.reset_index(drop=True)
    return _fill(frame, metrics, by, start, end, grain, catalog)


def dimension_values(
    dimension: str,
    *,
    limit: int = 500,
    catalog: Catalog | None = None,
    url: str | None = None,
) -> list[str]:
    """The distinct values of a dimension, sorted (for filter drop-downs).

    One ``SELECT DISTINCT`` on the dimension's own table (e.g. regions from ``customers``,
    channels from ``orders``); NULLs are left out.

    Parameters
    ----------
    dimension : str
        A dimension name from the catalog.
    limit : int
        At most this many values (a drop-down longer than that is not usable anyway).
    catalog, url : optional
        Metric definitions and warehouse URL.

    Returns
    -------
    list of str
        The values, sorted.
    """
    catalog = catalog or load_catalog()
    dim = catalog.dimensions.get(dimension)
    if dim is None:
        raise ConfigError(
            f"unknown dimension {dimension!r} (known: {', '.join(catalog.dimensions)})"
        )
    if limit < 1:
        raise ConfigError(f"limit must be at least 1, not {limit}")
    column = _table(dim.table).c[dim.column]
    statement = (
        sa.select(column.label("value"))
        .where(column.is_not(None))
        .distinct()
        .order_by(column)
        .limit(limit)
    )
    return [str(v) for v in cache.fetch(statement, url=url)["value"]]


def query_windows(
    metrics: Sequence[str],
    windows: Mapping[str, tuple[date, date]],
    *,
    grain: str | None = None,
    by: Sequence[str] = (),
    where: Mapping[str, str | Sequence[str]] | None = None,
    tz: str | None = None,
    catalog: Catalog | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Totals of metrics over several labelled windows, in one SQL statement.

    Windows that do not overlap are read in one scan (each row belongs to one window).
    Overlapping windows are answered by a ``UNION ALL`` of one aggregate per window, so a
    row counts in every window it falls in (e.g. the 30 days before two anchor dates a
    week apart). With ``grain``, the totals are per period (day, week, month) inside the
    windows instead of per window, and ``period`` holds the period start (periods without
    rows are absent); the statement then reads the windows' union (a period's total does
    not depend on the window it is read for).

    Parameters
    ----------
    metrics : sequence of str
        Metric names.
    windows : mapping
        ``{label: (start, end)}`` local date ranges (end exclusive); they may overlap.
    grain : str, optional
        ``day``, ``week`` or ``month`` for totals per period rather than per window.
    by, where, tz, catalog, url
        As in :func:`query`.

    Returns
    -------
    pandas.DataFrame
        Columns ``period`` (the window label), the dimensions, the metrics; windows without
        any rows are absent.
    """
    catalog = catalog or load_catalog()
    tz = business_tz(tz)
    for name in metrics:
        catalog.metric(name)
    spans = sorted((start, end, label) for label, (start, end) in windows.items())
    for start, end, _ in spans:
        dialect.utc_bounds(start, end, tz)
    overlapping = any(start_b < end_a for (_, end_a, _), (start_b, _, _) in pairwise(spans))
    groups = (
        [[_Window(label, *span)] for label, span in windows.items()]
        if overlapping and grain is None
        else [[_Window(label, *span) for label, span in windows.items()]]
    )
    statements = [
        build_statement(
            metrics,
            group,
            grain=grain,
            by=by,
            where=_normalise_where(where),
            tz=tz,
            catalog=catalog,
        )
        for group in groups
    ]
    if len(statements) == 1:
        return cache.fetch(statements[0], url=url)
    return cache.fetch(sa.union_all(*(s.order_by(None) for s in statements)), url=url)


def comparison_windows(start: date, end: date) -> dict[str, tuple[date, date]]:
    """The current range, the one just before it and the same range a year earlier."""
    length = end - start
    try:
        ly_start, ly_end = start.replace(year=start.year - 1), end.replace(year=end.year - 1)
    except ValueError:  # 29 February
        ly_start, ly_end = start - timedelta(days=365), end - timedelta(days=365)
    return {
        "current": (start, end),
        "previous": (start - length, start),
        "last_year": (ly_start, ly_end),
    }


def compare(
    metrics: Sequence[str],
    *,
    start: date,
    end: date,
    by: Sequence[str] = (),
    where: Mapping[str, str | Sequence[str]] | None = None,
    tz: str | None = None,
    catalog: Catalog | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Period-over-period comparison, answered by one SQL statement.

    Compares ``[start, end)`` with the range of equal length just before it and with the
    same dates a year earlier.

    Returns
    -------
    pandas.DataFrame
        One row per metric (and breakdown): ``metric, label, unit, good``, the dimensions,
        ``current, previous, previous_delta, previous_delta_pct, last_year,
        last_year_delta, last_year_delta_pct`` (``*_pct`` are fractions; NaN where the
        base is zero or missing).
    """
    catalog = catalog or load_catalog()
    tz = business_tz(tz)
    for name in metrics:
        catalog.metric(name)
    dialect.utc_bounds(start, end, tz)
    spans = comparison_windows(start, end)
    windows = [_Window(label, *span) for label, span in spans.items()]
    if spans["last_year"][1] > spans["previous"][0]:  # longer than a year: would overlap
        windows = windows[:2]
    frame = query_windows(
        metrics,
        {w.label: (w.start, w.end) for w in windows},
        by=by,
        where=where,
        tz=tz,
        catalog=catalog,
        url=url,
    )
    rows = []
    keys = frame[list(by)].drop_duplicates().to_dict("records") if by else [{}]
    has_last_year = len(windows) == 3
    for key in keys:
        sel = frame
        for dim, value in key.items():
            sel = sel[sel[dim] == value]
        for name in metrics:
            metric = catalog.metric(name)
            zero = 0.0 if metric.additive and not metric.derived else float("nan")
            current = _window_value(sel, "current", name, zero)
            row: dict[str, Any] = {
                "metric": name,
                "label": metric.label,
                "unit": metric.unit,
                "good": metric.good,
                **key,
                "current": current,
            }
            for window in ("previous", "last_year"):
                base = (
                    _window_value(sel, window, name, zero)
                    if window == "previous" or has_last_year
                    else float("nan")
                )
                row[window] = base
                row[f"{window}_delta"] = current - base
                row[f"{window}_delta_pct"] = (current - base) / abs(base) if base else float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


def _window_value(frame: pd.DataFrame, window: str, name: str, zero: float) -> float:
    """A metric's value in one comparison window (``zero`` if the window had no rows)."""
    part = frame[frame["period"] == window]
    if part.empty or pd.isna(part[name].iloc[0]):
        return zero
    return float(part[name].iloc[0])
