"""A real notebook's report, opened in headless Chromium with the network blocked.

Checks that the HTML draws every chart offline, that the numbers it shows are the
library's for the same parameters, and that the PDF is printed with the charts drawn.
Screenshots go to test-output/reports/ for a reviewer to look at.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest

from auterity import business, charts, present, reports

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "test-output" / "reports"


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, analytics_duckdb: str, chromium: str
) -> dict[str, reports.RunRecord]:
    """The two reports under test, run on the real notebooks and parameter sets from a
    project root writing to tmp: business with its PDF, modelhub without; both at once, as
    `auterity run --all` runs them on two cores."""
    root = tmp_path_factory.mktemp("outputs") / "home"
    root.mkdir()
    (root / "pyproject.toml").write_text("")
    for folder in ("notebooks", "parameters"):
        (root / folder).symlink_to(REPO / folder)
    with pytest.MonkeyPatch.context() as mp, ThreadPoolExecutor(max_workers=2) as pool:
        mp.setenv("AUTERITY_HOME", str(root))
        mp.setenv("AUTERITY_DB_URL", analytics_duckdb)
        mp.delenv("AUTERITY_TIMEZONE", raising=False)
        business_run = pool.submit(
            reports.run,
            "01-business-overview",
            params_file=REPO / "parameters/01-business-overview/monthly.yml",
            url=analytics_duckdb,
        )
        modelhub_run = pool.submit(
            reports.run,
            "02-modelhub",
            params_file=REPO / "parameters/02-modelhub/weekly.yml",
            pdf=False,
            url=analytics_duckdb,
        )
        return {"business": business_run.result(), "modelhub": modelhub_run.result()}


def _open_offline(
    page_url: str, chromium: str, shot: Path, min_charts: int
) -> tuple[dict[str, str], list[str]]:
    """Load a page with every non-file request refused; return KPI tile texts and refusals."""
    from playwright.sync_api import sync_playwright

    refused: list[str] = []

    def route(r: object) -> None:
        request_url = r.request.url  # type: ignore[attr-defined]
        if request_url.startswith(("file:", "data:", "blob:")):
            r.continue_()  # type: ignore[attr-defined]
        else:
            refused.append(request_url)
            r.abort()  # type: ignore[attr-defined]

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=reports.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.route("**/*", route)
            page.goto(page_url, wait_until="load")
            page.wait_for_function(
                "() => { const e = [...document.querySelectorAll('.vega-embed')];"
                " return e.length > 0 && e.every(x => x.querySelector('svg, canvas')); }",
                timeout=60_000,
            )
            charts_drawn = page.evaluate(
                "document.querySelectorAll('.vega-embed svg, .vega-embed canvas').length"
            )
            tiles = page.evaluate(
                "Object.fromEntries([...document.querySelectorAll('.au-kpi-value')]"
                ".map(e => [e.dataset.metric, e.textContent.trim()]))"
            )
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert charts_drawn >= min_charts
    return tiles, refused


def test_business_report_offline_with_library_numbers(
    runs: dict[str, reports.RunRecord], chromium: str, analytics_duckdb: str
) -> None:
    record = runs["business"]
    assert record.ok, record.error_message
    assert "pdf" in record.outputs, record.outputs.get("pdf_error")
    html_file = Path(record.outputs["html"])
    tiles, refused = _open_offline(
        html_file.as_uri(), chromium, SHOTS / "01-business-overview-monthly.png", min_charts=5
    )
    assert refused == []  # nothing tried to reach the network
    start, end = present.resolve_period("last_month", url=analytics_duckdb)
    assert (start, end) == (date(2026, 10, 1), date(2026, 11, 1))
    kpis = business.kpi_summary(start, end, url=analytics_duckdb)
    assert len(tiles) == len(kpis)
    for _, row in kpis.iterrows():
        assert tiles[row["metric"]] == charts.format_value(row["current"], row["unit"])
    pdf = Path(record.outputs["pdf"]).read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 50_000
    # Every tile fits the A4 page (four 150 px tiles a row used to run off its right edge).
    from pypdf import PdfReader

    first_page = " ".join(PdfReader(record.outputs["pdf"]).pages[0].extract_text().split())
    for _, row in kpis.iterrows():
        assert charts.format_value(row["current"], row["unit"]) in first_page, row["metric"]


def test_modelhub_report_draws_offline(runs: dict[str, reports.RunRecord], chromium: str) -> None:
    record = runs["modelhub"]
    assert record.ok, record.error_message
    _, refused = _open_offline(
        Path(record.outputs["html"]).as_uri(), chromium, SHOTS / "02-modelhub-weekly.png", 2
    )
    assert refused == []
    page = Path(record.outputs["html"]).read_text()
    assert "ModelHub" in page and "Leaderboard" in page and "<pre" not in page.split("au-toc")[0]


def test_pdf_needs_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTERITY_CHROMIUM", str(tmp_path / "no-such-browser"))
    target = tmp_path / "x.html"
    target.write_text("<html></html>")
    with pytest.raises(Exception, match="PDF needs Chromium"):
        reports.render_pdf(target, tmp_path / "x.pdf")
    assert not os.path.exists(tmp_path / "x.pdf")
