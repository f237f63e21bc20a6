"""Statement pieces and result conversions shared by the ModelHub reports.

Latency percentiles are over successful requests (``status = 'ok'``) only: timeouts are
recorded at the timeout limit and errors fail fast, so mixing them in would describe the
failure modes, not the model. Failures are reported as rates instead. Percentiles are
continuous (``percentile_cont``, i.e. linear interpolation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from auterity.warehouse import dialect, schema

E = schema.inference_events
M = schema.models

Z95 = 1.959963984540054
"""Two-sided 95 % quantile of the standard normal distribution."""


def ok_latency() -> ColumnElement[Any]:
    """Latency of successful requests, NULL otherwise (percentiles ignore NULLs).

    Returns
    -------
    ColumnElement
        ``inference_events.latency_ms`` where ``status = 'ok'``, labelled ``ok_latency``.
    """
    return sa.case((E.c.status == "ok", E.c.latency_ms), else_=sa.null()).label("ok_latency")


def raw_rows(*where: ColumnElement[bool], day: str | None = None) -> sa.Select:
    """The raw ``inference_events`` columns the reports aggregate (a projection).

    Parameters
    ----------
    *where : ColumnElement
        Filters of the rows (typically :meth:`Period.where`).
    day : str, optional
        A time zone: adds the column ``day``, the local day of ``ts`` there.

    Returns
    -------
    sqlalchemy.Select
        ``model_id, feature, customer_id, ts, status, input_tokens, output_tokens, cost,
        quality, ok_latency`` (and ``day``), to be used as a subquery.
    """
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
        ok_latency(),
    ]
    if day is not None:
        columns.append(dialect.period_start(E.c.ts, "day", day).label("day"))
    return sa.select(*columns).where(*where)


def latency_percentiles(latency: ColumnElement[Any], ps: Sequence[int]) -> list[ColumnElement[Any]]:
    """Latency percentile columns computed together, in one sort.

    Parameters
    ----------
    latency : ColumnElement
        The latency column (usually :func:`ok_latency` of a subquery).
    ps : sequence of int
        Percentiles, e.g. ``(50, 95, 99)``.

    Returns
    -------
    list of ColumnElement
        One ``p<N>_latency_ms`` aggregate per percentile, continuous (``percentile_cont``).
    """
    together = [p / 100 for p in ps]
    return [
        dialect.percentile_of_many(latency, p / 100, together).label(f"p{p}_latency_ms") for p in ps
    ]


def flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """1 where ``condition`` holds, else 0: summed, a conditional count.

    Parameters
    ----------
    condition : ColumnElement of bool

    Returns
    -------
    ColumnElement of int
    """
    return sa.case((condition, 1), else_=0)


def as_int(series: pd.Series) -> pd.Series:
    """An integer column from SQL sums and counts.

    Parameters
    ----------
    series : pandas.Series
        Numbers as the driver returns them (int, Decimal, None).

    Returns
    -------
    pandas.Series
        ``int64``, NULL as 0.
    """
    return pd.to_numeric(series).fillna(0).astype("int64")


def as_float(series: pd.Series) -> pd.Series:
    """A float column from SQL results.

    Parameters
    ----------
    series : pandas.Series
        Numbers as the driver returns them (float, Decimal, None).

    Returns
    -------
    pandas.Series
        ``float64``, NULL as NaN.
    """
    return pd.to_numeric(series, errors="coerce").astype("float64")


def quality_ci(mean: pd.Series, std: pd.Series, n: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Normal 95 % confidence interval of a mean from its standard deviation and count.

    Parameters
    ----------
    mean, std, n : pandas.Series
        Mean, sample standard deviation and number of scored requests of each group.

    Returns
    -------
    tuple of pandas.Series
        Lower and upper bounds, ``mean -/+ Z95 * std / sqrt(n)``; NaN where ``n < 2``.
    """
    half = Z95 * std / np.sqrt(n.where(n > 1))
    return mean - half, mean + half
