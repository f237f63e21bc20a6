"""Anomaly detection on the Numenta Anomaly Benchmark (NAB), scored the way NAB scores.

Usage::

    .venv/bin/python benchmarks/bench_anomaly.py ../shared/benchmarks/nab

DIR holds NAB's ``data/<category>/<file>.csv`` and ``labels/combined_windows.json``; every
data file present is scored. Each detector runs causally (every score uses only earlier
rows) with one parameter set for all files. An alert fires at the first row of each alert
window (:func:`auterity.anomaly.detect`); NAB's scorer (:func:`auterity.anomaly.nab_score`:
first 15 % of rows, at most 750, unscored; earliest detection in a window rewarded by the
scaled sigmoid; standard profile TP 1, FN 1, FP 0.11) scores those rows. As NAB does, the
threshold is swept and the one best for the whole set is kept, for every detector alike;
the score at the library's default threshold is shown too.

The baseline is a plain rolling z-score: mean and standard deviation of the previous rows
(the same history length), every row whose |z| reaches the threshold is a detection.

Files are read with :func:`auterity.timeseries.read_csv_series` (rows sharing a timestamp
are merged); a detection at a timestamp is placed on the file's first row with that
timestamp, which is also how NAB locates window bounds.

Prints a table and writes ``benchmarks/results/anomaly.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from auterity import anomaly
from auterity.timeseries import read_csv_series

RESULTS = Path(__file__).resolve().parent / "results" / "anomaly.json"
THRESHOLDS = (3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0)
PUBLISHED = {"Numenta HTM": 70.1, "Twitter ADVec": 47.1, "windowed Gaussian": 39.6, "random": 11.0}


def _file_rows(path: Path) -> pd.Series:
    """The file's timestamps in file order, duplicates kept (NAB scores row positions)."""
    raw = pd.read_csv(path)
    return pd.to_datetime(raw[raw.columns[0]])


def _window_rows(times: pd.Series, windows: list) -> list[tuple[int, int]]:
    """NAB windows (timestamp pairs) as inclusive row positions (first occurrence)."""
    first = {}
    for i, ts in enumerate(times):
        first.setdefault(ts, i)
    return [(first[pd.Timestamp(a)], first[pd.Timestamp(b)]) for a, b in windows]


def _rows_of(times: pd.Series, stamps: list) -> np.ndarray:
    """Detections at timestamps -> a boolean per file row (first row of each timestamp)."""
    first = {}
    for i, ts in enumerate(times):
        first.setdefault(ts, i)
    fired = np.zeros(len(times), dtype=bool)
    for ts in stamps:
        fired[first[pd.Timestamp(ts)]] = True
    return fired


def _alerts(points: pd.DataFrame, threshold: float, merge_gap: int) -> list:
    """Alert start timestamps at ``threshold``."""
    flagged = points.assign(is_anomaly=np.nan_to_num(points["score"].to_numpy()) >= threshold)
    flagged["severity"] = ""
    return [w.start for w in anomaly.alert_windows(flagged, merge_gap)]


def _plain_z(frame: pd.DataFrame, history: int) -> np.ndarray:
    """|z| against the mean and standard deviation of the previous ``history`` rows."""
    past = frame["y"].shift(1).rolling(history, min_periods=8)
    z = (frame["y"] - past.mean()) / past.std().replace(0, np.nan)
    return np.abs(z.to_numpy())


def main(argv: list[str] | None = None) -> int:
    """Run every detector on every file, sweep thresholds, print and save the scores."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path, help="NAB folder (data/ and labels/)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    windows_all = json.loads((args.dir / "labels" / "combined_windows.json").read_text())
    files = sorted(p for p in (args.dir / "data").rglob("*.csv"))
    if not files:
        print(f"no CSV files under {args.dir / 'data'}", file=sys.stderr)
        return 2
    detectors = {
        "stl_mad (causal)": {"method": "stl_mad"},
        "rolling_z (causal, robust)": {"method": "rolling_z"},
    }
    per_file: dict[str, dict] = {}
    # detector -> threshold -> list of per-file score dicts
    sweeps: dict[str, dict[float, list[dict]]] = {}
    seconds: dict[str, float] = {}
    for path in files:
        key = path.relative_to(args.dir / "data").as_posix()
        times = _file_rows(path)
        win_rows = _window_rows(times, windows_all.get(key, []))
        load = read_csv_series(path)
        frame = load.frame
        per_file[key] = {"rows": len(times), "windows": len(win_rows), "series": load.report}
        for name, opts in detectors.items():
            start = time.perf_counter()
            result = anomaly.detect(frame, **opts)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            merge_gap = result.options["merge_gap"]
            for thr in THRESHOLDS:
                fired = _rows_of(times, _alerts(result.points, thr, merge_gap))
                score = anomaly.nab_score(fired, win_rows)
                sweeps.setdefault(name, {}).setdefault(thr, []).append({"file": key, **score})
        start = time.perf_counter()
        z = _plain_z(frame, max(4 * anomaly.season_length(frame["ds"]), 28))
        seconds["baseline: plain rolling z"] = (
            seconds.get("baseline: plain rolling z", 0.0) + time.perf_counter() - start
        )
        for thr in THRESHOLDS:
            stamps = frame["ds"][np.nan_to_num(z) >= thr].tolist()
            score = anomaly.nab_score(_rows_of(times, stamps), win_rows)
            sweeps.setdefault("baseline: plain rolling z", {}).setdefault(thr, []).append(
                {"file": key, **score}
            )

    summary = {}
    for name, by_thr in sweeps.items():
        totals = {}
        for thr, scores in by_thr.items():
            raw = sum(s["raw"] for s in scores)
            null = sum(s["null"] for s in scores)
            perfect = sum(s["perfect"] for s in scores)
            totals[thr] = anomaly.nab_normalise(raw, null, perfect)
        best = max(totals, key=lambda t: totals[t])
        default = totals.get(anomaly.DEFAULT_THRESHOLD)
        summary[name] = {
            "best_threshold": best,
            "score": totals[best],
            "score_at_default_threshold": default if name != "baseline: plain rolling z" else None,
            "by_threshold": {str(k): v for k, v in totals.items()},
            "seconds": seconds[name],
            "files": by_thr[best],
        }

    print(
        f"NAB standard profile, {len(files)} files, {sum(v['windows'] for v in per_file.values())}"
        " windows; one corpus-wide threshold per detector"
    )
    print(
        f"{'detector':32} {'score':>7} {'thr':>5} {'@default':>9} {'TP':>4} {'FN':>4} {'FP':>5}"
        f" {'sec':>6}"
    )
    for name, s in summary.items():
        tp = sum(f["tp"] for f in s["files"])
        fn = sum(f["fn"] for f in s["files"])
        fp = sum(f["fp"] for f in s["files"])
        default = s["score_at_default_threshold"]
        shown = f"{default:9.1f}" if default is not None else f"{'':>9}"
        print(
            f"{name:32} {s['score']:7.1f} {s['best_threshold']:5.1f} {shown} {tp:4d} {fn:4d}"
            f" {fp:5d} {s['seconds']:6.1f}"
        )
    print("\nper file (raw, best threshold):")
    names = list(summary)
    print(f"{'file':58}" + "".join(f"{n[:14]:>16}" for n in names))
    for key in per_file:
        row = [next(f["raw"] for f in summary[n]["files"] if f["file"] == key) for n in names]
        print(f"{key:58}" + "".join(f"{v:16.2f}" for v in row))
    print(
        "\npublished (full NAB corpus, standard): "
        + ", ".join(f"{k} {v}" for k, v in PUBLISHED.items())
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "data": str(args.dir),
                "profile": "standard",
                "thresholds": list(THRESHOLDS),
                "detectors": summary,
                "files": per_file,
                "published_full_corpus": PUBLISHED,
            },
            indent=2,
            default=str,
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
