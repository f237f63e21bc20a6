"""One JSON serialiser for frames and values: the CLI, dashboard exports and insight cards.

One rule for times everywhere: a datetime column whose values are all midnight is a date
column (``2026-01-31``), any other is written to the second (``2026-01-31T09:30:00``, with
its offset when it has a zone); a lone timestamp likewise. Missing values (NaN, NaT, None,
infinities) become ``null``; numpy scalars become Python numbers; mappings get string keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd


def _instant(value: datetime | np.datetime64) -> str:
    """A timestamp as its date at midnight, else ISO to the second."""
    stamp = pd.Timestamp(value)
    if stamp == stamp.normalize():
        return stamp.date().isoformat()
    return stamp.isoformat(timespec="seconds")


def json_value(value: Any) -> Any:
    """A JSON-safe Python value (nested mappings and sequences included).

    Parameters
    ----------
    value : Any
        A value, or mappings and sequences of them.

    Returns
    -------
    Any
        Mappings as dicts with string keys, sequences and arrays as lists, numpy scalars as
        Python ones, decimals as floats, NaN, infinities and NaT as None, times by the
        module's rule.
    """
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_value(v) for v in value]
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, Decimal):  # money from a NUMERIC column
        return float(value) if value.is_finite() else None
    if isinstance(value, datetime | np.datetime64):
        return _instant(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, pd.Timedelta):
        return value.total_seconds()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def iso_times(times: pd.Series) -> pd.Series:
    """A datetime column as text by the module's rule (decided for the whole column).

    Parameters
    ----------
    times : pandas.Series
        A datetime64 column (naive or with a zone).

    Returns
    -------
    pandas.Series
        ``YYYY-MM-DD`` when every value is at midnight, else ISO to the second (with the
        offset for zoned times); missing values stay missing.
    """
    present = times.dropna()
    if not bool((present != present.dt.normalize()).any()):
        return times.dt.strftime("%Y-%m-%d")
    if getattr(times.dt, "tz", None) is not None:
        return times.map(lambda t: None if pd.isna(t) else t.isoformat(timespec="seconds"))
    return times.dt.strftime("%Y-%m-%dT%H:%M:%S")


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a frame as JSON-safe records (a named index becomes a column).

    Parameters
    ----------
    frame : pandas.DataFrame
        Any frame.

    Returns
    -------
    list of dict
        One dict per row, column names as strings; datetime columns by the module's rule
        (decided per column, so a column is all dates or all instants).
    """
    out = frame.reset_index() if not isinstance(frame.index, pd.RangeIndex) else frame.copy()
    out.columns = [str(c) for c in out.columns]
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = iso_times(out[col])
    return [
        {key: json_value(cell) for key, cell in row.items()}
        for row in out.astype(object).to_dict(orient="records")
    ]


def dumps(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON text (see :func:`json_value`; frames as :func:`records`).

    Parameters
    ----------
    value : Any
        A frame, or a JSON-able structure of values.
    indent : int, optional
        Indentation for people; None for one compact line.

    Returns
    -------
    str
        JSON (never ``NaN``: missing values are ``null``).
    """
    data = records(value) if isinstance(value, pd.DataFrame) else json_value(value)
    return json.dumps(data, indent=indent, allow_nan=False)
