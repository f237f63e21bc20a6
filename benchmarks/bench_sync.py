"""Benchmark: an incremental `auterity sync` of changed rows from PostgreSQL into DuckDB.

Usage:
    python benchmarks/bench_sync.py [--rows N] [--batch-rows N] [--pg-url URL] [--out FILE]

Creates a scratch PostgreSQL source database (on the server of ``--pg-url``, default
``AUTERITY_TEST_PG_URL``) holding ``--rows`` model requests under their own column names,
syncs them once into a fresh DuckDB warehouse (the baseline), then changes every row
(``updated_at`` moved, latency changed) and times the incremental sync of all of them:
read with a server-side cursor, validated, upserted by key, watermark moved, one
transaction per batch. Reports rows per minute as a table and JSON. Goal from the issue:
an incremental sync of 1M changed rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from auterity import config, warehouse
from auterity.ingest import sync as syncing

SOURCES = """
databases:
  bench:
    url_env: AUTERITY_BENCH_SOURCE_URL
    tables:
      inference_events:
        table: llm_calls
        cursor: updated_at
        columns: {call_id: request_id, started: ts, model: model_id, ms: latency_ms,
                  tin: input_tokens, tout: output_tokens, outcome: status, usd: cost}
"""


def _source(server: str, rows: int) -> str:
    """A scratch source database with ``rows`` requests; its URL."""
    name = f"auterity_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    url = sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE llm_calls (call_id text PRIMARY KEY, started timestamp, model text, "
            "ms double precision, tin int, tout int, outcome text, usd double precision, "
            "updated_at timestamp)"
        )
        conn.exec_driver_sql(
            "INSERT INTO llm_calls SELECT 'r' || i, timestamp '2026-01-01' + i * interval "
            "'1 second', 'model-' || mod(i, 7), 50 + mod(i, 900), 100 + mod(i, 500), "
            "20 + mod(i, 300), "
            "CASE WHEN mod(i, 50) = 0 THEN 'error' ELSE 'ok' END, mod(i, 1000) / 1e5, "
            "timestamp '2026-06-01' + i * interval '1 millisecond' "
            f"FROM generate_series(1, {rows}) AS i"
        )
        conn.exec_driver_sql("CREATE INDEX ON llm_calls (updated_at, call_id)")
    engine.dispose()
    return url


def _drop(server: str, url: str) -> None:
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)')
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="changed rows to sync")
    parser.add_argument("--batch-rows", type=int, default=syncing.DEFAULT_BATCH_ROWS)
    parser.add_argument(
        "--pg-url",
        default=config.value("AUTERITY_TEST_PG_URL"),
        help="PostgreSQL server to create the scratch source database on",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sync.json"))
    args = parser.parse_args()

    source = _source(args.pg_url, args.rows)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sources_file = Path(tmp) / "sources.yml"
            sources_file.write_text(SOURCES)
            os.environ["AUTERITY_BENCH_SOURCE_URL"] = source
            url = f"duckdb:///{Path(tmp) / 'bench.duckdb'}"
            started = time.perf_counter()
            [initial] = syncing.sync(
                "bench", url=url, path=sources_file, batch_rows=args.batch_rows
            )
            initial_s = time.perf_counter() - started
            engine = sa.create_engine(source)
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "UPDATE llm_calls SET ms = ms + 1, updated_at = updated_at + interval '1 day'"
                )
            engine.dispose()
            started = time.perf_counter()
            [changed] = syncing.sync(
                "bench", url=url, path=sources_file, batch_rows=args.batch_rows
            )
            incremental_s = time.perf_counter() - started
            started = time.perf_counter()
            [idle] = syncing.sync("bench", url=url, path=sources_file)
            idle_s = time.perf_counter() - started
            warehouse.dispose_engines()
    finally:
        _drop(args.pg_url, source)

    result = {
        "rows": args.rows,
        "batch_rows": args.batch_rows,
        "initial": {**initial.counts(), "seconds": round(initial_s, 2)},
        "incremental": {**changed.counts(), "seconds": round(incremental_s, 2)},
        "nothing_changed": {**idle.counts(), "seconds": round(idle_s, 2)},
        "initial_rows_per_minute": round(args.rows / initial_s * 60),
        "incremental_rows_per_minute": round(args.rows / incremental_s * 60),
    }
    print(f"\n{'sync':<16} {'rows':>10} {'inserted':>10} {'updated':>10} {'s':>8} {'rows/min':>12}")
    for label, part in (
        ("initial", result["initial"]),
        ("incremental", result["incremental"]),
        ("nothing changed", result["nothing_changed"]),
    ):
        per_minute = part["read"] / part["seconds"] * 60 if part["seconds"] else 0
        print(
            f"{label:<16} {part['read']:>10,} {part['inserted']:>10,} {part['updated']:>10,} "
            f"{part['seconds']:>8} {per_minute:>12,.0f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "sync",
        "machine": platform.uname()._asdict(),
        "cpus": os.cpu_count(),
        "results": [result],
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
