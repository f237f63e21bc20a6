"""Personal data in artifacts: every report and parameter set and every report email with
its attachments, produced for a user whose role may not see PII, holds no customer email
or name of the demo data; the same scan finds them for a role that may (so it can fail).

Real Papermill runs, real PDFs, a real SMTP server; the dashboards are scanned in
tests/test_dashboard_access.py's server (pseudonymised first paint)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from pypdf import PdfReader

from auterity import access, reports, warehouse
from auterity._time import utcnow
from auterity.cli import main
from auterity.demo import generate as demo_data
from auterity.reports import params
from auterity.reports import scheduler as sched
from auterity.reports.schedule import load_schedule
from conftest import Inbox, free_port

REPO = Path(__file__).parents[1]
PASSWORD = "correct horse battery"
POLICY = """roles:
  viewer: {dashboards: []}
  analyst: {dashboards: '*'}
  admin: {dashboards: '*', notebooks: '*', pii: true, may: [manage_users]}
  pii_viewer: {dashboards: '*', notebooks: '*', pii: false}
  pii_analyst: {dashboards: '*', notebooks: '*', pii: true}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[dict[str, Any]]:
    """A demo warehouse reaching today, a project home, the two users, an SMTP inbox."""
    root = tmp_path_factory.mktemp("pii")
    home = root / "home"
    home.mkdir()
    (home / "pyproject.toml").write_text("")
    for folder in ("notebooks", "parameters"):
        (home / folder).symlink_to(REPO / folder)
    (root / "access.yml").write_text(POLICY)
    url = f"duckdb:///{root / 'pii.duckdb'}"
    end = utcnow().date() + timedelta(days=1)
    cfg = demo_data.DemoConfig(seed=31, events=4000, months=4, end=end, effects=False)
    port = free_port()
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTERITY_HOME", str(home))
        mp.setenv("AUTERITY_DB_URL", url)
        mp.setenv("AUTERITY_ACCESS_FILE", str(root / "access.yml"))
        mp.setenv("AUTERITY_PII_KEY", "s" * 40)
        mp.setenv("AUTERITY_SMTP_HOST", "127.0.0.1")
        mp.setenv("AUTERITY_SMTP_PORT", str(port))
        mp.setenv("AUTERITY_SMTP_SECURITY", "none")
        mp.setenv("AUTERITY_MAIL_FROM", "reports@auterity.example")
        mp.delenv("AUTERITY_TIMEZONE", raising=False)
        mp.delenv("AUTERITY_USER", raising=False)
        demo_data.build(cfg, url=url)
        access.add_user("root", "admin", PASSWORD, url=url)
        access.add_user("pia", "pii_viewer", PASSWORD, actor="root", url=url)
        access.add_user("ana", "pii_analyst", PASSWORD, actor="root", url=url)
        with warehouse.connect(url) as conn:
            rows = conn.execute(sa.text("SELECT email, name FROM customers")).all()
        personal = sorted({v for row in rows for v in row if v})
        yield {"url": url, "root": root, "home": home, "inbox": box, "personal": personal}
    controller.stop()
    warehouse.dispose_engines()


def _hits(text: str, personal: list[str]) -> list[str]:
    return [value for value in personal if value in text]


def _files(record: reports.RunRecord) -> list[Path]:
    return [Path(p) for kind, p in record.outputs.items() if kind in ("html", "notebook", "pdf")]


def _text(path: Path) -> str:
    if path.suffix == ".pdf":
        return "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
    return path.read_text(encoding="utf-8", errors="replace")


def _message_text(message: Any) -> str:
    parts = []
    for part in message.walk():
        if part.is_multipart():
            continue
        content = part.get_content()
        if part.get_content_type() == "application/pdf":
            content = "\n".join(
                p.extract_text() or "" for p in PdfReader(io.BytesIO(content)).pages
            )
        elif isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        parts.append(str(content))
    return "\n".join([str(message["Subject"]), *parts])


def _schedule(world: dict[str, Any], user: str, sets: list[tuple[Path, Path]]) -> Path:
    """One job per (notebook, parameter set), run as ``user``, every attachment."""
    lines = ["jobs:"]
    for notebook, file in sets:
        name = f"{user}-{notebook.stem}-{file.stem}"
        lines += [
            f"  {name}:",
            f"    notebook: {notebook.stem}",
            f"    parameters: {file.stem}",
            "    cron: '0 8 * * MON'",
            f"    to: [{user}@example.com]",
            "    attachments: [html, pdf, csv]",
            f"    as: {user}",
        ]
    path = world["root"] / f"{user}-schedule.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _use(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The world's warehouse and home (each test's own default warehouse is set first)."""
    monkeypatch.setenv("AUTERITY_DB_URL", world["url"])
    monkeypatch.setenv("AUTERITY_HOME", str(world["home"]))


def test_nothing_a_pii_free_role_gets_names_a_customer(
    world: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG, logger="auterity")  # the product's own log records
    _use(world, monkeypatch)
    personal = world["personal"]
    assert len(personal) > 50
    # every parameter set is a job run as pia and emailed with HTML, PDF and CSV attached:
    # each report is executed once (its artifacts and its email are both scanned)
    sets = params.parameter_sets()
    schedule = load_schedule(_schedule(world, "pia", sets))
    assert len(schedule.jobs) == len(sets)
    runner = sched.Scheduler(schedule, settings=sched.SchedulerSettings(smtp_backoff_s=0.1))
    with ThreadPoolExecutor(max_workers=runner.settings.max_parallel) as pool:  # as the daemon
        outcomes = list(pool.map(runner.trigger, schedule.jobs))
    records = []
    for outcome in outcomes:
        assert (outcome.status, outcome.delivery_status) == ("ok", "sent"), outcome
        assert outcome.run_id is not None
        records.append(reports.get_run(outcome.run_id))
    # `auterity run --all --as pia` runs its reports as pia as well (one notebook's sets:
    # the others ran above)
    records += reports.run_all(notebook="03-executive-summary", pdf=False, as_user="pia")
    assert len(records) == len(sets) + 1 and all(r.ok for r in records), [
        (r.notebook, r.parameter_set, r.error_message) for r in records if not r.ok
    ]
    assert {(r.notebook, r.parameter_set) for r in records} == {(nb.stem, f.stem) for nb, f in sets}
    for record in records:
        assert {"html", "notebook"} <= set(record.outputs), record.outputs
        for path in _files(record):
            assert _hits(_text(path), personal) == [], path
    assert sum("pdf" in r.outputs for r in records) == len(sets)  # the scheduled runs' PDFs
    overview = next(r for r in records if r.notebook == "01-business-overview")
    assert "email-" in Path(overview.outputs["html"]).read_text()  # the table was there
    mails = world["inbox"].to("pia@example.com")
    assert len(mails) == len(sets)
    pdfs = 0
    for message in mails:
        pdfs += sum(p.get_content_type() == "application/pdf" for p in message.walk())
        assert _hits(_message_text(message), personal) == [], message["Subject"]
    assert pdfs == len(sets)
    # what the runs and the scheduler logged, the run records and the audit trail
    assert main(["runs", "--format", "json", "--limit", "500"]) == 0
    assert main(["audit", "--format", "json", "--limit", "5000"]) == 0
    out = capsys.readouterr()
    assert '"acting_user": "pia"' in out.out and "report.email" in out.out
    assert caplog.records and _hits(caplog.text + out.out + out.err, personal) == []


def test_the_same_scan_finds_them_for_a_role_with_pii(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(world, monkeypatch)
    personal = world["personal"]
    sets = [s for s in params.parameter_sets("01-business-overview") if s[1].stem == "monthly"]
    schedule = load_schedule(_schedule(world, "ana", sets))
    outcome = sched.Scheduler(schedule).trigger(next(iter(schedule.jobs)))
    assert (outcome.status, outcome.delivery_status) == ("ok", "sent"), outcome
    assert outcome.run_id is not None
    record = reports.get_run(outcome.run_id)  # the job's run, as ana, with its PDF
    assert record.notebook == "01-business-overview" and record.parameter_set == "monthly"
    assert _hits(_text(Path(record.outputs["html"])), personal)
    assert _hits(_text(Path(record.outputs["pdf"])), personal)
    (message,) = world["inbox"].to("ana@example.com")
    assert _hits(_message_text(message), personal)
