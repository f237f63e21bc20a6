"""The daily rollups of inference_events: equal to the raw table, kept current by every write.

Counts, sums and costs must equal the raw events exactly; latency percentiles read from
the histogram must be within the stated relative error (``rollups.LATENCY_ERROR``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from tests.conftest import read_table

from auterity import ingest, modelhub, warehouse
from auterity.cli import cli
from auterity.warehouse import retention, rollups

NOW = datetime(2026, 11, 2, 12, 0)
SUMS = [
    "requests",
    "ok_requests",
    "errors",
    "timeouts",
    "input_tokens",
    "output_tokens",
    "quality_n",
    "quality_sum",
    "quality_sumsq",
    "reported_cost",
    "pending",
    "pending_input",
    "pending_output",
]


def _expected(url: str, tz: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two rollup tables recomputed with pandas from the raw events."""
    raw = read_table(url, "inference_events")
    if raw.empty:
        return pd.DataFrame(columns=["day", "model_id", *SUMS]), pd.DataFrame()
    local = pd.to_datetime(raw["ts"]).dt.tz_localize("UTC").dt.tz_convert(ZoneInfo(tz))
    raw["day"] = local.dt.date
    pending = raw["cost"].isna() & (raw["status"] != "error")
    raw = raw.assign(
        ok=(raw["status"] == "ok").astype(int),
        err=(raw["status"] == "error").astype(int),
        tmo=(raw["status"] == "timeout").astype(int),
        qsq=raw["quality"] ** 2,
        pend=pending.astype(int),
        pin=raw["input_tokens"].where(pending),
        pout=raw["output_tokens"].where(pending),
    )
    grouped = raw.groupby(["day", "model_id"])
    daily = pd.DataFrame(
        {
            "requests": grouped.size(),
            "ok_requests": grouped["ok"].sum(),
            "errors": grouped["err"].sum(),
            "timeouts": grouped["tmo"].sum(),
            "input_tokens": grouped["input_tokens"].sum(),
            "output_tokens": grouped["output_tokens"].sum(),
            "quality_n": grouped["quality"].count(),
            "quality_sum": grouped["quality"].sum(min_count=1),
            "quality_sumsq": grouped["qsq"].sum(min_count=1),
            "reported_cost": grouped["cost"].sum(min_count=1),
            "pending": grouped["pend"].sum(),
            "pending_input": grouped["pin"].sum(min_count=1),
            "pending_output": grouped["pout"].sum(min_count=1),
        }
    ).reset_index()
    ok = raw[raw["status"] == "ok"]
    counts = ok.groupby(["day", "model_id"]).size().rename("requests").reset_index()
    return daily, counts


def _assert_rollups_current(url: str, tz: str = "UTC") -> None:
    daily, counts = _expected(url, tz)
    got = read_table(url, "inference_daily")
    key = ["day", "model_id"]
    got = got.sort_values(key).reset_index(drop=True)
    daily = daily.sort_values(key).reset_index(drop=True)
    assert got[key].astype(str).values.tolist() == daily[key].astype(str).values.tolist()
    for column in SUMS:
        np.testing.assert_allclose(
            pd.to_numeric(got[column]).astype(float),
            pd.to_numeric(daily[column]).astype(float),
            rtol=1e-12,
            err_msg=column,
        )
    histogram = read_table(url, "inference_latency_daily")
    per_day = (
        histogram.groupby(["day", "model_id"])["requests"].sum().rename("requests").reset_index()
        if not histogram.empty
        else pd.DataFrame(columns=[*key, "requests"])
    )
    merged = per_day.astype({"day": str}).merge(
        counts.astype({"day": str}), on=key, how="outer", suffixes=("", "_raw")
    )
    assert (merged["requests"] == merged["requests_raw"]).all(), merged


def _events(ids: list[str], ts: list[str], **columns: list[object]) -> pd.DataFrame:
    n = len(ids)
    frame = pd.DataFrame(
        {
            "request_id": ids,
            "ts": ts,
            "model_id": ["m1"] * n,
            "latency_ms": [100.0 + i for i in range(n)],
            "input_tokens": [10] * n,
            "output_tokens": [5] * n,
            "status": ["ok"] * n,
        }
    )
    for name, values in columns.items():
        frame[name] = values
    return frame


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, _isolated_warehouse: str) -> str:
    target = _isolated_warehouse if request.param == "duckdb" else request.getfixturevalue("pg_url")
    warehouse.ensure_schema(target)
    return target


# --------------------------------------------------------------------------- kept current


def test_every_write_of_events_keeps_the_rollups_equal_to_the_raw_table(url: str) -> None:
    with warehouse.connect(url) as conn:
        assert rollups.built_tz(conn) is None  # nothing written yet: not built
    first = _events(
        ["a", "b", "c", "d"],
        ["2026-10-01 10:00", "2026-10-01 23:59", "2026-10-02 00:00", "2026-10-03 08:00"],
        status=["ok", "error", "timeout", "ok"],
        cost=[0.5, None, None, None],
        quality=[0.9, None, 0.4, 0.7],
    )
    ingest.load("inference_events", first, source="t", url=url, now=NOW)
    with warehouse.connect(url) as conn:
        assert rollups.built_tz(conn) == "UTC"  # the first write built them
    _assert_rollups_current(url)
    # an upsert moves "a" to another day and fails it; "e" is new on a fourth day
    moved = _events(["a", "e"], ["2026-10-05 01:00", "2026-10-04 12:00"], status=["error", "ok"])
    ingest.load("inference_events", moved, source="t", url=url, now=NOW)
    _assert_rollups_current(url)
    assert "2026-10-05" in read_table(url, "inference_daily")["day"].astype(str).tolist()
    # a delete empties a day
    gone = _events(["d"], ["2026-10-03 08:00"]).assign(deleted=[True])
    ingest.load("inference_events", gone, source="t", url=url, now=NOW, deleted_column="deleted")
    _assert_rollups_current(url)
    assert "2026-10-03" not in read_table(url, "inference_daily")["day"].astype(str).tolist()
    # the plain append path
    warehouse.append_data(
        "inference_events",
        _events(["f"], ["2026-10-02 05:00"]).assign(ts=lambda f: pd.to_datetime(f["ts"])),
        url=url,
    )
    _assert_rollups_current(url)
    # retention drops the purged days from the rollups
    retention.purge(33, now=datetime(2026, 11, 4, 6, 0), url=url)
    _assert_rollups_current(url)
    assert min(read_table(url, "inference_daily")["day"].astype(str)) >= "2026-10-02"


def test_a_local_zone_cuts_the_days_and_a_question_in_another_zone_reads_raw(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTERITY_TIMEZONE", "America/New_York")
    events = _events(["a", "b", "c"], ["2026-10-01 03:00", "2026-10-01 05:00", "2026-10-02 03:59"])
    ingest.load("inference_events", events, source="t", url=url, now=NOW)
    _assert_rollups_current(url, "America/New_York")  # 03:00 UTC is the evening before there
    days = sorted(read_table(url, "inference_daily")["day"].astype(str))
    assert days == ["2026-09-30", "2026-10-01"]
    assert rollups.usable("America/New_York", url) and not rollups.usable("UTC", url)
    board = modelhub.leaderboard(date(2026, 9, 30), date(2026, 10, 1), url=url)
    assert board["requests"].tolist() == [1]
    # asked in UTC: the raw table answers, the same numbers as without rollups
    in_utc = modelhub.leaderboard(date(2026, 10, 1), date(2026, 10, 2), tz="UTC", url=url)
    monkeypatch.setenv("AUTERITY_ROLLUPS", "off")
    assert in_utc.equals(
        modelhub.leaderboard(date(2026, 10, 1), date(2026, 10, 2), tz="UTC", url=url)
    )
    assert in_utc["requests"].tolist() == [2]
    # rebuilt in UTC (the command), the rollups answer UTC questions
    monkeypatch.setenv("AUTERITY_ROLLUPS", "on")
    monkeypatch.setenv("AUTERITY_DB_URL", url)
    result = CliRunner().invoke(cli, ["db", "rollups", "--tz", "UTC"])
    assert result.exit_code == 0, result.output
    assert "inference_daily: 2 rows" in result.output
    assert rollups.usable("UTC", url)
    _assert_rollups_current(url, "UTC")


# --------------------------------------------------------------------------- answers


def test_the_leaderboard_from_rollups_equals_the_raw_one(
    analytics_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the demo world on both databases, several periods: exact but for percentiles."""
    _assert_rollups_current(analytics_url)  # demo-data built them
    for start, end in (
        (date(2026, 6, 1), date(2026, 11, 1)),
        (date(2026, 9, 14), date(2026, 9, 15)),
    ):
        monkeypatch.setenv("AUTERITY_ROLLUPS", "on")
        fast = modelhub.leaderboard(start, end, url=analytics_url)
        monkeypatch.setenv("AUTERITY_ROLLUPS", "off")
        raw = modelhub.leaderboard(start, end, url=analytics_url)
        assert len(fast) == len(raw) > 0
        for column in modelhub.LEADERBOARD_COLUMNS:
            if column.startswith("p") and column.endswith("_latency_ms"):
                np.testing.assert_allclose(fast[column], raw[column], rtol=rollups.LATENCY_ERROR)
            elif fast[column].dtype.kind in "fi":
                np.testing.assert_allclose(fast[column], raw[column], rtol=1e-9, err_msg=column)
            else:
                assert fast[column].tolist() == raw[column].tolist(), column


@pytest.mark.parametrize(
    "name, latencies",
    [
        ("lognormal", np.random.default_rng(1).lognormal(6.0, 1.2, 3001)),
        ("integers with ties", np.random.default_rng(2).integers(1, 40, 999).astype(float)),
        (
            "zeros and tiny",
            np.concatenate([np.zeros(30), np.full(30, 0.001), np.arange(1.0, 41.0)]),
        ),
        ("one value", np.array([250.0])),
        ("two far apart", np.array([1.0, 100_000.0])),
    ],
)
def test_percentiles_from_the_histogram_are_within_the_stated_bound(
    name: str, latencies: np.ndarray, _isolated_warehouse: str
) -> None:
    url = _isolated_warehouse
    n = len(latencies)
    start = datetime(2026, 10, 1)
    events = _events(
        [f"r{i}" for i in range(n)],
        [(start + timedelta(seconds=30 * i)).isoformat(sep=" ") for i in range(n)],
    ).assign(latency_ms=latencies)
    ingest.load("inference_events", events, source="t", url=url, now=NOW)
    board = modelhub.leaderboard(date(2026, 10, 1), date(2026, 11, 1), url=url)
    for p in (50, 95, 99):
        exact = float(np.percentile(latencies, p))
        got = float(board.iloc[0][f"p{p}_latency_ms"])
        assert abs(got - exact) <= rollups.LATENCY_ERROR * exact + 1e-12, (name, p, got, exact)


def test_percentiles_of_an_empty_histogram() -> None:
    empty = pd.DataFrame(columns=["model_id", "bucket", "requests"])
    assert rollups.percentiles(empty, (50, 95), by="model_id").columns.tolist() == [
        "model_id",
        "p50_latency_ms",
        "p95_latency_ms",
    ]
    assert rollups.bucket_value(np.array([rollups.ZERO_BUCKET]))[0] == 0.0


def test_a_write_that_skips_the_rollups_puts_them_out_of_use_until_events_land(
    url: str,
) -> None:
    """Your own SQL followed by mark_data_changed (the data contract's way): the rollups
    no longer match, so readers use raw events; the next load of events rebuilds them.
    A load that touches no events keeps them in use."""
    events = _events(["a", "b"], ["2026-10-01 10:00", "2026-10-02 10:00"])
    ingest.load("inference_events", events, source="t", url=url, now=NOW)
    assert rollups.usable("UTC", url)
    customers = pd.DataFrame(
        {"customer_id": ["c1"], "signup_ts": ["2026-01-01 00:00"], "country": ["DE"]}
    )
    ingest.load("customers", customers, source="t", url=url, now=NOW)
    assert rollups.usable("UTC", url)  # no events changed: still the same numbers
    with warehouse.connect(url, write=True) as conn:
        conn.exec_driver_sql("UPDATE inference_events SET model_id = 'm2' WHERE request_id = 'a'")
        warehouse.mark_data_changed(conn)
    assert not rollups.usable("UTC", url)
    board = modelhub.leaderboard(date(2026, 10, 1), date(2026, 10, 3), tz="UTC", url=url)
    assert sorted(board["model_id"]) == ["m1", "m2"]  # the raw events answered
    more = _events(["c"], ["2026-10-05 10:00"])
    ingest.load("inference_events", more, source="t", url=url, now=NOW)
    assert rollups.usable("UTC", url)
    _assert_rollups_current(url)  # rebuilt whole, the edit of "a" included
