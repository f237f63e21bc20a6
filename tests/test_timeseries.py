"""Series loading: CSV variants (headers, quoting, line endings, duplicates, gaps), errors,
frequency inference, and metric series from the metric layer."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from auterity import timeseries
from auterity.errors import AuterityError

ROWS = [("2024-01-01", "1"), ("2024-01-02", "2.5"), ("2024-01-03", "4")]


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


@pytest.mark.parametrize(
    ("header", "newline", "quote"),
    [
        ("ds,y", "\n", ""),
        ("timestamp,value", "\r\n", ""),
        ("DS,Y", "\r", ""),
        ("Timestamp,Value", "\n", '"'),
        ("ds,y", "\r", '"'),
        ("timestamp,value", "\r\n", '"'),
    ],
)
def test_csv_variants_read_the_same(tmp_path: Path, header: str, newline: str, quote: str) -> None:
    cols = ",".join(f"{quote}{c}{quote}" for c in header.split(","))
    lines = [cols] + [f"{quote}{d}{quote},{v}" for d, v in ROWS]
    path = _write(tmp_path / "s.csv", newline.join(lines) + newline)
    load = timeseries.read_csv_series(path)
    assert list(load.frame.columns) == ["ds", "y"]
    assert load.frame["ds"].dtype == "datetime64[ns]"
    assert load.frame["y"].tolist() == [1.0, 2.5, 4.0]
    assert load.frame["ds"].dt.strftime("%Y-%m-%d").tolist() == [d for d, _ in ROWS]
    assert load.report["rows_read"] == 3
    assert load.report["duplicates"] == 0 and load.report["gaps"] == 0
    assert load.report["frequency"] == "D"
    assert load.report["columns"] == dict(zip(("ds", "y"), header.split(","), strict=True))


def test_no_final_newline_extra_columns_and_bom(tmp_path: Path) -> None:
    text = "\ufeffid,timestamp,value\n1,2024-01-01 00:00:00,3\n2,2024-01-01 00:05:00,4"
    load = timeseries.read_csv_series(_write(tmp_path / "s.csv", text))
    assert load.frame["y"].tolist() == [3.0, 4.0]
    assert load.report["frequency"] == "5min"


def test_duplicates_merged_by_mean_unsorted_input_and_gaps(tmp_path: Path) -> None:
    text = (
        "ds,y\n2024-01-05,10\n2024-01-01,1\n2024-01-02,2\n2024-01-02,4\n2024-01-02,6\n"
        "2024-01-06,7\n"
    )
    load = timeseries.read_csv_series(_write(tmp_path / "s.csv", text))
    frame = load.frame
    assert frame["ds"].is_monotonic_increasing and frame["ds"].is_unique
    assert frame.set_index(frame["ds"].dt.day)["y"].to_dict() == {1: 1, 2: 4, 5: 10, 6: 7}
    assert load.report["duplicates"] == 2
    assert load.report["duplicates_merged_by"] == "mean"
    assert load.report["gaps"] == 2  # Jan 3 and Jan 4
    assert load.report["rows_read"] == 6 and load.report["rows"] == 4
    assert (load.report["start"], load.report["end"]) == (
        "2024-01-01T00:00:00",
        "2024-01-06T00:00:00",
    )


def test_missing_values_dropped_and_counted(tmp_path: Path) -> None:
    text = "ds,y\n2024-01-01,1\n2024-01-02,\n2024-01-03,NaN\n2024-01-04,4\n"
    load = timeseries.read_csv_series(_write(tmp_path / "s.csv", text))
    assert load.frame["y"].tolist() == [1.0, 4.0]
    assert load.report["missing_values"] == 2


def test_time_zone_offsets_become_naive_utc(tmp_path: Path) -> None:
    text = "ds,y\n2024-01-01T01:00:00+01:00,1\n2024-01-01T01:00:00Z,2\n"
    frame = timeseries.read_csv_series(_write(tmp_path / "s.csv", text)).frame
    assert frame["ds"].dt.tz is None
    assert frame["ds"].astype(str).tolist() == ["2024-01-01 00:00:00", "2024-01-01 01:00:00"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("date,amount\n2024-01-01,1\n", "expected a header 'ds,y' or 'timestamp,value'"),
        ("ds,y\n", "no rows"),
        ("ds,y\n2024-01-01,1\nyesterday,2\n", "line 3: ds 'yesterday' is not a date"),
        ("ds,y\n2024-01-01,1\n2024-01-02,lots\n", "line 3: y 'lots' is not a number"),
        ("ds,y\n2024-01-01,\n", "no row has a value"),
        ('ds,y\n"2024-01-01,1\n', "not a valid CSV file"),
    ],
)
def test_bad_files_name_file_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(AuterityError, match=r"bad\.csv: ") as info:
        timeseries.read_csv_series(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(AuterityError, match="no such file"):
        timeseries.read_csv_series(tmp_path / "missing.csv")
    with pytest.raises(AuterityError, match="is a directory"):
        timeseries.read_csv_series(tmp_path)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"ds,y\n2024-01-01,\xe9\n")
    with pytest.raises(AuterityError, match="not a UTF-8 text file"):
        timeseries.read_csv_series(latin)


@pytest.mark.parametrize(
    ("stamps", "expected"),
    [
        (pd.date_range("2020-01-01", periods=6, freq="MS"), "MS"),
        (pd.date_range("2020-01-31", periods=6, freq="ME"), "ME"),
        (pd.date_range("2020-01-01", periods=6, freq="QS"), "QS"),
        (pd.date_range("2024-01-01", periods=6, freq="W-MON"), "W-MON"),
        (pd.date_range("2024-01-01", periods=6, freq="h"), "h"),
        (pd.date_range("2024-01-01", periods=6, freq="30min"), "30min"),
        (pd.DatetimeIndex(["2024-01-01", "2024-01-02"]), "D"),
        (pd.DatetimeIndex(["2024-01-01"]), None),
        (pd.DatetimeIndex(["2024-01-01", "2024-01-08", "2024-01-16"]), None),
        (pd.DatetimeIndex(["2024-01-15", "2024-02-15", "2024-03-20"]), None),
        (
            pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 00:07", "2024-01-01 00:20"]),
            None,
        ),
    ],
)
def test_infer_frequency(stamps: pd.DatetimeIndex, expected: str | None) -> None:
    assert timeseries.infer_frequency(pd.Series(stamps)) == expected


def test_grain_of() -> None:
    assert [timeseries.grain_of(f) for f in ("D", "W-MON", "MS", "h", None)] == [
        "day",
        "week",
        "month",
        "day",
        "day",
    ]
    assert timeseries.count_gaps(pd.Series(pd.DatetimeIndex(["2024-01-01"])), "D") == 0


def test_metric_series_matches_rows_and_zero_fills(analytics_duckdb: str) -> None:
    from conftest import read_table

    url = analytics_duckdb
    start, end = date(2026, 10, 20), date(2026, 11, 5)
    series = timeseries.metric_series("orders", start=start, end=end, grain="day", url=url)
    assert list(series.columns) == ["ds", "y"]
    assert series["ds"].dtype == "datetime64[ns]" and series["y"].dtype == float
    assert len(series) == 16  # every day, including the 4 after the data ends (Nov 1)
    orders = read_table(url, "orders")
    done = orders[(orders["status"] == "completed") & (orders["ts"] >= pd.Timestamp(start))]
    by_day = done.groupby(pd.to_datetime(done["ts"]).dt.floor("D")).size()
    expected = by_day.reindex(pd.date_range(start, end, freq="D", inclusive="left"), fill_value=0)
    assert series["y"].tolist() == expected.astype(float).tolist()
    assert (series["y"].iloc[-4:] == 0).all()
    weekly = timeseries.metric_series(
        "revenue", start=start, end=end, grain="week", url=url, filters={"region": "EMEA"}
    )
    assert (weekly["ds"].dt.day_of_week == 0).all()
    everywhere = timeseries.metric_series("revenue", start=start, end=end, grain="week", url=url)
    assert 0 < weekly["y"].sum() < everywhere["y"].sum()
