"""What every command shares: output formats, date options and their defaults, tables.

The default periods are constants here, and ``--help`` states them from the constant the
command uses. Tables are shown in units (money, percentages, milliseconds); ``--format
json`` prints the same rows as JSON and ``csv`` as CSV with formula-like cells neutralised.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click
import pandas as pd

from auterity import _json, _time, access, charts, config, escape, metrics
from auterity.errors import AuterityError

FORMATS = click.Choice(["table", "json"])


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (:func:`auterity._json.dumps`: one rule for dates)."""
    click.echo(_json.dumps(data, indent=2))


class Progress:
    """Progress of a chunked load: a live bar on a terminal, one line per chunk otherwise."""

    def __init__(self, expected: dict[str, int], enabled: bool) -> None:
        self.expected = expected
        self.enabled = enabled
        self.done: dict[str, int] = {}
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=sum(expected.values()), unit="rows", unit_scale=True, file=sys.stderr
            )

    def __call__(self, table: str, rows: int) -> None:
        self.done[table] = self.done.get(table, 0) + rows
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_description(table)
            self.bar.update(rows)
            return
        total = self.expected.get(table, 0)
        pct = f" ({100 * self.done[table] / total:.0f} %)" if total else ""
        click.echo(f"  {table}: {self.done[table]:,} rows{pct}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


OUTPUT_FORMATS = click.Choice(["table", "csv", "json"])


PERIOD_DAYS = 28
"""Default period of most commands: --start is this many days before --end."""


SAVINGS_DAYS = 90
"""Default period of `modelhub savings` (quality needs many scored requests)."""


DRIFT_DAYS = 7
"""Default current window of `modelhub drift`."""


DRIFT_REFERENCE_DAYS = 28
"""Default reference window of `modelhub drift`, just before the current one."""


INSIGHTS_DAYS = 90
"""Default period of `insights` (its tests need at least 8 weeks)."""


ANOMALY_DAYS = 90
"""Default period of `anomalies`."""


FORECAST_HISTORY_DAYS = 365
"""Default history of `forecast`."""


def date_range(start: str | None, end: str | None, default_days: int) -> tuple[Any, Any]:
    """Parse the date range; defaults: the last ``default_days`` days up to today."""
    from datetime import timedelta

    end_date = _time.parse_date(end) if end else _time.today_utc()
    start_date = _time.parse_date(start) if start else end_date - timedelta(days=default_days)
    return start_date, end_date


def date_options(
    default_days: int,
    start_help: str = "First local date (inclusive)",
    end_help: str = "Local date after the last one (exclusive)",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--start``/``--end`` options (YYYY-MM-DD) resolved to dates before the command runs.

    The command receives ``start`` and ``end`` as dates: ``end`` defaults to today and
    ``start`` to ``default_days`` before ``end``, the very number its help states.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def resolved(*args: Any, start: str | None, end: str | None, **kwargs: Any) -> Any:
            lo, hi = date_range(start, end, default_days)
            return fn(*args, start=lo, end=hi, **kwargs)

        resolved = click.option("--end", metavar="YYYY-MM-DD", help=f"{end_help}. Default: today.")(
            resolved
        )
        return click.option(
            "--start",
            metavar="YYYY-MM-DD",
            help=f"{start_help}. Default: {default_days} days before --end.",
        )(resolved)

    return decorate


def emit(frame: Any, fmt: str, units: dict[str, str] | None = None) -> None:
    """Print a DataFrame as an aligned table, CSV, or a JSON list of rows.

    Tables are for people: numbers in their unit's house style (``5.3 %``, ``$1.2K``,
    ``1,834 ms``; units from :data:`auterity.charts.COLUMN_UNITS`, then ``units``), missing
    values blank or an en dash, text without control characters (a value from the
    warehouse cannot send escape sequences to the terminal). CSV and JSON keep the raw
    values for machines, except that CSV text cannot start a spreadsheet formula.
    """
    if fmt == "json":
        click.echo(_json.dumps(frame, indent=2))
        return
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = _json.iso_times(out[col])
    if fmt == "csv":
        click.echo(escape.csv_safe(out).to_csv(index=False), nl=False)
    elif out.empty:
        click.echo("(no rows)")
    else:
        click.echo(for_people(out, units).to_string(index=False))


def for_people(frame: Any, units: dict[str, str] | None) -> Any:
    """A copy of ``frame`` as display strings (see :func:`emit`)."""

    known = {**charts.COLUMN_UNITS, **(units or {})}
    out = frame.copy()
    by_row = "unit" in out.columns and "current" in out.columns  # metrics compare: a unit a row
    for col in out.columns:
        values = out[col]
        if by_row and (col in ("current", "previous", "last_year") or col.endswith("_delta")):
            unit_of = out["unit"]
            out[col] = [charts.format_value(v, u) for v, u in zip(values, unit_of, strict=True)]
        elif by_row and col.endswith("_delta_pct"):
            out[col] = [charts.format_value(v, "percent") for v in values]
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            unit = known.get(col)
            out[col] = [charts.format_value(v, unit) if unit else fmt_number(v) for v in values]
        else:  # text from the warehouse: no control characters (terminal escapes) reach it
            out[col] = ["" if is_missing(v) else escape.one_line(v) for v in values]
    return out


def is_missing(value: Any) -> bool:
    """True for None, NaN, NaT and pd.NA."""

    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, dicts: not a missing scalar
        return False


def fmt_number(value: float) -> str:
    """Compact number formatting for tables (an en dash when missing)."""
    if is_missing(value):
        return "\u2013"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def parse_where(items: tuple[str, ...]) -> dict[str, list[str]]:
    """``DIM=VALUE[,VALUE]`` options -> ``{dim: [values]}``."""
    where: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise AuterityError(f"--where {item!r}: expected DIM=VALUE (e.g. region=EMEA)")
        dim, values = item.split("=", 1)
        where.setdefault(dim.strip(), []).extend(v.strip() for v in values.split(","))
    return where


def acting_as_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--as USER``: run the command as a user of the warehouse, so their role's row
    filters and PII rule shape every number and name it prints.

    Acting as a user, ``--format csv`` or ``json`` is an export: their role must hold
    ``export`` and an ``export`` audit row records the command and its parameters.

    Without ``--as``, ``AUTERITY_USER`` is used once the warehouse has users; with no
    user in the warehouse (the local one-person setup) or neither set, the command reads
    everything. The CLI is not where access is enforced: whoever holds the warehouse
    credentials can read it directly.
    """

    @functools.wraps(fn)
    def scoped(*args: Any, as_user: str | None, **kwargs: Any) -> Any:
        acting = resolve_as(as_user)
        with metrics.acting_as(acting):
            fmt = kwargs.get("fmt")
            if acting is not None and fmt in MACHINE_FORMATS:
                # CSV or JSON for another program: an export (the role must allow it)
                ctx = click.get_current_context()
                access.note_export(
                    "cli",
                    ctx.command_path.removeprefix(f"{ctx.find_root().info_name} "),
                    [fmt],
                    user=acting,
                    details={"parameters": {k: v for k, v in ctx.params.items() if v is not None}},
                )
            return fn(*args, **kwargs)

    return AS_USER(scoped)


MACHINE_FORMATS = ("csv", "json")
"""Output formats for other programs: exports, when a user is acting."""

AS_USER = click.option(
    "--as",
    "as_user",
    metavar="USER",
    help="Act as this user: their role's grants, row filters and PII rule apply. "
    "Default: AUTERITY_USER once the warehouse has users.",
)


def resolve_as(as_user: str | None) -> str | None:
    """The user a command acts as: ``--as``, else ``AUTERITY_USER`` once the warehouse
    has users, else nobody (reads everything)."""
    if as_user is not None:
        return as_user
    named = config.value(config.ENV_USER)
    return named if named and access.has_users() else None


def require(as_user: str | None, permission: str, doing: str) -> str | None:
    """The user a command acts as (:func:`resolve_as`), refused unless their role holds
    ``permission`` (nobody acting: the local one-person setup may)."""
    acting = resolve_as(as_user)
    if acting is not None:
        _user, role = access.active_user(acting)
        if not role.can(permission):
            raise access.AccessDenied(f"{acting!r} (role {role.name}) may not {doing}")
    return acting
