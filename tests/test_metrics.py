"""The metric layer: YAML validation, and answers equal to independent pandas computations
on DuckDB and on PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auterity import metrics, warehouse
from auterity.errors import ConfigError
from conftest import read_table

TZ = "Europe/Berlin"
START, END = date(2026, 7, 1), date(2026, 10, 1)


@pytest.fixture
def duck(analytics_duckdb: str) -> str:
    return analytics_duckdb


@pytest.fixture
def pg(analytics_pg: str) -> str:
    return analytics_pg


@pytest.fixture
def url(analytics_url: str) -> str:
    return analytics_url


def _raw(url: str, table: str) -> pd.DataFrame:
    return read_table(url, table)


def _local(ts: pd.Series) -> pd.Series:
    """UTC-naive timestamps -> naive local time in TZ (independent of the SQL path)."""
    return pd.to_datetime(ts).dt.tz_localize("UTC").dt.tz_convert(TZ).dt.tz_localize(None)


def _in_range(frame: pd.DataFrame, col: str) -> pd.DataFrame:
    local = _local(frame[col])
    keep = (local >= pd.Timestamp(START)) & (local < pd.Timestamp(END))
    return frame[keep].assign(local=local[keep])


# --------------------------------------------------------------------------- correctness


def test_revenue_orders_aov_by_week(url: str) -> None:
    got = metrics.query(
        ["revenue", "orders", "average_order_value"],
        start=START,
        end=END,
        grain="week",
        tz=TZ,
        url=url,
    )
    orders = _in_range(_raw(url, "orders"), "ts")
    orders = orders[orders["status"] == "completed"]
    week = orders["local"].dt.to_period("W-SUN").dt.start_time
    expected = (
        orders.assign(amount=orders["amount"].astype(float), week=week)
        .groupby("week")
        .agg(revenue=("amount", "sum"), orders=("order_id", "count"))
    )
    got = got.set_index("period")
    assert list(got.index) == list(pd.date_range("2026-06-29", "2026-09-28", freq="W-MON"))
    expected = expected.rename(columns={"revenue": "revenue_pd", "orders": "orders_pd"})
    joined = got.join(expected).fillna({"revenue_pd": 0, "orders_pd": 0})
    np.testing.assert_allclose(joined["revenue"], joined["revenue_pd"], rtol=1e-9)
    assert (joined["orders"] == joined["orders_pd"]).all()
    np.testing.assert_allclose(
        joined["average_order_value"], joined["revenue_pd"] / joined["orders_pd"], rtol=1e-9
    )


def test_latency_percentiles_and_error_rate_by_model(url: str) -> None:
    got = metrics.query(
        ["p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "error_rate", "requests"],
        start=START,
        end=END,
        grain=None,
        by=["model"],
        tz=TZ,
        url=url,
    ).set_index("model")
    events = _in_range(_raw(url, "inference_events"), "ts")
    for model, rows in events.groupby("model_id"):
        ok = rows.loc[rows["status"] == "ok", "latency_ms"].astype(float)
        for p in (50, 95, 99):
            assert got.loc[model, f"p{p}_latency_ms"] == pytest.approx(
                np.percentile(ok, p), rel=1e-9
            )
        assert got.loc[model, "requests"] == len(rows)
        assert got.loc[model, "error_rate"] == pytest.approx((rows["status"] == "error").mean())


def test_daily_active_customers_and_conversion_monthly(url: str) -> None:
    dau = metrics.query(
        ["active_customers"], start=START, end=END, grain="day", tz=TZ, url=url
    ).set_index("period")["active_customers"]
    events = _in_range(_raw(url, "inference_events"), "ts")
    expected = events.groupby(events["local"].dt.normalize())["customer_id"].nunique()
    assert len(dau) == (END - START).days
    pd.testing.assert_series_equal(
        dau[expected.index].astype(int),
        expected.astype(int),
        check_names=False,
        check_index_type=False,
    )

    conv = metrics.query(
        ["conversion_rate", "signups", "visits"],
        start=START,
        end=END,
        grain="month",
        tz=TZ,
        url=url,
    ).set_index("period")
    funnel = _in_range(_raw(url, "product_events"), "ts")
    month = funnel["local"].dt.to_period("M").dt.start_time
    counts = funnel.groupby([month, "event_type"]).size().unstack()
    np.testing.assert_allclose(conv["conversion_rate"], counts["signup"] / counts["visit"])


def test_breakdown_by_joined_dimension_with_filter(url: str) -> None:
    got = metrics.query(
        ["revenue"],
        start=START,
        end=END,
        grain=None,
        by=["segment"],
        where={"region": ["EMEA", "NA"]},
        tz=TZ,
        url=url,
    ).set_index("segment")
    orders = _in_range(_raw(url, "orders"), "ts").merge(_raw(url, "customers"), on="customer_id")
    orders = orders[(orders["status"] == "completed") & orders["region"].isin(["EMEA", "NA"])]
    expected = orders.groupby("segment")["amount"].apply(lambda a: a.astype(float).sum())
    np.testing.assert_allclose(got["revenue"].sort_index(), expected.sort_index(), rtol=1e-9)


def test_compare_previous_period_and_last_year(url: str) -> None:
    start, end = date(2026, 9, 1), date(2026, 10, 1)
    got = metrics.compare(["orders", "quality"], start=start, end=end, tz=TZ, url=url).set_index(
        "metric"
    )
    orders = _raw(url, "orders")
    orders = orders[orders["status"] == "completed"].assign(local=_local(orders["ts"]))

    def count(a: date, b: date) -> int:
        return int(
            ((orders["local"] >= pd.Timestamp(a)) & (orders["local"] < pd.Timestamp(b))).sum()
        )

    assert got.loc["orders", "current"] == count(start, end)
    assert got.loc["orders", "previous"] == count(date(2026, 8, 2), start)
    assert got.loc["orders", "previous_delta"] == count(start, end) - count(date(2026, 8, 2), start)
    assert got.loc["orders", "previous_delta_pct"] == pytest.approx(
        count(start, end) / count(date(2026, 8, 2), start) - 1
    )
    # The demo history starts in June 2026: last year has no orders (zero) and no quality (NaN).
    assert got.loc["orders", "last_year"] == 0
    assert np.isnan(got.loc["orders", "last_year_delta_pct"])
    assert np.isnan(got.loc["quality", "last_year"])
    assert got.loc["quality", "unit"] == "number" and got.loc["orders", "good"] == "up"


def test_overlapping_windows_count_a_row_in_every_window(url: str) -> None:
    """The 30 days before two anchors a week apart overlap: each window gets its own total
    (distinct customers, revenue and a ratio), as if asked alone."""
    windows = {
        "now": (date(2026, 9, 8), date(2026, 10, 8)),
        "week_before": (date(2026, 9, 1), date(2026, 10, 1)),
        "disjoint": (date(2026, 7, 1), date(2026, 7, 8)),
    }
    names = ["active_customers", "revenue", "average_order_value"]
    got = metrics.query_windows(names, windows, tz=TZ, url=url).set_index("period")
    events = _raw(url, "inference_events").assign(local=lambda f: _local(f["ts"]))
    orders = _raw(url, "orders")
    done = orders[orders["status"] == "completed"].assign(local=lambda f: _local(f["ts"]))
    done["amount"] = done["amount"].astype(float)
    for label, (a, b) in windows.items():
        lo, hi = pd.Timestamp(a), pd.Timestamp(b)
        active = events[(events["local"] >= lo) & (events["local"] < hi)]
        paid = done[(done["local"] >= lo) & (done["local"] < hi)]
        assert got.loc[label, "active_customers"] == active["customer_id"].nunique(), label
        assert got.loc[label, "revenue"] == pytest.approx(paid["amount"].sum()), label
        assert got.loc[label, "average_order_value"] == pytest.approx(paid["amount"].mean())


@pytest.mark.postgres
def test_duckdb_and_postgres_agree(duck: str, pg: str) -> None:
    names = [
        "revenue",
        "net_revenue",
        "arpu",
        "conversion_rate",
        "p95_latency_ms",
        "timeout_rate",
        "input_tokens",
        "quality",
        "new_customers",
    ]
    a = metrics.query(names, start=START, end=END, grain="week", tz=TZ, url=duck)
    b = metrics.query(names, start=START, end=END, grain="week", tz=TZ, url=pg)
    pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=1e-9)


# --------------------------------------------------------------------------- empty periods


def test_periods_without_data_are_zero_or_empty(duck: str) -> None:
    got = metrics.query(
        ["revenue", "orders", "p95_latency_ms", "average_order_value"],
        start=date(2026, 10, 25),
        end=date(2026, 11, 5),
        grain="day",
        url=duck,
    ).set_index("period")
    assert len(got) == 11
    future = got.loc[pd.Timestamp("2026-11-01") :]
    assert (future["revenue"] == 0).all() and (future["orders"] == 0).all()
    assert future["p95_latency_ms"].isna().all() and future["average_order_value"].isna().all()
    assert (got.loc[: pd.Timestamp("2026-10-31"), "orders"] > 0).all()


def test_totals_over_an_empty_range(duck: str) -> None:
    got = metrics.query(
        ["orders", "quality"], start=date(2027, 1, 1), end=date(2027, 2, 1), grain=None, url=duck
    )
    assert len(got) == 1 and got.loc[0, "orders"] == 0 and pd.isna(got.loc[0, "quality"])


def test_breakdown_fills_every_period_for_every_value(duck: str) -> None:
    got = metrics.query(
        ["orders"],
        start=date(2026, 10, 28),
        end=date(2026, 11, 3),
        grain="day",
        by=["channel"],
        url=duck,
    )
    assert len(got) == 6 * got["channel"].nunique()
    assert (got[got["period"] >= pd.Timestamp("2026-11-01")]["orders"] == 0).all()


# --------------------------------------------------------------------------- bad questions


def test_dimension_values(url: str) -> None:
    customers, orders = _raw(url, "customers"), _raw(url, "orders")
    assert metrics.dimension_values("region", url=url) == sorted(
        customers["region"].dropna().unique()
    )
    assert metrics.dimension_values("channel", url=url) == sorted(
        orders["channel"].dropna().unique()
    )
    assert (
        metrics.dimension_values("country", limit=2, url=url)
        == sorted(customers["country"].dropna().unique())[:2]
    )
    with pytest.raises(ConfigError, match="unknown dimension 'colour'"):
        metrics.dimension_values("colour", url=url)
    with pytest.raises(ConfigError, match="limit must be at least 1"):
        metrics.dimension_values("region", limit=0, url=url)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": ["revenu"]}, "unknown metric 'revenu' \\(did you mean revenue"),
        ({"metrics": ["revenue"], "by": ["model"]}, "cannot be broken down or filtered by 'model'"),
        ({"metrics": ["visits"], "where": {"region": "EMEA"}}, "cannot be broken down"),
        ({"metrics": ["revenue"], "by": ["colour"]}, "unknown dimension 'colour'"),
        ({"metrics": ["revenue"], "grain": "hour"}, "unknown grain 'hour'"),
        ({"metrics": ["revenue"], "end": date(2026, 1, 1)}, "must be after --start"),
        ({"metrics": []}, "name at least one metric"),
        ({"metrics": ["revenue"], "tz": "Moon/Base"}, "unknown time zone"),
    ],
)
def test_bad_questions(kwargs: dict, message: str, duck: str) -> None:
    args = {"start": date(2026, 2, 1), "end": date(2026, 3, 1), "url": duck, **kwargs}
    with pytest.raises(ConfigError, match=message):
        metrics.query(args.pop("metrics"), **args)


def test_query_refuses_non_analytic_databases(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    warehouse.ensure_schema(url)
    with pytest.raises(ConfigError, match="analytic queries need DuckDB or PostgreSQL"):
        metrics.query(["orders"], start=START, end=END, url=url)


# --------------------------------------------------------------------------- catalog


def test_builtin_catalog_covers_the_kpis() -> None:
    catalog = metrics.load_catalog()
    for name in (
        "revenue",
        "orders",
        "average_order_value",
        "active_customers",
        "new_customers",
        "conversion_rate",
        "arpu",
        "requests",
        "error_rate",
        "p95_latency_ms",
        "quality",
    ):
        assert name in catalog.metrics
    assert catalog.allowed_dimensions("arpu") == ("region", "country", "segment", "plan")
    table = metrics.describe(catalog)
    assert set(table["name"]) == set(catalog.metrics) and (table["description"] != "").all()


def _write(tmp_path: Path, text: str, name: str = "m.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD_BASE = """
metrics:
  hits:
    table: orders
    time_column: ts
    aggregate: count
"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "metrics:\n  x: {table: ordrs, time_column: ts, aggregate: count}",
            "metric 'x': table: 'ordrs' is not a warehouse table",
        ),
        (
            "metrics:\n  x: {table: orders, time_column: when, aggregate: count}",
            "metric 'x': time_column: orders has no column 'when'",
        ),
        (
            "metrics:\n  x: {table: orders, time_column: ts, aggregate: sum, column: price}",
            "metric 'x': column: orders has no column 'price'",
        ),
        (
            "metrics:\n  x: {table: orders, time_column: ts, aggregate: median, column: amount}",
            "metric 'x': aggregate: 'median' is not one of",
        ),
        (
            "metrics:\n  x: {table: orders, time_column: ts, aggregate: count,"
            " dimensions: [colour]}",
            "metric 'x': dimensions: unknown dimension 'colour'",
        ),
        (
            "metrics:\n  x: {aggregate: ratio, numerator: x, denominator: hits}",
            "metric 'x': numerator: a metric cannot refer to itself",
        ),
        (
            "metrics:\n  x: {aggregate: ratio, numerator: y, denominator: hits}\n"
            "  y: {aggregate: difference, minuend: x, subtrahend: hits}",
            "refers to itself \\(x -> y -> x\\)",
        ),
        (
            "metrics:\n  x: {aggregate: ratio, numerator: nothing, denominator: hits}",
            "metric 'x': numerator: refers to unknown metric 'nothing'",
        ),
        (
            "metrics:\n  x: {table: orders, time_column: ts, aggregate: percentile, column: amount,"
            " percentile: 150}",
            "metric 'x': percentile: must be a number in \\(0, 100\\]",
        ),
        (
            "metrics:\n  x: {table: orders, time_column: ts, aggregate: count, colour: red}",
            "metric 'x': colour: unknown field",
        ),
        (
            "metrics:\n  x: {table: orders, time_column: ts, aggregate: count, unit: furlongs}",
            "metric 'x': unit: 'furlongs' is not one of",
        ),
        (
            "metrics:\n  x: {table: orders, time_column: ts, aggregate: count,"
            " filters: [{column: status, op: like, value: c}]}",
            "metric 'x': filters\\[0\\].op: 'like' is not one of",
        ),
        (
            "metrics:\n  x: {table: orders, time_column: ts, aggregate: count,"
            " filters: [{column: status, op: in, value: c}]}",
            "metric 'x': filters\\[0\\].value: op in needs a list",
        ),
        (
            "dimensions:\n  pr: {table: models, column: provider}\n"
            "metrics:\n  x: {table: orders, time_column: ts, aggregate: count, dimensions: [pr]}",
            "dimension 'pr' lives on models, which orders cannot reach",
        ),
        (
            "metrics:\n  hits: {table: orders, time_column: ts, aggregate: count}\n"
            "  hits: {table: orders, time_column: ts, aggregate: count}",
            "line 3: duplicate key 'hits'",
        ),
        ("metrics: [1, 2", "not valid YAML"),
        ("colours: {}", "expected top-level sections"),
    ],
)
def test_bad_definitions_name_file_metric_and_field(
    tmp_path: Path, body: str, message: str
) -> None:
    base = _write(tmp_path, GOOD_BASE, "base.yml")
    bad = _write(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as err:
        metrics.load_catalog([base, bad])
    assert str(bad) in str(err.value)


def test_duplicate_metric_across_files(tmp_path: Path) -> None:
    a = _write(tmp_path, GOOD_BASE, "a.yml")
    b = _write(tmp_path, GOOD_BASE, "b.yml")
    with pytest.raises(ConfigError, match=f"{b}: metric 'hits': name: already defined in {a}"):
        metrics.load_catalog([a, b])


def test_custom_metric_from_extra_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, duck: str
) -> None:
    extra = _write(
        tmp_path,
        """
metrics:
  big_orders:
    label: Big orders
    table: orders
    time_column: ts
    aggregate: count
    filters: [{column: amount, op: ">=", value: 1000}, {column: status, op: "=", value: completed}]
    dimensions: [region]
    unit: count
  big_order_share:
    aggregate: ratio
    numerator: big_orders
    denominator: orders
    unit: percent
""",
    )
    monkeypatch.setenv("AUTERITY_METRICS_FILES", str(extra))
    got = metrics.query(
        ["big_orders", "big_order_share"],
        start=START,
        end=END,
        grain=None,
        by=["region"],
        url=duck,
        tz=TZ,
    ).set_index("region")
    orders = _in_range(_raw(duck, "orders"), "ts").merge(_raw(duck, "customers"), on="customer_id")
    done = orders[orders["status"] == "completed"]
    big = done[done["amount"].astype(float) >= 1000]
    assert (got["big_orders"] == big.groupby("region").size()).all()
    np.testing.assert_allclose(
        got["big_order_share"], big.groupby("region").size() / done.groupby("region").size()
    )


def test_missing_metrics_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*nope.yml"):
        metrics.load_catalog([tmp_path / "nope.yml"])
