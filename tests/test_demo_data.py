"""Demo data: deterministic, realistic, and carrying the planted effects its manifest lists."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from auterity import warehouse
from auterity.demo import generate as demo_data
from auterity.errors import ConfigError
from conftest import DEMO_END, SMALL


def _frames(cfg: demo_data.DemoConfig) -> dict[str, pd.DataFrame]:
    """All generated rows by table."""
    out: dict[str, list[pd.DataFrame]] = {}
    for table, frame in demo_data.generate(cfg).chunks():
        out.setdefault(table, []).append(frame)
    return {t: pd.concat(f, ignore_index=True) for t, f in out.items()}


def _read(url: str, sql: str, **params: object) -> pd.DataFrame:
    with warehouse.connect(url) as conn:
        result = conn.execute(sa.text(sql), params)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_data() -> None:
    first, second = _frames(SMALL), _frames(SMALL)
    assert first.keys() == second.keys()
    for table in first:
        pd.testing.assert_frame_equal(first[table], second[table], check_exact=True)


def test_other_seed_other_data() -> None:
    other = demo_data.DemoConfig(
        seed=SMALL.seed + 1, events=SMALL.events, months=SMALL.months, end=SMALL.end
    )
    a, b = _frames(SMALL), _frames(other)
    assert not a["inference_events"]["latency_ms"].equals(b["inference_events"]["latency_ms"])
    assert not a["orders"]["amount"].equals(b["orders"]["amount"])


def test_chunks_match_expected_rows_and_manifest() -> None:
    world = demo_data.generate(SMALL)
    frames = _frames(SMALL)
    assert {t: len(f) for t, f in frames.items()} == world.expected_rows
    assert world.manifest["rows"] == world.expected_rows
    assert world.manifest["start"] == str(SMALL.start)
    assert abs(world.expected_rows["inference_events"] - SMALL.events) == 0
    json.dumps(world.manifest)  # the manifest is plain JSON


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"events": 10}, "--events must be at least 1000"),
        ({"months": 1}, "--months must be between 2 and 120"),
        ({"seed": -1}, "--seed must be a non-negative integer"),
    ],
)
def test_bad_config_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        demo_data.DemoConfig(**kwargs)


# --------------------------------------------------------------------------- realism


@pytest.fixture(scope="module")
def small() -> dict[str, pd.DataFrame]:
    return _frames(SMALL)


def test_ids_unique_and_timestamps_in_range(small: dict[str, pd.DataFrame]) -> None:
    start, end = pd.Timestamp(SMALL.start), pd.Timestamp(SMALL.end)
    keys = {
        "customers": "customer_id",
        "orders": "order_id",
        "product_events": "event_id",
        "inference_events": "request_id",
        "models": "model_id",
    }
    for table, key in keys.items():
        assert small[table][key].is_unique, table
    for table, col in (
        ("customers", "signup_ts"),
        ("orders", "ts"),
        ("product_events", "ts"),
        ("inference_events", "ts"),
    ):
        ts = small[table][col]
        assert ts.min() >= start and ts.max() < end, table
    # Every order and every known event belongs to a customer who had signed up by then.
    signup = small["customers"].set_index("customer_id")["signup_ts"]
    orders = small["orders"]
    assert (orders["ts"].to_numpy() >= signup.loc[orders["customer_id"]].to_numpy()).all()
    known = small["inference_events"].dropna(subset=["customer_id"])
    assert known["customer_id"].isin(signup.index).all()


def test_catalogue_is_rich() -> None:
    models = demo_data.models_frame()
    assert len(models) >= 8
    assert models["provider"].nunique() >= 5
    assert set(models["pricing_kind"]) == {"per_token", "tiered", "flat"}
    flat = models[models["pricing_kind"] == "flat"].iloc[0]
    assert json.loads(flat["pricing_config"])["monthly_cost"] > 0
    assert len(demo_data.FEATURES) >= 5


def test_model_profiles_differ(small: dict[str, pd.DataFrame]) -> None:
    ev = small["inference_events"]
    ok = ev[ev["status"] == "ok"]
    p50 = ok.groupby("model_id")["latency_ms"].median()
    assert p50.max() / p50.min() > 2.5
    err = ev.groupby("model_id")["status"].apply(lambda s: (s != "ok").mean())
    assert err.max() / err.min() > 2
    assert set(ev["status"]) == {"ok", "error", "timeout"}
    q = ok.groupby("model_id")["quality"].mean()
    assert q.max() - q.min() > 0.08
    assert ev["quality"].between(0, 1).all() or ev["quality"].dropna().between(0, 1).all()
    # Providers that report no cost leave it NULL; the rest report it.
    no_cost = set(ev.loc[ev["cost"].isna(), "model_id"])
    assert no_cost == {"mistral-large", "llama-3.1-70b"}


def test_funnel_narrows(small: dict[str, pd.DataFrame]) -> None:
    counts = small["product_events"]["event_type"].value_counts()
    assert counts["visit"] > counts["signup"] > counts["activation"] > counts["purchase"] > 0
    assert 0.04 < counts["signup"] / counts["visit"] < 0.08


def test_seasonality_trend_and_holidays() -> None:
    cfg = demo_data.DemoConfig(seed=3, events=200_000, months=24, end=DEMO_END, effects=False)
    ev = _frames(cfg)["product_events"]
    visits = ev[ev["event_type"] == "visit"].set_index("ts").resample("D").size()
    weekday_mean = visits[visits.index.day_of_week < 5].mean()
    weekend_mean = visits[visits.index.day_of_week >= 5].mean()
    assert weekday_mean > 1.3 * weekend_mean
    first_q, last_q = visits.iloc[:90].mean(), visits.iloc[-90:].mean()
    assert last_q > 1.6 * first_q  # growth
    for year in (2024, 2025):
        christmas = visits[pd.Timestamp(f"{year}-12-25")]
        same_weekday = visits[[pd.Timestamp(f"{year}-12-{d}") for d in (11, 18)]].mean()
        assert christmas < 0.75 * same_weekday


def test_cohort_retention_decays_and_flattens() -> None:
    cfg = demo_data.DemoConfig(seed=5, events=200_000, months=18, end=DEMO_END, effects=False)
    frames = _frames(cfg)
    orders = frames["orders"].merge(frames["customers"], on="customer_id")
    orders = orders[orders["status"] == "completed"]
    first = orders.groupby("customer_id")["ts"].transform("min")
    orders["age"] = (
        (orders["ts"].dt.year - first.dt.year) * 12 + orders["ts"].dt.month - first.dt.month
    )
    cohort = first.dt.to_period("M")
    early = orders[cohort <= pd.Period("2025-09", "M")]
    size = early.groupby("customer_id").ngroups
    retention = early.groupby("age")["customer_id"].nunique() / size
    assert retention[1] > retention[3] > retention[6] > retention[9] > 0
    drop_early = retention[1] - retention[3]
    drop_late = retention[6] - retention[8]
    assert drop_early > 1.3 * drop_late > 0  # decays fast, then flattens


# --------------------------------------------------------------------------- planted effects


def _effects(manifest: dict, kind: str) -> list[dict]:
    return [e for e in manifest["effects"] if e["type"] == kind]


def _window_ratio(daily: pd.Series, start: str, end: str, stat: str = "mean") -> float:
    """Value inside [start, end) relative to the 21 days before start."""
    s, e = pd.Timestamp(start), pd.Timestamp(end)
    inside = daily[(daily.index >= s) & (daily.index < e)]
    before = daily[(daily.index >= s - timedelta(days=21)) & (daily.index < s)]
    return float(getattr(inside, stat)() / getattr(before, stat)())


def test_manifest_lists_every_kind_of_effect(effects_warehouse: tuple[str, dict]) -> None:
    url, manifest = effects_warehouse
    kinds = {e["type"] for e in manifest["effects"]}
    assert kinds == {
        "latency_degradation",
        "conversion_dip",
        "cost_spike",
        "drift",
        "point_anomaly",
        "level_shift",
        "savings_opportunity",
    }
    assert demo_data.load_manifest(url)["effects"] == manifest["effects"]
    assert manifest["rows"]["inference_events"] == 300_000


def _latency_p95_by_window(url: str, model: str, start: str, end: str) -> tuple[float, float]:
    s = pd.Timestamp(start)
    inside = _read(
        url,
        "SELECT latency_ms FROM inference_events WHERE model_id = :m AND "
        "status = 'ok' AND ts >= :s AND ts < :e",
        m=model,
        s=s,
        e=pd.Timestamp(end),
    )["latency_ms"]
    before = _read(
        url,
        "SELECT latency_ms FROM inference_events WHERE model_id = :m AND "
        "status = 'ok' AND ts >= :s AND ts < :e",
        m=model,
        s=s - timedelta(days=21),
        e=s,
    )["latency_ms"]
    return float(np.percentile(inside, 95)), float(np.percentile(before, 95))


def test_latency_degradation_present(effects_warehouse: tuple[str, dict]) -> None:
    url, manifest = effects_warehouse
    (effect,) = _effects(manifest, "latency_degradation")
    for start, end in effect["windows"]:
        inside, before = _latency_p95_by_window(url, effect["model_id"], start, end)
        assert inside / before == pytest.approx(effect["factor"], rel=0.2)


def _daily_conversion(url: str) -> pd.Series:
    df = _read(
        url,
        "SELECT CAST(ts AS DATE) AS day, "
        "SUM(CASE WHEN event_type = 'signup' THEN 1 ELSE 0 END) AS signups, "
        "SUM(CASE WHEN event_type = 'visit' THEN 1 ELSE 0 END) AS visits "
        "FROM product_events GROUP BY 1 ORDER BY 1",
    )
    df["day"] = pd.to_datetime(df["day"])
    return df.set_index("day")


def _window_conversion(daily: pd.DataFrame, windows: list[list[str]], shift: int = 0) -> float:
    """Signups / visits summed over the windows (shifted back by ``shift`` days)."""
    signups = visits = 0
    for start, end in windows:
        s = pd.Timestamp(start) - timedelta(days=shift)
        e = pd.Timestamp(end) - timedelta(days=shift)
        inside = daily[(daily.index >= s) & (daily.index < e)]
        signups, visits = signups + inside.signups.sum(), visits + inside.visits.sum()
    return signups / visits


def test_conversion_dip_follows_with_one_day_lag(
    effects_warehouse: tuple[str, dict], plain_warehouse: tuple[str, dict]
) -> None:
    url, manifest = effects_warehouse
    (dip,) = _effects(manifest, "conversion_dip")
    (slow,) = _effects(manifest, "latency_degradation")
    for (start, _), (slow_start, _) in zip(dip["windows"], slow["windows"], strict=True):
        assert pd.Timestamp(start) - pd.Timestamp(slow_start) == timedelta(days=dip["lag_days"])
    daily, plain = _daily_conversion(url), _daily_conversion(plain_warehouse[0])
    # The worlds share their random draws, so the planted change shows almost exactly...
    planted = _window_conversion(daily, dip["windows"]) / _window_conversion(plain, dip["windows"])
    assert planted == pytest.approx(1 + dip["relative_change"], abs=0.06)
    # ...and it is visible against the three weeks before, as an analyst would see it.
    before = np.mean([_window_conversion(daily, dip["windows"], shift) for shift in (7, 14, 21)])
    assert _window_conversion(daily, dip["windows"]) / before < 0.85


def test_cost_spike_present(effects_warehouse: tuple[str, dict]) -> None:
    url, manifest = effects_warehouse
    (spike,) = _effects(manifest, "cost_spike")
    daily = _read(
        url,
        "SELECT CAST(ts AS DATE) AS day, AVG(output_tokens) AS out_tokens, "
        "SUM(cost) AS cost FROM inference_events WHERE model_id = :m AND status = 'ok' "
        "GROUP BY 1",
        m=spike["model_id"],
    )
    daily = daily.set_index(pd.to_datetime(daily["day"])).sort_index()
    start, end = spike["windows"][0]
    assert _window_ratio(daily["out_tokens"], start, end) == pytest.approx(
        spike["output_tokens_factor"], rel=0.15
    )
    assert _window_ratio(daily["cost"], start, end) > 2.0  # input tokens cost the same


def test_input_token_drift_present(effects_warehouse: tuple[str, dict]) -> None:
    url, manifest = effects_warehouse
    (drift,) = _effects(manifest, "drift")
    s = pd.Timestamp(drift["start"])
    q = "SELECT input_tokens FROM inference_events WHERE model_id = :m AND ts >= :a AND ts < :b"
    after = _read(url, q, m=drift["model_id"], a=s, b=s + timedelta(days=60))["input_tokens"]
    before = _read(url, q, m=drift["model_id"], a=s - timedelta(days=60), b=s)["input_tokens"]
    assert after.median() / before.median() == pytest.approx(drift["factor"], rel=0.12)


def _daily_orders(url: str) -> pd.DataFrame:
    df = _read(url, "SELECT CAST(ts AS DATE) AS day, COUNT(*) AS orders FROM orders GROUP BY 1")
    return df.set_index(pd.to_datetime(df["day"])).sort_index()["orders"]


def test_point_anomalies_present(effects_warehouse: tuple[str, dict]) -> None:
    url, manifest = effects_warehouse
    daily = _daily_orders(url)
    anomalies = _effects(manifest, "point_anomaly")
    assert {a["direction"] for a in anomalies} == {"up", "down"}
    for anomaly in anomalies:
        day = pd.Timestamp(anomaly["date"])
        same_weekday = [day + timedelta(weeks=k) for k in (-3, -2, -1, 1, 2, 3)]
        typical = daily.reindex(same_weekday).median()
        ratio = daily[day] / typical
        assert ratio == pytest.approx(anomaly["factor"], rel=0.05, abs=0.05)


def test_level_shift_present(effects_warehouse: tuple[str, dict]) -> None:
    url, manifest = effects_warehouse
    (shift,) = _effects(manifest, "level_shift")
    s = pd.Timestamp(shift["date"])
    q = (
        "SELECT o.amount FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
        "WHERE c.segment = 'self_serve' AND o.ts >= :a AND o.ts < :b"
    )
    after = _read(url, q, a=s, b=s + timedelta(days=90))["amount"].astype(float)
    before = _read(url, q, a=s - timedelta(days=90), b=s)["amount"].astype(float)
    assert after.median() / before.median() == pytest.approx(1 + shift["relative_change"], rel=0.08)


def _feature_quality(url: str, feature: str) -> pd.Series:
    df = _read(
        url,
        "SELECT model_id, AVG(quality) AS q FROM inference_events "
        "WHERE feature = :f AND quality IS NOT NULL GROUP BY model_id",
        f=feature,
    )
    return df.set_index("model_id")["q"]


def test_savings_opportunity_present_and_absent_without_effects(
    effects_warehouse: tuple[str, dict], plain_warehouse: tuple[str, dict]
) -> None:
    url, manifest = effects_warehouse
    (saving,) = _effects(manifest, "savings_opportunity")
    q = _feature_quality(url, saving["feature"])
    gap = q[saving["current_model"]] - q[saving["cheaper_model"]]
    assert gap == pytest.approx(saving["quality_gap"], abs=0.006)
    plain_q = _feature_quality(plain_warehouse[0], saving["feature"])
    assert plain_q[saving["current_model"]] - plain_q[saving["cheaper_model"]] > 0.05


def test_no_effects_means_nothing_planted(
    plain_warehouse: tuple[str, dict], effects_warehouse: tuple[str, dict]
) -> None:
    url, manifest = plain_warehouse
    assert manifest["effects"] == [] and manifest["effects_planted"] is False
    (slow,) = _effects(effects_warehouse[1], "latency_degradation")
    for start, end in slow["windows"]:
        inside, before = _latency_p95_by_window(url, slow["model_id"], start, end)
        assert inside / before == pytest.approx(1.0, rel=0.2)
    daily = _daily_orders(url)
    for anomaly in _effects(effects_warehouse[1], "point_anomaly"):
        day = pd.Timestamp(anomaly["date"])
        typical = daily.reindex([day + timedelta(weeks=k) for k in (-2, -1, 1, 2)]).median()
        assert 0.55 < daily[day] / typical < 1.7  # ordinary noise, nothing like x3 or x0.3


# --------------------------------------------------------------------------- databases


@pytest.mark.postgres
def test_same_data_on_postgres_and_duckdb(pg_url: str, _isolated_warehouse: str) -> None:
    cfg = demo_data.DemoConfig(seed=21, events=15_000, months=4, end=DEMO_END)
    duck = demo_data.build(cfg, url=_isolated_warehouse)
    pg = demo_data.build(cfg, url=pg_url)
    assert duck["rows"] == pg["rows"]
    checks = {
        "orders": "SELECT COUNT(*), SUM(amount), MIN(ts), MAX(ts) FROM orders",
        "inference_events": "SELECT COUNT(*), ROUND(SUM(latency_ms)), SUM(input_tokens), "
        "ROUND(SUM(cost) * 10000), COUNT(quality), SUM(feedback) "
        "FROM inference_events",
        "product_events": "SELECT event_type, COUNT(*) FROM product_events GROUP BY 1 ORDER BY 1",
        "customers": "SELECT region, COUNT(*), MIN(email) FROM customers GROUP BY 1 ORDER BY 1",
    }
    for name, sql in checks.items():
        a, b = _read(_isolated_warehouse, sql), _read(pg_url, sql)
        assert [tuple(map(str, r)) for r in a.itertuples(index=False)] == [
            tuple(map(str, r)) for r in b.itertuples(index=False)
        ], name
    assert demo_data.load_manifest(pg_url)["effects"] == pg["effects"]
