"""SQL that differs between databases, in one place: time zones, truncation, percentiles.

Every analytic question becomes one SQLAlchemy Core statement. The few constructs that are
not plain ANSI SQL are built here, so adding a warehouse dialect means touching this
module only. PostgreSQL and DuckDB share the spelling we use (``timezone()``,
``date_trunc()``, ``percentile_cont() WITHIN GROUP``), which is also what most analytic
warehouses accept; other dialects are refused with a clear message.

Timestamps are stored as UTC without a zone. Business periods (day, week starting Monday,
month) are cut in the business time zone: we convert to local time *only* for the period
label, and filter on the raw column with UTC bounds so indexes and zone maps still work.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from auterity.errors import ConfigError

GRAINS = ("day", "week", "month")
SUPPORTED = ("duckdb", "postgresql")
_PANDAS_FREQ = {"day": "D", "week": "W-MON", "month": "MS"}


def check_supported(conn: Connection) -> str:
    """Return the dialect name, or raise ConfigError if analytic SQL cannot run there."""
    name = conn.dialect.name
    if name not in SUPPORTED:
        raise ConfigError(
            f"analytic queries need DuckDB or PostgreSQL (date_trunc, timezone, "
            f"percentile_cont); the warehouse is {name!r}"
        )
    return name


def check_grain(grain: str) -> str:
    """Return ``grain`` if it is day, week or month, else raise ConfigError."""
    if grain not in GRAINS:
        raise ConfigError(f"unknown grain {grain!r} (use one of: {', '.join(GRAINS)})")
    return grain


def local_time(column: ColumnElement[Any], tz: str) -> ColumnElement[Any]:
    """A UTC timestamp column expressed as local (naive) time in ``tz``."""
    if tz == "UTC":
        return column
    return sa.func.timezone(tz, sa.func.timezone("UTC", column), type_=sa.DateTime())


def period_start(column: ColumnElement[Any], grain: str, tz: str) -> ColumnElement[Any]:
    """Start of the local day/week (Monday)/month containing each UTC timestamp."""
    check_grain(grain)
    truncated = sa.func.date_trunc(grain, local_time(column, tz), type_=sa.DateTime())
    return sa.cast(truncated, sa.DateTime())


def percentile(column: ColumnElement[Any], p: float) -> ColumnElement[Any]:
    """Continuous percentile ``p`` (0..1) of ``column``; NULLs are ignored."""
    if not 0 <= p <= 1:
        raise ConfigError(f"percentile must be between 0 and 1 (got {p})")
    return sa.func.percentile_cont(p).within_group(column)


class _PercentileList(FunctionElement[Any]):
    """Several continuous percentiles of one column, computed in one pass (an array)."""

    name = "auterity_percentiles"
    inherit_cache = False  # the percentiles live outside the clause list

    def __init__(self, column: ColumnElement[Any], points: Sequence[float]) -> None:
        self.points: tuple[float, ...] = tuple(float(p) for p in points)
        super().__init__(column)

    @property
    def points_sql(self) -> str:
        """The percentiles as an SQL list body, e.g. ``0.5, 0.95``."""
        return ", ".join(repr(p) for p in self.points)


@compiles(_PercentileList, "duckdb")
def _percentiles_duckdb(element: _PercentileList, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses.clauses
    return f"quantile_cont({compiler.process(column, **kw)}, [{element.points_sql}])"


@compiles(_PercentileList, "postgresql")
def _percentiles_postgresql(element: _PercentileList, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses.clauses
    return (
        f"percentile_cont(ARRAY[{element.points_sql}]::double precision[]) "
        f"WITHIN GROUP (ORDER BY {compiler.process(column, **kw)})"
    )


@compiles(_PercentileList)
def _percentiles_other(element: _PercentileList, compiler: Any, **kw: Any) -> str:
    raise ConfigError(f"several percentiles at once are not supported on {compiler.dialect.name!r}")


class _PercentileAt(_PercentileList):
    """One element (1-based) of a :class:`_PercentileList`; equal lists are computed once."""

    name = "auterity_percentile_at"
    inherit_cache = False
    type = sa.Double()

    def __init__(self, column: ColumnElement[Any], points: Sequence[float], index: int) -> None:
        self.index = index
        super().__init__(column, points)


@compiles(_PercentileAt)
def _percentile_at(element: _PercentileAt, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses.clauses
    whole = _PercentileList(column, element.points)
    return f"({compiler.process(whole, **kw)})[{element.index}]"


class _Sha256Hex(FunctionElement[Any]):
    """SHA-256 of a text expression's UTF-8 bytes, as 64 lowercase hex digits."""

    name = "auterity_sha256_hex"
    inherit_cache = True
    type = sa.String()


@compiles(_Sha256Hex, "duckdb")
def _sha256_duckdb(element: _Sha256Hex, compiler: Any, **kw: Any) -> str:
    return f"sha256({compiler.process(element.clauses, **kw)})"


@compiles(_Sha256Hex, "postgresql")
def _sha256_postgresql(element: _Sha256Hex, compiler: Any, **kw: Any) -> str:
    return f"encode(sha256(convert_to({compiler.process(element.clauses, **kw)}, 'UTF8')), 'hex')"


@compiles(_Sha256Hex)
def _sha256_other(element: _Sha256Hex, compiler: Any, **kw: Any) -> str:
    raise ConfigError(f"sha256 is not supported on {compiler.dialect.name!r}")


def sha256_hex(text: ColumnElement[Any]) -> ColumnElement[Any]:
    """SHA-256 of ``text`` (UTF-8) as lowercase hex, computed by the database; NULL stays
    NULL (as Python's ``hashlib.sha256(text.encode()).hexdigest()``)."""
    return _Sha256Hex(text)


def percentile_of_many(
    column: ColumnElement[Any], p: float, together: Sequence[float]
) -> ColumnElement[Any]:
    """Percentile ``p`` of ``column``, computed in one sort with the others in ``together``.

    Use it when several percentiles of the same column appear in one statement: the
    databases compute the identical list aggregate once.
    """
    points = sorted(set(together) | {p})
    if any(not 0 <= q <= 1 for q in points):
        raise ConfigError(f"percentiles must be between 0 and 1 (got {points})")
    return _PercentileAt(column, points, points.index(p) + 1)


def percentiles(column: ColumnElement[Any], ps: Sequence[float]) -> ColumnElement[Any]:
    """Continuous percentiles ``ps`` (each 0..1) of ``column`` as one array value.

    One sort serves every percentile (about twice as fast as separate :func:`percentile`
    calls on DuckDB). The value arrives in Python as a list in the order of ``ps`` (None
    when the group has no non-NULL value).
    """
    if not ps or any(not 0 <= p <= 1 for p in ps):
        raise ConfigError(f"percentiles must be between 0 and 1 (got {list(ps)})")
    return _PercentileList(column, ps)


def to_float(expr: ColumnElement[Any]) -> ColumnElement[Any]:
    """Cast to double precision (NUMERIC sums come back as Decimal otherwise)."""
    return sa.cast(expr, sa.Double())


def safe_ratio(num: ColumnElement[Any], den: ColumnElement[Any]) -> ColumnElement[Any]:
    """``num / den`` as a float, NULL where the denominator is zero or NULL."""
    return sa.case((den == 0, None), else_=to_float(num) / to_float(den))


def utc_instant(day: date, tz: str) -> datetime:
    """Local midnight of ``day`` in ``tz`` as a naive UTC datetime (the storage format)."""
    local = datetime.combine(day, time(0), tzinfo=ZoneInfo(tz))
    return local.astimezone(UTC).replace(tzinfo=None)


def utc_bounds(start: date, end: date, tz: str) -> tuple[datetime, datetime]:
    """UTC bounds of the local date range ``[start, end)``.

    Raises
    ------
    ConfigError
        If ``end`` is not after ``start``.
    """
    if end <= start:
        raise ConfigError(f"--end ({end}) must be after --start ({start}); the end is exclusive")
    return utc_instant(start, tz), utc_instant(end, tz)


def period_index(start: date, end: date, grain: str) -> pd.DatetimeIndex:
    """Every local period start that overlaps ``[start, end)`` (for zero-filling)."""
    check_grain(grain)
    first = pd.Timestamp(start)
    if grain == "week":
        first = first - pd.Timedelta(days=first.day_of_week)
    elif grain == "month":
        first = first.replace(day=1)
    last = pd.Timestamp(end) - pd.Timedelta(days=1)
    return pd.date_range(first, last, freq=_PANDAS_FREQ[grain])


def read_rows(
    conn: Connection, statement: sa.Executable
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run a statement and return its column names and rows (plain tuples of driver values)."""
    result = conn.execute(statement)
    return list(result.keys()), [tuple(row) for row in result.fetchall()]


def frame_from_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """The DataFrame of a statement's rows; the one place that chooses its dtypes.

    The result cache stores rows and rebuilds frames here too, so a cached answer has
    exactly the dtypes of a fresh one.
    """
    return pd.DataFrame(list(rows), columns=list(columns))


def read_frame(conn: Connection, statement: sa.Executable) -> pd.DataFrame:
    """Run a statement and return its (aggregated) rows as a DataFrame."""
    return frame_from_rows(*read_rows(conn, statement))
