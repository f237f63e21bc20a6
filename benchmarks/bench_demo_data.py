"""Benchmark: how long `auterity demo-data` takes to generate and load a warehouse.

Usage:
    python benchmarks/bench_demo_data.py [--events N ...] [--db-url URL] [--out results.json]

Each size is built into a fresh DuckDB file (or the database at --db-url), timed end to end
(generation + load), and reported as a table and JSON. Goals from the issue: the default
1M events in under a minute, 10M in a few minutes, on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

from auterity import redact, warehouse
from auterity.demo import generate as demo_data


def _build(events: int, url: str) -> dict:
    """Build one warehouse and return its timings."""
    cfg = demo_data.DemoConfig(seed=42, events=events, months=18, end=date(2026, 11, 1))
    started = time.perf_counter()
    world = demo_data.generate(cfg)
    generated_business = time.perf_counter() - started
    manifest = demo_data.build(world, url=url)
    total = time.perf_counter() - started
    warehouse.dispose_engines()
    rows = sum(manifest["rows"].values())
    return {
        "events": events,
        "rows_total": rows,
        "rows": manifest["rows"],
        "seconds_total": round(total, 2),
        "seconds_business_generation": round(generated_business, 2),
        "rows_per_second": round(rows / total),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--events",
        type=int,
        nargs="+",
        default=[1_000_000],
        help="sizes to build (inference events); e.g. 1000000 10000000",
    )
    parser.add_argument("--db-url", help="build into this database instead of temp DuckDB files")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/demo_data.json"))
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for events in args.events:
            url = args.db_url or f"duckdb:///{Path(tmp) / f'bench_{events}.duckdb'}"
            result = _build(events, url)
            result["database"] = redact.mask_url(url).split(":")[0]
            if not args.db_url:
                result["file_mb"] = round(
                    Path(url.removeprefix("duckdb:///")).stat().st_size / 2**20
                )
            results.append(result)
            print(f"built {events:,} events in {result['seconds_total']} s", flush=True)

    print(f"\n{'events':>12} {'all rows':>12} {'seconds':>9} {'rows/s':>10} {'file MB':>8}")
    for r in results:
        print(
            f"{r['events']:>12,} {r['rows_total']:>12,} {r['seconds_total']:>9} "
            f"{r['rows_per_second']:>10,} {r.get('file_mb', '-'):>8}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "demo_data",
        "machine": platform.uname()._asdict(),
        "cpus": __import__("os").cpu_count(),
        "results": results,
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
