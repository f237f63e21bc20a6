"""Rows checked against the data contract before anything is written.

Every path that brings data in (files, source databases, OpenTelemetry spans) checks its
batch here first. A batch whose *columns* do not fit the table is refused as a whole with
one line (a missing required column, an unknown one). Otherwise each row either passes,
converted to the column types of :mod:`auterity.warehouse.schema`, or is rejected with
every reason it fails, and its raw values kept for the quarantine: nothing is dropped
without a trace, and ``len(valid) + len(rejected) == len(batch)`` always holds.

The checks are one SQL statement run by DuckDB (:func:`checked_select`), the engine that
stages every batch: a pandas batch, a Parquet or CSV file of millions of rows and a span
batch are all checked by the same code, at column-store speed. What is checked, from the
contract itself where it says so:

* required columns present and not empty (non-nullable columns without a server default);
* types: timestamps parseable (a zone offset is converted to UTC), numbers numeric and
  finite, whole numbers whole, text no longer than its column, JSON columns valid JSON;
* allowed values (the contract's ``status``, ``event_type``, ``pricing_kind`` lists and
  ``feedback`` of -1 or 1); ranges: money, tokens, prices and latency not negative,
  ``quality`` between 0 and 1 (a column's ``info`` may add ``min``, ``max``, ``allowed``);
* timestamps not later than now plus :data:`FUTURE_TOLERANCE` (clocks drift a little);
* the primary key unique within the batch: the last row with a key wins, earlier ones are
  rejected as superseded (batch order decides, deterministically; or a version column
  such as ``updated_at`` when the source has one).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import sqlalchemy as sa

from auterity import _json
from auterity._time import utcnow
from auterity.errors import ConfigError
from auterity.warehouse import custom, schema

FUTURE_TOLERANCE = timedelta(minutes=10)
"""How far past now a timestamp may lie before it is rejected as from the future."""

NON_NEGATIVE: dict[str, tuple[str, ...]] = {
    "orders": ("amount",),
    "inference_events": ("latency_ms", "input_tokens", "output_tokens", "cost"),
    "models": ("input_price_per_1k", "output_price_per_1k"),
}
"""Columns that can never be below zero (money, tokens, prices, latency)."""

BOUNDED: dict[tuple[str, str], tuple[float, float]] = {("inference_events", "quality"): (0.0, 1.0)}
"""Columns with an inclusive range."""

ALLOWED: dict[tuple[str, str], tuple[Any, ...]] = {
    ("orders", "status"): schema.ORDER_STATUSES,
    ("product_events", "event_type"): schema.FUNNEL_STEPS,
    ("inference_events", "status"): schema.INFERENCE_STATUSES,
    ("models", "pricing_kind"): schema.PRICING_KINDS,
    ("inference_events", "feedback"): (-1, 1),
}
"""Columns whose values come from a fixed list (as the contract's CHECK constraints say)."""

JSON_COLUMNS = {("models", "pricing_config")}
"""Text columns that must hold JSON."""

REFERENCES: dict[tuple[str, str], tuple[str, str]] = {
    ("orders", "customer_id"): ("customers", "customer_id"),
    ("product_events", "customer_id"): ("customers", "customer_id"),
    ("inference_events", "customer_id"): ("customers", "customer_id"),
    ("inference_events", "model_id"): ("models", "model_id"),
}
"""The contract's documented relationships (column -> referenced table and key): values
with no row there are reported after a load, not rejected (orders may arrive before
their customers)."""


def references(table: sa.Table) -> dict[str, tuple[str, str]]:
    """Column -> (referenced table, key) of a table; a declared table's ``customer_id``
    refers to ``customers`` (the join metrics use)."""
    found = {col: ref for (name, col), ref in REFERENCES.items() if name == table.name}
    if table.name not in schema.DATA_TABLES and "customer_id" in table.c:
        found["customer_id"] = ("customers", "customer_id")
    return found


ROW = "_row"
"""Staged column: a row's position in its batch (0-based)."""
REASONS = "_reasons"
"""Checked column: every reason a row fails, ``; ``-separated ('' when it passes)."""
DELETED = "_deleted"
"""Optional staged column: true where the source marks the row as deleted."""
OK = "_ok"
"""Checked column: true for a row that passes every check."""
RAW = "_raw"
"""Checked column: a rejected row as it came, JSON (NULL for a valid row)."""


@dataclass(frozen=True)
class Checked:
    """A batch split by :func:`check`.

    Attributes
    ----------
    valid : pandas.DataFrame
        The rows that pass, with the table's columns in its order and types (timestamps as
        naive UTC, numbers as floats or nullable integers, text as strings).
    rejected : pandas.DataFrame
        ``row`` (position in the batch), ``reason`` (every failure, ``; ``-separated) and
        ``raw`` (the row as it came, JSON-safe) of each rejected row.
    """

    valid: pd.DataFrame
    rejected: pd.DataFrame


def data_table(table: str) -> sa.Table:
    """The table a batch may be loaded into, or a ConfigError naming the ones that can.

    Parameters
    ----------
    table : str
        A data table of the contract, or one declared under ``tables:`` in the sources
        file (:mod:`auterity.warehouse.custom`).

    Returns
    -------
    sqlalchemy.Table
    """
    return custom.data_table(table)


def required_columns(table: str) -> list[str]:
    """The columns a batch for ``table`` must have (non-nullable, no server default).

    Parameters
    ----------
    table : str
        A data table of the contract.

    Returns
    -------
    list of str
        In the table's column order.
    """
    return [c.name for c in data_table(table).columns if _required(c)]


def _required(column: sa.Column) -> bool:
    return not column.nullable and column.server_default is None


def check_columns(table: sa.Table, columns: Iterable[str]) -> None:
    """Refuse a batch whose columns do not fit the table, naming what is missing/unknown.

    Raises
    ------
    ConfigError
        One line naming the missing required and the unknown columns, and the table's.
    """
    given = [str(c) for c in columns if str(c) not in (ROW, DELETED)]
    known = set(table.columns.keys())
    unknown = [c for c in given if c not in known]
    missing = [c.name for c in table.columns if _required(c) and c.name not in given]
    problems = []
    if missing:
        problems.append(f"missing required column(s) {', '.join(missing)}")
    if unknown:
        problems.append(
            f"unknown column(s) {', '.join(unknown)} (map them to the table's columns or "
            "leave them out)"
        )
    if problems:
        raise ConfigError(
            f"a batch for {table.name}: {'; '.join(problems)}; {table.name} has: "
            f"{', '.join(table.columns.keys())}"
        )


def quote(name: str) -> str:
    """A DuckDB/PostgreSQL quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A DuckDB/PostgreSQL literal of a text or number (a rule's value, a file path)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _is_whole(staged_type: str) -> bool:
    """A staged column of a whole-number type (a Parquet file's own types)."""
    return staged_type.upper() in {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
    }


def _is_text(staged_type: str) -> bool:
    return staged_type.upper().startswith(("VARCHAR", "TEXT", "STRING", "JSON"))


def _cleaned(name: str, staged_type: str) -> str:
    """SQL of a staged value as checked: text without surrounding spaces, blank as NULL.

    Trimming only what starts or ends with a space halves the cost on clean text."""
    src = quote(name)
    if not _is_text(staged_type):
        return src
    spaced = f"prefix({src}, ' ') OR suffix({src}, ' ')"
    return f"nullif(CASE WHEN {spaced} THEN trim({src}) ELSE {src} END, '')"


def _converted(column: sa.Column, staged_type: str, value: str) -> tuple[str, str]:
    """SQL for the column converted to its type from ``value`` (a cleaned column), and
    the reason when a present value fails to convert."""
    text = _is_text(staged_type)
    kind = column.type
    if isinstance(kind, sa.DateTime):
        if text or staged_type.upper().startswith("TIMESTAMP WITH"):
            return f"(try_cast({value} AS TIMESTAMPTZ) AT TIME ZONE 'UTC')", "not a timestamp"
        return f"try_cast({value} AS TIMESTAMP)", "not a timestamp"
    if isinstance(kind, sa.Date):
        return f"try_cast({value} AS DATE)", "not a date"
    if isinstance(kind, sa.BigInteger):  # exact past 2**53: through BIGINT, not DOUBLE
        number = f"try_cast({value} AS DOUBLE)"
        return f"CASE WHEN {number} % 1 = 0 THEN try_cast({value} AS BIGINT) END", (
            "not a whole number"
        )
    if isinstance(kind, sa.Integer | sa.SmallInteger) and _is_whole(staged_type):
        target = "SMALLINT" if isinstance(kind, sa.SmallInteger) else "INTEGER"
        return f"try_cast({value} AS {target})", "not a whole number in range"
    if isinstance(kind, sa.Integer | sa.SmallInteger):
        number = f"try_cast({value} AS DOUBLE)"
        limit = 32767 if isinstance(kind, sa.SmallInteger) else 2147483647
        whole = f"({number} % 1 = 0 AND abs({number}) <= {limit})"
        target = "SMALLINT" if isinstance(kind, sa.SmallInteger) else "INTEGER"
        return f"CASE WHEN {whole} THEN {number}::{target} END", "not a whole number"
    if isinstance(kind, sa.Double | sa.Float | sa.Numeric):
        number = value if staged_type.upper() == "DOUBLE" else f"try_cast({value} AS DOUBLE)"
        finite = f"CASE WHEN isfinite({number}) THEN {number} END"
        if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float) and kind.scale:
            # rounded as the column stores it, so a reload compares equal (idempotent)
            digits = f"{kind.precision or 18}, {kind.scale}"
            limit = 10 ** ((kind.precision or 18) - kind.scale)
            finite = f"CASE WHEN abs({number}) < {limit} THEN round({number}, {kind.scale}) END"
            return f"CAST({finite} AS DECIMAL({digits}))", "not a number in range"
        return finite, "not a number"
    if isinstance(kind, sa.Boolean):
        return f"try_cast({value} AS BOOLEAN)", "not true or false"
    sql = value if text else f"CAST({value} AS VARCHAR)"
    length = getattr(kind, "length", None)
    if length:
        return (
            f"CASE WHEN length({sql}) <= {int(length)} THEN {sql} END",
            f"longer than {int(length)} characters",
        )
    return sql, "not text"


def _shown(src: str) -> str:
    """SQL showing a raw value in a reason: numbers as they are, text quoted and shortened."""
    shown = f"CAST({src} AS VARCHAR)"
    return (
        f"CASE WHEN try_cast({shown} AS DOUBLE) IS NOT NULL THEN left({shown}, 60) "
        f"WHEN length({shown}) <= 58 THEN '''' || {shown} || '''' "
        f"ELSE '''' || left({shown}, 55) || '...''' END"
    )


def _default(column: sa.Column) -> str | None:
    """SQL of the column's server default (what an empty value becomes), if it has one."""
    arg = getattr(column.server_default, "arg", None)
    if not isinstance(arg, str):
        return None
    if isinstance(column.type, sa.String):
        return literal(arg)
    return arg if arg.lstrip("-").replace(".", "", 1).isdigit() else None


def _range_checks(table: sa.Table, column: sa.Column, sql: str) -> list[tuple[str, str]]:
    """(condition, reason) for values outside the column's range (contract or ``info``)."""
    name = column.name
    bounds = BOUNDED.get((table.name, name))
    low: float | None = column.info.get("min")
    high: float | None = column.info.get("max")
    if bounds:
        low, high = bounds
    elif low is None and name in NON_NEGATIVE.get(table.name, ()):
        low = 0
    if low is not None and high is not None:
        return [
            (
                f"{sql} < {literal(low)} OR {sql} > {literal(high)}",
                f"'{name}: outside ({float(low)}, {float(high)})'",
            )
        ]
    if low is not None:
        word = "negative" if low == 0 else f"below {low}"
        return [(f"{sql} < {literal(low)}", f"'{name}: {word}'")]
    if high is not None:
        return [(f"{sql} > {literal(high)}", f"'{name}: above {high}'")]
    return []


def checked_select(
    table: sa.Table,
    source: str,
    staged_types: Mapping[str, str],
    *,
    now: datetime | None = None,
    tolerance: timedelta = FUTURE_TOLERANCE,
) -> str:
    """The DuckDB statement that checks a staged batch row by row.

    Parameters
    ----------
    table : sqlalchemy.Table
        The target table (its columns, types, key and rules).
    source : str
        A relation (table, view or ``read_parquet(...)``) with the batch's columns and
        ``_row`` (batch order); ``_deleted`` too if the source marks deletions.
    staged_types : mapping
        Column name -> DuckDB type of ``source`` (text columns are trimmed, ``''`` is empty).
    now, tolerance : optional
        The future-timestamp limit is ``now + tolerance`` (``now`` naive UTC).

    Returns
    -------
    str
        A SELECT of ``_row``, every column of ``table`` converted, ``_deleted``,
        ``_reasons`` ('' for a valid row) and ``_raw`` (a rejected row as it came, JSON).
        Keys repeated within the batch are resolved afterwards by :func:`reject`.
    """
    limit = (now or utcnow()) + tolerance
    # Three layers, so each value is cleaned once and converted once, however many
    # checks read it: given (text trimmed, blank = NULL), typed, then the checks.
    given = [ROW, "_staged AS _src"]
    typed = [ROW, "_src"]
    outputs: list[str] = []
    checks: list[tuple[str, str]] = []  # (condition, reason) pairs
    for column in table.columns:
        name = column.name
        default = _default(column)
        if name not in staged_types:  # an optional column left out: its default or NULL
            outputs.append(f"{default or 'NULL'} AS {quote(name)}")
            continue
        value, typed_name = quote("_v_" + name), quote("_t_" + name)
        given.append(f"{_cleaned(name, staged_types[name])} AS {value}")
        sql, failure = _converted(column, staged_types[name], value)
        typed.extend([value, f"{sql} AS {typed_name}"])
        outputs.append(
            f"coalesce({typed_name}, {default}) AS {quote(name)}"
            if default
            else f"{typed_name} AS {quote(name)}"
        )
        present = f"({value} IS NOT NULL)"
        checks.append(
            (
                f"{present} AND {typed_name} IS NULL",
                f"'{name}: {failure} (' || {_shown(value)} || ')'",
            )
        )
        if _required(column):
            checks.append((f"NOT {present}", f"'{name}: missing'"))
        if isinstance(column.type, sa.DateTime):
            checks.append(
                (
                    f"{typed_name} > TIMESTAMP '{limit.isoformat(sep=' ')}'",
                    f"'{name}: in the future'",
                )
            )
        checks.extend(_range_checks(table, column, typed_name))
        allowed = ALLOWED.get((table.name, name)) or column.info.get("allowed")
        if allowed:
            listed = ", ".join(literal(v) for v in allowed)
            shown = ", ".join(map(str, allowed)).replace("'", "''")
            checks.append((f"{typed_name} NOT IN ({listed})", f"'{name}: not one of {shown}'"))
        if (table.name, name) in JSON_COLUMNS or column.info.get("json"):
            checks.append(
                (
                    f"{typed_name} IS NOT NULL AND NOT coalesce(json_valid({typed_name}), false)",
                    f"'{name}: not valid JSON'",
                )
            )
    if DELETED in staged_types:
        given.append(f"coalesce(try_cast({quote(DELETED)} AS BOOLEAN), false) AS {DELETED}")
    else:
        given.append(f"false AS {DELETED}")
    typed.append(DELETED)
    # A row passes when no condition holds: one cheap boolean per row; the reasons text
    # is only built for the rows that fail.
    failed = " OR ".join(f"coalesce({cond}, false)" for cond, _ in checks) or "false"
    texts = ", ".join(f"CASE WHEN {cond} THEN {why} END" for cond, why in checks)
    errors = f"CASE WHEN {failed} THEN concat_ws('; ', {texts}) ELSE '' END"
    return (
        f"SELECT {ROW}, {', '.join(outputs)}, {DELETED}, NOT ({failed}) AS {OK}, "
        f"{errors} AS {REASONS}, CASE WHEN {failed} THEN to_json(_src) END AS {RAW} "
        f"FROM (SELECT {', '.join(typed)} FROM (SELECT {', '.join(given)} "
        f"FROM {source} AS _staged))"
    )


def reject(
    duck: duckdb.DuckDBPyConnection,
    checked: str,
    rejected: str,
    table: sa.Table,
    *,
    version_column: str | None = None,
) -> None:
    """Collect a checked batch's rejected rows into the temporary table ``rejected``.

    ``rejected`` gets ``_row``, ``_reasons`` and ``_raw`` of every row that fails a
    check, and of every valid row superseded by a later one with the same key (batch
    order decides, deterministically, or ``version_column`` when the source has one).
    The valid rows are then :func:`valid_select` : ``checked`` is read again rather than
    copied, so a batch of millions of rows is never materialised twice. The common case,
    no key twice, costs one aggregate over the keys.

    Parameters
    ----------
    duck : duckdb.DuckDBPyConnection
        The connection holding ``checked``.
    checked : str
        A view (or table) of :func:`checked_select`.
    rejected : str
        Name of the temporary table to create.
    table : sqlalchemy.Table
        The target table (its primary key).
    version_column : str, optional
        Newest row by this column wins (ties: the later row).
    """
    # Filtering on the reasons text, not on the boolean _ok: DuckDB would push a filter
    # on _ok down into the conversions and evaluate every check twice.
    duck.execute(
        f"CREATE TEMP TABLE {rejected} AS SELECT {ROW}, {REASONS}, {RAW} FROM {checked} "
        f"WHERE {REASONS} <> ''"
    )
    keys = ", ".join(quote(c.name) for c in table.primary_key.columns)
    valid = f"{checked} WHERE {ROW} NOT IN (SELECT {ROW} FROM {rejected})"
    # Screen by 64-bit hashes first (distinct hashes prove distinct keys, and aggregating
    # numbers is several times cheaper than strings); only a collision or a real repeat
    # costs the exact aggregate.
    screen = duck.execute(f"SELECT count(*) = count(DISTINCT hash({keys})) FROM {valid}").fetchone()
    if screen and screen[0]:
        return
    repeated = f"SELECT {keys} FROM {valid} GROUP BY {keys} HAVING count(*) > 1"
    names = ", ".join(c.name for c in table.primary_key.columns)
    why = (
        f"{names}: a newer row with this key ({version_column}) is in this batch"
        if version_column
        else f"{names}: repeated later in this batch (the later row wins)"
    )
    order = f"{quote(version_column)} DESC NULLS LAST, " if version_column else ""
    values = ", ".join(quote(c.name) for c in table.columns)
    losers = (
        f"SELECT {ROW} FROM (SELECT {ROW}, row_number() OVER (PARTITION BY {keys} ORDER BY "
        f"{order}{ROW} DESC) AS _rank FROM {checked} JOIN ({repeated}) USING ({keys}) "
        f"WHERE {ROW} NOT IN (SELECT {ROW} FROM {rejected})) WHERE _rank > 1"
    )
    # Superseded rows were valid: their checked values are what came (typed), kept as raw.
    superseded = f"{rejected}_superseded"
    duck.execute(
        f"CREATE TEMP TABLE {superseded} AS SELECT {ROW}, {literal(why)} AS {REASONS}, "
        f"to_json(struct_pack({values})) AS {RAW} FROM {checked} WHERE {ROW} IN ({losers})"
    )
    duck.execute(f"INSERT INTO {rejected} SELECT * FROM {superseded}")
    duck.execute(f"DROP TABLE {superseded}")


def valid_select(checked: str, rejected: str, columns: Iterable[str]) -> str:
    """SELECT of the valid rows of a checked batch (``columns`` and ``_deleted``): those
    not in the ``rejected`` table of :func:`reject`."""
    listed = ", ".join(quote(c) for c in columns)
    return (
        f"SELECT {listed}, {DELETED} FROM {checked} "
        f"WHERE {ROW} NOT IN (SELECT {ROW} FROM {rejected})"
    )


def staged_types(conn: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """Column name -> DuckDB type of a relation."""
    described = conn.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return {str(row[0]): str(row[1]) for row in described}


def as_staged(frame: pd.DataFrame) -> pd.DataFrame:
    """A batch as DuckDB stages it: ``_row`` added, mixed-type columns as text."""
    staged = frame.reset_index(drop=True).copy()
    for name in staged.columns:
        if staged[name].dtype == object:
            staged[name] = staged[name].map(_as_text, na_action="ignore").astype("string")
    staged.insert(0, ROW, range(len(staged)))
    return staged


def _as_text(value: Any) -> Any:
    """One raw value as text (what a file would hold), None kept."""
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return _json.dumps(value)
    return str(value)


def check(
    table: str,
    frame: pd.DataFrame,
    *,
    now: datetime | None = None,
    tolerance: timedelta = FUTURE_TOLERANCE,
    version_column: str | None = None,
) -> Checked:
    """Split a batch for ``table`` into valid rows and rejected rows with reasons.

    Parameters
    ----------
    table : str
        A data table of the contract (``customers``, ``orders``, ``product_events``,
        ``models``, ``inference_events``).
    frame : pandas.DataFrame
        The batch, one row per record, columns named as the table's (a subset: optional
        columns may be left out).
    now : datetime, optional
        Naive UTC "now" for the future-timestamp check; default the current time.
    tolerance : timedelta
        How far past ``now`` a timestamp may lie.
    version_column : str, optional
        Last-write-wins by this column among rows with the same key (default batch order).

    Returns
    -------
    Checked
        ``valid`` (converted, all of the table's columns) and ``rejected`` (with reasons
        and raw values); together they hold every row of ``frame`` once.

    Raises
    ------
    ConfigError
        ``table`` is not a data table, or the batch's columns do not fit it (one line
        naming the missing and unknown columns).
    """
    target = data_table(table)
    check_columns(target, frame.columns)
    batch = frame.reset_index(drop=True)
    conn = duckdb.connect()
    try:
        conn.execute("SET TimeZone = 'UTC'")
        view = f"_batch_{uuid.uuid4().hex}"
        conn.register(view, as_staged(batch))
        sql = checked_select(target, view, staged_types(conn, view), now=now, tolerance=tolerance)
        conn.execute(f"CREATE TEMP VIEW _checked AS {sql}")
        reject(conn, "_checked", "_rejected", target, version_column=version_column)
        result = conn.execute(
            f"SELECT c.* EXCLUDE ({REASONS}, {RAW}), coalesce(r.{REASONS}, '') AS {REASONS} "
            f"FROM _checked c LEFT JOIN _rejected r ON r.{ROW} = c.{ROW} ORDER BY c.{ROW}"
        ).df()
    finally:
        conn.close()
    bad = result[REASONS] != ""
    valid = typed(target, result[~bad])
    rows = result.loc[bad, ROW].astype(int).tolist()
    rejected = pd.DataFrame(
        {
            "row": rows,
            "reason": result.loc[bad, REASONS].tolist(),
            "raw": _json.records(batch.iloc[rows].reset_index(drop=True)) if rows else [],
        },
        columns=["row", "reason", "raw"],
    )
    return Checked(valid=valid, rejected=rejected)


def typed(table: sa.Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Checked rows with the table's columns in its order, typed as pandas holds them."""
    out = frame[[c.name for c in table.columns]].reset_index(drop=True).copy()
    for column in table.columns:
        kind, values = column.type, out[column.name]
        if isinstance(kind, sa.DateTime):
            out[column.name] = pd.to_datetime(values).astype("datetime64[us]")
        elif isinstance(kind, sa.Date):
            out[column.name] = [None if pd.isna(v) else pd.Timestamp(v).date() for v in values]
        elif isinstance(kind, sa.Integer | sa.SmallInteger):
            out[column.name] = pd.array(values, dtype="Int64")
        elif isinstance(kind, sa.Double | sa.Float | sa.Numeric):
            out[column.name] = pd.to_numeric(values).astype("float64")
        elif isinstance(kind, sa.Boolean):
            out[column.name] = pd.array(values, dtype="boolean")
        else:
            out[column.name] = values.astype("string")
    return out
