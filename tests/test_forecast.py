"""Forecasts and backtests: baselines and metrics by hand, rolling origins, Prophet on small
synthetic series (few fits: they are slow-ish), holidays, the process pool, lazy imports and
the `auterity forecast` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auterity import forecast
from auterity.cli import main
from auterity.errors import AuterityError


def _monthly(months: int = 72, seed: int = 0) -> pd.DataFrame:
    """Multiplicative monthly series: growing level times a yearly pattern, small noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(months)
    pattern = 1 + 0.25 * np.sin(2 * np.pi * t / 12)
    y = (100 + 3 * t) * pattern * np.exp(rng.normal(0, 0.03, months))
    return pd.DataFrame({"ds": pd.date_range("2015-01-01", periods=months, freq="MS"), "y": y})


def test_baselines_and_metrics_by_hand() -> None:
    train = [1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60]
    assert forecast.naive(train, 3).tolist() == [60, 60, 60]
    assert forecast.seasonal_naive(train, 8, 6).tolist() == [10, 20, 30, 40, 50, 60, 10, 20]
    # In-sample seasonal differences at lag 6: 9, 18, 27, 36, 45, 54 -> mean 31.5.
    assert forecast.mase_scale(train, 6) == 31.5
    # Too short for the season: lag 1 (first differences).
    assert forecast.mase_scale([1, 3, 6], 12) == 2.5
    scores = forecast.accuracy([10, 20, 0], [12, 15, 1], scale=2.0)
    assert scores["mae"] == pytest.approx(8 / 3)
    assert scores["rmse"] == pytest.approx(np.sqrt((4 + 25 + 1) / 3))
    assert scores["mape"] == pytest.approx((20 + 25) / 2)  # the zero actual is skipped
    assert scores["smape"] == pytest.approx((200 * 2 / 22 + 200 * 5 / 35 + 200 * 1 / 1) / 3)
    assert scores["mase"] == pytest.approx(4 / 3)
    assert forecast.accuracy([0, 0], [0, 0])["mape"] is None
    assert forecast.accuracy([0, 0], [0, 0])["smape"] == 0.0
    with pytest.raises(AuterityError, match="full season of 12"):
        forecast.seasonal_naive([1, 2], 3, 12)


def test_backtest_baselines_rolling_origins_by_hand() -> None:
    # 3 seasons of 7 days + 6 more days: y = day of week * 10 + week.
    days = 27
    t = np.arange(days)
    frame = pd.DataFrame(
        {"ds": pd.date_range("2025-01-06", periods=days, freq="D"), "y": (t % 7) * 10.0 + t // 7}
    )
    result = forecast.backtest(
        frame, horizon=3, grain="day", initial=15, period=4, models=("naive", "seasonal_naive")
    )
    assert [f["n_train"] for f in result["folds"]] == [15, 19, 23]
    assert result["folds"][0]["cutoff"] == "2025-01-20T00:00:00"
    assert result["folds"][0]["test_start"] == "2025-01-21T00:00:00"
    assert result["folds"][-1]["test_end"] == "2025-01-31T00:00:00"
    # Seasonal naive is off by exactly 1 (one week later) everywhere.
    assert result["folds"][0]["seasonal_naive_mae"] == 1.0
    assert result["models"]["seasonal_naive"]["mae"] == 1.0
    # MASE scale per origin = mean |y[t] - y[t-7]| in-sample = 1 -> MASE = MAE.
    assert result["models"]["seasonal_naive"]["mase"] == pytest.approx(1.0)
    y = frame["y"].to_numpy()
    naive_errors = np.concatenate([np.abs(y[n : n + 3] - y[n - 1]) for n in (15, 19, 23)])
    assert result["models"]["naive"]["mae"] == pytest.approx(naive_errors.mean())
    assert result["season"] == 7 and result["horizon"] == 3


def test_backtest_default_origins_and_errors() -> None:
    frame = _monthly(60)
    result = forecast.backtest(frame, horizon=6, grain="month", models=("seasonal_naive",))
    # Up to five origins one horizon apart, ending with the last full horizon.
    assert [f["n_train"] for f in result["folds"]] == [30, 36, 42, 48, 54]
    with pytest.raises(AuterityError, match="too short for a backtest"):
        forecast.backtest(frame.head(20), horizon=6, grain="month")
    with pytest.raises(AuterityError, match="unknown model"):
        forecast.backtest(frame, horizon=6, grain="month", models=("arima",))
    with pytest.raises(AuterityError, match="horizon must be at least 1"):
        forecast.backtest(frame, horizon=0, grain="month")
    with pytest.raises(AuterityError, match="unknown grain 'hour'"):
        forecast.backtest(frame, horizon=6, grain="hour")


def test_prophet_beats_seasonal_naive_on_a_growing_seasonal_series() -> None:
    result = forecast.backtest(
        _monthly(72), horizon=12, grain="month", initial=48, period=12, processes=2
    )
    models = result["models"]
    assert len(result["folds"]) == 2
    assert models["prophet"]["mase"] < 0.9 * models["seasonal_naive"]["mase"]
    assert models["prophet"]["mape"] < 8


def test_forecast_shape_interval_and_log_transform() -> None:
    frame = _monthly(48)
    out = forecast.forecast(frame, horizon=6, grain="month", uncertainty_samples=100)
    assert list(out.columns) == ["ds", "yhat", "yhat_lower", "yhat_upper"]
    expected_ds = pd.date_range("2019-01-01", periods=6, freq="MS")
    assert out["ds"].tolist() == expected_ds.tolist()
    assert (out["yhat_lower"] < out["yhat"]).all() and (out["yhat"] < out["yhat_upper"]).all()
    # The next July-ish peak and January-ish trough follow the pattern.
    truth = _monthly(54)["y"].iloc[48:].to_numpy()
    assert np.mean(np.abs(out["yhat"].to_numpy() - truth) / truth) < 0.05
    records = forecast.to_records(out)
    assert records[0]["ds"] == "2019-01-01" and isinstance(records[0]["yhat"], float)
    no_interval = forecast.forecast(frame, horizon=2, grain="month", uncertainty_samples=0)
    assert (no_interval["yhat_lower"] == no_interval["yhat"]).all()
    # The same history gives the same interval (API workers, report reruns), and the
    # caller's own random stream is left as it was.
    np.random.seed(7)
    expected_draw = np.random.random()
    np.random.seed(7)
    again = forecast.forecast(frame, horizon=6, grain="month", uncertainty_samples=100)
    assert np.random.random() == expected_draw
    pd.testing.assert_frame_equal(again, out)


def test_holidays_by_country_are_modelled() -> None:
    days = pd.date_range("2023-01-01", "2024-12-31", freq="D")
    import holidays

    us = holidays.country_holidays("US", years=[2023, 2024, 2025])
    dip = np.array([-30.0 if d.date() in us else 0.0 for d in days])
    frame = pd.DataFrame({"ds": days, "y": 100 + dip})
    with_holidays = forecast.forecast(frame, horizon=30, country="US", uncertainty_samples=0)
    without = forecast.forecast(frame, horizon=30, uncertainty_samples=0)
    new_year = with_holidays["ds"] == pd.Timestamp("2025-01-01")
    assert with_holidays.loc[new_year, "yhat"].item() < 85
    assert without.loc[without["ds"] == pd.Timestamp("2025-01-01"), "yhat"].item() > 90
    with pytest.raises(AuterityError, match="unknown holiday country 'XX'"):
        forecast.forecast(frame, horizon=3, country="XX")


def test_forecast_input_errors() -> None:
    frame = _monthly(24)
    with pytest.raises(AuterityError, match="horizon must be at least 1"):
        forecast.forecast(frame, horizon=0)
    with pytest.raises(AuterityError, match="interval_width"):
        forecast.forecast(frame, horizon=1, interval_width=1.5)
    with pytest.raises(AuterityError, match="at least 3 values"):
        forecast.forecast(frame.head(2), horizon=1)
    with pytest.raises(AuterityError, match="columns 'ds' and 'y'"):
        forecast.forecast(frame.rename(columns={"y": "v"}), horizon=1)
    negative = frame.assign(y=frame["y"] - 200)
    with pytest.raises(AuterityError, match="strictly positive"):
        forecast.forecast(negative, horizon=1, transform="log")
    with pytest.raises(AuterityError, match="unknown transform"):
        forecast.forecast(frame, horizon=1, transform="sqrt")


def test_forecast_many_in_processes_matches_one_by_one() -> None:
    frames = {"a": _monthly(36, seed=1), "b": _monthly(36, seed=2).assign(y=lambda f: f.y * 3)}
    many = forecast.forecast_many(
        frames, processes=2, horizon=3, grain="month", uncertainty_samples=0
    )
    assert set(many) == {"a", "b"}
    alone = forecast.forecast(frames["b"], horizon=3, grain="month", uncertainty_samples=0)
    np.testing.assert_allclose(many["b"]["yhat"], alone["yhat"], rtol=1e-4)
    tracks = forecast.backtest_many(
        frames, processes=2, horizon=3, grain="month", models=("naive", "seasonal_naive")
    )
    assert tracks["a"]["models"]["seasonal_naive"]["mae"] > 0


def test_import_auterity_does_not_import_prophet() -> None:
    code = (
        "import sys, auterity, auterity.forecast, auterity.anomaly, auterity.timeseries, "
        "auterity.cli\n"
        "heavy = {'prophet', 'cmdstanpy', 'statsmodels'} & set(sys.modules)\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _write_monthly_csv(path: Path, months: int = 48) -> Path:
    frame = _monthly(months)
    lines = ['"ds","y"'] + [f'"{d:%Y-%m-%d}",{v}' for d, v in zip(frame.ds, frame.y, strict=True)]
    lines.insert(5, lines[4])  # one duplicate row
    path.write_bytes("\r".join(lines).encode())  # bare CR line endings
    return path


def test_cli_forecast_prints_no_library_noise(tmp_path: Path) -> None:
    """A forecast run shows the user only what concerns them: nothing on stderr.

    Prophet logs "Importing plotly failed" when it is imported; the loggers must be
    quiet before that import, not after it.
    """
    path = _write_monthly_csv(tmp_path / "m.csv")
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("auterity")),
            "forecast",
            "--csv",
            str(path),
            "--horizon",
            "3",
            "--no-backtest",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout)["forecast"]
    assert done.stderr == ""


def test_cli_forecast_csv_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_monthly_csv(tmp_path / "m.csv")
    code = main(["forecast", "--csv", str(path), "--horizon", "6", "--format", "json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["grain"] == "month"
    assert [r["ds"] for r in data["forecast"]][:2] == ["2019-01-01", "2019-02-01"]
    assert set(data["forecast"][0]) == {"ds", "yhat", "yhat_lower", "yhat_upper"}
    models = data["backtest"]["models"]
    assert set(models) == {"prophet", "naive", "seasonal_naive"}
    assert set(models["prophet"]) >= {"mae", "mape", "smape", "mase"}
    assert data["series"]["duplicates"] == 1 and data["series"]["gaps"] == 0
    assert data["series"]["rows_read"] == 49


def test_cli_forecast_table_metric_and_errors(
    tmp_path: Path,
    analytics_duckdb: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _write_monthly_csv(tmp_path / "m.csv", months=30)
    assert main(["forecast", "--csv", str(path), "--horizon", "2"]) == 0
    out = capsys.readouterr().out
    assert "1 duplicate(s) merged, 0 gap(s), frequency MS" in out
    assert "yhat_lower" in out
    # 30 months cannot hold a backtest that keeps two seasons plus a horizon: said, not hidden.
    assert "backtest skipped" in out or "backtest (" in out

    monkeypatch.setenv("AUTERITY_DB_URL", analytics_duckdb)
    argv = ["forecast", "orders", "--horizon", "7", "--start", "2026-06-01", "--end", "2026-11-01"]
    assert main([*argv, "--country", "US", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metric"] == "orders" and len(data["forecast"]) == 7
    assert data["forecast"][0]["ds"] == "2026-11-01"
    assert data["backtest"]["models"]["seasonal_naive"]["mase"] > 0
    assert "series" not in data
    assert main(["forecast", "--horizon", "3"]) == 2
    assert "give either a METRIC or --csv FILE" in capsys.readouterr().err
    assert main(["forecast", "orders", "--horizon", "3", "--country", "XX"]) == 2
    assert "unknown holiday country" in capsys.readouterr().err


def test_cli_forecast_help() -> None:
    from click.testing import CliRunner

    from auterity.cli import cli

    result = CliRunner().invoke(cli, ["forecast", "--help"])
    assert result.exit_code == 0 and "--horizon" in result.output and "--csv" in result.output
