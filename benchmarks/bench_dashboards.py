"""Dashboards: time to first rendered KPI in headless Chromium, with and without pre-heating,
and how many concurrent viewers the machine holds before that time doubles.

Loopback only, bounded loops. Prints a table and writes benchmarks/results/dashboards.json.
Run: ``.venv/bin/python benchmarks/bench_dashboards.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from auterity import demo_data, serve, warehouse
from auterity.reports import CHROMIUM_ARGS

OUT = Path(__file__).resolve().parent / "results" / "dashboards.json"
TOKEN = "bench-token"
DASHBOARD = "business"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(url: str, preheat: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    cmd = serve.voila_command("127.0.0.1", port)
    if not preheat:
        cmd.append("--VoilaConfiguration.preheat_kernel=False")
    env = serve.voila_env(TOKEN, {**os.environ, "AUTERITY_DB_URL": url})
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the server writes to it until stopped
        prefix="voila-bench-", suffix=".log", delete=False
    )
    proc = subprocess.Popen(
        cmd,
        cwd=serve.dashboards_dir(),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/?token={TOKEN}", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.3)
    if preheat:
        while Path(log.name).read_text().count("is filled") < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
    return proc, base


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


from playwright.async_api import TimeoutError as PlaywrightTimeout  # noqa: E402


async def _first_kpi(browser: Any, base: str) -> float:
    context = await browser.new_context()
    await context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith("http://127.0.0.1") else route.abort()
        ),
    )
    page = await context.new_page()
    started = time.perf_counter()
    await page.goto(f"{base}/voila/render/{DASHBOARD}.ipynb?token={TOKEN}", wait_until="commit")
    try:
        await page.wait_for_selector(".au-kpi-value", timeout=120_000)
        elapsed = time.perf_counter() - started
    except PlaywrightTimeout:  # report it as a result, not a crash
        elapsed = float("inf")
    await context.close()
    return elapsed


async def _measure(base: str, viewers: int, rounds: int) -> list[float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        times: list[float] = []
        for _ in range(rounds):
            times += await asyncio.gather(*(_first_kpi(browser, base) for _ in range(viewers)))
            await asyncio.sleep(2.0)  # let the pools refill
        await browser.close()
    return times


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Fewer rounds and viewers.")
    args = parser.parse_args()
    rounds = 2 if args.quick else 3
    ladder = [1, 2, 4] if args.quick else [1, 2, 4, 8, 12]
    folder = Path(tempfile.mkdtemp(prefix="auterity-bench-dash-"))
    url = f"duckdb:///{folder / 'bench.duckdb'}"
    end = datetime.now(UTC).date() + timedelta(days=1)
    demo_data.build(demo_data.DemoConfig(seed=3, events=50_000, months=6, end=end), url=url)
    warehouse.dispose_engines()
    results: dict[str, Any] = {"dashboard": DASHBOARD, "rounds": rounds, "single": {}}
    for preheat in (True, False):
        proc, base = _start(url, preheat)
        try:
            times = asyncio.run(_measure(base, 1, rounds))
            results["single"]["preheated" if preheat else "cold"] = {
                "median_s": _median(times),
                "all_s": times,
            }
            if preheat:
                baseline = _median(times)
                curve = []
                for viewers in ladder:
                    got = asyncio.run(_measure(base, viewers, 1))
                    curve.append({"viewers": viewers, "median_s": _median(got), "max_s": max(got)})
                    if _median(got) > 2 * baseline:
                        break
                results["concurrency"] = curve
                ok = [c["viewers"] for c in curve if c["median_s"] <= 2 * baseline]
                results["viewers_before_doubling"] = max(ok) if ok else 0
        finally:
            _stop(proc)
    print(f"{'mode':<12}{'median s':>10}")
    for mode, row in results["single"].items():
        print(f"{mode:<12}{row['median_s']:>10.2f}")
    print(f"\n{'viewers':<12}{'median s':>10}{'max s':>10}")
    for row in results.get("concurrency", []):
        print(f"{row['viewers']:<12}{row['median_s']:>10.2f}{row['max_s']:>10.2f}")
    print(f"\nviewers before the time doubles: {results.get('viewers_before_doubling')}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
