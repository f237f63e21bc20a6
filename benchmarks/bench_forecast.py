"""Forecast accuracy on Prophet's example series: rolling-origin backtests against baselines.

Usage::

    .venv/bin/python benchmarks/bench_forecast.py ../shared/benchmarks/prophet

DIR holds ``example_air_passengers.csv``, ``example_retail_sales.csv`` and
``example_wp_log_peyton_manning.csv`` (Prophet's ``examples/``). Each series is read with
:func:`auterity.timeseries.read_csv_series` and backtested with
:func:`auterity.forecast.backtest`, library defaults throughout (the same model choices
for every series, none tuned per series):

* monthly series: horizon 12 months, five origins 12 months apart (the last five years);
* Peyton Manning (daily): horizon 30 days, eight origins 91 days apart (the last two
  years); rows are days, the 59 missing days are skipped.

Correctness check first: seasonal naive on air passengers trained on 1949-1958 and tested
on 1959-1960 must give MAE 71.25 and MAPE 15.52 % (the published R ``forecast::snaive``
figures). Goal: Prophet's MASE <= 0.9 x seasonal naive's on every series.

Prints a table and writes ``benchmarks/results/forecast.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from auterity import forecast
from auterity.timeseries import read_csv_series

RESULTS = Path(__file__).resolve().parent / "results" / "forecast.json"
SERIES = {
    "air_passengers": ("example_air_passengers.csv", "month", 12, 12),
    "retail_sales": ("example_retail_sales.csv", "month", 12, 12),
    "peyton_manning": ("example_wp_log_peyton_manning.csv", "day", 30, 91),
}
GOAL = 0.9


def check_seasonal_naive(path: Path) -> dict[str, float]:
    """Seasonal naive on air passengers, 1949-1958 -> 1959-1960; asserts the known figures."""
    frame = read_csv_series(path).frame
    train = frame[frame["ds"] < "1959-01-01"]["y"].to_numpy()
    test = frame[frame["ds"] >= "1959-01-01"]["y"].to_numpy()
    assert len(train) == 120 and len(test) == 24, (len(train), len(test))
    scores = forecast.accuracy(test, forecast.seasonal_naive(train, len(test), 12))
    assert round(scores["mae"], 2) == 71.25, scores
    assert round(scores["mape"], 2) == 15.52, scores
    return scores


def main(argv: list[str] | None = None) -> int:
    """Run the check and the backtests; print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path, help="folder with Prophet's example CSV files")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--processes", type=int, default=None, help="default: one per core")
    args = parser.parse_args(argv)
    check = check_seasonal_naive(args.dir / SERIES["air_passengers"][0])
    print(
        f"check: seasonal naive, air passengers 1949-58 -> 1959-60: MAE {check['mae']:.2f}"
        f" (expected 71.25), MAPE {check['mape']:.2f} % (expected 15.52 %)  OK"
    )
    results = {}
    for name, (file, grain, horizon, period) in SERIES.items():
        load = read_csv_series(args.dir / file)
        n = len(load.frame)
        folds = 8 if grain == "day" else 5
        initial = n - horizon - (folds - 1) * period
        start = time.perf_counter()
        track = forecast.backtest(
            load.frame,
            horizon=horizon,
            grain=grain,
            initial=initial,
            period=period,
            processes=args.processes,
        )
        seconds = time.perf_counter() - start
        ratio = track["models"]["prophet"]["mase"] / track["models"]["seasonal_naive"]["mase"]
        results[name] = {
            "file": file,
            "series": load.report,
            "seconds": seconds,
            "prophet_vs_seasonal_naive_mase": ratio,
            "goal_met": ratio <= GOAL,
            **track,
        }
    print(
        f"\n{'series':16} {'model':15} {'MAE':>10} {'MAPE %':>8} {'sMAPE %':>8} {'MASE':>7}"
        f" {'origins':>7} {'h':>3} {'sec':>6}"
    )
    for name, res in results.items():
        for model, m in res["models"].items():
            print(
                f"{name:16} {model:15} {m['mae']:10.4g} {m['mape']:8.2f} {m['smape']:8.2f}"
                f" {m['mase']:7.3f} {len(res['folds']):7d} {res['horizon']:3d}"
                f" {res['seconds'] if model == 'prophet' else 0:6.1f}"
            )
    print(f"\ngoal: Prophet MASE <= {GOAL} x seasonal naive MASE on every series")
    for name, res in results.items():
        verdict = "met" if res["goal_met"] else "NOT met"
        print(f"  {name:16} ratio {res['prophet_vs_seasonal_naive_mase']:.3f}  {verdict}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"data": str(args.dir), "check": check, "goal": GOAL, "series": results},
            indent=2,
            default=str,
        )
    )
    print(f"wrote {args.out}")
    return 0 if all(r["goal_met"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
