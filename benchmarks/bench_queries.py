"""Benchmark: analytic queries pushed down to SQL vs the load-into-pandas way vs the floor.

Usage:
    python benchmarks/bench_queries.py [--db data/bench_10m.duckdb] [--events 10000000]
                                       [--repeat 15] [--out benchmarks/results/queries.json]

Builds (or reuses) a DuckDB warehouse of ``--events`` inference events, then times, for
the ModelHub leaderboard and the full business KPI summary, over the last 30 days and the
whole 18 months:

* ``library``: the auterity function (SQL pushdown, cache off so every run queries);
* ``library_cached``: the same call answered from the result cache;
* ``pandas``: what many notebooks do: load the rows of the period into pandas, then groupby;
* ``floor``: equivalent hand-written SQL run directly on an open DuckDB connection: the
  one-statement aggregate, plus the deployed days of flat-priced models (their monthly fee
  accrues per deployed day; the library has computed that since issue 12).

It prints p50/p95 per path and the ratios the issue sets goals for (leaderboard p95 <= 150
ms, >= 8x faster than pandas, <= 1.3x the floor), and writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

END = date(2026, 11, 1)

LEADERBOARD_SQL = """
SELECT e.model_id, any_value(m.name) AS name, any_value(m.provider) AS provider,
       count(*) AS requests,
       avg(CASE WHEN e.status = 'error' THEN 1.0 ELSE 0.0 END) AS error_rate,
       avg(CASE WHEN e.status = 'timeout' THEN 1.0 ELSE 0.0 END) AS timeout_rate,
       -- one sort for the three percentiles: the fastest spelling we know
       quantile_cont(e.latency_ms, [0.50, 0.95, 0.99]) FILTER (WHERE e.status = 'ok')
           AS latency_percentiles,
       sum(e.input_tokens) AS input_tokens, sum(e.output_tokens) AS output_tokens,
       sum(coalesce(e.cost, e.input_tokens / 1000.0 * m.input_price_per_1k
                    + e.output_tokens / 1000.0 * m.output_price_per_1k)) AS cost,
       avg(e.quality) AS quality_mean, stddev_samp(e.quality) AS quality_sd,
       count(e.quality) AS quality_n
FROM inference_events e JOIN models m ON m.model_id = e.model_id
WHERE e.ts >= ? AND e.ts < ?
GROUP BY e.model_id
ORDER BY requests DESC
"""


FLAT_DAYS_SQL = """
SELECT m.model_id,
       EXISTS (SELECT 1 FROM inference_events e WHERE e.model_id = m.model_id
               AND e.ts >= ? AND e.ts < ?) AS served_the_week_before,
       EXISTS (SELECT 1 FROM inference_events e WHERE e.model_id = m.model_id AND e.ts >= ?)
           AS after,
       (SELECT min(e.ts) FROM inference_events e
        WHERE e.model_id = m.model_id AND e.ts >= ? AND e.ts < ?) AS first_ts,
       (SELECT max(e.ts) FROM inference_events e
        WHERE e.model_id = m.model_id AND e.ts >= ? AND e.ts < ?) AS last_ts
FROM models m
WHERE m.pricing_kind = 'flat'
"""
"""The deployed days of flat-priced models (their fee accrues per deployed day, also on
days without a request): whether each served in the week before the period (then it was
deployed at its start) and after it, and its first and last request in it. The fastest
hand-written form we know, the one the library uses (a model idle that week costs both a
second statement; none is idle here)."""


def _floor_leaderboard(con: duckdb.DuckDBPyConnection, lo: date, hi: date) -> None:
    """The hand-written floor: the aggregate, and the flat models' deployed days."""
    con.execute(LEADERBOARD_SQL, [lo, hi]).df()
    week_before = lo - timedelta(days=7)
    con.execute(FLAT_DAYS_SQL, [week_before, lo, hi, lo, hi, lo, hi]).fetchall()


def _times(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    """Run ``fn`` once to warm up, then ``repeat`` times; p50/p95/mean in milliseconds."""
    fn()
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(statistics.median(runs), 2),
        "p95_ms": round(float(np.percentile(runs, 95)), 2),
        "mean_ms": round(statistics.fmean(runs), 2),
        "runs": len(runs),
    }


def _pandas_leaderboard(con: duckdb.DuckDBPyConnection, lo: date, hi: date) -> pd.DataFrame:
    """The notebook way: load the period's rows, then groupby in pandas."""
    events = con.execute("SELECT * FROM inference_events WHERE ts >= ? AND ts < ?", [lo, hi]).df()
    models = con.execute("SELECT * FROM models").df()
    events = events.merge(models, on="model_id")
    computed = (
        events["input_tokens"] / 1000 * events["input_price_per_1k"]
        + events["output_tokens"] / 1000 * events["output_price_per_1k"]
    )
    events["cost_all"] = events["cost"].fillna(computed)
    events["is_error"] = events["status"] == "error"
    events["is_timeout"] = events["status"] == "timeout"
    ok = events[events["status"] == "ok"].groupby("model_id")["latency_ms"]
    grouped = events.groupby("model_id")
    out = pd.DataFrame(
        {
            "requests": grouped.size(),
            "error_rate": grouped["is_error"].mean(),
            "timeout_rate": grouped["is_timeout"].mean(),
            "p50_latency_ms": ok.quantile(0.50),
            "p95_latency_ms": ok.quantile(0.95),
            "p99_latency_ms": ok.quantile(0.99),
            "input_tokens": grouped["input_tokens"].sum(),
            "output_tokens": grouped["output_tokens"].sum(),
            "cost": grouped["cost_all"].sum(),
            "quality_mean": grouped["quality"].mean(),
            "quality_sd": grouped["quality"].std(),
        }
    )
    return out.sort_values("requests", ascending=False)


def _pandas_kpis(con: duckdb.DuckDBPyConnection, lo: date, hi: date) -> dict[str, float]:
    """The notebook way for the KPI summary (current and previous period)."""
    prev = lo - (hi - lo)
    orders = con.execute("SELECT * FROM orders WHERE ts >= ? AND ts < ?", [prev, hi]).df()
    events = con.execute("SELECT * FROM inference_events WHERE ts >= ? AND ts < ?", [prev, hi]).df()
    funnel = con.execute("SELECT * FROM product_events WHERE ts >= ? AND ts < ?", [prev, hi]).df()
    customers = con.execute("SELECT * FROM customers").df()
    out: dict[str, float] = {}
    for label, (a, b) in {"current": (lo, hi), "previous": (prev, lo)}.items():
        a_ts, b_ts = pd.Timestamp(a), pd.Timestamp(b)
        o = orders[(orders["ts"] >= a_ts) & (orders["ts"] < b_ts)]
        done = o[o["status"] == "completed"]
        e = events[(events["ts"] >= a_ts) & (events["ts"] < b_ts)]
        f = funnel[(funnel["ts"] >= a_ts) & (funnel["ts"] < b_ts)]
        active = e["customer_id"].nunique()
        revenue = float(done["amount"].astype(float).sum())
        out[f"{label}_revenue"] = revenue
        out[f"{label}_orders"] = len(done)
        out[f"{label}_aov"] = revenue / max(len(done), 1)
        out[f"{label}_dau"] = float(
            e.groupby(e["ts"].dt.normalize())["customer_id"].nunique().mean()
        )
        out[f"{label}_mau"] = active
        out[f"{label}_new"] = int(
            ((customers["signup_ts"] >= a_ts) & (customers["signup_ts"] < b_ts)).sum()
        )
        counts = f["event_type"].value_counts()
        out[f"{label}_conversion"] = counts.get("signup", 0) / max(counts.get("visit", 0), 1)
        out[f"{label}_arpu"] = revenue / max(active, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, default=Path("data/bench_10m.duckdb"))
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/queries.json"))
    args = parser.parse_args()

    url = f"duckdb:///{args.db.resolve()}"
    os.environ["AUTERITY_DB_URL"] = url
    from auterity import business, modelhub, warehouse
    from auterity.demo import generate as demo_data
    from auterity.warehouse import cache

    if not args.db.exists():
        print(f"building {args.events:,} events into {args.db} ...", flush=True)
        demo_data.build(demo_data.DemoConfig(seed=42, events=args.events, end=END), url=url)
        warehouse.dispose_engines()
    rows = warehouse.table_summary(url)["inference_events"]["rows"]
    print(f"warehouse {args.db}: {rows:,} inference events", flush=True)

    periods = {
        "last_30_days": (END - timedelta(days=30), END),
        "18_months": (date(2025, 5, 1), END),
    }
    results: dict[str, dict] = {}
    for period, (lo, hi) in periods.items():
        os.environ["AUTERITY_CACHE_TTL"] = "0"
        lib_lb = _times(lambda lo=lo, hi=hi: modelhub.leaderboard(lo, hi), args.repeat)
        lib_kpi = _times(
            lambda lo=lo, hi=hi: business.kpi_summary(lo, hi), max(3, args.repeat // 3)
        )
        os.environ["AUTERITY_CACHE_TTL"] = "300"
        cache.clear()
        cached_lb = _times(lambda lo=lo, hi=hi: modelhub.leaderboard(lo, hi), args.repeat)
        cached_kpi = _times(lambda lo=lo, hi=hi: business.kpi_summary(lo, hi), args.repeat)
        warehouse.dispose_engines()  # let go of the file before opening it directly
        con = duckdb.connect(str(args.db), read_only=True)
        floor_lb = _times(
            lambda lo=lo, hi=hi, con=con: _floor_leaderboard(con, lo, hi), args.repeat
        )
        aggregate_lb = _times(
            lambda lo=lo, hi=hi, con=con: con.execute(LEADERBOARD_SQL, [lo, hi]).df(), args.repeat
        )
        pandas_lb = _times(
            lambda lo=lo, hi=hi, con=con: _pandas_leaderboard(con, lo, hi), max(3, args.repeat // 3)
        )
        pandas_kpi = _times(
            lambda lo=lo, hi=hi, con=con: _pandas_kpis(con, lo, hi), max(3, args.repeat // 3)
        )
        con.close()
        results[period] = {
            "leaderboard": {
                "library": lib_lb,
                "library_cached": cached_lb,
                "pandas": pandas_lb,
                "floor": floor_lb,
                "aggregate_only": aggregate_lb,
            },
            "kpi_summary": {"library": lib_kpi, "library_cached": cached_kpi, "pandas": pandas_kpi},
        }

    print(f"\n{'question':<26}{'path':<16}{'p50 ms':>10}{'p95 ms':>10}")
    for period, questions in results.items():
        for question, paths in questions.items():
            for path, t in paths.items():
                print(f"{question + ' ' + period:<26}{path:<16}{t['p50_ms']:>10}{t['p95_ms']:>10}")
    print("\nleaderboard goals: p95 <= 150 ms, >= 8x faster than pandas, <= 1.3x the floor")
    goals = {}
    for period, questions in results.items():
        lb = questions["leaderboard"]
        speedup = lb["pandas"]["p50_ms"] / lb["library"]["p50_ms"]
        vs_floor = lb["library"]["p50_ms"] / lb["floor"]["p50_ms"]
        goals[period] = {
            "p95_ms": lb["library"]["p95_ms"],
            "speedup_vs_pandas": round(speedup, 1),
            "ratio_to_floor": round(vs_floor, 2),
            "ratio_to_aggregate_only": round(
                lb["library"]["p50_ms"] / lb["aggregate_only"]["p50_ms"], 2
            ),
            "kpi_speedup_vs_pandas": round(
                questions["kpi_summary"]["pandas"]["p50_ms"]
                / questions["kpi_summary"]["library"]["p50_ms"],
                1,
            ),
        }
        print(
            f"  {period:<14} p95 {lb['library']['p95_ms']:>8} ms   {speedup:>6.1f}x vs pandas"
            f"   {vs_floor:>5.2f}x the floor"
            f"   ({goals[period]['ratio_to_aggregate_only']:.2f}x the aggregate alone)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "queries",
                "events": rows,
                "cpus": os.cpu_count(),
                "machine": platform.uname()._asdict(),
                "results": results,
                "goals": goals,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
