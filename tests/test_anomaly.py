"""Anomaly detectors on synthetic series with known answers, causality, alert windows, the
NAB scorer on hand-made cases, and the `auterity anomalies` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auterity import anomaly
from auterity.cli import main
from auterity.errors import AuterityError


def _seasonal(days: int = 140, seed: int = 0, noise: float = 1.0) -> pd.DataFrame:
    """Daily series: level 100, weekly pattern of +-20, a slow trend, Gaussian noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    weekly = np.array([0, 5, 10, 20, 10, -15, -20])[t % 7]
    y = 100 + 0.1 * t + weekly + rng.normal(0, noise, days)
    return pd.DataFrame({"ds": pd.date_range("2025-01-06", periods=days, freq="D"), "y": y})


def test_injected_spikes_found_at_the_right_time_and_direction() -> None:
    frame = _seasonal()
    frame.loc[90, "y"] += 25
    frame.loc[120, "y"] -= 25
    result = anomaly.detect(frame)
    assert result.causal and result.method == "stl_mad"
    assert [(w.start, w.direction) for w in result.windows] == [
        (frame["ds"][90], "up"),
        (frame["ds"][120], "down"),
    ]
    up = result.windows[0]
    assert up.peak_value == pytest.approx(frame["y"][90])
    # Expected about what the weekly pattern says for that weekday, not the spike.
    assert abs(up.expected_value - (frame["y"][90] - 25)) < 4
    assert up.severity == "high" and up.score >= 2 * anomaly.DEFAULT_THRESHOLD
    flagged = result.points[result.points["is_anomaly"]]
    assert flagged.index.tolist() == [90, 120]
    assert set(result.points.columns) == {
        "ds",
        "y",
        "expected",
        "score",
        "direction",
        "severity",
        "is_anomaly",
    }


@pytest.mark.parametrize("method", ["stl_mad", "rolling_z"])
@pytest.mark.parametrize("causal", [True, False])
def test_seasonal_pattern_alone_is_not_flagged(method: str, causal: bool) -> None:
    frame = _seasonal(seed=1)
    if method == "rolling_z":
        # rolling_z has no seasonality: give it a flat noisy series instead.
        frame["y"] = 100 + np.random.default_rng(2).normal(0, 1, len(frame))
    result = anomaly.detect(frame, method=method, causal=causal)
    assert result.windows == []
    assert result.causal is causal


def test_a_weekly_pattern_is_what_rolling_z_would_flag() -> None:
    # The reason stl_mad exists: a big weekly swing with a small spike on a quiet day.
    frame = _seasonal(noise=0.5)
    frame.loc[96, "y"] += 12  # a Saturday (low day) pushed up to an ordinary weekday level
    assert [w.start for w in anomaly.detect(frame).windows] == [frame["ds"][96]]
    assert frame["ds"][96] not in [
        w.start for w in anomaly.detect(frame, method="rolling_z").windows
    ]


@pytest.mark.parametrize("method", ["stl_mad", "rolling_z"])
def test_causal_scores_do_not_change_when_the_future_does(method: str) -> None:
    frame = _seasonal(days=120, seed=3)
    before = anomaly.detect(frame, method=method).points
    changed = frame.copy()
    changed.loc[80:, "y"] = changed.loc[80:, "y"] * 3 + 500
    after = anomaly.detect(changed, method=method).points
    cols = ["expected", "score"]
    pd.testing.assert_frame_equal(before.loc[:79, cols], after.loc[:79, cols])
    assert not np.allclose(before.loc[80:, "score"], after.loc[80:, "score"])


def test_non_causal_stl_uses_the_future() -> None:
    frame = _seasonal(days=120, seed=3)
    before = anomaly.detect(frame, causal=False).points
    changed = frame.copy()
    changed.loc[80:, "y"] += 500
    after = anomaly.detect(changed, causal=False).points
    assert not np.allclose(before.loc[:79, "score"], after.loc[:79, "score"])


def test_level_shift_is_one_window_starting_at_the_shift() -> None:
    frame = _seasonal(days=120, seed=4)
    frame.loc[100:102, "y"] += 60
    result = anomaly.detect(frame, merge_gap=2)
    assert len(result.windows) == 1
    window = result.windows[0]
    assert window.start == frame["ds"][100]
    assert window.end == frame["ds"][102]
    assert window.points == 3 and window.direction == "up"


def test_merge_gap_controls_merging() -> None:
    frame = _seasonal(days=120, seed=5)
    frame.loc[100, "y"] += 40
    frame.loc[103, "y"] += 40
    assert len(anomaly.detect(frame, merge_gap=1).windows) == 2
    merged = anomaly.detect(frame, merge_gap=2).windows
    assert len(merged) == 1
    assert (merged[0].start, merged[0].end) == (frame["ds"][100], frame["ds"][103])


def test_rolling_z_finds_a_spike_in_a_flat_series() -> None:
    rng = np.random.default_rng(6)
    y = 50 + rng.normal(0, 1, 200)
    y[150] = 70
    frame = pd.DataFrame({"ds": pd.date_range("2025-01-01", periods=200, freq="h"), "y": y})
    result = anomaly.detect(frame, method="rolling_z")
    assert [w.start for w in result.windows] == [frame["ds"][150]]
    assert result.windows[0].expected_value == pytest.approx(50, abs=0.5)
    assert result.options["period"] == 24


def test_flat_stretch_uses_the_relative_floor() -> None:
    y = np.full(60, 100.0)
    y[50] = 100.5  # 0.5 % above a perfectly flat history: not an alert
    y[55] = 110.0  # 10 %: an alert
    frame = pd.DataFrame({"ds": pd.date_range("2025-01-01", periods=60, freq="D"), "y": y})
    result = anomaly.detect(frame, method="rolling_z")
    assert [w.start for w in result.windows] == [frame["ds"][55]]


def test_prophet_method_is_not_causal_and_finds_the_spike() -> None:
    frame = _seasonal(days=84, seed=7)
    frame.loc[70, "y"] += 30
    result = anomaly.detect(frame, method="prophet")
    assert result.causal is False
    assert frame["ds"][70] in [w.start for w in result.windows]
    assert len(result.windows) <= 2


def test_to_dict_and_severity() -> None:
    frame = _seasonal()
    frame.loc[90, "y"] += 25
    data = anomaly.detect(frame).to_dict()
    assert data["causal"] is True and data["method"] == "stl_mad"
    window = data["anomalies"][0]
    assert window["start"] == "2025-04-06" and window["direction"] == "up"
    json.dumps(data)
    assert [anomaly.severity_of(s, 4) for s in (4, 6, 8)] == ["low", "medium", "high"]


@pytest.mark.parametrize(
    ("stamps", "season"),
    [
        (pd.date_range("2025-01-01", periods=10, freq="5min"), 288),
        (pd.date_range("2025-01-01", periods=10, freq="D"), 7),
        (pd.date_range("2025-01-06", periods=10, freq="W-MON"), 52),
        (pd.date_range("2025-01-01", periods=10, freq="MS"), 12),
        (pd.date_range("2025-01-01", periods=10, freq="QS"), 0),
        (pd.DatetimeIndex(["2025-01-01", "2025-01-02"]), 0),
        (pd.DatetimeIndex(["2025-01-01"] * 3), 0),
    ],
)
def test_season_length(stamps: pd.DatetimeIndex, season: int) -> None:
    assert anomaly.season_length(pd.Series(stamps)) == season


def test_bad_input() -> None:
    frame = _seasonal(days=30)
    with pytest.raises(AuterityError, match="unknown anomaly method 'magic'"):
        anomaly.detect(frame, method="magic")
    with pytest.raises(AuterityError, match="threshold must be positive"):
        anomaly.detect(frame, threshold=0)
    with pytest.raises(AuterityError, match="columns 'ds' and 'y'"):
        anomaly.detect(frame.rename(columns={"y": "value"}))
    with pytest.raises(AuterityError, match="at least 9 values"):
        anomaly.detect(frame.head(5))


def test_short_series_without_a_full_season_history_still_scores() -> None:
    frame = _seasonal(days=20)
    frame.loc[18, "y"] += 80
    result = anomaly.detect(frame, causal=False)
    assert frame["ds"][18] in [w.start for w in result.windows]
    assert frame["ds"][18] in [w.start for w in anomaly.detect(frame, period=0).windows]


# --- NAB scorer -----------------------------------------------------------------------


def test_scaled_sigmoid_values() -> None:
    assert anomaly.scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert anomaly.scaled_sigmoid(0.0) == 0.0
    assert anomaly.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert anomaly.scaled_sigmoid(3.0) == -1.0
    assert anomaly.nab_probation(100) == 15
    assert anomaly.nab_probation(100_000) == 750


def test_nab_score_hand_made_case() -> None:
    # 40 rows: probation = floor(0.15 * 40) = 6 rows; windows rows 10-19 and 30-33.
    windows = [(10, 19), (30, 33)]
    none = anomaly.nab_score(np.zeros(40, bool), windows)
    assert none == {
        "raw": -2.0,
        "null": -2.0,
        "perfect": 2.0,
        "tp": 0,
        "fn": 2,
        "fp": 0,
        "windows": 2,
    }

    fired = np.zeros(40, bool)
    fired[10] = True  # left edge of window 1: the full TP weight
    fired[15] = True  # later in the same window: adds nothing
    fired[3] = True  # probationary: ignored
    fired[8] = True  # before any window: costs the full FP weight
    fired[21] = True  # 2 rows after window 1 (width 10): FP * scaled_sigmoid(2 / 9)
    fired[33] = True  # last row of window 2 (width 4): position -1/4
    score = anomaly.nab_score(fired, windows)
    tp2 = anomaly.scaled_sigmoid(-0.25) / anomaly.scaled_sigmoid(-1.0)
    expected = 1.0 + tp2 - 0.11 + 0.11 * anomaly.scaled_sigmoid(2 / 9)
    assert score["raw"] == pytest.approx(expected)
    assert (score["tp"], score["fn"], score["fp"]) == (2, 0, 2)
    normalised = anomaly.nab_normalise(score["raw"], score["null"], score["perfect"])
    assert normalised == pytest.approx(100 * (expected + 2) / 4)

    perfect = np.zeros(40, bool)
    perfect[[10, 30]] = True
    assert anomaly.nab_score(perfect, windows)["raw"] == pytest.approx(2.0)
    assert anomaly.nab_normalise(2.0, -2.0, 2.0) == 100.0
    assert anomaly.nab_normalise(-2.0, -2.0, 2.0) == 0.0


def test_nab_windows_in_probation_are_not_scored_and_profiles() -> None:
    fired = np.zeros(40, bool)
    fired[35] = True  # far (>= 3 widths) after the 2-row window at rows 1-2
    score = anomaly.nab_score(fired, [(1, 2)])
    assert score["windows"] == 0 and score["raw"] == pytest.approx(-0.11)
    low_fp = anomaly.nab_score(fired, [(1, 2)], profile="reward_low_fp_rate")
    assert low_fp["raw"] == pytest.approx(-0.22)
    assert math.isnan(anomaly.nab_normalise(0.0, 0.0, 0.0))


# --- CLI ------------------------------------------------------------------------------


def test_cli_anomalies_csv_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = _seasonal()
    frame.loc[90, "y"] += 25
    path = tmp_path / "s.csv"
    text = "timestamp,value\r\n" + "".join(
        f"{d:%Y-%m-%d},{v}\r\n" for d, v in zip(frame["ds"], frame["y"], strict=True)
    )
    path.write_text(text + f"{frame['ds'][5]:%Y-%m-%d},{frame['y'][5]}\r\n", newline="")
    assert main(["anomalies", "--csv", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["causal"] is True and data["method"] == "stl_mad"
    assert [w["start"] for w in data["anomalies"]] == ["2025-04-06"]
    assert set(data["anomalies"][0]) >= {"start", "end", "score", "direction", "severity"}
    assert data["series"]["duplicates"] == 1

    assert main(["anomalies", "--csv", str(path), "--method", "rolling_z", "--non-causal"]) == 0
    out = capsys.readouterr().out
    assert "method rolling_z (NOT causal" in out


def test_cli_anomalies_table_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = _seasonal()
    frame.loc[90, "y"] += 25
    path = tmp_path / "s.csv"
    frame.to_csv(path, index=False)
    assert main(["anomalies", "--csv", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 anomaly window(s), method stl_mad (causal)" in out and "2025-04-06" in out
    assert main(["anomalies", "--csv", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["anomalies"]) == 2
    assert "give either a METRIC or --csv FILE" in capsys.readouterr().err


def test_cli_anomalies_metric(
    analytics_duckdb: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTERITY_DB_URL", analytics_duckdb)
    code = main(
        ["anomalies", "orders", "--start", "2026-07-01", "--end", "2026-10-01", "--format", "json"]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metric"] == "orders" and data["causal"] is True
    assert isinstance(data["anomalies"], list)
    assert main(["anomalies", "no_such_metric", "--start", "2026-07-01"]) == 2
    assert "no_such_metric" in capsys.readouterr().err


def test_scan_metrics_with_warmup_and_windows_table(analytics_duckdb: str) -> None:
    from datetime import date, timedelta

    start, end = date(2026, 9, 1), date(2026, 11, 1)
    results = anomaly.scan(
        ["requests", "revenue"], start=start, end=end, warmup=56, url=analytics_duckdb
    )
    assert list(results) == ["requests", "revenue"]
    for result in results.values():
        assert result.causal and result.points["ds"].iloc[0] == pd.Timestamp(start)
        assert len(result.points) == 61  # September and October only; the warm-up is cut
        assert all(w.start >= pd.Timestamp(start) for w in result.windows)
    table = anomaly.windows_table(results)
    assert list(table.columns)[:5] == ["metric", "start", "end", "direction", "severity"]
    assert len(table) == sum(len(r.windows) for r in results.values())
    with pytest.raises(AuterityError, match="unknown grain 'hour'"):
        anomaly.scan(["requests"], start=start, end=end, grain="hour", url=analytics_duckdb)
    # on a log scale where asked; a series with a day <= 0 falls back to the linear scale
    from auterity.timeseries import metric_series

    logged = anomaly.scan(
        ["requests", "revenue"],
        start=start,
        end=end,
        log_metrics=["requests", "revenue"],
        url=analytics_duckdb,
    )
    assert logged["requests"].options.get("log") is True
    assert "log" not in results["requests"].options
    assert logged["requests"].points["y"].tolist() == results["requests"].points["y"].tolist()
    read = metric_series("revenue", start=start - timedelta(days=56), end=end, url=analytics_duckdb)
    assert logged["revenue"].options.get("log", False) is bool((read["y"] > 0).all())


def test_windows_table_orders_by_score() -> None:
    frame = _seasonal()
    frame.loc[90, "y"] += 25
    frame.loc[120, "y"] -= 60
    table = anomaly.windows_table({"a": anomaly.detect(frame), "b": anomaly.detect(_seasonal())})
    assert table["metric"].tolist() == ["a", "a"]
    assert table["start"].tolist() == [frame["ds"][120], frame["ds"][90]]
    assert table["score"].is_monotonic_decreasing
    assert anomaly.windows_table({}).empty


def test_cli_anomalies_help() -> None:
    from click.testing import CliRunner

    from auterity.cli import cli

    result = CliRunner().invoke(cli, ["anomalies", "--help"])
    assert result.exit_code == 0 and "--method" in result.output and "causal" in result.output


# --- log scale ----------------------------------------------------------------------------


def _multiplicative(days: int = 140, seed: int = 0) -> pd.DataFrame:
    """Daily series whose noise and weekly pattern are relative (x lognormal(0, 0.1))."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    weekly = np.array([1.0, 1.1, 1.2, 1.3, 1.1, 0.8, 0.7])[t % 7]
    y = 1000 * weekly * (1 + 0.002 * t) * rng.lognormal(0, 0.1, days)
    return pd.DataFrame({"ds": pd.date_range("2025-01-06", periods=days, freq="D"), "y": y})


def test_log_scale_judges_a_fall_to_a_third_like_a_tripling() -> None:
    frame = _multiplicative()
    frame.loc[90, "y"] *= 3
    frame.loc[120, "y"] /= 3
    linear = anomaly.detect(frame).points
    # On the linear scale the fall is under half the rise's score and under the threshold.
    assert linear.loc[120, "score"] < anomaly.DEFAULT_THRESHOLD < linear.loc[90, "score"]
    result = anomaly.detect(frame, log=True)
    assert [(w.start, w.direction) for w in result.windows] == [
        (frame["ds"][90], "up"),
        (frame["ds"][120], "down"),
    ]
    up, down = result.windows
    assert up.score == pytest.approx(down.score, rel=0.2)
    # Expected values are given back in the series' units (about a third of the spike,
    # about three times the fall), and so are the values.
    assert up.peak_value == pytest.approx(frame["y"][90])
    assert up.expected_value == pytest.approx(frame["y"][90] / 3, rel=0.25)
    assert down.expected_value == pytest.approx(frame["y"][120] * 3, rel=0.25)
    assert result.options["log"] is True and "log" not in anomaly.detect(frame).options


@pytest.mark.parametrize(
    ("method", "causal"), [("stl_mad", True), ("rolling_z", True), ("rolling_z", False)]
)
def test_log_scale_floor_is_a_relative_change(method: str, causal: bool) -> None:
    y = np.full(60, 100.0)
    y[50] = 100.5  # 0.5 % above a perfectly flat history: not an alert
    y[55] = 110.0  # 10 %: an alert
    frame = pd.DataFrame({"ds": pd.date_range("2025-01-01", periods=60, freq="D"), "y": y})
    result = anomaly.detect(frame, method=method, causal=causal, log=True)
    assert frame["ds"][55] in [w.start for w in result.windows]
    assert frame["ds"][50] not in [w.start for w in result.windows]
    # The same 10 % on a level of 1e6: the log floor does not depend on the level.
    big = anomaly.detect(frame.assign(y=y * 1e4), method=method, causal=causal, log=True)
    assert [w.start for w in big.windows] == [w.start for w in result.windows]


def test_log_scale_non_causal_and_non_positive_values() -> None:
    frame = _multiplicative(days=84, seed=7)
    frame.loc[70, "y"] *= 3
    for method in ("prophet", "stl_mad"):
        result = anomaly.detect(frame, method=method, causal=False, log=True)
        assert result.causal is False and frame["ds"][70] in [w.start for w in result.windows]
        assert result.points["expected"].between(300, 3000).all()
    with pytest.raises(AuterityError, match="every value to be positive"):
        anomaly.detect(frame.assign(y=frame["y"].where(frame.index != 5, 0.0)), log=True)


def test_cli_anomalies_on_a_log_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = _multiplicative()
    frame.loc[120, "y"] /= 3  # under the threshold on the linear scale (see above)
    path = tmp_path / "revenue.csv"
    frame.to_csv(path, index=False)
    assert main(["anomalies", "--csv", str(path), "--format", "json"]) == 0
    linear = json.loads(capsys.readouterr().out)
    assert f"{frame['ds'][120]:%Y-%m-%d}" not in [w["start"] for w in linear["anomalies"]]
    assert main(["anomalies", "--csv", str(path), "--log", "--format", "json"]) == 0
    logged = json.loads(capsys.readouterr().out)
    assert logged["options"]["log"] is True
    fall = [w for w in logged["anomalies"] if w["start"] == f"{frame['ds'][120]:%Y-%m-%d}"]
    assert fall and fall[0]["direction"] == "down"
    frame.loc[3, "y"] = 0.0
    frame.to_csv(path, index=False)
    assert main(["anomalies", "--csv", str(path), "--log"]) == 2
    assert "every value to be positive" in capsys.readouterr().err


def test_scan_falls_back_to_linear_for_a_series_with_zeros(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import date

    from auterity import timeseries

    frame = _multiplicative(days=120)
    frame.loc[30, "y"] = 0.0  # a day without revenue: no logarithm
    monkeypatch.setattr(timeseries, "metric_series", lambda *a, **k: frame)
    start = frame["ds"][90].date()
    with caplog.at_level("WARNING", logger="auterity.anomaly"):
        got = anomaly.scan(["revenue"], start=start, end=date(2025, 5, 6), log_metrics=["revenue"])
    assert "log" not in got["revenue"].options
    assert "revenue has values <= 0: judged on the linear scale" in caplog.text
