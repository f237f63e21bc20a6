"""ModelHub analytics, checked against pandas/numpy on raw rows the tests pull themselves.

Every report is computed by SQL in the warehouse; here the same numbers are recomputed
from raw ``inference_events`` rows with pandas/numpy (percentiles with numpy's linear
interpolation, which is ``percentile_cont``), on DuckDB and on PostgreSQL.
"""

from __future__ import annotations

import calendar
import json
import logging
import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from auterity import modelhub, warehouse
from auterity.demo import generate as demo_data
from auterity.errors import ConfigError
from auterity.modelhub import _periods, _sql, flat_fees, pricing
from auterity.modelhub.drift_stats import drift_level
from auterity.modelhub.pricing import parse_tiers, tier_price, tiered_cost
from auterity.warehouse import rollups, schema
from conftest import DEMO_END

SMALL_MH = demo_data.DemoConfig(seed=5, events=20_000, months=4, end=DEMO_END)
"""A small world built identically on DuckDB and PostgreSQL."""

CUSTOM = demo_data.DemoConfig(seed=21, events=20_000, months=3, end=DEMO_END, effects=False)
"""A small world edited to exercise pricing and gaps (see :func:`_build_custom`)."""
TIERS = [
    {"up_to_tokens": 300_000, "input_price_per_1k": 0.0025, "output_price_per_1k": 0.01},
    {"up_to_tokens": 600_000, "input_price_per_1k": 0.002, "output_price_per_1k": 0.008},
    {"up_to_tokens": None, "input_price_per_1k": 0.0015, "output_price_per_1k": 0.006},
]
GAP_DAYS = ("2026-10-10", "2026-10-11", "2026-10-12")
GAP_MODELS = ("gpt-4o-mini", "llama-3.1-70b")
GHOST_DAY = "2026-08-15"
LLAMA_FROM = "2026-08-20"
"""The self-hosted model's first request in the CUSTOM world (UTC day)."""


# --------------------------------------------------------------------------- worlds


def _build_custom(url: str) -> None:
    """Build CUSTOM at ``url``, edited to exercise pricing, gaps and unknown models."""
    # command-r-plus gets small monthly tiers and mostly NULL costs; gpt-4o-mini and llama
    # have no traffic on GAP_DAYS; a quarter of llama's requests move to support_triage (its
    # flat fee is shared by two features) and it serves nothing before LLAMA_FROM (its fee
    # starts then); on GHOST_DAY search_rerank calls a model that is missing from the
    # models table.
    world = demo_data.generate(CUSTOM)

    def chunks() -> Iterator[tuple[str, pd.DataFrame]]:
        for table, frame in world.chunks():
            frame = frame.copy()
            if table == "models":
                tiered = frame["model_id"] == "command-r-plus"
                frame.loc[tiered, "pricing_config"] = json.dumps({"tiers": TIERS})
            if table == "inference_events":
                day = frame["ts"].dt.strftime("%Y-%m-%d")
                keep = ~(day.isin(GAP_DAYS) & frame["model_id"].isin(GAP_MODELS))
                keep &= ~((day < LLAMA_FROM) & (frame["model_id"] == "llama-3.1-70b"))
                frame = frame[keep].copy()
                day = day[keep]
                tiered = (frame["model_id"] == "command-r-plus").to_numpy()
                unreported = tiered & (np.arange(len(frame)) % 10 != 0)
                frame.loc[unreported, "cost"] = np.nan
                llama = np.flatnonzero((frame["model_id"] == "llama-3.1-70b").to_numpy())
                frame.iloc[llama[::4], frame.columns.get_loc("feature")] = "support_triage"
                ghost = (day == GHOST_DAY) & (frame["feature"] == "search_rerank")
                frame.loc[ghost, "model_id"] = "ghost-model"
                frame.loc[ghost, "cost"] = np.nan
            yield table, frame

    custom = demo_data.DemoWorld(world.config, world.manifest, world.expected_rows, chunks())
    demo_data.build(custom, url=url)
    warehouse.dispose_engines()


@pytest.fixture(scope="module")
def small_duck(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SMALL_MH on DuckDB."""
    url = f"duckdb:///{tmp_path_factory.mktemp('mh_small') / 'small.duckdb'}"
    demo_data.build(SMALL_MH, url=url)
    warehouse.dispose_engines()
    return url


@pytest.fixture(scope="module")
def custom_duck(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The CUSTOM world on DuckDB."""
    url = f"duckdb:///{tmp_path_factory.mktemp('mh_custom') / 'custom.duckdb'}"
    _build_custom(url)
    return url


# --------------------------------------------------------------------------- raw rows and
#                                                                             reference maths


def _utc(day: date, tz: str) -> datetime:
    """Local midnight of ``day`` as naive UTC (computed independently of the library)."""
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz))
    return local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def _raw(url: str, lo: datetime, hi: datetime) -> pd.DataFrame:
    """Raw inference events with ``lo <= ts < hi`` (tests may read raw rows)."""
    e = schema.inference_events
    with warehouse.connect(url) as conn:
        result = conn.execute(sa.select(e).where(e.c.ts >= lo, e.c.ts < hi))
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    frame["ts"] = pd.to_datetime(frame["ts"])
    for col in ("cost", "quality", "latency_ms"):
        frame[col] = pd.to_numeric(frame[col]).astype(float)
    return frame


def _period_rows(url: str, start: date, end: date, tz: str = "UTC") -> pd.DataFrame:
    """Raw rows of the local period [start, end), with their local day."""
    rows = _raw(url, _utc(start, tz), _utc(end, tz))
    local = rows["ts"].dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None)
    rows["day"] = local.dt.floor("D")
    return rows


def _table(url: str, table: sa.Table) -> pd.DataFrame:
    """A whole (small) table."""
    with warehouse.connect(url) as conn:
        result = conn.execute(sa.select(table))
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _month_cost(tokens_in: float, tokens_out: float, tiers: list[dict]) -> float:
    """Tiered cost of a month: each tier's slice of the volume at its prices, month mix."""
    total = tokens_in + tokens_out
    cost, lower = 0.0, 0.0
    for tier in tiers:
        upper = tier["up_to_tokens"] if tier["up_to_tokens"] is not None else math.inf
        part = max(0.0, min(total, upper) - lower)
        cost += (
            part
            / total
            * (tokens_in * tier["input_price_per_1k"] + tokens_out * tier["output_price_per_1k"])
            / 1000
        )
        lower = upper
    return cost


def _row_costs(rows: pd.DataFrame, models: pd.DataFrame, url: str) -> pd.Series:
    """Effective cost of each raw row (flat fees excluded); NaN when it cannot be priced."""
    m = models.set_index("model_id")
    cost = rows["cost"].copy()
    missing = cost.isna()
    cost[missing & (rows["status"] == "error")] = 0.0
    pending = missing & (rows["status"] != "error")
    kind = rows["model_id"].map(m["pricing_kind"])
    per_token = pending & (kind == "per_token")
    cost[per_token] = (
        rows["input_tokens"] / 1000 * rows["model_id"].map(m["input_price_per_1k"])
        + rows["output_tokens"] / 1000 * rows["model_id"].map(m["output_price_per_1k"])
    )[per_token]
    cost[pending & (kind == "flat")] = 0.0
    tiered = pending & (kind == "tiered")
    if tiered.any():
        month = rows["ts"].dt.to_period("M")
        whole = _raw(
            url,
            month[tiered].min().start_time.to_pydatetime(),
            (month[tiered].max() + 1).start_time.to_pydatetime(),
        )
        tiered_ids = m.index[m["pricing_kind"] == "tiered"]
        whole = whole[(whole["status"] != "error") & whole["model_id"].isin(tiered_ids)]
        whole_month = whole["ts"].dt.to_period("M")
        for (model_id, mon), g in whole.groupby(["model_id", whole_month]):
            tiers = json.loads(m.loc[model_id, "pricing_config"])["tiers"]
            tin, tout = float(g["input_tokens"].sum()), float(g["output_tokens"].sum())
            price = _month_cost(tin, tout, tiers) / (tin + tout)
            sel = tiered & (rows["model_id"] == model_id) & (month == mon)
            cost[sel] = (rows["input_tokens"] + rows["output_tokens"])[sel] * price
    return cost


def _flat_fee(monthly: float, start: date, end: date) -> float:
    """A monthly fee prorated by days, day by day (for a model deployed throughout)."""
    total, day = 0.0, start
    while day < end:
        total += monthly / calendar.monthrange(day.year, day.month)[1]
        day += timedelta(days=1)
    return total


def _deployment(url: str, model_id: str, config: dict, tz: str) -> tuple[date, date]:
    """``[first, until)`` local days a flat model is deployed: its config's dates, else from
    its first request's day through its last request's day (pandas over raw rows)."""
    rows = _raw(url, datetime(1900, 1, 1), datetime(2200, 1, 1))
    ts = rows.loc[rows["model_id"] == model_id, "ts"].dt.tz_localize("UTC").dt.tz_convert(tz)
    first = config.get("deployed_on") or ts.min().date().isoformat()
    until = config.get("retired_on") or (ts.max().date() + timedelta(days=1)).isoformat()
    return date.fromisoformat(first), date.fromisoformat(until)


def _flat_fees(
    url: str, models: pd.DataFrame, start: date, end: date, tz: str = "UTC"
) -> dict[str, float]:
    """The period's fee of every flat-priced model: only its days of deployment count."""
    flat = models[models["pricing_kind"] == "flat"]
    out = {}
    for r in flat.itertuples():
        config = json.loads(r.pricing_config)
        first, until = _deployment(url, r.model_id, config, tz)
        out[r.model_id] = _flat_fee(config["monthly_cost"], max(start, first), min(end, until))
    return out


def _reference_leaderboard(
    url: str, start: date, end: date, tz: str = "UTC", models: list[str] | None = None
) -> pd.DataFrame:
    """The leaderboard recomputed with pandas/numpy from raw rows."""
    rows = _period_rows(url, start, end, tz)
    catalogue = _table(url, schema.models)
    rows["effective"] = _row_costs(rows, catalogue, url)
    fees = _flat_fees(url, catalogue, start, end, tz)
    names = catalogue.set_index("model_id")
    out = []
    for model_id, g in rows.groupby("model_id"):
        ok = g.loc[g["status"] == "ok", "latency_ms"].to_numpy()
        q = g["quality"].dropna().to_numpy()
        cost = g["effective"].sum(skipna=False) + fees.get(model_id, 0.0)
        half = 1.959963984540054 * q.std(ddof=1) / math.sqrt(len(q))
        out.append(
            {
                "model_id": model_id,
                "name": names["name"].get(model_id, model_id),
                "provider": names["provider"].get(model_id, "unknown"),
                "requests": len(g),
                "share_of_traffic": len(g) / len(rows),
                "ok_requests": len(ok),
                "error_rate": (g["status"] == "error").mean(),
                "timeout_rate": (g["status"] == "timeout").mean(),
                "p50_latency_ms": np.percentile(ok, 50),
                "p95_latency_ms": np.percentile(ok, 95),
                "p99_latency_ms": np.percentile(ok, 99),
                "input_tokens": int(g["input_tokens"].sum()),
                "output_tokens": int(g["output_tokens"].sum()),
                "cost": cost,
                "cost_per_1k_ok": cost / len(ok) * 1000,
                "quality_mean": q.mean(),
                "quality_ci_low": q.mean() - half,
                "quality_ci_high": q.mean() + half,
                "quality_n": len(q),
            }
        )
    frame = pd.DataFrame(out)
    if models is not None:
        frame = frame[frame["model_id"].isin(models)]
    return frame.sort_values(["requests", "model_id"], ascending=[False, True])


PERCENTILES = ["p50_latency_ms", "p95_latency_ms", "p99_latency_ms"]


def _assert_same(
    actual: pd.DataFrame,
    expected: pd.DataFrame,
    rtol: float = 1e-9,
    percentile_rtol: float | None = None,
) -> None:
    """Same rows in the same order, numbers equal up to float summation order (latency
    percentiles, when ``percentile_rtol`` is given, within that relative error)."""
    actual, expected = actual.reset_index(drop=True), expected.reset_index(drop=True)
    if percentile_rtol is not None:
        pd.testing.assert_frame_equal(
            actual[PERCENTILES], expected[PERCENTILES], check_dtype=False, rtol=percentile_rtol
        )
        actual, expected = actual.drop(columns=PERCENTILES), expected.drop(columns=PERCENTILES)
    pd.testing.assert_frame_equal(
        actual, expected[list(actual.columns)], check_dtype=False, rtol=rtol
    )


# --------------------------------------------------------------------------- pricing maths


def test_tiers_split_a_month_that_crosses_a_boundary() -> None:
    tiers = parse_tiers(
        "m",
        {
            "tiers": [
                {
                    "up_to_tokens": 50_000_000,
                    "input_price_per_1k": 0.0025,
                    "output_price_per_1k": 0.01,
                },
                {"up_to_tokens": None, "input_price_per_1k": 0.002, "output_price_per_1k": 0.008},
            ]
        },
    )
    # 60M tokens: 50/60 of the volume at tier 1, 10/60 at tier 2, each with the 2:1 mix.
    crossing = 50 / 60 * (40e3 * 0.0025 + 20e3 * 0.01) + 10 / 60 * (40e3 * 0.002 + 20e3 * 0.008)
    assert tiered_cost(40e6, 20e6, tiers) == pytest.approx(crossing, rel=1e-12)
    assert tiered_cost(40e6, 20e6, tiers) == pytest.approx(290.0, rel=1e-12)
    assert tiered_cost(10e6, 5e6, tiers) == pytest.approx(10e3 * 0.0025 + 5e3 * 0.01)
    # Exactly at the boundary everything is still tier 1.
    assert tiered_cost(30e6, 20e6, tiers) == pytest.approx(30e3 * 0.0025 + 20e3 * 0.01)
    assert tiered_cost(0, 0, tiers) == 0.0
    # The month's price per token prorates the month's cost by token share.
    assert tier_price(40e6, 20e6, tiers) * 60e6 == pytest.approx(crossing, rel=1e-12)


def test_three_tiers_and_bad_tier_configs() -> None:
    tiers = parse_tiers("m", {"tiers": TIERS})
    expected = (
        300_000 * 0.0025 / 1000 + 300_000 * 0.002 / 1000 + 400_000 * 0.0015 / 1000
    )  # input tokens only: 1M tokens across three tiers
    assert tiered_cost(1_000_000, 0, tiers) == pytest.approx(expected, rel=1e-12)
    assert tiered_cost(1_000_000, 0, tiers) == pytest.approx(
        _month_cost(1_000_000, 0, TIERS), rel=1e-12
    )
    with pytest.raises(ConfigError, match=r"'m'.*non-empty list"):
        parse_tiers("m", {"tiers": []})
    with pytest.raises(ConfigError, match="tier 1 needs"):
        parse_tiers("m", {"tiers": [{"up_to_tokens": 5}]})
    with pytest.raises(ConfigError, match="must increase"):
        parse_tiers("m", {"tiers": [TIERS[1], TIERS[0], TIERS[2]]})


def test_flat_fee_is_prorated_by_days_across_two_months() -> None:
    always = modelhub.FlatFee(3100.0, date(2000, 1, 1), date(2100, 1, 1))
    # 12 days of January (20..31) and 9 of February (1..9, 28 days in 2026).
    assert always.total(date(2026, 1, 20), date(2026, 2, 10)) == pytest.approx(
        12 / 31 * 3100 + 9 / 28 * 3100, rel=1e-12
    )
    flat_2400 = modelhub.FlatFee(2400.0, date(2000, 1, 1), date(2100, 1, 1))
    assert flat_2400.total(date(2026, 3, 1), date(2026, 4, 1)) == pytest.approx(2400)
    leap = modelhub.FlatFee(2900.0, date(2000, 1, 1), date(2100, 1, 1))
    assert leap.total(date(2028, 2, 1), date(2028, 2, 2)) == pytest.approx(100)
    days = pd.date_range("2026-01-30", "2026-02-02")
    expected = [3100 / 31, 3100 / 31, 3100 / 28, 3100 / 28]
    assert always.daily(days).tolist() == pytest.approx(expected)


def test_flat_fee_accrues_only_while_deployed() -> None:
    # Deployed 2026-01-25 up to (not including) 2026-03-10: by hand, 7 days of January,
    # all of February, 9 days of March.
    fee = modelhub.FlatFee(3100.0, date(2026, 1, 25), date(2026, 3, 10))
    whole = 7 / 31 * 3100 + 3100 + 9 / 31 * 3100
    assert fee.total(date(2000, 1, 1), date(2100, 1, 1)) == pytest.approx(whole, rel=1e-12)
    assert fee.total(date(2025, 1, 1), date(2026, 1, 25)) == 0.0  # before deployment
    assert fee.total(date(2026, 3, 10), date(2026, 4, 1)) == 0.0  # after retirement
    assert fee.total(date(2026, 1, 20), date(2026, 2, 1)) == pytest.approx(7 / 31 * 3100)
    assert fee.total(date(2026, 3, 1), date(2026, 3, 31)) == pytest.approx(9 / 31 * 3100)
    days = pd.date_range("2026-01-23", "2026-01-26")
    assert fee.daily(days).tolist() == pytest.approx([0, 0, 100, 100])
    # The total is the daily accrual summed: one rule for every view.
    span = pd.date_range("2026-01-01", "2026-03-31")
    assert fee.daily(span).sum() == pytest.approx(whole, rel=1e-12)
    never = modelhub.FlatFee(3100.0, date(1970, 1, 1), date(1970, 1, 1))
    assert never.total(date(2000, 1, 1), date(2100, 1, 1)) == 0.0


# --------------------------------------------------------------------------- leaderboard


@pytest.mark.parametrize("from_rollups", [True, False], ids=["rollups", "raw"])
def test_leaderboard_matches_pandas_on_duckdb(
    effects_warehouse: tuple[str, dict], from_rollups: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = effects_warehouse
    monkeypatch.setenv("AUTERITY_ROLLUPS", "on" if from_rollups else "off")
    start, end = date(2026, 7, 15), date(2026, 9, 13)  # 60 days, across month ends
    actual = modelhub.leaderboard(start, end, url=url)
    assert list(actual.columns) == modelhub.LEADERBOARD_COLUMNS
    expected = _reference_leaderboard(url, start, end)
    # exact from raw events; from the rollups the percentiles are within the stated bound
    _assert_same(actual, expected, percentile_rtol=rollups.LATENCY_ERROR if from_rollups else None)
    # Mistral reports no cost: it is computed per token; llama is flat, $2400/month.
    rows = actual.set_index("model_id")
    assert rows.loc["mistral-large", "cost"] > 0
    assert rows.loc["llama-3.1-70b", "cost"] == pytest.approx(2400 * (17 / 31 + 31 / 31 + 12 / 30))
    assert actual["requests"].is_monotonic_decreasing
    assert actual["share_of_traffic"].sum() == pytest.approx(1.0)


def test_leaderboard_model_filter_keeps_share_of_all_traffic(small_duck: str) -> None:
    start, end = date(2026, 8, 1), date(2026, 10, 1)
    everything = modelhub.leaderboard(start, end, url=small_duck)
    two = modelhub.leaderboard(start, end, url=small_duck, models=["gpt-4o", "mistral-large"])
    _assert_same(two, everything[everything["model_id"].isin(["gpt-4o", "mistral-large"])])
    assert modelhub.leaderboard(date(2030, 1, 1), date(2030, 2, 1), url=small_duck).empty


def test_no_model_shows_zero_or_missing_cost(effects_warehouse: tuple[str, dict]) -> None:
    url, _ = effects_warehouse
    start, end = DEMO_END - timedelta(days=60), DEMO_END
    board = modelhub.leaderboard(start, end, url=url)
    assert set(board["model_id"]) == {m.model_id for m in demo_data.MODELS}
    assert (board["cost"] > 0).all() and board["cost"].notna().all(), board[["model_id", "cost"]]
    daily = modelhub.daily_trend(start, end, url=url)
    busy = daily[daily["requests"] > 0]
    assert (busy["cost"] > 0).all()
    by_model = daily.groupby("model_id")["cost"].sum()
    assert by_model.to_dict() == pytest.approx(board.set_index("model_id")["cost"].to_dict())
    features = modelhub.cost_by_feature(start, end, url=url)
    assert (features["cost"] > 0).all()
    assert features["cost"].sum() == pytest.approx(board["cost"].sum())


def test_tiered_costs_and_unknown_models_on_an_edited_world(
    custom_duck: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Crosses a month boundary, with most command-r-plus costs NULL and tiers crossed
    # every month: the tier prices come from whole months, prorated by token share.
    start, end = date(2026, 9, 20), date(2026, 10, 20)
    actual = modelhub.leaderboard(start, end, url=custom_duck)
    _assert_same(actual, _reference_leaderboard(custom_duck, start, end))
    # Sanity: the volume discount shows (cheaper than everything at tier-1 prices).
    tiered = actual.set_index("model_id").loc["command-r-plus"]
    rows = _period_rows(custom_duck, start, end)
    r = rows[(rows["model_id"] == "command-r-plus") & (rows["status"] != "error")]
    at_tier_1 = (r["input_tokens"] * 0.0025 + r["output_tokens"] * 0.01).sum() / 1000
    assert 0 < tiered["cost"] < 0.95 * at_tier_1
    # A model missing from the models table: its cost is unknown (NaN), with a warning.
    with caplog.at_level(logging.WARNING, logger="auterity.modelhub"):
        ghost = modelhub.leaderboard(date(2026, 8, 10), date(2026, 8, 20), url=custom_duck)
    row = ghost.set_index("model_id").loc["ghost-model"]
    assert math.isnan(row["cost"]) and row["name"] == "ghost-model" and row["requests"] > 0
    assert "ghost-model" in caplog.text
    assert ghost.drop(ghost.index[ghost["model_id"] == "ghost-model"])["cost"].notna().all()


def test_daily_trend_matches_pandas_and_zero_fills(custom_duck: str) -> None:
    tz = "America/New_York"
    start, end = date(2026, 10, 5), date(2026, 11, 3)  # ends two days after the data
    models = ["gpt-4o-mini", "llama-3.1-70b", "command-r-plus"]
    actual = modelhub.daily_trend(start, end, models=models, tz=tz, url=custom_duck)
    assert list(actual.columns) == modelhub.DAILY_COLUMNS
    days = pd.date_range(start, end - timedelta(days=1))
    assert len(actual) == len(models) * len(days)

    rows = _period_rows(custom_duck, start, end, tz)
    rows = rows[rows["model_id"].isin(models)]
    rows["effective"] = _row_costs(rows, _table(custom_duck, schema.models), custom_duck)
    for (model_id, day), g in rows.groupby(["model_id", "day"]):
        got = actual[(actual["model_id"] == model_id) & (actual["day"] == day)].iloc[0]
        ok = g.loc[g["status"] == "ok", "latency_ms"]
        assert got["requests"] == len(g)
        assert got["error_rate"] == pytest.approx((g["status"] == "error").mean())
        assert got["p50_latency_ms"] == pytest.approx(np.percentile(ok, 50), rel=1e-9)
        assert got["p95_latency_ms"] == pytest.approx(np.percentile(ok, 95), rel=1e-9)
        assert got["quality_mean"] == pytest.approx(g["quality"].mean(), rel=1e-9)
        fee = 2400 / calendar.monthrange(day.year, day.month)[1]  # a day with requests
        usage = g["effective"].sum() + (fee if model_id == "llama-3.1-70b" else 0.0)
        assert got["cost"] == pytest.approx(usage, rel=1e-9)

    # No traffic (the gap, and the days after the data): 0 requests, 0 cost, NaN elsewhere;
    # the self-hosted model's fee still accrues in the gap (it is deployed: it served
    # before and after), not on the days after its last request.
    seen = set(zip(rows["model_id"], rows["day"].dt.strftime("%F"), strict=True))
    labels = zip(actual["model_id"], actual["day"].dt.strftime("%F"), strict=True)
    empty = actual[[label not in seen for label in labels]]
    # The gap is in UTC days; New York's 10th and 11th fall entirely inside it.
    for model_id in GAP_MODELS:
        days_empty = set(empty.loc[empty["model_id"] == model_id, "day"].dt.strftime("%F"))
        assert days_empty >= {"2026-10-10", "2026-10-11", "2026-11-01", "2026-11-02"}
    assert (empty["requests"] == 0).all()
    for col in ("error_rate", "p50_latency_ms", "p95_latency_ms", "quality_mean"):
        assert empty[col].isna().all()
    llama = empty["model_id"] == "llama-3.1-70b"
    paid = llama & (empty["day"] < pd.Timestamp("2026-11-01"))  # its last request: Oct 31
    assert set(empty.loc[paid, "day"].dt.strftime("%F")) >= {"2026-10-10", "2026-10-11"}
    assert (empty.loc[~paid, "cost"] == 0).all()
    assert empty.loc[paid, "cost"].tolist() == pytest.approx(
        [2400 / calendar.monthrange(d.year, d.month)[1] for d in empty.loc[paid, "day"]]
    )
    # Daily costs add up to the leaderboard's (flat fee included).
    board = modelhub.leaderboard(start, end, tz=tz, url=custom_duck, models=models)
    assert actual.groupby("model_id")["cost"].sum().to_dict() == pytest.approx(
        board.set_index("model_id")["cost"].to_dict()
    )


# --------------------------------------------------------------------------- flat fees

LLAMA = "llama-3.1-70b"


def _set_pricing(url: str, model_id: str, config: dict, kind: str = "flat") -> None:
    """Give a model of the warehouse at ``url`` another pricing (in place)."""
    with warehouse.connect(url, write=True) as conn:
        conn.execute(
            sa.update(schema.models)
            .where(schema.models.c.model_id == model_id)
            .values(pricing_kind=kind, pricing_config=json.dumps(config))
        )
        warehouse.mark_data_changed(conn)
    warehouse.dispose_engines()


def _with_llama_pricing(source: str, folder: Path, config: dict) -> str:
    """A copy of the warehouse at ``source`` whose self-hosted model has ``config``."""
    path = folder / "priced.duckdb"
    shutil.copy(sa.make_url(source).database, path)
    url = f"duckdb:///{path}"
    _set_pricing(url, LLAMA, config)
    return url


def _llama_cost(url: str, start: date, end: date, tz: str = "UTC") -> float:
    """The self-hosted model's cost on the leaderboard (0 when it is not listed)."""
    board = modelhub.leaderboard(start, end, tz=tz, url=url).set_index("model_id")
    return float(board.loc[LLAMA, "cost"]) if LLAMA in board.index else 0.0


def test_flat_fee_runs_from_the_first_to_the_last_request(custom_duck: str) -> None:
    # By hand: llama (self-hosted, $2,400 a month, no per-request costs) serves from
    # 2026-08-20 (LLAMA_FROM) to 2026-10-31, the last day of the data (UTC days).
    # A window before its first request: not deployed, nothing charged.
    assert _llama_cost(custom_duck, date(2026, 8, 1), date(2026, 8, 20)) == 0.0
    # A window spanning its start: 12 days of August (20..31) and 9 of September.
    spanning = (date(2026, 8, 10), date(2026, 9, 10))
    assert _llama_cost(custom_duck, *spanning) == pytest.approx(2400 * (12 / 31 + 9 / 30))
    # A partial month: October 15..31; none of the November days after its last request.
    assert _llama_cost(custom_duck, date(2026, 10, 15), date(2026, 11, 15)) == pytest.approx(
        2400 * 17 / 31
    )
    # The issue's 2000-2100 window: 12/31 of August, September and October, not 1,200
    # months; the same through the CLI.
    everything = (date(2000, 1, 1), date(2100, 1, 1))
    assert _llama_cost(custom_duck, *everything) == pytest.approx(2400 * (12 / 31 + 2))
    _assert_same(
        modelhub.leaderboard(*everything, url=custom_duck),
        _reference_leaderboard(custom_duck, *everything),
    )
    # The daily trend asked for it: no fee before the first request, the day's fee after.
    daily = modelhub.daily_trend(*spanning, models=LLAMA, url=custom_duck).set_index("day")
    assert (daily.loc[:"2026-08-19", "cost"] == 0).all()
    assert daily.loc["2026-08-20":"2026-08-31", "cost"].tolist() == pytest.approx([2400 / 31] * 12)
    assert daily["cost"].sum() == pytest.approx(2400 * (12 / 31 + 9 / 30))
    # Idle but deployed (the traffic gap, between requests): the fee still accrues.
    gap = modelhub.daily_trend(
        date(2026, 10, 10), date(2026, 10, 12), models=LLAMA, url=custom_duck
    )
    assert (gap["requests"] == 0).all() and gap["cost"].tolist() == pytest.approx([2400 / 31] * 2)
    # ... and the leaderboard of those idle days lists it with no requests and that fee.
    idle = modelhub.leaderboard(date(2026, 10, 10), date(2026, 10, 12), url=custom_duck)
    llama = idle.set_index("model_id").loc[LLAMA]
    assert llama["requests"] == 0 and llama["cost"] == pytest.approx(2 * 2400 / 31)
    assert idle["model_id"].iloc[-1] == LLAMA  # sorted by requests: last
    # Every view charges the same fee: the feature and customer breakdowns share it out.
    features = modelhub.cost_by_feature(*spanning, models=LLAMA, url=custom_duck)
    assert features["cost"].sum() == pytest.approx(2400 * (12 / 31 + 9 / 30))
    customers = modelhub.cost_by_customer(*spanning, limit=10**6, models=LLAMA, url=custom_duck)
    assert customers["cost"].sum() == pytest.approx(2400 * (12 / 31 + 9 / 30))


def test_flat_fee_of_a_model_idle_for_weeks_before_a_period_runs_from_its_start(
    custom_duck: str, tmp_path: Path
) -> None:
    # By hand: llama serves from 2026-08-20, then nothing from 09-17 to 10-04 (a gap longer
    # than the week the cheap check looks back), then again from 10-05. It was deployed
    # all along, so a period from 10-01 to 10-10 charges all 9 days, not 5 from 10-05.
    path = tmp_path / "gap.duckdb"
    shutil.copy(sa.make_url(custom_duck).database, path)
    url = f"duckdb:///{path}"
    events = schema.inference_events
    with warehouse.connect(url, write=True) as conn:
        conn.execute(
            sa.delete(events).where(
                events.c.model_id == LLAMA,
                events.c.ts >= datetime(2026, 9, 17),
                events.c.ts < datetime(2026, 10, 5),
            )
        )
        warehouse.mark_data_changed(conn)
    warehouse.dispose_engines()
    assert _llama_cost(url, date(2026, 10, 1), date(2026, 10, 10)) == pytest.approx(2400 * 9 / 31)
    # Idle through the whole period but serving before and after: deployed all of it.
    assert _llama_cost(url, date(2026, 9, 20), date(2026, 10, 1)) == pytest.approx(2400 * 11 / 30)


def test_flat_fee_days_are_local_days(custom_duck: str) -> None:
    # In Tokyo (UTC+9) the last request, late on 2026-10-31 UTC, falls on November 1st.
    tz = "Asia/Tokyo"
    everything = (date(2000, 1, 1), date(2100, 1, 1))
    _assert_same(
        modelhub.leaderboard(*everything, tz=tz, url=custom_duck),
        _reference_leaderboard(custom_duck, *everything, tz),
    )
    november = _llama_cost(custom_duck, date(2026, 11, 1), date(2026, 12, 1), tz)
    assert november == pytest.approx(2400 / 30)


def test_flat_fee_follows_the_deployment_dates_of_its_pricing(
    custom_duck: str, tmp_path: Path
) -> None:
    # Deployed 2026-08-14 (before its first request, 08-20), retired 2026-10-20 (it still
    # answered requests after that: they cost nothing more). $3,100 a month.
    config = {"monthly_cost": 3100, "deployed_on": "2026-08-14", "retired_on": "2026-10-20"}
    url = _with_llama_pricing(custom_duck, tmp_path, config)
    # By hand: August 14..31 (18 of 31 days), September, October 1..19 (19 of 31 days).
    everything = (date(2000, 1, 1), date(2100, 1, 1))
    assert _llama_cost(url, *everything) == pytest.approx(3100 * 18 / 31 + 3100 + 3100 * 19 / 31)
    _assert_same(
        modelhub.leaderboard(*everything, url=url), _reference_leaderboard(url, *everything)
    )
    # Spanning the deployment: August 14..24, 11 days at $100, though it served from the 20th.
    assert _llama_cost(url, date(2026, 8, 10), date(2026, 8, 25)) == pytest.approx(1100)
    # Spanning the retirement: October 15..19 only.
    assert _llama_cost(url, date(2026, 10, 15), date(2026, 11, 1)) == pytest.approx(500)
    daily = modelhub.daily_trend(date(2026, 10, 18), date(2026, 10, 22), models=LLAMA, url=url)
    assert daily["cost"].tolist() == pytest.approx([100, 100, 0, 0])
    # Only one date given: the other end comes from the traffic (last request: Oct 31).
    _set_pricing(url, LLAMA, {"monthly_cost": 3100, "deployed_on": "2026-08-01"})
    assert _llama_cost(url, *everything) == pytest.approx(3 * 3100)
    # A second flat model without dates (both probed in one statement): from its first
    # request, August 2nd, to its last, October 31st.
    _set_pricing(url, "mistral-large", {"monthly_cost": 3100})
    costs = modelhub.leaderboard(*everything, url=url).set_index("model_id")["cost"]
    assert costs["mistral-large"] == pytest.approx(3100 * (30 / 31 + 2))
    assert costs[LLAMA] == pytest.approx(3 * 3100)
    _assert_same(
        modelhub.leaderboard(*everything, url=url), _reference_leaderboard(url, *everything)
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"deployed_on": "2026-09-01"}, r"needs a non-negative number 'monthly_cost'"),
        ({"monthly_cost": 10, "deployed_on": "soon"}, r"'deployed_on' must be a date"),
        ({"monthly_cost": 10, "retired_on": 20260101}, r"'retired_on' must be a date"),
        (
            {"monthly_cost": 10, "deployed_on": "2026-09-01", "retired_on": "2026-09-01"},
            r"'retired_on' \(2026-09-01\) must be after 'deployed_on'",
        ),
    ],
)
def test_bad_deployment_dates_are_config_errors(
    custom_duck: str, tmp_path: Path, config: dict, message: str
) -> None:
    url = _with_llama_pricing(custom_duck, tmp_path, config)
    with pytest.raises(ConfigError, match=message) as err:
        modelhub.leaderboard(date(2026, 9, 1), date(2026, 9, 8), url=url)
    assert LLAMA in str(err.value)


def test_daily_trend_shows_the_latency_degradations(effects_warehouse: tuple[str, dict]) -> None:
    url, manifest = effects_warehouse
    (effect,) = [e for e in manifest["effects"] if e["type"] == "latency_degradation"]
    first = date.fromisoformat(effect["windows"][0][0]) - timedelta(days=21)
    last = date.fromisoformat(effect["windows"][-1][1])
    daily = modelhub.daily_trend(first, last, models=effect["model_id"], url=url)
    p95 = daily.set_index("day")["p95_latency_ms"]
    for start, end in effect["windows"]:
        s, e = pd.Timestamp(start), pd.Timestamp(end)
        inside = p95[(p95.index >= s) & (p95.index < e)]
        before = p95[(p95.index >= s - timedelta(days=21)) & (p95.index < s)]
        assert len(inside) == (e - s).days and len(before) == 21
        assert inside.mean() / before.mean() == pytest.approx(effect["factor"], rel=0.25)


# --------------------------------------------------------------------------- cost breakdowns


def _reference_costs(url: str, start: date, end: date, key: str) -> pd.DataFrame:
    """Cost per key from raw rows: row costs plus flat fees shared by request counts."""
    rows = _period_rows(url, start, end)
    catalogue = _table(url, schema.models)
    rows["effective"] = _row_costs(rows, catalogue, url)
    fees = _flat_fees(url, catalogue, start, end)
    per_model_requests = rows.groupby("model_id").size()
    rows["effective"] += (
        rows["model_id"]
        .map({m: fee / per_model_requests[m] for m, fee in fees.items() if m in per_model_requests})
        .fillna(0.0)
    )
    out = rows.groupby(key, dropna=False).agg(
        requests=("request_id", "size"),
        input_tokens=("input_tokens", "sum"),
        output_tokens=("output_tokens", "sum"),
        cost=("effective", "sum"),
    )
    out["cost_per_request"] = out["cost"] / out["requests"]
    out["share_of_cost"] = out["cost"] / out["cost"].sum()
    return out.reset_index().sort_values(["cost", key], ascending=[False, True])


def test_cost_by_feature_matches_pandas(small_duck: str) -> None:
    start, end = date(2026, 8, 10), date(2026, 10, 10)
    actual = modelhub.cost_by_feature(start, end, url=small_duck)
    _assert_same(actual, _reference_costs(small_duck, start, end, "feature"))
    board = modelhub.leaderboard(start, end, url=small_duck)
    assert actual["cost"].sum() == pytest.approx(board["cost"].sum(), rel=1e-9)


def test_cost_by_customer_matches_pandas(small_duck: str) -> None:
    start, end = date(2026, 8, 10), date(2026, 10, 10)
    actual = modelhub.cost_by_customer(start, end, limit=15, url=small_duck)
    expected = _reference_costs(small_duck, start, end, "customer_id").head(15)
    customers = _table(small_duck, schema.customers)[["customer_id", "segment", "plan", "region"]]
    expected = expected.merge(customers, on="customer_id", how="left")
    assert len(actual) == 15
    _assert_same(actual, expected)
    only = modelhub.cost_by_customer(start, end, limit=3, models="gpt-4o", url=small_duck)
    assert len(only) == 3 and only["cost"].is_monotonic_decreasing


# --------------------------------------------------------------------------- SLOs


def test_default_slo_file_loads() -> None:
    slos = modelhub.load_slos()
    assert set(slos["default"]) == set(modelhub.SLO_FIELDS)
    assert 50 <= slos["default"]["latency_percentile"] <= 99.9
    for model_id, slo in slos["models"].items():
        assert model_id in {m.model_id for m in demo_data.MODELS}
        assert set(slo) == set(modelhub.SLO_FIELDS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default: {latency_percentile: 95, latency_ms: 900}\n", r"default: missing .*error_rate"),
        (
            "default: {latency_percentile: 95, latency_ms: 900, error_rate: 0.01, p: 1}\n",
            r"default: unknown field 'p'",
        ),
        (
            "default: {latency_percentile: 95, latency_ms: 900, error_rate: 0.01}\n"
            "models:\n  gpt-4o: {latency_percentile: 100}\n",
            r"model 'gpt-4o': latency_percentile must be between 50 and 99.9",
        ),
        (
            "default: {latency_percentile: 40, latency_ms: 900, error_rate: 0.01}\n",
            r"default: latency_percentile must be between 50 and 99.9",
        ),
        (
            "default: {latency_percentile: 95, latency_ms: 900, error_rate: 0.01}\n"
            "models:\n  gpt-4o-mini: {error_rate: 1.5}\n",
            r"model 'gpt-4o-mini': error_rate must be a fraction between 0 and 1",
        ),
        (
            "default: {latency_percentile: 95, latency_ms: 900, error_rate: 0.01}\n"
            "models:\n  gpt-4o: {latency_target: 500}\n",
            r"model 'gpt-4o': unknown field 'latency_target'",
        ),
        (
            "default: {latency_percentile: 95, latency_ms: fast, error_rate: 0.01}\n",
            r"default: latency_ms must be a number",
        ),
        (
            "default: {latency_percentile: 95, latency_ms: -5, error_rate: 0.01}\n",
            r"default: latency_ms must be a positive number",
        ),
        (
            "default: {latency_percentile: 95, latency_ms: 900, error_rate: 0.01}\n"
            "models: [gpt-4o]\n",
            r"models must map model ids",
        ),
        ("default: 95\n", r"default: expected a mapping"),
        ("- default\n", r"expected a mapping with 'default' and 'models'"),
        ("defaults: {}\n", r"unknown section\(s\) 'defaults'"),
        ("default: [\n", r"not valid YAML"),
        (
            "default: {latency_percentile: 95, latency_ms: 900, error_rate: 0.01}\n"
            "default: {latency_percentile: 99, latency_ms: 100, error_rate: 0.5}\n",
            r"line 2: duplicate key 'default'",
        ),
    ],
)
def test_slo_file_errors_name_file_model_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad_slos.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        modelhub.load_slos(path)
    assert "bad_slos.yml" in str(err.value)


def test_missing_slo_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the SLO file .*nope\.yml"):
        modelhub.load_slos(tmp_path / "nope.yml")


def test_slo_report_matches_pandas(effects_warehouse: tuple[str, dict]) -> None:
    url, _ = effects_warehouse
    tz = "America/New_York"
    start, end = date(2026, 6, 20), date(2026, 7, 20)  # holds a gpt-4o slowdown
    slos = {
        "default": {"latency_percentile": 95, "latency_ms": 8000, "error_rate": 0.02},
        "models": {
            "gpt-4o-mini": {"latency_ms": 900},
            "command-r-plus": {"latency_percentile": 99.5, "latency_ms": 2800},
        },
    }
    actual = modelhub.slo_report(start, end, tz=tz, slos=slos, url=url)
    assert list(actual.columns) == modelhub.SLO_COLUMNS
    rows = _period_rows(url, start, end, tz)
    expected = []
    for model_id, g in rows.groupby("model_id"):
        slo = {**slos["default"], **slos["models"].get(model_id, {})}
        pct = slo["latency_percentile"]
        met = []
        for _, d in g.groupby("day"):
            ok = d.loc[d["status"] == "ok", "latency_ms"]
            latency = np.percentile(ok, pct) if len(ok) else np.nan
            met.append(
                latency <= slo["latency_ms"] and (d["status"] != "ok").mean() <= slo["error_rate"]
            )
        overall = np.percentile(g.loc[g["status"] == "ok", "latency_ms"], pct)
        failed = (g["status"] != "ok").mean()
        expected.append(
            {
                "model_id": model_id,
                "latency_percentile": pct,
                "latency_target_ms": slo["latency_ms"],
                "error_rate_target": slo["error_rate"],
                "latency_ms": overall,
                "error_rate": failed,
                "days": len(met),
                "days_met": sum(met),
                "compliance": sum(met) / len(met),
                "status": "met"
                if overall <= slo["latency_ms"] and failed <= slo["error_rate"]
                else "breached",
            }
        )
    expected = pd.DataFrame(expected).sort_values(["compliance", "model_id"])
    _assert_same(actual.drop(columns="name"), expected)
    assert actual.set_index("model_id").loc["gpt-4o", "days"] == 30
    # The default file works too and names every model.
    default = modelhub.slo_report(start, end, url=url)
    assert default["name"].notna().all() and set(default["status"]) <= {"met", "breached"}


# --------------------------------------------------------------------------- bad input


def test_periods_without_traffic_give_empty_reports(small_duck: str) -> None:
    start, end = date(2030, 1, 1), date(2030, 1, 5)
    reports = {
        "leaderboard": modelhub.leaderboard,
        "daily_trend": modelhub.daily_trend,
        "slo_report": modelhub.slo_report,
        "cost_by_feature": modelhub.cost_by_feature,
        "cost_by_customer": modelhub.cost_by_customer,
        "savings": modelhub.savings,
    }
    for name, report in reports.items():
        frame = report(start, end, url=small_duck)
        assert frame.empty and len(frame.columns) > 0, name
    # Asked for a model, daily_trend still lists its (empty) days.
    daily = modelhub.daily_trend(start, end, models=["gpt-4o"], url=small_duck)
    assert len(daily) == 4 and (daily["requests"] == 0).all() and (daily["cost"] == 0).all()
    # Drift against an empty reference window: nothing to compare, the current rows counted.
    current = (date(2026, 9, 1), date(2026, 10, 1))
    lonely = modelhub.drift((start, end), current, model="gpt-4o", url=small_duck)
    assert (lonely["level"] == "insufficient data").all() and (lonely["n_reference"] == 0).all()
    rows = _period_rows(small_duck, *current)
    ok = rows[(rows["model_id"] == "gpt-4o") & (rows["status"] == "ok")]
    assert lonely.set_index("metric")["n_current"].to_dict() == {
        m: int(ok[m].notna().sum()) for m in modelhub.DRIFT_METRICS
    }


def test_bad_input_is_a_config_error(small_duck: str) -> None:
    d = date(2026, 9, 1)
    with pytest.raises(ConfigError, match="must be after its start"):
        modelhub.leaderboard(d, d, url=small_duck)
    with pytest.raises(ConfigError, match="must be after its start"):
        modelhub.daily_trend(d, d - timedelta(days=3), url=small_duck)
    with pytest.raises(ConfigError, match=r"unknown model id\(s\): 'gpt-5'"):
        modelhub.leaderboard(d, d + timedelta(days=7), models=["gpt-4o", "gpt-5"], url=small_duck)
    with pytest.raises(ConfigError, match="unknown model id"):
        modelhub.daily_trend(d, d + timedelta(days=7), models="nope", url=small_duck)
    with pytest.raises(ConfigError, match="unknown time zone"):
        modelhub.leaderboard(d, d + timedelta(days=7), tz="Mars/Olympus", url=small_duck)
    with pytest.raises(ConfigError, match="must be a date"):
        modelhub.leaderboard("yesterday", d, url=small_duck)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="limit must be a positive integer"):
        modelhub.cost_by_customer(d, d + timedelta(days=7), limit=0, url=small_duck)
    with pytest.raises(ConfigError, match="tolerance"):
        modelhub.savings(d, d + timedelta(days=7), tolerance=-0.1, url=small_duck)
    window = (d - timedelta(days=7), d)
    later = (d, d + timedelta(days=7))
    with pytest.raises(ConfigError, match="overlap"):
        modelhub.drift(window, (d - timedelta(days=2), d + timedelta(days=2)), url=small_duck)
    with pytest.raises(ConfigError, match="metrics must be"):
        modelhub.drift(window, later, metrics=["cost"], url=small_duck)
    with pytest.raises(ConfigError, match="bins must be"):
        modelhub.drift(window, later, bins=1, url=small_duck)
    with pytest.raises(ConfigError, match="unknown model id"):
        modelhub.drift(window, later, model="gpt-5", url=small_duck)
    with pytest.raises(ConfigError, match="end of the current window"):
        modelhub.drift(window, (d, d), url=small_duck)


# --------------------------------------------------------------------------- drift


def _drift_windows(manifest: dict) -> tuple[str, tuple[date, date], tuple[date, date]]:
    """The planted input-token drift: 30 days before its start vs 30 days after."""
    (effect,) = [e for e in manifest["effects"] if e["type"] == "drift"]
    start = date.fromisoformat(effect["start"])
    return (
        effect["model_id"],
        (start - timedelta(days=30), start),
        (start, start + timedelta(days=30)),
    )


def test_drift_matches_numpy_on_the_same_bins(effects_warehouse: tuple[str, dict]) -> None:
    from scipy.stats import ks_2samp, kstwo

    url, manifest = effects_warehouse
    model, reference, current = _drift_windows(manifest)
    result = modelhub.drift(reference, current, model=model, url=url).set_index("metric")
    assert list(result.index) == list(modelhub.DRIFT_METRICS)
    ref_rows = _period_rows(url, *reference)
    cur_rows = _period_rows(url, *current)
    for metric, row in result.iterrows():
        values = []
        for rows in (ref_rows, cur_rows):
            mine = rows[(rows["model_id"] == model) & (rows["status"] == "ok")]
            values.append(mine[metric].dropna().to_numpy(dtype=float))
        ref, cur = values
        assert row["n_reference"] == len(ref) and row["n_current"] == len(cur)
        # The SQL edges are the reference quantiles (numpy's linear = percentile_cont).
        edges = np.array(result.attrs["edges"][metric])
        np.testing.assert_allclose(edges, np.quantile(ref, np.arange(1, 20) / 20), rtol=1e-9)
        # PSI over the same bins (bin = number of edges strictly below the value).
        p = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=20) / len(ref)
        q = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=20) / len(cur)
        p, q = np.maximum(p, modelhub.PSI_EPSILON), np.maximum(q, modelhub.PSI_EPSILON)
        assert row["psi"] == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-9)
        # The binned KS statistic is a lower bound of the exact one, and close for 20 bins.
        exact = ks_2samp(ref, cur).statistic
        assert row["ks_statistic"] <= exact + 1e-12
        assert exact - row["ks_statistic"] < 0.05
        n_eff = round(len(ref) * len(cur) / (len(ref) + len(cur)))
        assert row["ks_pvalue"] == pytest.approx(kstwo.sf(row["ks_statistic"], n_eff), rel=1e-9)


def test_planted_drift_is_significant_only_where_planted(
    effects_warehouse: tuple[str, dict], plain_warehouse: tuple[str, dict]
) -> None:
    model, reference, current = _drift_windows(effects_warehouse[1])
    planted = modelhub.drift(
        reference, current, model=model, metrics=["input_tokens"], url=effects_warehouse[0]
    )
    plain = modelhub.drift(
        reference, current, model=model, metrics=["input_tokens"], url=plain_warehouse[0]
    )
    assert planted.loc[0, "level"] == "significant" and planted.loc[0, "psi"] >= 0.25
    assert plain.loc[0, "level"] == "none" and plain.loc[0, "psi"] < 0.1
    # A feature with no requests in the windows has nothing to compare.
    empty = modelhub.drift(reference, current, feature="no_such_feature", url=plain_warehouse[0])
    assert (empty["level"] == "insufficient data").all() and empty["psi"].isna().all()


def test_drift_levels() -> None:
    assert drift_level(0.3, 0.5) == "significant"
    assert drift_level(0.25, 0.5) == "significant"
    assert drift_level(0.1, 0.5) == "moderate"
    assert drift_level(0.05, 0.5) == "none"
    assert drift_level(0.05, 0.001) == "moderate"
    assert drift_level(math.nan, math.nan) == "insufficient data"


# --------------------------------------------------------------------------- savings


def test_savings_finds_the_planted_opportunity(effects_warehouse: tuple[str, dict]) -> None:
    url, manifest = effects_warehouse
    (effect,) = [e for e in manifest["effects"] if e["type"] == "savings_opportunity"]
    start, end = DEMO_END - timedelta(days=90), DEMO_END
    found = modelhub.savings(start, end, url=url)
    assert list(found.columns) == modelhub.SAVINGS_COLUMNS
    assert found["est_monthly_savings"].is_monotonic_decreasing
    hit = found[
        (found["feature"] == effect["feature"])
        & (found["current_model"] == effect["current_model"])
        & (found["candidate_model"] == effect["cheaper_model"])
    ]
    assert len(hit) == 1
    hit = hit.iloc[0]
    assert hit["est_monthly_savings"] > 0
    assert hit["quality_gap"] == pytest.approx(effect["quality_gap"], abs=0.01)
    # The same numbers from raw rows.
    rows = _period_rows(url, start, end)
    rows["effective"] = _row_costs(rows, _table(url, schema.models), url)
    on = rows[rows["feature"] == effect["feature"]]
    cur = on[on["model_id"] == effect["current_model"]]
    cand = on[on["model_id"] == effect["cheaper_model"]]
    cpr_cur, cpr_cand = cur["effective"].mean(), cand["effective"].mean()
    assert hit["current_requests"] == len(cur)
    assert hit["current_quality"] == pytest.approx(cur["quality"].mean(), rel=1e-9)
    assert hit["candidate_quality"] == pytest.approx(cand["quality"].mean(), rel=1e-9)
    assert hit["current_cost_per_request"] == pytest.approx(cpr_cur, rel=1e-9)
    assert hit["candidate_cost_per_request"] == pytest.approx(cpr_cand, rel=1e-9)
    assert hit["est_monthly_savings"] == pytest.approx(
        len(cur) * 30 / 90 * (cpr_cur - cpr_cand), rel=1e-9
    )
    assert f"{len(cur):,} requests" in hit["evidence"]
    assert effect["cheaper_model"] in hit["evidence"]


def test_savings_without_planted_effects(plain_warehouse: tuple[str, dict]) -> None:
    url, _ = plain_warehouse
    start, end = DEMO_END - timedelta(days=90), DEMO_END
    found = modelhub.savings(start, end, url=url)
    pairs = set(
        zip(found["feature"], found["current_model"], found["candidate_model"], strict=True)
    )
    # Without planted effects the demo world has no savings opportunity at all: within every
    # feature a cheaper model is clearly worse (see demo_data.FEATURES).
    assert pairs == set()
    assert modelhub.savings(start, end, min_quality_n=10**9, url=url).empty


def test_savings_shares_flat_fees_by_requests(custom_duck: str) -> None:
    start, end = date(2026, 9, 1), date(2026, 10, 1)
    # mistral-large is clearly worse here, so it qualifies only with a wide tolerance.
    found = modelhub.savings(start, end, min_quality_n=50, tolerance=0.2, url=custom_duck)
    hit = found[
        (found["feature"] == "email_drafting") & (found["current_model"] == "llama-3.1-70b")
    ]
    assert list(hit["candidate_model"]) == ["mistral-large"]
    rows = _period_rows(custom_duck, start, end)
    llama = rows[rows["model_id"] == "llama-3.1-70b"]
    email = llama[llama["feature"] == "email_drafting"]
    assert 0 < len(email) < len(llama)  # the fee is shared with support_triage
    fee = _flat_fee(2400.0, start, end) * len(email) / len(llama)
    expected = (
        fee + _row_costs(email, _table(custom_duck, schema.models), custom_duck).sum()
    ) / len(email)
    assert hit.iloc[0]["current_cost_per_request"] == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_postgres_matches_pandas_and_duckdb(pg_url: str, small_duck: str) -> None:
    demo_data.build(SMALL_MH, url=pg_url)
    tz = "Asia/Tokyo"
    start, end = date(2026, 8, 3), date(2026, 10, 2)  # 60 local days
    actual = modelhub.leaderboard(start, end, tz=tz, url=pg_url)
    _assert_same(actual, _reference_leaderboard(pg_url, start, end, tz))
    _assert_same(actual, modelhub.leaderboard(start, end, tz=tz, url=small_duck))
    # Every other report gives the same answer on both databases.
    reports = {
        "daily_trend": lambda u: modelhub.daily_trend(start, end, tz=tz, url=u),
        "slo_report": lambda u: modelhub.slo_report(start, end, tz=tz, url=u),
        "cost_by_feature": lambda u: modelhub.cost_by_feature(start, end, tz=tz, url=u),
        "cost_by_customer": lambda u: modelhub.cost_by_customer(start, end, tz=tz, url=u),
        "savings": lambda u: modelhub.savings(start, end, min_quality_n=30, tz=tz, url=u),
        "drift": lambda u: modelhub.drift(
            (date(2026, 8, 1), date(2026, 9, 1)), (date(2026, 9, 1), date(2026, 10, 1)), url=u
        ),
    }
    for name, report in reports.items():
        on_pg, on_duckdb = report(pg_url), report(small_duck)
        assert not on_pg.empty, name
        _assert_same(on_pg, on_duckdb)


@pytest.mark.postgres
def test_postgres_prices_tiers_like_duckdb(pg_url: str, custom_duck: str) -> None:
    _build_custom(pg_url)
    start, end = date(2026, 9, 20), date(2026, 10, 20)
    actual = modelhub.leaderboard(start, end, url=pg_url)
    _assert_same(actual, _reference_leaderboard(pg_url, start, end))
    _assert_same(actual, modelhub.leaderboard(start, end, url=custom_duck))
    for report in (modelhub.daily_trend, modelhub.cost_by_feature, modelhub.savings):
        _assert_same(report(start, end, url=pg_url), report(start, end, url=custom_duck))
    # The flat fee follows the deployment on PostgreSQL too (hand computations as in
    # test_flat_fee_runs_from_the_first_to_the_last_request).
    assert _llama_cost(pg_url, date(2026, 8, 1), date(2026, 8, 20)) == 0.0
    assert _llama_cost(pg_url, date(2026, 8, 10), date(2026, 9, 10)) == pytest.approx(
        2400 * (12 / 31 + 9 / 30)
    )
    assert _llama_cost(pg_url, date(2000, 1, 1), date(2100, 1, 1)) == pytest.approx(
        2400 * (12 / 31 + 2)
    )
    tokyo = (date(2026, 10, 15), date(2026, 11, 15), "Asia/Tokyo")
    assert _llama_cost(pg_url, *tokyo) == pytest.approx(_llama_cost(custom_duck, *tokyo))
    assert _llama_cost(pg_url, *tokyo) == pytest.approx(2400 * (17 / 31 + 1 / 30))
    # Two flat models (one statement probes both): mistral-large at $3,100 a month, serving
    # from August 2nd (its first request) to October 31st, and llama as before.
    _set_pricing(pg_url, "mistral-large", {"monthly_cost": 3100})
    board = modelhub.leaderboard(date(2000, 1, 1), date(2100, 1, 1), url=pg_url)
    costs = board.set_index("model_id")["cost"]
    assert costs["mistral-large"] == pytest.approx(3100 * (30 / 31 + 2))
    assert costs[LLAMA] == pytest.approx(2400 * (12 / 31 + 2))


# --------------------------------------------------------------------------- building blocks


def test_periods_are_local_days_with_utc_bounds() -> None:
    period = _periods.parse_period("2026-03-28", date(2026, 3, 30), "Europe/Paris")
    assert (period.start, period.end, period.tz, period.days) == (
        date(2026, 3, 28),
        date(2026, 3, 30),
        "Europe/Paris",
        2,
    )
    # Paris moves to summer time on 2026-03-29: these two local days last 47 hours.
    assert (period.lo, period.hi) == (datetime(2026, 3, 27, 23), datetime(2026, 3, 29, 22))
    assert (period.lo, period.hi) == (_utc(period.start, period.tz), _utc(period.end, period.tz))
    whole_day = _periods.parse_period(datetime(2026, 1, 1, 15, 30), "2026-01-02", None)
    assert (whole_day.start, whole_day.tz, whole_day.days) == (date(2026, 1, 1), "UTC", 1)
    assert _periods.as_date(datetime(2026, 1, 1, 15, 30), "x") == date(2026, 1, 1)
    assert (
        _periods.business_tz(None) == "UTC" and _periods.business_tz("Asia/Tokyo") == "Asia/Tokyo"
    )
    with pytest.raises(ConfigError, match=r"the end of the reference window \(2026-01-01\) must"):
        _periods.parse_period("2026-01-01", "2026-01-01", "UTC", "reference window")
    with pytest.raises(ConfigError, match=r"the start of the period must be a date .*'soon'"):
        _periods.parse_period("soon", "2026-01-02", "UTC")
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        _periods.business_tz("Mars/Olympus")


def test_check_models_keeps_the_order_and_refuses_unknown_ids() -> None:
    known = pd.DataFrame({"model_id": ["a", "b", "c"]})
    assert pricing.check_models(None, known) is None
    assert pricing.check_models("b", known) == ["b"]
    assert pricing.check_models(["c", "a", "c"], known) == ["c", "a"]
    with pytest.raises(ConfigError, match="models is empty"):
        pricing.check_models([], known)
    with pytest.raises(ConfigError, match=r"unknown model id\(s\): 'x', 'y' \(known: a, b, c\)"):
        pricing.check_models(["a", "x", "y"], known)


def test_sql_results_become_typed_columns() -> None:
    counts = _sql.as_int(pd.Series([3, None, Decimal("4")], dtype=object))
    assert counts.dtype == "int64" and counts.tolist() == [3, 0, 4]
    costs = _sql.as_float(pd.Series([Decimal("0.5"), None, 2], dtype=object))
    assert costs.dtype == "float64" and costs[0] == 0.5 and math.isnan(costs[1])
    low, high = _sql.quality_ci(pd.Series([0.8, 0.8]), pd.Series([0.1, 0.1]), pd.Series([100, 1]))
    assert (low[0], high[0]) == pytest.approx((0.8 - 1.959963984540054 * 0.01, 0.8 + 0.0196), 1e-4)
    assert math.isnan(low[1]) and math.isnan(high[1])  # one scored request: no interval


def test_unpriced_groups_are_named_in_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="auterity.modelhub"):
        pricing.warn_unpriced([], "leaderboard")
        assert not caplog.records
        pricing.warn_unpriced(["b", "a", "b"], "daily_trend")
    assert [r.getMessage() for r in caplog.records] == [
        "daily_trend: cost is unknown for a, b (requests of models without prices); shown as NaN"
    ]


def test_deployed_fees_use_the_configured_dates_without_a_query() -> None:
    models = pd.DataFrame(
        {
            "model_id": ["own", "api"],
            "pricing_kind": ["flat", "per_token"],
            "config": [
                {"monthly_cost": 3100, "deployed_on": "2026-01-25", "retired_on": "2026-03-10"},
                {},
            ],
        }
    )
    period = _periods.parse_period(date(2026, 1, 1), date(2026, 4, 1), "UTC")
    # Both dates are configured, so no warehouse is asked (there is none at this URL).
    fees = flat_fees.deployed_fees(models, period, "duckdb:////nonexistent/none.duckdb")
    assert fees == {"own": modelhub.FlatFee(3100.0, date(2026, 1, 25), date(2026, 3, 10))}
    bad = models.assign(config=[{"monthly_cost": -1}, {}])
    with pytest.raises(ConfigError, match="flat-priced 'own' needs a non-negative number"):
        flat_fees.deployed_fees(bad, period, None)


def test_statement_pieces_give_the_leaderboards_numbers(small_duck: str) -> None:
    """A report built from the shared pieces agrees with the leaderboard built from them."""
    period = _periods.parse_period(date(2026, 9, 1), date(2026, 10, 1), "UTC")
    prices = pricing.for_period(period, small_duck)
    models = pricing.catalogue(small_duck)
    assert models["model_id"].is_monotonic_increasing
    assert all(isinstance(config, dict) for config in models["config"])
    kinds = models.set_index("model_id")["pricing_kind"]
    assert set(prices.tiers) == set(kinds[kinds == "tiered"].index)
    assert set(prices.flat) == set(kinds[kinds == "flat"].index)

    def statement(prices: pricing.Pricing) -> sa.Select:
        rows = _sql.raw_rows(period.where()).subquery()
        agg = (
            sa.select(
                rows.c.model_id,
                sa.func.count().label("requests"),
                sa.func.sum(_sql.flag(rows.c.status == "error")).label("errors"),
                *_sql.latency_percentiles(rows.c.ok_latency, (50, 95)),
                *prices.parts(rows.c),
            )
            .group_by(rows.c.model_id)
            .subquery()
        )
        return pricing.priced_select(agg, prices)

    frame = pricing.fetch_priced(statement, prices, small_duck).set_index("model_id")
    assert len(frame) >= 3
    board = modelhub.leaderboard(period.start, period.end, tz="UTC", url=small_duck)
    board = board.set_index("model_id").loc[frame.index]
    fees = frame.index.map(prices.flat_fees()).fillna(0.0)
    assert (_sql.as_int(frame["requests"]) == board["requests"]).all()
    assert (_sql.as_int(frame["errors"]) / board["requests"]).tolist() == pytest.approx(
        board["error_rate"].tolist()
    )
    for col in ("p50_latency_ms", "p95_latency_ms"):  # the board reads the rollups
        assert _sql.as_float(frame[col]).tolist() == pytest.approx(
            board[col].tolist(), rel=rollups.LATENCY_ERROR
        )
    assert (_sql.as_float(frame["cost"]) + fees).tolist() == pytest.approx(board["cost"].tolist())


# --------------------------------------------------------------------------- packaging


def test_import_does_not_pull_scipy_or_plotting() -> None:
    code = "import sys, auterity.modelhub; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in out.stdout.split()}
    assert not loaded & {"scipy", "altair", "prophet", "statsmodels"}
