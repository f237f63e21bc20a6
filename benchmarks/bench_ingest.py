"""Benchmark: inference events from Parquet and CSV files into the embedded warehouse.

Usage:
    python benchmarks/bench_ingest.py [--events 10000000] [--bad-every 1000]
        [--to-sql-rows 200000] [--work DIR] [--out benchmarks/results/ingest.json]

Writes ``--events`` synthetic model requests (one in ``--bad-every`` breaks the contract:
negative tokens) as one Parquet file and one CSV file, then loads each with full
validation into a fresh DuckDB warehouse through ``auterity.ingest.load_files`` (the code
``auterity ingest`` runs): first load, then the same file again (every row unchanged),
then (Parquet) the next ``--events`` events into the table that holds the first.
Next to it, in the same run, ``pandas.DataFrame.to_sql`` (no validation at all) into a
fresh DuckDB warehouse through SQLAlchemy, on ``--to-sql-rows`` rows (at its speed the
full size would take hours; the rate is per minute either way). Prints a table and writes
JSON. Goal (issue 14): >= 60M events per minute from Parquet on this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import duckdb
import sqlalchemy as sa

from auterity import warehouse
from auterity.ingest import files

GOAL_PER_MINUTE = 60_000_000


def _select(events: int, bad_every: int, offset: int = 0) -> str:
    """SQL of ``events`` synthetic model requests numbered from ``offset``."""
    return (
        "SELECT 'req-' || lpad(i::VARCHAR, 12, '0') AS request_id, "
        "TIMESTAMP '2026-01-01' + to_microseconds(i * 2500) AS ts, "
        "'model-' || (i % 12) AS model_id, 'cust-' || (i % 20000) AS customer_id, "
        "'feature-' || (i % 9) AS feature, round(50 + (i * 7919 % 4000) / 3.0, 2) AS latency_ms, "
        f"CASE WHEN i % {bad_every} = 0 THEN -1 ELSE (i % 3000)::INTEGER END AS input_tokens, "
        "(i % 700)::INTEGER AS output_tokens, NULL::DOUBLE AS cost, "
        "CASE WHEN i % 53 = 0 THEN 'error' WHEN i % 97 = 0 THEN 'timeout' ELSE 'ok' END "
        "AS status, CASE WHEN i % 4 = 0 THEN (i % 100) / 100.0 END AS quality, "
        "CASE WHEN i % 10 = 0 THEN 1 WHEN i % 10 = 1 THEN -1 END::SMALLINT AS feedback "
        f"FROM range({offset}, {offset + events}) t(i)"
    )


def _write_files(folder: Path, events: int, bad_every: int) -> tuple[Path, Path, Path]:
    """The same events as Parquet and as CSV, and the next ``events`` as Parquet (written
    by DuckDB)."""
    parquet, csv, following = (
        folder / "events.parquet",
        folder / "events.csv",
        folder / "next.parquet",
    )
    con = duckdb.connect()
    con.execute(f"COPY ({_select(events, bad_every)}) TO '{parquet}' (FORMAT parquet)")
    con.execute(f"COPY ({_select(events, bad_every)}) TO '{csv}' (FORMAT csv, HEADER)")
    con.execute(f"COPY ({_select(events, bad_every, events)}) TO '{following}' (FORMAT parquet)")
    con.close()
    return parquet, csv, following


def _load(path: Path, url: str, following: Path | None = None) -> dict:
    """Load ``path`` twice into ``url`` (then ``following``, new keys, into the table
    that holds the first); timings and counts."""
    runs = {}
    loads = [("first", path), ("again", path)] + ([("append", following)] if following else [])
    for name, file in loads:
        started = time.perf_counter()
        (result,) = files.load_files("inference_events", [str(file)], url=url)
        seconds = time.perf_counter() - started
        runs[name] = {
            "seconds": round(seconds, 2),
            "events_per_minute": round(result.read / seconds * 60),
            **result.counts(),
        }
    warehouse.dispose_engines()
    return runs


def _to_sql(parquet: Path, rows: int, folder: Path) -> dict:
    """pandas.DataFrame.to_sql of the first ``rows`` events into a fresh DuckDB warehouse."""
    frame = duckdb.sql(f"SELECT * FROM '{parquet}' LIMIT {rows}").df()
    url = f"duckdb:///{folder / 'to_sql.duckdb'}"
    warehouse.ensure_schema(url)
    warehouse.dispose_engines()
    engine = sa.create_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        frame.to_sql("inference_events", conn, if_exists="append", index=False, chunksize=10_000)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "events_per_minute": round(rows / seconds * 60),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--bad-every", type=int, default=1000, help="one bad row in N")
    parser.add_argument("--to-sql-rows", type=int, default=200_000)
    parser.add_argument("--work", type=Path, help="folder for the files (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ingest.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        parquet, csv, following = _write_files(folder, args.events, args.bad_every)
        print(
            f"wrote {args.events:,} events as Parquet and CSV (and the next as Parquet) in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        result = {
            "events": args.events,
            "bad_every": args.bad_every,
            "file_mb": {
                "parquet": round(parquet.stat().st_size / 1e6, 1),
                "csv": round(csv.stat().st_size / 1e6, 1),
            },
            "parquet": _load(parquet, f"duckdb:///{folder / 'parquet.duckdb'}", following),
            "csv": _load(csv, f"duckdb:///{folder / 'csv.duckdb'}"),
            "to_sql": _to_sql(parquet, min(args.to_sql_rows, args.events), folder),
            "goal_events_per_minute_parquet": GOAL_PER_MINUTE,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        }
    parquet_rate = result["parquet"]["first"]["events_per_minute"]
    result["goal_met"] = parquet_rate >= GOAL_PER_MINUTE
    result["vs_to_sql"] = round(parquet_rate / result["to_sql"]["events_per_minute"], 1)
    rows = [
        ("Parquet, first load", result["parquet"]["first"]),
        ("Parquet, same file again", result["parquet"]["again"]),
        ("Parquet, next events appended", result["parquet"]["append"]),
        ("CSV, first load", result["csv"]["first"]),
        ("CSV, same file again", result["csv"]["again"]),
        (f"DataFrame.to_sql ({result['to_sql']['rows']:,} rows)", result["to_sql"]),
    ]
    print(f"\n{'path':<34}{'seconds':>9}{'events/min':>16}{'inserted':>12}{'quarantined':>13}")
    for name, run in rows:
        print(
            f"{name:<34}{run['seconds']:>9.2f}{run['events_per_minute']:>16,}"
            f"{run.get('inserted', run.get('rows', 0)):>12,}{run.get('quarantined', 0):>13,}"
        )
    print(
        f"\nParquet {parquet_rate / 1e6:.1f}M events/min = {result['vs_to_sql']}x to_sql; "
        f"goal {GOAL_PER_MINUTE / 1e6:.0f}M/min {'met' if result['goal_met'] else 'NOT met'}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
