"""Hostile warehouse values and parameters through every report, email and dashboard.

A small demo warehouse has its customer names, regions, segments, sales channels, model
ids, model names, providers and features overwritten with HTML, JavaScript, Markdown,
math, template and Vega-breaking text (``untrusted.PAYLOADS``), and the project's ``.env``
holds a secret. Every notebook runs for real (Papermill, HTML, PDF), and again with
hostile parameter values; the emails of those runs are built, the dashboards compute
their first paint, widgets and exports. Every artifact is scanned, and the HTML ones are
opened in headless Chromium (charts hovered): the values show as text, no script runs,
no PDF shows the secret.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import nbformat
import pytest
import sqlalchemy as sa
from nbconvert.filters.markdown import markdown2html

from auterity import charts, dashboards, reports, warehouse
from auterity.demo import generate as demo_data
from auterity.errors import ConfigError
from auterity.reports import mailer, scheduler
from auterity.reports.schedule import Job
from conftest import DEMO_END
from untrusted import PAYLOADS, payload, scan_markup, shown, visit

REPO = Path(__file__).resolve().parents[1]
SECRET = "hunter2-dotenv-secret"
WORLD = demo_data.DemoConfig(seed=29, events=15_000, months=5, end=DEMO_END)
NOTEBOOKS = (
    "01-business-overview",
    "02-modelhub",
    "03-executive-summary",
    "04-anomalies",
    "05-insights",
)
# (notebook, how the values are given, values): free-text parameters run and reach the page
PARAMETER_RUNS = (
    ("01-business-overview", "-p", {"region": PAYLOADS[0], "segment": PAYLOADS[5]}),
    ("05-insights", "values", {"holidays": PAYLOADS[7]}),
)  # fmt: skip
# parameters with declared values: the pre-check refuses a payload before anything runs
PARAMETER_REFUSALS = (
    ("01-business-overview", "-p", {"grain": PAYLOADS[2]}),
    ("04-anomalies", "values", {"method": PAYLOADS[1]}),
    ("04-anomalies", "-p", {"log_metrics": PAYLOADS[3]}),
    ("05-insights", "-p", {"kinds": f"{PAYLOADS[6]},{PAYLOADS[2]}"}),
    ("02-modelhub", "values", {"period": PAYLOADS[8]}),
    ("03-executive-summary", "-p", {"theme": PAYLOADS[0]}),
    ("03-executive-summary", "values", {"timezone": PAYLOADS[1]}),
)  # fmt: skip
SMTP = mailer.SmtpSettings("localhost", 25, "none", None, None, "reports@example.com", None)


def _hostile_warehouse(path: Path) -> str:
    """The demo world with every descriptive text column overwritten by payloads."""
    url = f"duckdb:///{path}"
    demo_data.build(WORLD, url=url)
    warehouse.dispose_engines()
    columns = [
        ("customers", "region"),
        ("customers", "segment"),
        ("orders", "channel"),
        ("models", "provider"),
        ("inference_events", "feature"),
    ]
    with warehouse.connect(url, write=True) as conn:
        for offset, (table, column) in enumerate(columns):
            values = sorted(
                v
                for (v,) in conn.execute(sa.text(f"SELECT DISTINCT {column} FROM {table}"))
                if v is not None
            )
            for i, old in enumerate(values):
                conn.execute(
                    sa.text(f"UPDATE {table} SET {column} = :new WHERE {column} = :old"),
                    {"new": payload(i + offset), "old": old},
                )
        models = sorted(v for (v,) in conn.execute(sa.text("SELECT model_id FROM models")))
        for i, old in enumerate(models):
            new = payload(i + 3)
            for table in ("models", "inference_events"):
                conn.execute(
                    sa.text(f"UPDATE {table} SET model_id = :new WHERE model_id = :old"),
                    {"new": new, "old": old},
                )
            conn.execute(
                sa.text("UPDATE models SET name = :name WHERE model_id = :id"),
                {"name": f"{payload(i + 7)} (name)", "id": new},
            )
        conn.execute(sa.text("UPDATE customers SET name = :p || customer_id"), {"p": PAYLOADS[0]})
        warehouse.mark_data_changed(conn)
    warehouse.dispose_engines()
    return url


def _run(notebook: str, how: str, values: dict[str, str], url: str) -> reports.RunRecord:
    """A report run with parameter values given as the CLI's ``-p`` or from Python."""
    if how == "-p":
        items = [f"{k}={v}" for k, v in values.items()]
        return reports.run(notebook, overrides=items, url=url, pdf=False)
    return reports.run(notebook, values=values, url=url, pdf=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[dict[str, Any]]:
    """The hostile warehouse, and every notebook run on it, with and without hostile
    parameters (run once for the module: each run takes seconds)."""
    root = tmp_path_factory.mktemp("hostile")
    home = root / "home"
    home.mkdir()
    (home / "pyproject.toml").write_text("")
    (home / ".env").write_text(f"UNRELATED_PASSWORD={SECRET}\n")
    for folder in ("notebooks", "parameters"):
        (home / folder).symlink_to(REPO / folder)
    url = _hostile_warehouse(root / "hostile.duckdb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTERITY_HOME", str(home))
        mp.setenv("AUTERITY_DB_URL", url)
        mp.delenv("AUTERITY_TIMEZONE", raising=False)
        # two at a time, as `auterity run --all` does on two cores (kept in this order)
        with ThreadPoolExecutor(max_workers=2) as pool:
            plain = [pool.submit(reports.run, nb, url=url) for nb in NOTEBOOKS]
            hostile = [pool.submit(_run, *given, url) for given in PARAMETER_RUNS]
            runs = [future.result() for future in plain + hostile]
        refused: list[str] = []
        for nb, how, values in PARAMETER_REFUSALS:
            with pytest.raises(ConfigError) as exc:  # refused before running
                _run(nb, how, values, url)
            refused.append(str(exc.value))
        index = reports.write_index(url)
    yield {"url": url, "home": home, "runs": runs, "refused": refused, "index": index}
    warehouse.dispose_engines()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium, args=reports.CHROMIUM_ARGS)
        yield launched
        launched.close()


def _assert_clean_page(browser: Any, page: Path, *, hover: bool = True) -> Any:
    """Static scan and a Chromium visit of one HTML file; returns the visit."""
    markup = page.read_text(encoding="utf-8")
    assert scan_markup(markup) == [], page
    seen = visit(browser, page.as_uri(), hover=hover)
    assert seen.dialogs == [], (page, seen.dialogs)
    assert seen.injected == [], (page, seen.injected)
    assert seen.refused == [], (page, seen.refused)
    assert not set(seen.tooltip_elements) - {"svg"}, (page, seen.tooltip_elements)
    return seen


def _markdown_outputs(executed: Path) -> list[str]:
    """The Markdown outputs of an executed notebook."""
    nb = nbformat.read(executed, as_version=4)
    return [
        output["data"]["text/markdown"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "text/markdown" in output.get("data", {})
    ]


def test_reports_show_hostile_data_as_text(world: dict[str, Any], browser: Any) -> None:
    """Every notebook on the hostile warehouse: the executed notebook's Markdown (as
    JupyterLab would render it, unsanitised), the HTML report (in Chromium, charts
    hovered), the PDF and the index."""
    runs = world["runs"][: len(NOTEBOOKS)]
    assert [r.notebook for r in runs] == list(NOTEBOOKS)
    texts, tooltips = {}, []
    for record in runs:
        assert record.ok, (record.notebook, record.error_message)
        for markdown in _markdown_outputs(Path(record.outputs["notebook"])):
            assert scan_markup(markdown2html(markdown)) == [], (record.notebook, markdown)
        seen = _assert_clean_page(browser, Path(record.outputs["html"]))
        texts[record.notebook] = seen.text
        tooltips.extend(seen.tooltips)
        assert "pdf" in record.outputs, record.outputs.get("pdf_error")
        from pypdf import PdfReader

        pdf_text = "".join(p.extract_text() for p in PdfReader(record.outputs["pdf"]).pages)
        assert SECRET not in pdf_text and len(pdf_text) > 200
    # the values reached the pages, as text: segments (01), model ids in the narrative,
    # tables and charts (02, 03), findings (05)
    assert PAYLOADS[1] in texts["01-business-overview"]
    for notebook in ("02-modelhub", "03-executive-summary"):
        assert sum(p.strip() in texts[notebook] for p in PAYLOADS[:9]) >= 3, notebook
    assert any(p in tip for tip in tooltips for p in PAYLOADS[:9]), tooltips
    assert scan_markup(world["index"].read_text()) == []


def test_hostile_parameters_show_as_text(world: dict[str, Any], browser: Any) -> None:
    """``-p region=<img ...>`` and friends: shown as text in the report (period line,
    header, error) or refused before running; never markup, never run."""
    runs = world["runs"][len(NOTEBOOKS) :]
    assert [r.notebook for r in runs] == [nb for nb, _, _ in PARAMETER_RUNS]
    for message, (_, _, values) in zip(world["refused"], PARAMETER_REFUSALS, strict=True):
        # the message names the value as given; it is never rendered anywhere
        assert all(value in message for value in values.values()), message
    for record in runs:
        assert "html" in record.outputs, (record.notebook, record.error_message)
        for markdown in _markdown_outputs(Path(record.outputs["notebook"])):
            assert scan_markup(markdown2html(markdown)) == [], (record.notebook, markdown)
        seen = _assert_clean_page(browser, Path(record.outputs["html"]), hover=False)
        given = next(v for nb, _, v in PARAMETER_RUNS if nb == record.notebook)
        for value in given.values():  # at least in the header's parameter table
            assert value in seen.text, (record.notebook, value)
    # the issue's own example: -p 'region=<img src=x onerror=alert(3)>' in 01's period line
    business = runs[0]
    assert business.ok, business.error_message
    line = shown(markdown2html(_markdown_outputs(Path(business.outputs["notebook"]))[0]))
    assert PAYLOADS[0] in line and "filters" in line
    assert scan_markup(world["index"].read_text()) == []


def _parts(message: EmailMessage) -> Iterator[tuple[str, bool, bytes]]:
    """(content type, is an attachment, bytes) of every leaf part."""
    for part in message.walk():
        if not part.is_multipart():
            attached = part.get_content_disposition() == "attachment"
            yield part.get_content_type(), attached, part.get_payload(decode=True)


def test_emails_show_hostile_values_as_text(
    world: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    """The report email of each successful run and the failure email of each failed one:
    subject, body (opened in Chromium) and every attachment."""
    from pypdf import PdfReader

    job = Job(
        name="weekly",
        notebook="01-business-overview",
        parameter_set=None,
        parameters_file=None,
        cron="0 8 * * 1",
        timezone="UTC",
        to=("to@example.com",),
        failure_to=("ops@example.com",),
        attachments=("html", "pdf", "csv"),
        description=PAYLOADS[3] + " " + PAYLOADS[0],
    )
    bodies = attachments = 0
    for number, record in enumerate(world["runs"]):
        if record.ok:
            email = scheduler.build_job_email(job, record, url=world["url"], settings=SMTP)
        else:
            email = scheduler.build_failure_email(job, record, settings=SMTP)
        message = email.message
        assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
        for kind, attached, data in _parts(message):
            if kind == "text/html":
                page = tmp_path / f"mail-{number}-{'attachment' if attached else 'body'}.html"
                page.write_bytes(data)
                seen = _assert_clean_page(browser, page, hover=False)
                if attached:
                    attachments += 1
                    continue
                bodies += 1
                if record.ok:  # the job's description, as text
                    assert PAYLOADS[0] in seen.text and PAYLOADS[3] in seen.text
                else:
                    assert "Report failed" in seen.text
            elif kind == "text/plain" and not attached and record.ok:
                text = data.decode()  # plain text: the value as it is, not HTML-escaped
                assert PAYLOADS[0] in text and "&lt;" not in text
            elif kind == "application/pdf":
                attachments += 1
                text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
                assert SECRET not in text
            elif kind == "text/csv":
                attachments += 1
                assert not re.search(r"(^|,)[=+@]", data.decode(), flags=re.M)
    assert bodies == len(world["runs"]) and attachments >= len(world["runs"])


def _open_fragment(browser: Any, tmp_path: Path, name: str, body: str) -> Any:
    """A dashboard's HTML as the browser gets it, on a page of its own."""
    page = tmp_path / f"{name}.html"
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{body}</body>")
    return _assert_clean_page(browser, page)


def test_dashboards_show_hostile_values_as_text(
    world: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    """First paint (with charts, as a pre-heated kernel makes it), every widget's HTML,
    the live charts (hovered) and the exports of the three dashboards."""
    url = world["url"]
    newest = warehouse.data_freshness(url)
    assert newest is not None
    built = [
        dashboards.business(url=url),
        dashboards.modelhub(url=url),
        # the demo world ends in the past: the real-time window ends at its newest event
        dashboards.RealtimeDashboard(
            minutes=60, url=url, clock=lambda: newest + timedelta(seconds=1)
        ),
    ]
    for dash in built:
        assert dash is not None and dash.error is None, getattr(dash, "error", None)
        paint = dash.first_paint_html(with_charts=True)
        seen = _open_fragment(browser, tmp_path, f"{dash.name}-first-paint", paint)
        assert "<script" not in paint
        widgets = [dash.header.value, dash.status.value, dash.tiles.value, dash.exports.value]
        widgets += [part.value for part in dash.sections.values()]
        live = "".join(charts.chart_html(c) for c in dash.view.charts.values())
        seen = _open_fragment(
            browser,
            tmp_path,
            f"{dash.name}-widgets",
            "".join(widgets) + charts.offline_html_head() + live,
        )
        assert seen.charts == len(dash.view.charts)
        if dash.name != "business":  # model ids are in its tables and charts
            assert any(p.strip() in seen.text for p in PAYLOADS[:9]), dash.name
        # exports: the JSON holds the values as data, the CSV no formula
        assert dash.prepare_exports()
        links = dict(
            re.findall(
                r'data-export="(\w+)"[^>]*href="data:[^;]+;base64,([^"]+)"', dash.exports.value
            )
        )
        exported = json.loads(base64.b64decode(links["json"]))
        assert set(exported) == {"filters", "data"}
        csv_text = base64.b64decode(links["csv"]).decode()
        assert not re.search(r"(^|,)[=+@]", csv_text, flags=re.M)
    models = built[1].view.frames["leaderboard"]["model_id"].tolist()
    assert any(m.startswith(p) for m in models for p in PAYLOADS)
    assert any(isinstance(v, str) and "<" in v for v in models)
