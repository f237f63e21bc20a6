"""Automated insights on demo worlds with and without planted effects, and the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auterity import correlate, insights, warehouse
from auterity.cli import main
from auterity.demo import generate as demo_data
from auterity.errors import ConfigError
from conftest import build_duckdb, read_table

END = date(2026, 11, 1)
# Nine months, enough visitors a day for the planted conversion dips to be measurable; the
# first 45 days (the world's start-up, when traffic ramps up from zero) are not analysed.
WORLD = demo_data.DemoConfig(seed=1, events=600_000, months=9, end=END)
START = WORLD.start + timedelta(days=45)


def _build(tmp: Path, effects: bool) -> tuple[str, dict]:
    """Build the world (with or without effects) into a DuckDB file."""
    cfg = dataclasses.replace(WORLD, effects=effects)
    return build_duckdb(cfg, tmp / ("effects.duckdb" if effects else "plain.duckdb"))


@pytest.fixture(scope="module")
def effects_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """The nine-month world with planted effects (built once for this module)."""
    return _build(tmp_path_factory.mktemp("insights_effects"), True)


@pytest.fixture(scope="module")
def plain_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """The same world without planted effects."""
    return _build(tmp_path_factory.mktemp("insights_plain"), False)


@pytest.fixture(scope="module")
def effects_report(effects_world: tuple[str, dict]) -> Iterator[insights.InsightReport]:
    """Every kind of insight on the effects world (computed once)."""
    url, _ = effects_world
    yield insights.run(START, END, url=url)
    warehouse.dispose_engines()


def _windows(manifest: dict, kind: str) -> list[tuple[date, date]]:
    """The planted windows of an effect type (inclusive end)."""
    effect = next(e for e in manifest["effects"] if e["type"] == kind)
    return [
        (date.fromisoformat(a), date.fromisoformat(b) - timedelta(days=1))
        for a, b in effect["windows"]
    ]


def _overlaps(ev: dict, window: tuple[date, date]) -> bool:
    """An anomaly card's window overlaps a planted one (one day of slack)."""
    start, end = pd.Timestamp(ev["start"]).date(), pd.Timestamp(ev["end"]).date()
    return start <= window[1] + timedelta(days=1) and window[0] <= end + timedelta(days=1)


def test_planted_latency_conversion_link_is_the_correlation_found(
    effects_report: insights.InsightReport,
) -> None:
    cards = [c for c in effects_report.cards if c.kind == "correlation"]
    planted = [
        c
        for c in cards
        if c.evidence["ml_series"] == "gpt-4o:p95_latency_ms"
        and c.evidence["business_metric"] == "conversion_rate"
    ]
    assert len(planted) == 1, [c.sentence for c in cards]
    ev = planted[0].evidence
    assert ev["pearson_r"] < -0.25 and ev["spearman_r"] < 0
    assert ev["pearson_ci"][0] < ev["pearson_r"] < ev["pearson_ci"][1] < 0
    assert ev["lag_days"] == 1  # the manifest's lag: the dip follows the slowdown by a day
    assert ev["q_value"] < 0.05 and ev["hypotheses_tested"] == 1575
    assert effects_report.tested["correlation_hypotheses"] == 1575
    assert "gpt-4o's p95 latency rises, conversion rate falls 1 day later" in planted[0].sentence
    # The chart shows both standardised series.
    assert planted[0].chart is not None and planted[0].chart["layer"]
    # Nothing else is reported with that strength of evidence: at most one more pair.
    assert len(cards) <= 2


def test_other_planted_effects_become_cards(
    effects_world: tuple[str, dict], effects_report: insights.InsightReport
) -> None:
    _, manifest = effects_world
    cards = effects_report.cards
    anomalies = [c.evidence for c in cards if c.kind == "anomaly"]
    slow = [a for a in anomalies if a["series"] == "gpt-4o:p95_latency_ms"]
    planted = _windows(manifest, "latency_degradation")
    found = [w for w in planted if any(_overlaps(a, w) for a in slow)]
    # Every slowdown, including the one whose return to normal scores higher than its
    # onset (a fall merged into the rise's window used to turn it into a 'down' alert).
    assert found == planted
    assert all(a["direction"] == "up" and a["causal"] for a in slow)
    spike = _windows(manifest, "cost_spike")[0]
    assert any(
        a["series"] == "claude-3-5-sonnet:cost_per_request" and _overlaps(a, spike)
        for a in anomalies
    )
    drift = [c.evidence for c in cards if c.kind == "drift"]
    assert [(d["model_id"], d["metric"]) for d in drift] == [("gpt-4o-mini", "input_tokens")]
    assert drift[0]["psi"] > 0.5 and drift[0]["ks_pvalue"] < 1e-6
    savings = [c.evidence for c in cards if c.kind == "savings"]
    assert [(s["feature"], s["current_model"], s["candidate_model"]) for s in savings] == [
        ("summarization", "gpt-4o", "claude-3-5-haiku")
    ]
    shift = next(e for e in manifest["effects"] if e["type"] == "level_shift")
    steps = [c.evidence for c in cards if c.kind == "level_shift"]
    assert len(steps) == 1 and steps[0]["metric"] == "average_order_value"
    # Scanned at constant segment mix, the +25 % price step is dated to within two days.
    assert steps[0]["constant_mix_of"] == "segment"
    assert abs((steps[0]["date"] - date.fromisoformat(shift["date"])).days) <= 2
    assert 0.15 < steps[0]["change_pct"] < 0.35
    assert steps[0]["p_bonferroni"] < steps[0]["alpha"] == 0.05 * insights.LEVEL_ALPHA_SHARE
    assert all(a["slow_share"] > 0.3 and a["requests"] > 500 for a in slow)
    points = [
        date.fromisoformat(e["date"]) for e in manifest["effects"] if e["type"] == "point_anomaly"
    ]
    order_cards = [a for a in anomalies if a["series"] in ("orders", "revenue")]
    assert any(_overlaps(a, (p, p)) for a in order_cards for p in points)


def test_cards_are_ranked_serialisable_and_limited(
    effects_world: tuple[str, dict], effects_report: insights.InsightReport
) -> None:
    cards = effects_report.cards
    assert [c.importance for c in cards] == sorted((c.importance for c in cards), reverse=True)
    assert all(0 <= c.importance <= 1 for c in cards)
    data = json.loads(json.dumps(effects_report.to_dict()))
    assert data["start"] == START.isoformat() and data["end"] == END.isoformat()
    assert len(data["cards"]) == len(cards)
    for card in data["cards"]:
        assert card["kind"] in insights.KINDS
        assert card["sentence"].endswith(".")
        assert card["chart"] is None or "$schema" in card["chart"]
    movers = [c for c in cards if c.kind == "mover"]
    assert all(abs(c.evidence["change_pct"]) >= 0.05 for c in movers)
    assert all(c.evidence["q_value"] <= 0.05 for c in movers)
    url, _ = effects_world
    top = insights.generate(START, END, url=url, kinds=["savings", "drift"], limit=1)
    assert len(top) == 1 and top[0].kind == "drift"  # drift ranks above savings here


def test_no_effects_world_gives_no_false_findings(plain_world: tuple[str, dict]) -> None:
    url, manifest = plain_world
    assert manifest["effects"] == []
    report = insights.run(
        START, END, url=url, kinds=["correlation", "anomaly", "level_shift", "drift", "savings"]
    )
    assert report.cards == [], [c.sentence for c in report.cards]
    assert report.tested["correlation_hypotheses"] == 1575
    assert report.tested["drift_comparisons"] == 36
    assert report.tested["level_shift_metrics"] == 1
    result = correlate.correlate(START, END, url=url)
    assert result.findings.empty
    assert result.tests["q_value"].min() > 0.05
    warehouse.dispose_engines()


def test_series_are_daily_sql_aggregates(effects_world: tuple[str, dict]) -> None:
    url, _ = effects_world
    series = correlate.load_series(START, END, url=url)
    days = (END - START).days
    assert len(series.ml) == len(series.business) == days
    assert list(series.business.columns) == list(correlate.BUSINESS_METRICS)
    # Flat-fee cost per request only mirrors traffic: left out.
    assert "llama-3.1-70b:cost_per_request" not in series.ml.columns
    assert "llama-3.1-70b:p95_latency_ms" in series.ml.columns
    assert "gpt-4o:cost_per_request" in series.ml.columns
    assert len(series.ml.columns) == 35
    thin = series.requests["gpt-4o"] < 20
    assert series.ml.loc[thin, "gpt-4o:p95_latency_ms"].isna().all()
    # US public holidays are left out (July 3, 2026: Independence Day observed).
    assert series.business.loc["2026-07-03"].isna().all()
    assert series.ml.loc["2026-07-03"].isna().all()
    kept = correlate.load_series(START, END, url=url, holidays=None)
    assert kept.business.loc["2026-07-03"].notna().all()
    with pytest.raises(ConfigError, match="unknown ML metric"):
        correlate.load_series(START, END, url=url, ml_metrics=["nope"])
    warehouse.dispose_engines()


def test_forecasts_of_the_default_90_day_window_read_their_history(
    effects_world: tuple[str, dict],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The default window (90 days, as in parameters/05-insights/quarterly.yml) is shorter
    than the 112 days a 28-day forecast needs: the history before it is read, and the three
    KPIs are tested (they used to be skipped silently: forecast_metrics 0, skipped {})."""
    url, _ = effects_world
    monkeypatch.setenv("AUTERITY_DB_URL", url)
    args = ["insights", "--end", END.isoformat(), "--kind", "forecast_risk", "--format", "json"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["start"] == (END - timedelta(days=90)).isoformat()
    assert data["tested"]["forecast_metrics"] == len(insights.FORECAST_METRICS) == 3
    assert data["skipped"] == {}
    history = insights.forecast_series(END - timedelta(days=90), END, url=url)
    assert history.business.index[0] == pd.Timestamp(END - timedelta(days=112))
    assert history.business.index[-1] == pd.Timestamp(END - timedelta(days=1))
    assert list(history.business.columns) == list(insights.FORECAST_METRICS)
    assert history.business.loc["2026-09-07"].isna().all()  # Labor Day left out
    warehouse.dispose_engines()


def test_what_a_short_or_early_range_cannot_test_is_listed_with_why(
    effects_world: tuple[str, dict],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, _ = effects_world
    start = WORLD.start + timedelta(days=10)  # the data begin on WORLD.start
    end = start + timedelta(days=60)
    report = insights.run(
        start, end, url=url, kinds=["level_shift", "forecast_risk", "mover", "drift"]
    )
    assert report.tested["level_shift_metrics"] == 0 and report.tested["forecast_metrics"] == 0
    assert report.skipped["level_shift"] == (
        f"needs 84 days (28 days on each side of every candidate step); {start} to {end} has 60"
    )
    reason = report.skipped["forecast_risk"]
    assert f"needs 112 days of daily history up to {end}" in reason
    # only the days since the data began count: from the first completed order (UTC days)
    orders = read_table(url, "orders")
    first = pd.to_datetime(orders.loc[orders["status"] == "completed", "ts"]).min().date()
    assert f"has {(end - first).days} for revenue" in reason
    assert set(report.skipped) == {"level_shift", "forecast_risk"}  # movers, drift ran
    longer = insights.run(start, end, url=url, kinds=["mover", "drift"], period_days=40)
    assert longer.skipped == {
        "mover": f"needs 80 days (the last 40 against the ones before); {start} to {end} has 60",
        "drift": f"needs 80 days (a reference and a current window); {start} to {end} has 60",
    }
    # The same in the JSON and in the table of the CLI.
    monkeypatch.setenv("AUTERITY_DB_URL", url)
    args = ["insights", "--start", start.isoformat(), "--end", end.isoformat()]
    assert main([*args, "--kind", "level_shift", "--format", "json"]) == 0
    assert "level_shift" in json.loads(capsys.readouterr().out)["skipped"]
    assert main([*args, "--kind", "forecast_risk"]) == 0
    assert "not checked: forecast_risk: a forecast of the next 28 days" in capsys.readouterr().out
    warehouse.dispose_engines()


@pytest.mark.parametrize("when", ["after", "before"])
def test_a_range_without_data_gives_no_cards_and_says_why(
    effects_world: tuple[str, dict], when: str
) -> None:
    """Every kind copes with windows without a row (they used to fail: NULL daily values
    of object dtype in the movers' test, a division by a zero total in the level scan)."""
    url, _ = effects_world
    start = END + timedelta(days=200) if when == "after" else WORLD.start - timedelta(days=400)
    report = insights.run(start, start + timedelta(days=120), url=url)
    assert report.cards == []
    assert "no model had requests in the range" in report.skipped["drift"]
    assert "the warehouse has 0 for revenue" in report.skipped["forecast_risk"]
    warehouse.dispose_engines()


def test_the_insights_report_lists_what_it_could_not_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, analytics_duckdb: str
) -> None:
    """Notebook 05 shows the skipped kinds with their reasons (a 61-day range of a world
    whose data begin on 2026-06-01: no level-shift scan, too little history to forecast)."""
    from auterity import reports

    repo = Path(__file__).resolve().parents[1]
    root = tmp_path / "home"
    root.mkdir()
    (root / "pyproject.toml").write_text("")
    for folder in ("notebooks", "parameters"):
        (root / folder).symlink_to(repo / folder)
    monkeypatch.setenv("AUTERITY_HOME", str(root))
    monkeypatch.setenv("AUTERITY_DB_URL", analytics_duckdb)
    overrides = ["period=custom", "start=2026-06-10", "end=2026-08-10"]
    overrides.append("kinds=level_shift,forecast_risk")
    record = reports.run("05-insights", overrides=overrides, pdf=False)
    assert record.ok, record.error_message
    page = Path(record.outputs["html"]).read_text()
    assert "Not checked:" in page
    assert "New level" in page and "needs 84 days (28 days on each side" in page
    assert "Forecast risk" in page and "needs 112 days of daily history up to 2026-08-10" in page


def test_series_too_short_to_judge_are_not_counted_as_judged() -> None:
    days = pd.date_range("2026-01-01", periods=60, freq="D")
    rng = np.random.default_rng(3)
    frames = {
        name: (
            pd.DataFrame({"ds": days[-length:], "y": 100 + rng.normal(0, 1, length)}),
            "count",
            name,
            ("up", "down"),
            ("low", "medium", "high"),
            False,
        )
        for name, length in (("long", 60), ("short", 20))
    }
    cards, judged = insights.anomaly_cards(frames)
    assert judged == 1 and cards == []
    assert insights.anomaly.skipped_reason(frames) == (
        "1 series with fewer than 28 days of data (history included) not judged: short"
    )


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown insight kind"):
        insights.run(START, END, kinds=["nope"])
    with pytest.raises(ConfigError, match="after start"):
        insights.run(END, START)
    with pytest.raises(ConfigError, match="8 weeks"):
        insights.run(END - timedelta(days=20), END)
    with pytest.raises(ConfigError, match="limit"):
        insights.run(START, END, limit=0)


def test_cli_insights_json_and_table(
    effects_world: tuple[str, dict],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, _ = effects_world
    monkeypatch.setenv("AUTERITY_DB_URL", url)
    args = ["insights", "--start", START.isoformat(), "--end", END.isoformat()]
    assert main([*args, "--kind", "correlation", "--format", "json", "--no-charts"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tested"]["correlation_hypotheses"] == 1575
    assert data["cards"] and all("chart" not in c for c in data["cards"])
    assert data["cards"][0]["evidence"]["ml_series"] == "gpt-4o:p95_latency_ms"
    assert main([*args, "--kind", "savings", "--limit", "1", "--holidays", ""]) == 0
    out = capsys.readouterr().out
    assert "1 significant finding(s)" in out
    assert "[savings, " in out and "claude-3-5-haiku" in out
    warehouse.dispose_engines()


def test_cli_insights_help_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["insights", "--help"]) == 0
    assert "--limit" in capsys.readouterr().out
    assert main(["insights", "--start", "2026-13-01", "--end", "2026-11-01"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "auterity: error:" in err and "2026-13-01" in err
    assert main(["insights", "--start", "2026-10-01", "--end", "2026-11-01"]) == 2
    assert "8 weeks" in capsys.readouterr().err
    assert main(["insights", "--end", "2026-11-01", "--kind", "bogus"]) == 2
    assert "unknown insight kind" in capsys.readouterr().err


def test_forecast_risk_card_for_a_falling_kpi() -> None:
    days = pd.date_range("2026-01-01", periods=140, freq="D", name="day")
    falling = pd.Series(10_000.0 - 60.0 * np.arange(140), index=days)
    series = correlate.Series(
        ml=pd.DataFrame(index=days),
        business=pd.DataFrame({"revenue": falling, "active_customers": falling * 0 + 500.0}),
    )
    cards, tested = insights.forecast_cards(series, period_days=28)
    assert tested == 2
    assert [c.evidence["metric"] for c in cards] == ["revenue"]  # flat customers: no risk
    ev = cards[0].evidence
    assert ev["forecast_band"][1] < ev["last_total"] and ev["change_pct"] < -0.1
    assert "forecast" in cards[0].sentence and cards[0].chart is not None


def test_short_ranges_and_broken_charts_give_no_cards() -> None:
    start, end = date(2026, 1, 1), date(2026, 2, 10)
    assert insights.mover_cards(start, end) == ([], 0)
    assert insights.drift_cards(start, end) == ([], 0)
    assert insights.level_shift_cards(start, end) == ([], 0)
    assert insights.cards.chart_spec("trend", pd.DataFrame({"x": [1]}), "y", unit="number") is None
    card = insights.InsightCard("savings", "t", "s.", 0.5, {"when": date(2026, 1, 1)})
    assert card.to_dict() == {
        "kind": "savings",
        "title": "t",
        "sentence": "s.",
        "importance": 0.5,
        "evidence": {"when": "2026-01-01"},
        "chart": None,
    }


def test_a_fall_back_to_normal_does_not_turn_a_slowdown_into_a_drop() -> None:
    from auterity import anomaly

    # A five-day slowdown: by its last day the causal expectation has caught up with it, so
    # the day back to normal is flagged as a fall, here scoring higher than the onset.
    days = pd.date_range("2026-04-01", periods=10, freq="D")
    up, down = "up", "down"
    points = pd.DataFrame(
        {
            "ds": days,
            "y": [7.0, 7.1, 17.0, 17.5, 17.2, 17.1, 16.9, 7.0, 7.1, 7.0],
            "expected": [7.0, 7.0, 7.1, 7.2, 7.4, 9.0, 16.5, 17.0, 7.2, 7.0],
            "score": [0.1, 0.3, 12.0, 12.5, 11.0, 9.0, 0.5, 13.0, 0.2, 0.1],
            "direction": [up, up, up, up, up, up, up, down, down, up],
            "severity": ["", "", "high", "high", "medium", "medium", "", "high", "", ""],
        }
    )
    points["is_anomaly"] = points["score"] >= 5
    merged = anomaly.alert_windows(points, merge_gap=1)
    result = anomaly.AnomalyResult(
        points=points,
        windows=merged,
        causal=True,
        method="stl_mad",
        threshold=5.0,
        options={"period": 7, "history": 56, "merge_gap": 1},
    )
    # The detector's own window spans both and takes the larger peak's direction ...
    assert [(w.start, w.end, w.direction) for w in merged] == [(days[2], days[7], down)]
    # ... but when only rises matter, the window is formed by the rises alone.
    rises = insights.anomaly.windows_in(result, ("up",))
    assert [(w.start, w.end, w.direction, w.score) for w in rises] == [(days[2], days[5], up, 12.5)]
    assert insights.anomaly.windows_in(result, ("up", "down")) == merged


def test_revenue_is_judged_on_a_log_scale() -> None:
    days = pd.date_range("2026-01-01", periods=120, freq="D", name="day")
    weekly = np.array([1.0, 1.1, 1.1, 1.0, 0.9, 0.7, 0.6])[np.arange(120) % 7]
    rng = np.random.default_rng(4)
    # Revenue with relative day-to-day noise (sums of skewed order amounts), one day of
    # x2.2 (a few more large orders than usual) and one day that falls to 30 %.
    revenue = 20_000 * weekly * rng.lognormal(0, 0.15, 120)
    revenue[100] = 20_000 * weekly[100] * 2.2
    revenue[110] = 20_000 * weekly[110] * 0.3
    series = correlate.Series(
        ml=pd.DataFrame(index=days),
        business=pd.DataFrame({"revenue": revenue, "orders": revenue / 100}, index=days),
    )
    frames = insights.anomaly.series_frames(series)
    assert frames["revenue"][5] is True and frames["orders"][5] is False
    cards, tested = insights.anomaly_cards(
        {"revenue": frames["revenue"]}, report_from=days[60].date()
    )
    assert tested == 1
    assert [(c.evidence["start"], c.evidence["direction"]) for c in cards] == [(days[110], "down")]
    assert cards[0].evidence["log_scale"] is True and "on a log scale" in cards[0].sentence
    assert cards[0].evidence["expected_value"] == pytest.approx(20_000 * weekly[110], rel=0.2)
    # On the linear scale the same series gives the x2.2 day and misses the fall.
    linear, _ = insights.anomaly_cards(
        {"revenue": (*frames["revenue"][:5], False)}, report_from=days[60].date()
    )
    assert [(c.evidence["start"], c.evidence["direction"]) for c in linear] == [(days[100], "up")]
    # A series with a zero day cannot be judged on a log scale: it falls back to linear.
    zero = {
        "revenue": (
            frames["revenue"][0].assign(y=lambda f: f["y"].where(f.index != 3, 0.0)),
            *frames["revenue"][1:],
        )
    }
    fallback, _ = insights.anomaly_cards(zero, report_from=days[60].date())
    assert fallback and not fallback[0].evidence["log_scale"]


def test_slow_share_test_known_values() -> None:
    from scipy import stats

    # 4 of 40 requests slower than the expected p95: P(Binomial(40, 0.05) >= 4) = 0.138.
    assert insights.slow_share_test(4, 40, quantile=0.95) == pytest.approx(
        stats.binom.sf(3, 40, 0.05)
    )
    assert insights.slow_share_test(4, 40, quantile=0.95) == pytest.approx(0.1381, abs=1e-3)
    assert insights.slow_share_test(4, 40, quantile=0.95, tests=100) == 1.0
    assert insights.slow_share_test(0, 40, quantile=0.95) == 1.0
    assert insights.slow_share_test(0, 0, quantile=0.95) == 1.0
    # Half of 100 requests slow: far beyond chance even after 5,000 tests.
    assert insights.slow_share_test(50, 100, quantile=0.95, tests=5_000) < 1e-20


def _latency_frames(spike_days: int) -> tuple[dict, pd.DatetimeIndex]:
    """A p95 latency series of model ``m`` (about 3 s) with ``spike_days`` days at 7 s."""
    days = pd.date_range("2026-03-01", periods=90, freq="D")
    y = 3000 + 100 * np.sin(np.arange(90))
    y[70 : 70 + spike_days] = 7000
    frame = pd.DataFrame({"ds": days, "y": y})
    return {
        "m:p95_latency_ms": (frame, "ms", "m p95 latency", ("up",), ("medium", "high"), False)
    }, days


def test_a_latency_rise_needs_enough_slow_requests() -> None:
    frames, days = _latency_frames(1)
    calls: list[tuple[str, str, list]] = []

    def few(model_id: str, metric: str, thresholds: list) -> tuple[int, int]:
        calls.append((model_id, metric, thresholds))
        return 4, 40  # the p95 of 40 requests is their second slowest: 4 slow is chance

    cards, _ = insights.anomaly_cards(frames, report_from=days[40].date(), slow_requests=few)
    assert cards == []
    assert calls and calls[0][:2] == ("m", "p95_latency_ms")
    ((day, threshold),) = calls[0][2]
    assert day == days[70].date() and 2800 < threshold < 3300  # the expected p95, not 7 s

    def many(model_id: str, metric: str, thresholds: list) -> tuple[int, int]:
        return 60 * len(thresholds), 100 * len(thresholds)

    cards, _ = insights.anomaly_cards(frames, report_from=days[40].date(), slow_requests=many)
    assert len(cards) == 1
    ev = cards[0].evidence
    assert ev["start"] == days[70] and ev["requests"] == 100 and ev["slower_than_expected"] == 60
    assert ev["slow_share"] == pytest.approx(0.6) and ev["slow_share_p_bonferroni"] < 1e-30
    assert "60 of 100 requests (60 %, 5 % on a normal day) were slower" in cards[0].sentence
    # Without a request counter the detector's word is taken (and nothing is claimed).
    alone, _ = insights.anomaly_cards(frames, report_from=days[40].date())
    assert len(alone) == 1 and "requests" not in alone[0].evidence


def test_mix_adjusted_ratio_ignores_mix_and_follows_prices() -> None:
    days = pd.date_range("2026-01-01", periods=120, freq="D")
    # Segment a sells at 10, b at 100. From day 60 on b's share of orders goes from 10 %
    # to 50 %: the average order value jumps from 19 to 55, at constant prices.
    share_b = np.where(np.arange(120) < 60, 0.1, 0.5)
    orders = pd.DataFrame(
        {
            "period": np.repeat(days, 2),
            "segment": np.tile(["a", "b"], 120),
            "orders": np.column_stack([100 * (1 - share_b), 100 * share_b]).ravel(),
        }
    )
    orders["revenue"] = orders["orders"] * orders["segment"].map({"a": 10.0, "b": 100.0})
    raw = orders.groupby("period")["revenue"].sum() / orders.groupby("period")["orders"].sum()
    assert raw.iloc[0] == pytest.approx(19) and raw.iloc[-1] == pytest.approx(55)
    mix = insights.mix_adjusted(orders, "revenue", "orders", "segment")
    assert mix.index.equals(pd.DatetimeIndex(days, name="period"))
    overall = orders["revenue"].sum() / orders["orders"].sum()
    assert np.allclose(mix.to_numpy(), overall)  # no step at constant prices
    # Prices +25 % in both segments from day 90: the constant-mix series steps +25 %.
    priced = orders.assign(
        revenue=orders["revenue"] * np.where(orders["period"] >= days[90], 1.25, 1.0)
    )
    stepped = insights.mix_adjusted(priced, "revenue", "orders", "segment")
    assert stepped.iloc[95] / stepped.iloc[85] == pytest.approx(1.25)
    # A day without orders is NaN, not a zero-value day.
    empty = orders.assign(orders=np.where(orders["period"] == days[5], 0.0, orders["orders"]))
    assert np.isnan(insights.mix_adjusted(empty, "revenue", "orders", "segment").iloc[5])


def test_step_scan_dates_a_step_and_ignores_noise() -> None:
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 1, 150)
    p, t, candidates = insights.step_scan(noise + np.where(np.arange(150) >= 90, 3.0, 0.0), 28)
    assert t == 90 and candidates == 150 - 2 * 28 + 1 and p * candidates < 1e-6
    p, t, candidates = insights.step_scan(noise, 28)
    assert p * candidates > 0.05
    gaps = np.full(150, np.nan)
    assert insights.step_scan(gaps, 28)[1] is None


def test_slow_requests_are_counted_through_the_metric_layer(
    effects_world: tuple[str, dict],
) -> None:
    import duckdb

    url, manifest = effects_world
    slowdown = _windows(manifest, "latency_degradation")[0][0]
    normal = slowdown - timedelta(days=10)
    asked = [(slowdown, 7000.0), (normal, 7000.0)]
    slow, total = insights.anomaly_checks.count_slow_requests("gpt-4o", asked, url=url)
    warehouse.dispose_engines()
    with duckdb.connect(url.removeprefix("duckdb:///"), read_only=True) as con:
        expected = [
            con.execute(
                "select count(*), count(*) filter (where latency_ms > 7000) from inference_events"
                " where model_id = 'gpt-4o' and status = 'ok' and ts >= ? and ts < ?",
                [day, day + timedelta(days=1)],
            ).fetchone()
            for day, _ in asked
        ]
    assert total == sum(n for n, _ in expected) > 0
    assert slow == sum(k for _, k in expected)
    # On the slowdown's first day most requests are slower than a normal day's p95.
    on_day = expected[0]
    assert on_day[1] / on_day[0] > 0.3 and expected[1][1] / expected[1][0] < 0.1


def test_level_shift_scan_without_a_mix_dimension_uses_the_metric_itself(
    plain_world: tuple[str, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = plain_world
    # No dimension to hold constant: the daily metric itself is scanned (no step here).
    monkeypatch.setattr(insights.level_shift, "LEVEL_METRICS", {"average_order_value": ()})
    assert insights.level_shift_cards(START, END, alpha=0.01, url=url) == ([], 1)
    warehouse.dispose_engines()


def test_order_counts_are_judged_against_poisson_noise_too() -> None:
    assert insights.poisson_score(70, 100) == pytest.approx(-3.0)
    assert insights.poisson_score(130, 100) == pytest.approx(3.0)
    assert math.isnan(insights.poisson_score(3, 0))
    days = pd.date_range("2026-01-01", periods=120, freq="D")
    rng = np.random.default_rng(5)
    # About 100 orders a day, with day-to-day noise (+-2) far under a Poisson count's (10):
    # the detector's robust scale is tiny, so 70 orders scores high, but 30 fewer orders
    # than 100 is 3 Poisson standard deviations, within counting noise; 30 orders is 7.
    orders = np.round(100 + rng.normal(0, 2, 120))
    orders[90], orders[105] = 70, 30
    frame = pd.DataFrame({"ds": days, "y": orders})
    watched = {
        "orders": (frame, "count", "Orders", ("up", "down"), ("low", "medium", "high"), False)
    }
    cards, _ = insights.anomaly_cards(watched, report_from=days[60].date())
    assert [(c.evidence["start"], c.evidence["direction"]) for c in cards] == [(days[105], "down")]
    assert cards[0].evidence["poisson_score"] == pytest.approx(
        (30 - cards[0].evidence["expected_value"]) / math.sqrt(cards[0].evidence["expected_value"])
    )
    assert cards[0].evidence["poisson_score"] < -5
    # The same series under another name is judged by the detector alone: both days.
    other = {"visits": watched["orders"]}
    both, _ = insights.anomaly_cards(other, report_from=days[60].date())
    assert [c.evidence["start"] for c in both] == [days[90], days[105]]
    assert "poisson_score" not in both[0].evidence


def test_every_kind_registers_itself_in_the_order_run_asks_them() -> None:
    """Each kind's module registers its finder; run() asks them in registration order (the
    order of the report's tested and skipped), and ranks ties in the order of KINDS."""
    names = insights.insight_kinds.names()
    assert names == (
        "correlation",
        "mover",
        "level_shift",
        "drift",
        "savings",
        "anomaly",
        "forecast_risk",
    )
    assert sorted(names) == sorted(insights.KINDS)
    assert insights.insight_kinds.ranked() == insights.KINDS
    # ... each by its own module (named after the kind)
    registered_by = [insights.insight_kinds.get(name).__module__ for name in names]
    assert registered_by == [f"auterity.insights.{name}" for name in names]


def test_a_new_kind_is_one_registration_away_from_run(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[insights.Context] = []

    def find_tiny(context: insights.Context) -> insights.Found:
        asked.append(context)
        days = (context.end - context.start).days
        card = insights.InsightCard("tiny", "A tiny finding", "Small.", 0.5, {"days": days})
        return insights.Found(cards=[card], tested={"tiny_checks": 1}, skipped="only a test")

    with pytest.raises(ConfigError, match="unknown insight kind 'tiny'"):
        insights.run(START, END, kinds=["tiny"])
    insights.insight_kinds.register("tiny", find_tiny)
    try:
        assert insights.insight_kinds.names()[-1] == "tiny"
        assert insights.insight_kinds.ranked() == (*insights.KINDS, "tiny")
        report = insights.run(START, END, kinds=["tiny"], alpha=0.01, period_days=30)
        assert [(c.kind, c.title) for c in report.cards] == [("tiny", "A tiny finding")]
        assert report.cards[0].evidence == {"days": (END - START).days}
        assert report.tested == {"tiny_checks": 1}
        assert report.skipped == {"tiny": "only a test"}
        (context,) = asked
        assert (context.start, context.end, context.alpha, context.period_days) == (
            START,
            END,
            0.01,
            30,
        )
        with pytest.raises(ConfigError, match="registered already"):
            insights.insight_kinds.register("tiny", find_tiny)
        # Without kinds every registered kind runs; ties of importance rank the kinds of
        # KINDS first (whatever their titles and registration order), then the new ones.
        only = insights.registry.InsightKinds()
        only.register("tiny", find_tiny)
        only.register(
            "savings",
            lambda context: insights.Found(cards=[insights.InsightCard("savings", "Z", "s.", 0.5)]),
        )
        with monkeypatch.context() as patch:
            patch.setattr(insights.registry, "insight_kinds", only)
            assert [c.kind for c in insights.generate(START, END)] == ["savings", "tiny"]
        assert len(asked) == 2
    finally:
        insights.insight_kinds.unregister("tiny")
    assert "tiny" not in insights.insight_kinds
    with pytest.raises(ConfigError, match="unknown insight kind 'tiny'"):
        insights.run(START, END, kinds=["tiny"])


def test_an_unknown_holiday_country_is_refused_whichever_kinds_run() -> None:
    with pytest.raises(ConfigError, match="unknown holiday country 'XX'"):
        insights.run(date(2026, 5, 1), date(2026, 7, 1), kinds=["drift"], holidays="XX")
