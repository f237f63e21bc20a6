"""Dashboards: in-process unit tests, then a real Voila server driven by real Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
import requests

from auterity import access, business, charts, dashboards, modelhub, present, warehouse
from auterity.dashboards import realtime_dashboard, serve
from auterity.demo import generate as demo_data
from auterity.errors import ConfigError, DatabaseUnavailable
from conftest import auterity_serve, free_port

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "dashboards"
TOKEN = "test-" + uuid.uuid4().hex


def _today() -> date:
    return datetime.now(UTC).date()


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small warehouse whose data reaches the present (for the real-time dashboard)."""
    url = f"duckdb:///{tmp_path_factory.mktemp('dash') / 'live.duckdb'}"
    cfg = demo_data.DemoConfig(seed=23, events=20_000, months=3, end=_today() + timedelta(days=1))
    demo_data.build(cfg, url=url)
    warehouse.dispose_engines()
    return url


# --------------------------------------------------------------------------- in process


def test_business_dashboard_in_process(live_url: str) -> None:
    dash = dashboards.business(url=live_url)
    assert dash is not None and dash.error is None
    start, end = present.resolve_period("last_28_days", url=live_url)
    expected = business.kpi_summary(start, end, url=live_url).set_index("metric")
    shown = dash.view.kpis.set_index("metric")
    assert shown.loc["revenue", "current"] == pytest.approx(expected.loc["revenue", "current"])
    assert 'data-metric="revenue"' in dash.tiles.value
    region = dash.region.options[1]
    dash.region.value = region  # the observer refreshes
    filtered = business.kpi_summary(start, end, where={"region": region}, url=live_url)
    got = dash.view.kpis.set_index("metric").loc["revenue", "current"]
    assert got == pytest.approx(filtered.set_index("metric").loc["revenue", "current"])
    assert dash.filters()["region"] == region
    # sales channel: order KPIs follow it, KPIs without a channel show no number
    dash.region.value = dashboards.ALL
    channel = dash.channel.options[1]
    dash.channel.value = channel
    by_channel = business.kpi_summary(start, end, where={"channel": channel}, url=live_url)
    got = dash.view.kpis.set_index("metric")
    assert got.loc["revenue", "current"] == pytest.approx(
        by_channel.set_index("metric").loc["revenue", "current"]
    )
    assert pd.isna(got.loc["dau", "current"]) and dash.filters()["channel"] == channel
    assert dash.tiles.value.count('class="au-spark"') == 3  # revenue, orders, AOV
    dash.channel.value = dashboards.ALL
    assert dash.tiles.value.count('class="au-spark"') == len(business.SPARKLINE_METRICS)
    dash.grain.value = "week"
    assert len(dash.view.frames["revenue_trend"]) <= 6
    assert dash.exports.value == ""  # no download links until asked for (and audited)
    assert dash.prepare_exports()
    assert "au-export-csv" in dash.exports.value and "base64," in dash.exports.value
    exported = access.audit_trail(action="export", url=live_url).iloc[0]
    assert exported["object_id"] == "business" and exported["details"]["formats"] == ["csv", "json"]
    assert exported["details"]["filters"]["grain"] == "week"
    dash.refresh()  # the same filters refreshed: the links follow the data
    assert "au-export-csv" in dash.exports.value
    pngs = dash.prepare_pngs()
    assert pngs and all(p.startswith(b"\x89PNG") for p in pngs.values())
    assert "au-export-png" in dash.exports.value
    # a bad filter shows a short message, keeps the last data, never raises
    dash.end.value = dash.start.value
    assert dash.error and "must be after" in dash.error
    assert "Traceback" not in dash.status.value
    assert dash.stale_since is not None


def test_first_paint_is_the_tiles_as_plain_html(
    live_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard also displays its tiles as plain HTML (for the page before widgets load)."""
    shown: list[tuple[object, dict[str, object]]] = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.extend((x, k) for x in a))
    dash = dashboards.business(url=live_url)
    assert dash is not None
    bundles = [x for x, k in shown if isinstance(x, dict) and dashboards.FIRST_PAINT_MIME in x]
    assert len(bundles) == 1 and bundles[0]["text/plain"] == ""
    assert next(k for x, k in shown if x is bundles[0]) == {"raw": True}
    paint = bundles[0][dashboards.FIRST_PAINT_MIME]
    assert dash.view.tiles_html in paint
    assert f'<h2 style="margin:4px 0;">{dash.title}</h2>' in paint
    assert "au-state" not in paint and "Loading filters" in paint
    assert "Last updated" in paint
    # a cold kernel's viewer is waiting: tiles and tables now, charts with the widgets
    assert 'class="marks"' not in paint and paint.count("Loading the chart") == len(dash.outputs)
    assert paint.count('class="au-spark"') == len(business.SPARKLINE_METRICS)
    # a pre-heated kernel draws the charts too, as static SVG (no script)
    full = dash.first_paint_html(with_charts=True)
    assert full.count('class="marks"') == len(dash.outputs) and "<script" not in full
    monkeypatch.setattr(charts, "to_svg", lambda *a, **k: 1 / 0)
    assert 'class="marks"' not in dash.first_paint_html(with_charts=True)  # left out if broken
    # first in the page: before the 0.9 MB chart library, so the browser reaches it at once
    order = [x for x, _ in shown]
    vega = next(i for i, x in enumerate(order) if "vega-bundle" in str(getattr(x, "data", "")))
    assert order.index(bundles[0]) < vega < order.index(dash.widget) == len(order) - 1


def test_modelhub_dashboard_in_process(live_url: str) -> None:
    dash = dashboards.modelhub(url=live_url)
    assert dash is not None and dash.error is None
    start, end = present.resolve_period("last_28_days", url=live_url)
    board = modelhub.leaderboard(start, end, url=live_url)
    tiles = dash.view.kpis.set_index("metric")
    assert tiles.loc["requests", "current"] == board["requests"].sum()
    model = board["model_id"].iloc[-1]
    dash.models.value = (model,)
    assert (
        dash.view.kpis.set_index("metric").loc["requests", "current"]
        == (board.set_index("model_id").loc[model, "requests"])
    )
    dash.models.value = ()
    dash.sort_by.value = "p95_latency_ms"
    dash.ascending.value = "asc"
    latencies = list(dash.view.frames["leaderboard"]["p95_latency_ms"].dropna())
    assert latencies == sorted(latencies)
    for key in ("slo", "drift", "savings", "leaderboard"):
        assert "<table" in dash.sections[key].value or "<p>" in dash.sections[key].value
        # numbers are formatted for reading: no 0.8628209671... or 8129.979999 in a cell
        assert not re.search(r">-?\d+\.\d{5,}<", dash.sections[key].value), key
    slo = dash.view.frames["slo"].iloc[0]
    assert f">{charts.format_value(slo['latency_ms'], 'ms')}<" in dash.sections["slo"].value
    # the cost chart: a day brush filters the per-model bars; a click highlights a model
    spec = charts.to_dict(dash.view.charts["cost"])
    params = {p["name"]: p for p in spec["params"]}
    assert params["days"]["select"] == {"type": "interval", "encodings": ["x"]}
    assert params["model"]["select"] == {"type": "point", "fields": ["model_id"], "on": "click"}
    assert params["model"]["bind"] == "legend"
    lines, bars = spec["vconcat"]
    assert {"filter": {"param": "days"}} in bars["transform"]
    for view in (lines, bars):
        condition = view["encoding"]["opacity"]["condition"]
        assert [
            c["param"] for c in (condition if isinstance(condition, list) else [condition])
        ] == ["model"]
        assert {t["field"] for t in view["encoding"]["tooltip"]} >= {"model_id", "cost"}


def test_realtime_stale_and_recovery(live_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dash = dashboards.realtime(url=live_url, refresh_seconds=0.2, auto_refresh=True)
    assert dash is not None and dash.error is None
    assert dash.auto_refreshing  # the refresh timer runs
    before = dash.view.frames["per_model"]
    real = dashboards.realtime_view

    def down(*_a: object, **_k: object) -> dashboards.View:
        raise DatabaseUnavailable("connection refused")

    monkeypatch.setattr(realtime_dashboard, "realtime_view", down)
    deadline = time.monotonic() + 5
    while dash.stale_since is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dash.stale_since is not None
    assert "Stale data" in dash.status.value and "unavailable" in dash.status.value
    assert dash.view.frames["per_model"] is before  # the last data stays
    monkeypatch.setattr(realtime_dashboard, "realtime_view", real)
    deadline = time.monotonic() + 5
    while dash.stale_since is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dash.stale_since is None and dash.error is None
    assert "Last updated" in dash.status.value
    dash.stop_auto_refresh()
    assert not dash.start_auto_refresh(0)


def test_realtime_snapshot_counts_new_events(live_url: str) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    first, _, _ = dashboards.realtime_snapshot(5, now=now, url=live_url)
    events = _events(7, now - timedelta(seconds=30), status="error", prefix="unit")
    warehouse.append_data("inference_events", events, url=live_url)
    after, per_minute, newest = dashboards.realtime_snapshot(5, now=now, url=live_url)
    total = after.set_index("model_id").loc["all"]
    assert total["requests"] == first.set_index("model_id").loc["all", "requests"] + 7
    assert total["requests_per_s"] == pytest.approx(total["requests"] / 300)
    assert newest is not None and not per_minute.empty
    assert 'data-model="all"' in dashboards.realtime_table_html(after)
    with pytest.raises(ConfigError):
        dashboards.realtime_snapshot(0, url=live_url)


def test_messages_exports_and_helpers() -> None:
    assert "unavailable" in dashboards.viewer_message(DatabaseUnavailable("x"))
    assert dashboards.viewer_message(ConfigError("bad date\nmore")) == "bad date"
    assert "server log" in dashboards.viewer_message(ZeroDivisionError("boom"))
    frame = pd.DataFrame({"day": pd.to_datetime(["2026-01-01"]), "v": [1.5], "n": [None]})
    payload = json.loads(dashboards.view_json({"x": frame}, {"a": 1}))
    assert payload == {
        "filters": {"a": 1},
        # one serialiser (auterity._json): a column of midnights is written as dates
        "data": {"x": [{"day": "2026-01-01", "v": 1.5, "n": None}]},
    }
    links = dashboards.export_links_html("d", frame, {"x": frame}, {}, {"c": b"\x89PNG"})
    assert links.count("download=") == 3
    assert [dashboards.age_text(s) for s in (5, 600, 10_000, 500_000)] == [
        "5 s",
        "10 min",
        "3 h",
        "6 d",
    ]
    assert not dashboards.in_voila() or os.environ.get("VOILA_BASE_URL")
    with pytest.raises(ConfigError):
        dashboards.business_view(date(2026, 1, 2), date(2026, 1, 1))
    with pytest.raises(ConfigError):
        dashboards.modelhub_view(date(2026, 1, 1), date(2026, 1, 2), sort_by="nope")


def test_preheated_dashboard_refreshes_stale_data_when_viewed(
    live_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dash = dashboards.realtime(url=live_url, auto_refresh=False)
    assert dash is not None and dash.generation == 1
    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    assert dashboards.refresh_when_viewed(dash) is None  # not a pooled kernel
    arrived = threading.Event()
    fresh = dashboards.refresh_when_viewed(dash, 60, wait=arrived.wait)
    assert fresh is not None
    arrived.set()
    fresh.join(10)
    assert dash.generation == 1  # young data is kept
    dash.last_updated = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=10)
    stale = dashboards.refresh_when_viewed(dash, 60, wait=lambda: None)
    assert stale is not None
    stale.join(10)
    assert dash.generation == 2 and dash.error is None  # refreshed for the viewer

    def broken() -> None:
        raise OSError("no websocket")

    monkeypatch.setenv(dashboards.ENV_FRESH, "soon")  # falls back to the default
    kept = dashboards.refresh_when_viewed(dash, wait=lambda: None)
    assert kept is not None
    kept.join(10)
    assert dash.generation == 2
    monkeypatch.setenv(dashboards.ENV_FRESH, "0")
    failed = dashboards.refresh_when_viewed(dash, wait=broken)
    assert failed is not None
    failed.join(10)
    assert dash.generation == 2  # logged, nothing shown


def test_dashboard_that_cannot_start_shows_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    assert dashboards.business(period="nonsense") is None
    assert dashboards.modelhub(period="custom") is None


def test_serve_config_and_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = serve.dashboards_dir()
    assert set(serve.dashboards(folder)) == {"business.ipynb", "modelhub.ipynb", "realtime.ipynb"}
    config = serve.read_config(folder)
    assert config["Voila"]["auto_token"] is True  # no anonymous access
    assert config["VoilaConfiguration"]["preheat_kernel"] is True
    assert config["VoilaConfiguration"]["show_tracebacks"] is False
    assert config["MappingKernelManager"]["cull_idle_timeout"] > 0
    assert serve.dashboard_url("127.0.0.1", 8866, "t") == "http://127.0.0.1:8866/?token=t"
    assert serve.dashboard_url("::1", 1, "t", "/x") == "http://[::1]:1/x?token=t"
    cmd = serve.voila_command("127.0.0.1", 9999)
    assert "--Voila.port=9999" in cmd and "--Voila.ip=127.0.0.1" in cmd
    assert serve.voila_env("abc", {})["JUPYTER_TOKEN"] == "abc"
    env = serve.voila_env("abc", {"JUPYTER_PATH": "/x"}, folder=folder)
    assert env["JUPYTER_PATH"] == f"{(folder / '_share').resolve()}{os.pathsep}/x"
    assert config["VoilaConfiguration"]["template"] == "auterity"  # the landing page
    assert (folder / "_share/voila/templates/auterity/tree.html").is_file()
    with pytest.raises(ConfigError):
        serve.voila_env("", {})
    monkeypatch.setenv(serve.ENV_TOKEN, "fixed")
    assert serve.new_token() == "fixed"
    monkeypatch.delenv(serve.ENV_TOKEN)
    assert len(serve.new_token()) > 20
    monkeypatch.setenv(serve.ENV_DIR, str(tmp_path))
    with pytest.raises(ConfigError):
        serve.dashboards_dir()
    (tmp_path / "voila.json").write_text(
        '{"VoilaKernelManager": {"kernel_pools_config": {"gone.ipynb": {}}}}'
    )
    with pytest.raises(ConfigError, match=r"gone\.ipynb"):
        serve.dashboards(serve.dashboards_dir())
    (tmp_path / "gone.ipynb").write_text("{}")
    (tmp_path / "voila.json").write_text(
        '{"VoilaConfiguration": {"template": "nope"},'
        ' "VoilaKernelManager": {"kernel_pools_config": {"gone.ipynb": {}}}}'
    )
    with pytest.raises(ConfigError, match="template 'nope'"):
        serve.dashboards(tmp_path)
    (tmp_path / "voila.json").write_text("{not json")
    with pytest.raises(ConfigError):
        serve.read_config(tmp_path)


# --------------------------------------------------------------------------- real server

DEADLINE_MS = 60_000
"""How long a browser assertion polls for the expected state (a loaded CI machine is slow)."""

REFRESHED = """n => {
  const s = document.querySelector('.au-state');
  return s !== null && s.dataset.busy === '0' && Number(s.dataset.generation) > n;
}"""
"""True once the dashboard finished a refresh after generation ``n`` (status drawn last)."""

HOLD_WRITE_LOCK = """
import sys
from auterity import warehouse
with warehouse.connect(sys.argv[1], write=True):
    print("locked", flush=True)
    sys.stdin.read()
"""
"""A writer that keeps the DuckDB file until its stdin closes (the database is 'down')."""


def _events(n: int, ts: datetime, *, status: str = "ok", prefix: str = "rt") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": [f"{prefix}-{uuid.uuid4().hex}" for _ in range(n)],
            "ts": [ts] * n,
            "model_id": ["gpt-4o"] * n,
            "customer_id": [None] * n,
            "feature": ["chat"] * n,
            "latency_ms": [900.0] * n,
            "input_tokens": [100] * n,
            "output_tokens": [50] * n,
            "cost": [0.001] * n,
            "status": [status] * n,
            "quality": [None] * n,
            "feedback": [None] * n,
        }
    )


def _wait_started(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Poll the server until it answers (bounded; the log is shown if it dies)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/?token={TOKEN}", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert process.poll() is None, log_path.read_text()
        time.sleep(0.3)
    pytest.fail("Voila did not start:\n" + log_path.read_text())


def _wait_log(log_path: Path, text: str, count: int, seconds: float = 90) -> None:
    """Poll the server log until ``text`` appears ``count`` times."""
    deadline = time.monotonic() + seconds
    while log_path.read_text().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} x{count} not logged:\n{log_path.read_text()}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def server(live_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`auterity serve` on a free loopback port against the live warehouse."""
    if not Path("/usr/bin/chromium").is_file():  # pragma: no cover
        pytest.fail("Chromium is not installed at /usr/bin/chromium")
    log_path = tmp_path_factory.mktemp("voila") / "voila.log"
    env = {**os.environ, "AUTERITY_DB_URL": live_url, serve.ENV_TOKEN: TOKEN}
    env["AUTERITY_DB_LOCK_TIMEOUT"] = "2"  # a locked warehouse reads as 'unavailable' soon
    env.pop("AUTERITY_TIMEZONE", None)
    with auterity_serve(env, log_path) as (process, port):
        base = f"http://127.0.0.1:{port}"
        _wait_started(base, process, log_path)
        _wait_log(log_path, "is filled", 3)  # the pre-heated pools
        yield {"base": base, "log": str(log_path)}


@pytest.fixture(scope="module")
def browser(server: dict[str, str]) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    from auterity.reports import CHROMIUM_ARGS

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _loopback_only(context: object) -> None:
    """Abort every request that would leave the machine (none should: see
    test_no_request_leaves_the_machine), so the tests never depend on the network."""
    context.route(  # type: ignore[attr-defined]
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith("http://127.0.0.1") else route.abort()
        ),
    )


def _context(browser: object, width: int = 1280) -> object:
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": width, "height": 900}, accept_downloads=True
    )
    context.set_default_timeout(DEADLINE_MS)
    _loopback_only(context)
    return context


def _ready(page: object) -> object:
    """Wait until the widgets have replaced the first paint and drawn their first refresh."""
    page.wait_for_selector(".au-kpi-value", timeout=90_000)  # type: ignore[attr-defined]
    page.wait_for_function(REFRESHED, arg=0, timeout=DEADLINE_MS)  # type: ignore[attr-defined]
    page.wait_for_selector(".au-first-paint", state="detached", timeout=DEADLINE_MS)  # type: ignore[attr-defined]
    assert page.locator(".au-dash").count() == 1  # type: ignore[attr-defined]
    return page


def _open(browser: object, server: dict[str, str], name: str) -> object:
    """Open a dashboard the way a viewer does: the printed URL (landing page), then a card.

    The landing page also sets the XSRF cookie that Voila's page needs to shut its kernel
    down when the viewer leaves.
    """
    page = _context(browser).new_page()  # type: ignore[attr-defined]
    page.goto(f"{server['base']}/?token={TOKEN}", wait_until="domcontentloaded")
    page.locator(f'.au-card[data-dashboard="{name}"] a').click()
    _ready(page)
    assert page.url.endswith(f"/voila/render/{name}.ipynb")
    return page


def _open_bookmark(browser: object, server: dict[str, str], name: str) -> object:
    """Open a dashboard straight from its URL (a bookmark), token in the query string."""
    page = _context(browser).new_page()  # type: ignore[attr-defined]
    page.goto(
        f"{server['base']}/voila/render/{name}.ipynb?token={TOKEN}", wait_until="domcontentloaded"
    )
    return _ready(page)


def _close(page: object, log_path: Path | None = None) -> None:
    """Leave the page as a viewer does (its unload handler asks Voila to stop the kernel).

    With ``log_path``, wait until the server logged that kernel shutdown before the
    browser context goes (closing the context at once can cancel the unload request).
    """
    context = page.context  # type: ignore[attr-defined]
    shutdowns = log_path.read_text().count("Kernel shutdown:") if log_path else 0
    page.close(run_before_unload=True)  # type: ignore[attr-defined]
    if log_path is not None:
        _wait_log(log_path, "Kernel shutdown:", shutdowns + 1, seconds=30)
    context.close()


def _tile(page: object, metric: str) -> object:
    return page.locator(f'.au-kpi-value[data-metric="{metric}"]')  # type: ignore[attr-defined]


def _expect_tile(page: object, metric: str, text: str) -> None:
    from playwright.sync_api import expect

    expect(_tile(page, metric)).to_have_text(text, timeout=DEADLINE_MS)


def _change(page: object, action: Callable[[], object]) -> None:
    """Do ``action`` (a filter change) and wait until the dashboard has redrawn after it."""
    generation = int(page.locator(".au-state").get_attribute("data-generation"))  # type: ignore[attr-defined]
    action()
    page.wait_for_function(REFRESHED, arg=generation, timeout=DEADLINE_MS)  # type: ignore[attr-defined]


def _download(page: object, selector: str) -> bytes:
    if page.locator(selector).count() == 0:  # type: ignore[attr-defined]
        page.locator(".au-export-button").click()  # type: ignore[attr-defined]
        page.wait_for_selector(selector, timeout=DEADLINE_MS)  # type: ignore[attr-defined]
    with page.expect_download() as info:  # type: ignore[attr-defined]
        page.locator(selector).first.click()  # type: ignore[attr-defined]
    return Path(info.value.path()).read_bytes()


def _screens(page: object, name: str) -> None:
    """Desktop and 390 px screenshots of the same page (tiles must reflow to fit)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)  # type: ignore[attr-defined]
    page.set_viewport_size({"width": 390, "height": 844})  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        """() => [...document.querySelectorAll('.au-kpi')].every(
              t => t.getBoundingClientRect().right <= 390)""",
        timeout=DEADLINE_MS,
    )
    page.screenshot(path=str(SHOTS / f"{name}-390px.png"), full_page=True)  # type: ignore[attr-defined]
    page.set_viewport_size({"width": 1280, "height": 900})  # type: ignore[attr-defined]


BARS = '.au-section-cost svg path[aria-roledescription="bar"]'


def _brush_and_click(page: object) -> None:
    """Drag across days on the cost chart: the bars change; click a bar: the rest dim."""
    from playwright.sync_api import expect

    page.wait_for_selector(".au-section-cost svg g.mark-line path", timeout=DEADLINE_MS)  # type: ignore[attr-defined]
    bars = page.locator(BARS)  # type: ignore[attr-defined]
    before = [b.get_attribute("aria-label") for b in bars.all()]
    assert before and all("Cost in the selected days" in label for label in before)
    plot = page.locator(".au-section-cost svg g.mark-line").first  # type: ignore[attr-defined]
    plot.scroll_into_view_if_needed()  # mouse coordinates are the viewport's
    box = plot.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)  # type: ignore[attr-defined]
    page.mouse.down()  # type: ignore[attr-defined]
    page.mouse.move(box["x"] + box["width"] * 0.9, y, steps=5)  # type: ignore[attr-defined]
    page.mouse.up()  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        """([selector, before]) => {
          const now = [...document.querySelectorAll(selector)]
            .map(e => e.getAttribute('aria-label'));
          return now.length > 0 && JSON.stringify(now) !== JSON.stringify(before);
        }""",
        arg=[BARS, before],
        timeout=DEADLINE_MS,
    )
    count = bars.count()
    bars.first.click()
    expect(page.locator(BARS + '[opacity="0.2"]')).to_have_count(count - 1, timeout=DEADLINE_MS)  # type: ignore[attr-defined]


def test_unauthenticated_requests_are_refused(server: dict[str, str]) -> None:
    base = server["base"]
    for path in (
        "/",
        "/voila/render/business.ipynb",
        "/voila/render/realtime.ipynb",
        "/voila/tree",
        "/voila/api/contents/",
    ):
        response = requests.get(base + path, allow_redirects=False, timeout=10)
        assert response.status_code in (302, 401, 403), path
        if response.status_code == 302:
            assert "/login" in response.headers["Location"]
    shutdown = requests.post(f"{base}/voila/api/shutdown/x", allow_redirects=False, timeout=10)
    assert shutdown.status_code in (401, 403)
    wrong = requests.get(f"{base}/?token=wrong", allow_redirects=False, timeout=10)
    assert wrong.status_code in (302, 401, 403)
    assert requests.get(f"{base}/?token={TOKEN}", timeout=10).status_code == 200


def test_served_page_carries_the_tiles_before_any_script_runs(
    server: dict[str, str], live_url: str
) -> None:
    """The HTML Voila sends already shows the KPI values (no JavaScript needed to read them)."""
    from html.parser import HTMLParser

    session = requests.Session()
    assert session.get(f"{server['base']}/?token={TOKEN}", timeout=30).status_code == 200
    page = session.get(f"{server['base']}/voila/render/business.ipynb", timeout=120)
    assert page.status_code == 200

    class Tiles(HTMLParser):
        """KPI values inside the first paint, outside any <script>."""

        def __init__(self) -> None:
            super().__init__()
            self.depth = 0  # > 0 inside the first paint
            self.script = False
            self.metric: str | None = None
            self.values: dict[str, str] = {}

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            self.script = self.script or tag == "script"
            if self.depth:
                self.depth += tag == "div"
            elif tag == "div" and "au-first-paint" in (a.get("class") or ""):
                self.depth = 1
            if self.depth and not self.script and "au-kpi-value" in (a.get("class") or ""):
                self.metric = a.get("data-metric")

        def handle_endtag(self, tag: str) -> None:
            self.script = self.script and tag != "script"
            if self.depth and tag == "div":
                self.depth -= 1

        def handle_data(self, data: str) -> None:
            if self.metric:
                self.values[self.metric] = data.strip()
                self.metric = None

    parser = Tiles()
    parser.feed(page.text)
    start, end = present.resolve_period("last_28_days", url=live_url)
    kpis = business.kpi_summary(start, end, url=live_url).set_index("metric")
    for metric in ("revenue", "orders", "conversion_rate"):
        want = charts.format_value(kpis.loc[metric, "current"], kpis.loc[metric, "unit"])
        assert parser.values.get(metric) == want, metric
    # it comes before the chart library and the widget state in the page
    text = page.text
    begin = text.index('data-first-paint="1"')
    ours = text.index("document.currentScript.previousElementSibling", begin)
    paint = text[begin : text.rindex("<script>", begin, ours)]  # up to the template's script
    assert begin < text.index("vega-bundle")
    # the page came from the pool, whose kernel drew the four charts as static SVG
    assert "Using pre-heated kernel" in Path(server["log"]).read_text()
    assert paint.count('class="marks"') == 4 and "<script" not in paint
    # leave as a browser does: free the pre-heated kernel this page took
    kernel = json.loads(
        page.text.split('<script id="jupyter-config-data" type="application/json">')[1].split(
            "</script>"
        )[0]
    )["kernelId"]
    bye = session.post(
        f"{server['base']}/voila/api/shutdown/{kernel}",
        headers={"X-XSRFToken": session.cookies.get("_xsrf", "")},
        timeout=30,
    )
    assert bye.status_code == 204


def test_first_paint_shows_without_voilas_javascript(
    browser: object, server: dict[str, str], live_url: str
) -> None:
    """With Voila's scripts blocked (a slow network), the viewer still reads the numbers."""
    from playwright.sync_api import expect

    context = _context(browser)
    page = context.new_page()  # type: ignore[attr-defined]
    page.goto(f"{server['base']}/?token={TOKEN}", wait_until="domcontentloaded")
    page.route("**/voila/static/**", lambda route: route.abort())
    page.goto(f"{server['base']}/voila/render/business.ipynb", wait_until="load")
    expect(page.locator(".au-first-paint")).to_be_visible()
    expect(page.locator("#loading")).to_be_hidden()
    expect(page.get_by_role("heading", name="Business dashboard")).to_be_visible()  # markdown
    start, end = present.resolve_period("last_28_days", url=live_url)
    kpis = business.kpi_summary(start, end, url=live_url).set_index("metric")
    want = charts.format_value(kpis.loc["revenue", "current"], kpis.loc["revenue", "unit"])
    expect(_tile(page, "revenue")).to_have_text(want)
    assert page.locator(".au-state").count() == 0  # no widgets without the scripts
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "business-first-paint.png"), full_page=True)
    # free the kernel the page took (its unload handler is part of the blocked scripts)
    config = json.loads(page.locator("#jupyter-config-data").inner_text())
    cookies = {c["name"]: c["value"] for c in context.cookies()}  # type: ignore[attr-defined]
    bye = requests.post(
        f"{server['base']}/voila/api/shutdown/{config['kernelId']}",
        cookies=cookies,
        headers={"X-XSRFToken": cookies.get("_xsrf", "")},
        timeout=30,
    )
    assert bye.status_code == 204
    context.close()  # type: ignore[attr-defined]


def test_landing_page_links_the_dashboards(browser: object, server: dict[str, str]) -> None:
    from playwright.sync_api import expect

    page = _context(browser).new_page()  # type: ignore[attr-defined]
    page.goto(f"{server['base']}/?token={TOKEN}", wait_until="domcontentloaded")
    cards = page.locator(".au-card")
    expect(cards).to_have_count(3, timeout=DEADLINE_MS)
    assert page.title() == "Auterity dashboards"
    links = {
        c.get_attribute("data-dashboard"): c.locator("a").get_attribute("href") for c in cards.all()
    }
    assert links == {n: f"/voila/render/{n}.ipynb" for n in ("business", "modelhub", "realtime")}
    text = page.inner_text("body")
    for title in ("Business overview", "ModelHub", "Real-time model traffic"):
        assert title in text
    assert "voila.json" not in text and "_share" not in text
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "landing.png"), full_page=True)
    # the same page at /voila/tree, and a click opens a dashboard (the cookie keeps us in)
    page.goto(f"{server['base']}/voila/tree", wait_until="domcontentloaded")
    expect(cards).to_have_count(3, timeout=DEADLINE_MS)
    _close(page)


URL_IN_PAGE = re.compile(
    r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]+)|\burl\(\s*["']?([^"')\s]+)""", re.I
)
"""A URL in a src or href attribute, or in a CSS url()."""


def _urls_elsewhere(text: str, base: str) -> list[str]:
    """The URLs in ``text`` (src, href, url()) on a host other than ``base``'s."""
    origin = urlsplit(base).netloc
    found = (html.unescape(a or b) for a, b in URL_IN_PAGE.findall(text))
    return [url for url in found if urlsplit(url).netloc not in ("", origin)]


def test_pages_link_nothing_outside_the_server(server: dict[str, str]) -> None:
    """Landing, dashboard, login and error pages (and the stylesheets they link) work with no
    internet access: nothing in them points to another host (Voila's pages link an icon font
    and Mermaid from public CDNs, Jupyter's login page its online documentation)."""
    base = server["base"]
    session = requests.Session()
    assert session.get(f"{base}/?token={TOKEN}", timeout=30).status_code == 200
    pages = {
        "landing": session.get(f"{base}/", timeout=30),
        "dashboard": session.get(f"{base}/voila/render/realtime.ipynb", timeout=120),
        "login": requests.get(f"{base}/login", timeout=30),
        "error": session.get(f"{base}/voila/render/nope.ipynb", timeout=30),
        "logout": requests.get(f"{base}/logout", timeout=30),
    }
    assert [r.status_code for r in pages.values()] == [200, 200, 200, 404, 200]
    assert "Auterity dashboards" in pages["login"].text  # our instructions, not Jupyter's
    stylesheets = set()
    for name, response in pages.items():
        assert _urls_elsewhere(response.text, base) == [], name
        links = re.findall(r"<link[^>]*\bhref=\"([^\"]+\.css[^\"]*)\"", response.text)
        stylesheets |= {link for link in links if urlsplit(link).netloc == ""}
    assert any("dashboard.css" in link for link in stylesheets)
    for link in sorted(stylesheets):
        sheet = session.get(base + link, timeout=30)
        assert sheet.status_code == 200 and _urls_elsewhere(sheet.text, base) == [], link
    # free the pre-heated kernel the dashboard page took
    kernel = json.loads(
        pages["dashboard"]
        .text.split('<script id="jupyter-config-data" type="application/json">')[1]
        .split("</script>")[0]
    )["kernelId"]
    bye = session.post(
        f"{base}/voila/api/shutdown/{kernel}",
        headers={"X-XSRFToken": session.cookies.get("_xsrf", "")},
        timeout=30,
    )
    assert bye.status_code == 204


def test_no_request_leaves_the_machine(browser: object, server: dict[str, str]) -> None:
    """A viewer's browser asks nothing of any host but the server: landing page, a
    dashboard with its scripts, widgets and charts, the error and login pages."""
    base = server["base"]
    asked: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    context.set_default_timeout(DEADLINE_MS)
    context.on("request", lambda request: asked.append(request.url))
    page = context.new_page()
    page.on("websocket", lambda socket: asked.append(socket.url))
    page.goto(f"{base}/?token={TOKEN}", wait_until="load")
    page.locator('.au-card[data-dashboard="realtime"] a').click()
    _ready(page)
    page.wait_for_selector(".au-section-requests_per_s svg", timeout=DEADLINE_MS)
    errors = context.new_page()
    assert errors.goto(f"{base}/voila/render/nope.ipynb", wait_until="load").status == 404
    errors.close()
    visitor = browser.new_context()  # type: ignore[attr-defined]
    visitor.on("request", lambda request: asked.append(request.url))
    login = visitor.new_page()
    login.goto(f"{base}/login", wait_until="load")
    visitor.close()
    origin = urlsplit(base).netloc
    assert any("/voila/static/" in url for url in asked)  # Voila's scripts were loaded
    assert any(url.startswith("ws://") for url in asked)  # and the kernel's socket opened
    elsewhere = [url for url in asked if urlsplit(url).netloc not in ("", origin)]
    assert elsewhere == []
    _close(page)


SIDEWAYS = """box => {
  const wide = box.scrollWidth > box.clientWidth;
  box.scrollLeft = 40;
  return {overflow: getComputedStyle(box).overflowX, wide: wide, scrolled: box.scrollLeft,
          right: box.getBoundingClientRect().right};
}"""
"""How a table's box scrolls sideways: its overflow-x, whether its content is wider than it,
how far it scrolled when asked for 40 px, and where it ends on screen."""


@pytest.mark.parametrize(
    ("name", "section"), [("modelhub", "leaderboard"), ("realtime", "per_model")]
)
def test_tables_scroll_in_their_box_on_a_phone(
    browser: object, server: dict[str, str], name: str, section: str
) -> None:
    """At 390 px a table wider than the screen scrolls inside its own box; the page does not."""
    context = browser.new_context(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    context.set_default_timeout(DEADLINE_MS)
    _loopback_only(context)
    page = context.new_page()
    page.goto(f"{server['base']}/voila/render/{name}.ipynb?token={TOKEN}", wait_until="load")
    _ready(page)
    box = page.locator(f".au-table.au-section-{section}")
    box.locator("table").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    cells = page.locator("#rendered_cells")  # the element Voila's page scrolls
    assert cells.evaluate("e => e.scrollWidth <= e.clientWidth")
    pushed = page.evaluate(
        """() => [...document.querySelectorAll('.au-dash, .au-dash *')].filter(e =>
          e.scrollWidth > e.clientWidth && !e.closest('.au-table, .au-chart')
          && ['auto', 'scroll'].includes(getComputedStyle(e).overflowX)).map(e => e.className)"""
    )
    assert pushed == []  # no other box of the dashboard scrolls sideways either
    scroll = box.evaluate(SIDEWAYS)
    assert scroll["overflow"] in ("auto", "scroll") and scroll["wide"], scroll
    assert scroll["scrolled"] > 0 and scroll["right"] <= 390, scroll
    SHOTS.mkdir(parents=True, exist_ok=True)
    box.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{name}-390px-table.png"))
    _close(page)


def test_business_in_browser(browser: object, server: dict[str, str], live_url: str) -> None:
    page = _open(browser, server, "business")
    start, end = present.resolve_period("last_28_days", url=live_url)
    kpis = business.kpi_summary(start, end, url=live_url).set_index("metric")
    for metric in ("revenue", "orders"):
        want = charts.format_value(kpis.loc[metric, "current"], kpis.loc[metric, "unit"])
        _expect_tile(page, metric, want)
    page.wait_for_selector(".au-section-revenue_trend svg", timeout=DEADLINE_MS)
    assert page.locator(".au-tiles svg.au-spark").count() == len(business.SPARKLINE_METRICS)
    _screens(page, "business")
    channel = page.locator(".au-f-channel select option").nth(1).inner_text()
    _change(page, lambda: page.locator(".au-f-channel select").select_option(channel))
    by_channel = business.kpi_summary(start, end, where={"channel": channel}, url=live_url)
    row = by_channel.set_index("metric").loc["orders"]
    _expect_tile(page, "orders", charts.format_value(row["current"], row["unit"]))
    _expect_tile(page, "dau", charts.format_value(float("nan"), "count"))
    _change(page, lambda: page.locator(".au-f-channel select").select_option(dashboards.ALL))
    region = page.locator(".au-f-region select option").nth(1).inner_text()
    _change(page, lambda: page.locator(".au-f-region select").select_option(region))
    filtered = business.kpi_summary(start, end, where={"region": region}, url=live_url)
    row = filtered.set_index("metric").loc["revenue"]
    _expect_tile(page, "revenue", charts.format_value(row["current"], row["unit"]))
    exported = pd.read_csv(pd.io.common.BytesIO(_download(page, "a.au-export-csv")))
    got = exported.set_index("metric").loc["revenue", "current"]
    assert got == pytest.approx(row["current"])
    data = json.loads(_download(page, "a.au-export-json"))
    assert data["filters"]["region"] == region
    assert "Traceback" not in page.content()
    _close(page)


def test_modelhub_in_browser(browser: object, server: dict[str, str], live_url: str) -> None:
    page = _open_bookmark(browser, server, "modelhub")
    start, end = present.resolve_period("last_28_days", url=live_url)
    board = modelhub.leaderboard(start, end, url=live_url).set_index("model_id")
    _expect_tile(page, "requests", charts.format_value(board["requests"].sum(), "count"))
    _screens(page, "modelhub")
    _brush_and_click(page)
    model = sorted(board.index)[0]
    _change(page, lambda: page.locator(".au-f-models select").select_option([model]))
    _expect_tile(page, "requests", charts.format_value(board.loc[model, "requests"], "count"))
    data = json.loads(_download(page, "a.au-export-json"))
    assert data["filters"]["models"] == [model]
    assert [r["model_id"] for r in data["data"]["leaderboard"]] == [model]
    assert data["data"]["leaderboard"][0]["requests"] == board.loc[model, "requests"]
    page.locator(".au-png-button").click()
    page.wait_for_selector("a.au-export-png", timeout=DEADLINE_MS)
    assert _download(page, "a.au-export-png").startswith(b"\x89PNG")
    # a viewer who leaves frees their kernel at once (no waiting for the idle culler),
    # even one who came from a bookmark and never saw the landing page
    page.wait_for_function("() => document.cookie.includes('_xsrf=')", timeout=DEADLINE_MS)
    _close(page, Path(server["log"]))


def test_realtime_in_browser(browser: object, server: dict[str, str], live_url: str) -> None:
    from playwright.sync_api import expect

    page = _open(browser, server, "realtime")
    assert page.locator(".au-updated").count() == 1
    assert page.locator(".au-freshness").count() == 1
    _screens(page, "realtime")
    before = int(_tile(page, "requests").inner_text().replace(",", ""))
    now = datetime.now(UTC).replace(tzinfo=None)
    warehouse.append_data(
        "inference_events", _events(250, now - timedelta(seconds=5)), url=live_url
    )
    # the window slides while we wait: allow a few old demo events to leave it
    page.wait_for_function(
        """n => {
          const t = document.querySelector('.au-kpi-value[data-metric="requests"]');
          return t !== null && Number(t.textContent.replace(/,/g, '')) >= n;
        }""",
        arg=before + 245,
        timeout=10_000,  # the bound: new events show within 10 s
    )
    # the database goes away: the last data stays, a stale-data warning shows
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, live_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        expect(page.locator(".au-stale")).to_be_visible(timeout=DEADLINE_MS)
        expect(page.locator(".au-error")).to_contain_text("unavailable", timeout=DEADLINE_MS)
        shown = _tile(page, "requests").inner_text()
        generation = int(page.locator(".au-state").get_attribute("data-generation"))
        page.wait_for_function(REFRESHED, arg=generation, timeout=DEADLINE_MS)  # fails again
        expect(page.locator(".au-stale")).to_be_visible()
        expect(_tile(page, "requests")).to_have_text(shown)  # still the last data
        page.screenshot(path=str(SHOTS / "realtime-stale.png"), full_page=True)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    # ... and comes back by itself
    expect(page.locator(".au-stale")).to_have_count(0, timeout=DEADLINE_MS)
    expect(page.locator(".au-error")).to_have_count(0, timeout=DEADLINE_MS)
    expect(page.locator(".au-updated")).to_have_count(1, timeout=DEADLINE_MS)
    assert "Traceback" not in page.content()
    _close(page)


def _tiny_dashboards(folder: Path, **overrides: dict[str, object]) -> Path:
    """A dashboards folder with one tiny notebook and voila.json with ``overrides``."""
    import nbformat

    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell("print('tiny dashboard')")]
    nbformat.write(nb, folder / "tiny.ipynb")
    shutil.copytree(serve.dashboards_dir() / serve.TEMPLATES, folder / serve.TEMPLATES)
    config = serve.read_config(serve.dashboards_dir())
    config["VoilaKernelManager"]["kernel_pools_config"] = {
        "default": {"pool_size": 0},
        "tiny.ipynb": {"pool_size": 1},
    }
    for section, values in overrides.items():
        config.setdefault(section, {}).update(values)
    (folder / "voila.json").write_text(json.dumps(config))
    return folder


def test_kernel_cap_and_idle_culling(tmp_path: Path) -> None:
    """The cap (pool included) refuses a kernel with a clear 503; culled kernels free room
    and the pre-heated pool fills up again by itself. Settings come from voila.json."""
    folder = _tiny_dashboards(
        tmp_path / "tiny",
        CappedKernelManager={"max_kernels": 2},
        MappingKernelManager={"cull_idle_timeout": 10, "cull_interval": 1},
        VoilaKernelManager={"fill_delay": 0.1},
    )
    log_path = tmp_path / "voila.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log_file:
        process, url = serve.start(
            "127.0.0.1", port, token=TOKEN, folder=folder, stdout=log_file, stderr=subprocess.STDOUT
        )
    assert url == f"{base}/?token={TOKEN}"
    page = f"{base}/voila/render/tiny.ipynb?token={TOKEN}"
    try:
        _wait_started(base, process, log_path)
        _wait_log(log_path, "is filled", 1)
        first = requests.get(page, timeout=60)  # the pooled kernel; the pool refills (2 kernels)
        second = requests.get(page, timeout=60)  # the refill; refilling again hits the cap
        assert first.status_code == second.status_code == 200
        assert "tiny dashboard" in first.text and "tiny dashboard" in second.text
        refused = [requests.get(page, timeout=60) for _ in range(2)]  # failed refill, then cold
        for response in refused:
            assert response.status_code == 503
            assert serve.CAP_MESSAGE in response.text
        assert "Traceback" not in refused[0].text
        assert "kernel cap of 2 reached" in log_path.read_text()
        filled = log_path.read_text().count("Kernel pool of tiny.ipynb is filled")
        # both viewers' kernels are idle and unconnected: culled, then the pool refills
        _wait_log(log_path, "Culling 'idle' kernel", 2, seconds=60)
        _wait_log(log_path, "Kernel pool of tiny.ipynb is filled", filled + 1, seconds=60)
        again = requests.get(page, timeout=60)
        assert again.status_code == 200 and "tiny dashboard" in again.text
        assert log_path.read_text().count("Using pre-heated kernel") == 3
    finally:
        serve.stop(process)
    assert process.poll() is not None
