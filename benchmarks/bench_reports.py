"""Benchmark: wall time of `auterity run` per notebook against the floor.

Usage:
    python benchmarks/bench_reports.py [--db data/auterity.duckdb] [--repeat 3]
                                       [--out benchmarks/results/reports.json]

For each notebook in notebooks/ (default parameters, on the given warehouse, default: the
`make demo` warehouse, built if missing) it times a full `auterity run` (papermill
execution, HTML report, run records) with and without the PDF, next to the floor measured
in the same run: papermill executing an empty notebook plus the HTML export of the result.
Goal from the issue: each report within 2x the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _floor(tmp: Path) -> float:
    """Papermill on an empty notebook, then nbconvert HTML export: the fixed cost."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    empty = tmp / "empty.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x: int = 1", metadata={"tags": ["parameters"]})]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, empty)
    started = time.perf_counter()
    papermill.execute_notebook(
        str(empty),
        str(tmp / "out.ipynb"),
        parameters={"x": 2},
        kernel_name="python3",
        progress_bar=False,
    )
    body, _ = HTMLExporter(exclude_input=True).from_filename(str(tmp / "out.ipynb"))
    (tmp / "out.html").write_text(body)
    return time.perf_counter() - started


def _run(notebook: str, pdf: bool, env: dict[str, str]) -> float:
    """One `auterity run` in a fresh process, as a user would start it."""
    args = [str(Path(sys.executable).with_name("auterity")), "run", notebook]
    if not pdf:
        args.append("--no-pdf")
    started = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{notebook} failed:\n{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, default=ROOT / "data" / "auterity.duckdb")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/reports.json")
    args = parser.parse_args()

    url = f"duckdb:///{args.db.resolve()}"
    if not args.db.exists():
        from auterity.demo import generate as demo_data

        print(f"building the default demo warehouse into {args.db} ...", flush=True)
        demo_data.build(demo_data.DemoConfig(end=date(2026, 11, 1)), url=url)
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "AUTERITY_DB_URL": url,
            "AUTERITY_HOME": str(ROOT),
            "AUTERITY_CACHE_TTL": "0",
        }
        os.environ.update({"AUTERITY_DB_URL": url})
        floor = [_floor(Path(tmp)) for _ in range(args.repeat)]
        notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
        results = {}
        for name in notebooks:
            no_pdf = [_run(name, False, env) for _ in range(args.repeat)]
            with_pdf = [_run(name, True, env) for _ in range(args.repeat)]
            results[name] = {
                "run_no_pdf_s": round(statistics.median(no_pdf), 2),
                "run_with_pdf_s": round(statistics.median(with_pdf), 2),
            }
            print(f"{name}: {results[name]}", flush=True)
    floor_s = statistics.median(floor)
    print(f"\nfloor (papermill + HTML export of an empty notebook): {floor_s:.2f} s")
    print(f"{'notebook':<26}{'no PDF s':>10}{'x floor':>9}{'with PDF s':>12}{'x floor':>9}")
    for name, r in results.items():
        r["ratio_no_pdf"] = round(r["run_no_pdf_s"] / floor_s, 2)
        r["ratio_with_pdf"] = round(r["run_with_pdf_s"] / floor_s, 2)
        print(
            f"{name:<26}{r['run_no_pdf_s']:>10}{r['ratio_no_pdf']:>9}"
            f"{r['run_with_pdf_s']:>12}{r['ratio_with_pdf']:>9}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "reports",
                "floor_s": round(floor_s, 2),
                "results": results,
                "cpus": os.cpu_count(),
                "machine": platform.uname()._asdict(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
