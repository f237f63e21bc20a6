"""Time series for forecasting and anomaly detection: from a CSV file or the metric layer.

Every series handed to :mod:`auterity.forecast` and :mod:`auterity.anomaly` is a pandas
DataFrame with two columns, ``ds`` (datetime64, time-zone naive, sorted, unique) and ``y``
(float). :func:`read_csv_series` reads any CSV with a time column and a value column and
reports what it had to fix (duplicates merged, gaps); :func:`metric_series` asks the
metric layer for one metric at a grain.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auterity import metrics
from auterity.errors import AuterityError

HEADERS = (("ds", "y"), ("timestamp", "value"))
"""Accepted (time, value) header pairs, matched case-insensitively."""

DUPLICATES_MERGED_BY = "mean"
"""How rows sharing a timestamp are merged into one."""


@dataclass(frozen=True)
class SeriesLoad:
    """A series read from a file, with a report of what was found and fixed.

    ``frame`` has columns ``ds`` (datetime64, naive, sorted, unique) and ``y`` (float).
    ``report`` keys: ``source``, ``rows_read``, ``rows``, ``columns`` (``{"ds": name,
    "y": name}`` as spelled in the file), ``duplicates`` (rows that shared a timestamp
    with an earlier row), ``duplicates_merged_by`` (``"mean"``), ``missing_values`` (rows
    without a value, dropped), ``gaps`` (missing periods at the inferred frequency),
    ``frequency`` (a pandas offset alias such as ``"D"``, ``"MS"``, ``"5min"``, or None
    when the timestamps are irregular), ``start`` and ``end``.
    """

    frame: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


def _read_text(path: Path) -> str:
    """The file's text with every line ending (CR, LF, CRLF) turned into LF."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AuterityError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AuterityError(f"{path}: is a directory, not a CSV file") from None
    except OSError as exc:
        raise AuterityError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AuterityError(f"{path}: not a UTF-8 text file") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _pick_columns(path: Path, columns: Sequence[str]) -> tuple[str, str]:
    """The (time, value) column names among ``columns``."""
    lowered = {str(c).strip().lower(): c for c in columns}
    for time_name, value_name in HEADERS:
        if time_name in lowered and value_name in lowered:
            return lowered[time_name], lowered[value_name]
    found = ", ".join(repr(str(c)) for c in columns) or "none"
    raise AuterityError(
        f"{path}: expected a header 'ds,y' or 'timestamp,value' (columns found: {found})"
    )


def _parse_times(path: Path, values: pd.Series, column: str) -> pd.Series:
    """Parse timestamps; offsets are converted to UTC, the result is time-zone naive."""
    text = values.astype("string").str.strip()
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    if parsed.isna().any():
        retry = pd.to_datetime(text[parsed.isna()], errors="coerce", utc=True, format="mixed")
        parsed = parsed.fillna(retry)
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise AuterityError(
            f"{path}: line {row + 2}: {column} {text.iloc[row]!r} is not a date or timestamp"
            f" ({int(bad.sum())} bad value(s) in all)"
        )
    return parsed.dt.tz_convert(None)


def _parse_values(path: Path, values: pd.Series, column: str) -> pd.Series:
    """Parse numbers; empty cells become NaN, anything else non-numeric is an error."""
    text = values.astype("string").str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna() & text.notna() & (text != "") & ~text.str.lower().isin(["nan", "na"])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise AuterityError(
            f"{path}: line {row + 2}: {column} {text.iloc[row]!r} is not a number"
            f" ({int(bad.sum())} bad value(s) in all)"
        )
    return numbers.astype(float)


def infer_frequency(ds: pd.Series) -> str | None:
    """A pandas offset alias for sorted, unique timestamps, or None if irregular.

    The typical step is the median difference; monthly and weekly steps are recognised
    by the calendar (month starts, month ends, the weekday).
    """
    times = pd.DatetimeIndex(ds).as_unit("ns")
    if len(times) < 2:
        return None
    steps = np.diff(times.asi8)
    step = pd.Timedelta(int(np.median(steps)))
    if pd.Timedelta(days=28) <= step <= pd.Timedelta(days=31):
        if (times.day == 1).all():
            return "MS"
        if times.is_month_end.all():
            return "ME"
        return None
    if pd.Timedelta(days=89) <= step <= pd.Timedelta(days=92) and (times.day == 1).all():
        return "QS"
    if step == pd.Timedelta(days=7):
        weekday = {times[0].day_of_week}
        if set(times.day_of_week) == weekday:
            return "W-" + ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")[weekday.pop()]
        return None
    if step <= pd.Timedelta(0):
        return None
    if step == pd.Timedelta(days=1):
        return "D"
    # A regular step must account for most intervals; irregular sampling has no frequency.
    if np.mean(steps == step.value) < 0.5:
        return None
    return pd.tseries.frequencies.to_offset(step).freqstr


def count_gaps(ds: pd.Series, frequency: str | None) -> int:
    """Missing periods between the first and last timestamp at ``frequency``."""
    if frequency is None or len(ds) < 2:
        return 0
    times = pd.DatetimeIndex(ds).as_unit("ns")
    expected = pd.date_range(times[0], times[-1], freq=frequency)
    return len(expected.difference(times))


def read_csv_series(path: str | Path) -> SeriesLoad:
    """Read a time series from a CSV file with a time column and a value column.

    Parameters
    ----------
    path : str or Path
        A CSV file whose header is ``ds,y`` or ``timestamp,value`` (any case, quoted or
        not, other columns ignored), with LF, CRLF or bare CR line endings.

    Returns
    -------
    SeriesLoad
        ``.frame`` (``ds``, ``y``: sorted, one row per timestamp, rows with duplicate
        timestamps merged by their mean, rows without a value dropped) and ``.report``
        (what was read and fixed; see :class:`SeriesLoad`).

    Raises
    ------
    AuterityError
        The file is missing, empty, has no recognisable header, a timestamp or a value
        cannot be parsed, or no row has a value; the message names the file.
    """
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise AuterityError(f"{path}: the file is empty")
    try:
        raw = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise AuterityError(f"{path}: not a valid CSV file: {first}") from None
    time_col, value_col = _pick_columns(path, list(raw.columns))
    rows_read = len(raw)
    if rows_read == 0:
        raise AuterityError(f"{path}: the header is there but there are no rows")
    ds = _parse_times(path, raw[time_col], str(time_col))
    y = _parse_values(path, raw[value_col], str(value_col))
    frame = pd.DataFrame({"ds": ds.to_numpy(), "y": y.to_numpy()})
    missing = int(frame["y"].isna().sum())
    frame = frame.dropna(subset=["y"])
    if frame.empty:
        raise AuterityError(f"{path}: no row has a value in column {value_col!r}")
    duplicates = int(frame["ds"].duplicated().sum())
    frame = (
        frame.groupby("ds", sort=True, as_index=False)["y"]
        .agg(DUPLICATES_MERGED_BY)
        .reset_index(drop=True)
    )
    frame["ds"] = pd.to_datetime(frame["ds"]).astype("datetime64[ns]")
    frame["y"] = frame["y"].astype(float)
    frequency = infer_frequency(frame["ds"])
    report = {
        "source": str(path),
        "rows_read": rows_read,
        "rows": len(frame),
        "columns": {"ds": str(time_col), "y": str(value_col)},
        "duplicates": duplicates,
        "duplicates_merged_by": DUPLICATES_MERGED_BY,
        "missing_values": missing,
        "gaps": count_gaps(frame["ds"], frequency),
        "frequency": frequency,
        "start": frame["ds"].iloc[0].isoformat(),
        "end": frame["ds"].iloc[-1].isoformat(),
    }
    return SeriesLoad(frame=frame, report=report)


def grain_of(frequency: str | None) -> str:
    """The forecasting grain (day, week, month) closest to a pandas frequency."""
    if frequency is None:
        return "day"
    if frequency.startswith("W"):
        return "week"
    if frequency in ("MS", "ME", "M", "QS"):
        return "month"
    return "day"


def metric_series(
    metric: str,
    *,
    start: date,
    end: date,
    grain: str = "day",
    url: str | None = None,
    filters: Mapping[str, str | Sequence[str]] | None = None,
    tz: str | None = None,
) -> pd.DataFrame:
    """One metric from the metric layer as a ``ds, y`` series.

    Parameters
    ----------
    metric : str
        A metric name from the catalog (``auterity metrics list``).
    start, end : date
        Local dates, ``start`` inclusive, ``end`` exclusive.
    grain : {"day", "week", "month"}
        One row per period (weeks start on Monday).
    url : str, optional
        Warehouse URL (default ``AUTERITY_DB_URL``).
    filters : mapping, optional
        ``{dimension: value or [values]}``, as ``where`` in :func:`auterity.metrics.query`.
    tz : str, optional
        Business time zone (default ``AUTERITY_TIMEZONE``).

    Returns
    -------
    pandas.DataFrame
        Columns ``ds`` (period start) and ``y`` (float); every period in the range is a row,
        periods without data are 0 (sums and counts; averages and ratios of nothing are 0
        too, so a detector sees the outage).
    """

    frame = metrics.query(
        [metric], start=start, end=end, grain=grain, where=filters, tz=tz, url=url
    )
    out = pd.DataFrame(
        {
            "ds": pd.to_datetime(frame["period"]).astype("datetime64[ns]"),
            "y": pd.to_numeric(frame[metric], errors="coerce").astype(float).fillna(0.0),
        }
    )
    return out.sort_values("ds", ignore_index=True)
