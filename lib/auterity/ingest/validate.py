"""Rows checked against the data contract before anything is written.

Every path that brings data in (files, source databases, OpenTelemetry spans) hands its
batch to :func:`check` first. A batch whose *columns* do not fit the table is refused as a
whole with one line (a missing required column, an unknown one). Otherwise each row either
passes, converted to the column types of :mod:`auterity.warehouse.schema`, or is rejected
with every reason it fails, and its raw values kept for the quarantine: nothing is dropped
without a trace, and ``len(valid) + len(rejected) == len(batch)`` always holds.

What is checked, from the contract itself where it says so:

* required columns present and not empty (non-nullable columns without a server default);
* types: timestamps parseable (a zone offset is converted to UTC), numbers numeric,
  whole numbers whole, text no longer than its column, ``pricing_config`` valid JSON;
* allowed values (the contract's ``status``, ``event_type``, ``pricing_kind`` lists and
  ``feedback`` of -1 or 1); ranges: money, tokens, prices and latency not negative,
  ``quality`` between 0 and 1;
* timestamps not later than now plus :data:`FUTURE_TOLERANCE` (clocks drift a little);
* the primary key unique within the batch: the last row with a key wins, earlier ones are
  rejected as superseded (batch order decides, deterministically).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
    return [c.name for c in _table(table).columns if not c.nullable and c.server_default is None]


def _table(table: str) -> sa.Table:
    """The contract's or a declared table, or a ConfigError naming the ones that can be loaded."""
    return custom.data_table(table)


def _check_columns(table: sa.Table, columns: Iterable[str]) -> None:
    """Refuse a batch whose columns do not fit the table, naming what is missing/unknown."""
    given = [str(c) for c in columns]
    known = set(table.columns.keys())
    unknown = [c for c in given if c not in known]
    missing = [c for c in required_columns(table.name) if c not in given]
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


def _blank(series: pd.Series) -> pd.Series:
    """True where a value is missing or empty text."""
    return series.isna() | series.astype("string").str.strip().eq("").fillna(False)


def _convert(column: sa.Column, raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The column converted to its type, and where a present value failed to convert."""
    present = ~_blank(raw)
    kind = column.type
    if isinstance(kind, sa.DateTime):
        parsed = pd.to_datetime(raw.where(present), errors="coerce", utc=True, format="mixed")
        values = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        return values, present & values.isna()
    if isinstance(kind, sa.Integer | sa.SmallInteger):
        numbers = pd.to_numeric(raw.where(present), errors="coerce")
        whole = numbers.notna() & (numbers % 1 == 0)
        values = numbers.where(whole).astype("Int64")
        return values, present & ~whole
    if isinstance(kind, sa.Double | sa.Float | sa.Numeric):
        numbers = pd.to_numeric(raw.where(present), errors="coerce").astype("float64")
        finite = numbers.notna() & numbers.abs().ne(float("inf"))
        return numbers.where(finite), present & ~finite
    text = raw.where(present).astype("string").str.strip()
    length = getattr(kind, "length", None)
    too_long = text.str.len().gt(length).fillna(False) if length else pd.Series(False, raw.index)
    return text.where(~too_long), present & too_long


def _describe(column: sa.Column) -> str:
    """What a value of the column must be, for a rejection reason."""
    kind = column.type
    if isinstance(kind, sa.DateTime):
        return "not a timestamp"
    if isinstance(kind, sa.Integer | sa.SmallInteger):
        return "not a whole number"
    if isinstance(kind, sa.Double | sa.Float | sa.Numeric):
        return "not a number"
    return f"longer than {getattr(kind, 'length', '?')} characters"


def _shown(value: Any) -> str:
    """A raw value as a rejection reason quotes it (shortened)."""
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _not_json(values: pd.Series) -> pd.Series:
    """True where present text is not valid JSON."""

    def bad(value: Any) -> bool:
        if pd.isna(value):
            return False
        try:
            json.loads(value)
        except ValueError:
            return True
        return False

    return values.map(bad).astype(bool)


def check(
    table: str,
    frame: pd.DataFrame,
    *,
    now: datetime | None = None,
    tolerance: timedelta = FUTURE_TOLERANCE,
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
    target = _table(table)
    _check_columns(target, frame.columns)
    batch = frame.reset_index(drop=True)
    reasons: list[list[str]] = [[] for _ in range(len(batch))]

    def flag(mask: pd.Series, reason: str) -> None:
        for position in mask[mask.fillna(False).astype(bool)].index:
            reasons[int(position)].append(reason)

    limit = (now or utcnow()) + tolerance
    converted: dict[str, pd.Series] = {}
    for column in target.columns:
        if column.name not in batch.columns:  # an optional column left out: empty, typed
            empty = pd.Series(pd.NA, index=batch.index, dtype="object")
            converted[column.name] = _convert(column, empty)[0]
            continue
        raw = batch[column.name]
        values, failed = _convert(column, raw)
        flag(failed, f"{column.name}: {_describe(column)} ({'{value}'})")
        converted[column.name] = values
        if not column.nullable and column.server_default is None:
            flag(_blank(raw), f"{column.name}: missing")
        if isinstance(column.type, sa.DateTime):
            flag(values > limit, f"{column.name}: in the future")
        if column.name in NON_NEGATIVE.get(table, ()):
            flag(values < 0, f"{column.name}: negative")
        bounds = BOUNDED.get((table, column.name))
        if bounds:
            flag((values < bounds[0]) | (values > bounds[1]), f"{column.name}: outside {bounds}")
        allowed = ALLOWED.get((table, column.name))
        if allowed:
            outside = values.notna() & ~values.isin(allowed)
            flag(outside, f"{column.name}: not one of {', '.join(map(str, allowed))}")
        if (table, column.name) in JSON_COLUMNS:
            flag(_not_json(values), f"{column.name}: not valid JSON")
    # Among rows that pass everything else, the last row with a key wins.
    keys = [c.name for c in target.primary_key.columns]
    passing = pd.Series([not r for r in reasons], index=batch.index)
    key_frame = pd.DataFrame({k: converted[k] for k in keys})[passing]
    superseded = key_frame.notna().all(axis=1) & key_frame.duplicated(keep="last")
    flag(
        superseded.reindex(batch.index, fill_value=False),
        f"{', '.join(keys)}: repeated later in this batch (the later row wins)",
    )
    for position, why in enumerate(reasons):  # name the offending value in type failures
        reasons[position] = [
            r.replace("{value}", _shown(batch.at[position, r.split(":")[0]]))
            if "{value}" in r
            else r
            for r in why
        ]
    bad = pd.Series([bool(r) for r in reasons], index=batch.index)
    valid = pd.DataFrame(converted)[list(target.columns.keys())][~bad].reset_index(drop=True)
    raw_rows = _json.records(batch[bad].reset_index(drop=True)) if bad.any() else []
    rejected = pd.DataFrame(
        {
            "row": [int(p) for p in bad[bad].index],
            "reason": ["; ".join(reasons[int(p)]) for p in bad[bad].index],
            "raw": raw_rows,
        },
        columns=["row", "reason", "raw"],
    )
    return Checked(valid=valid, rejected=rejected)
