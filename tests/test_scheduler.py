"""The report scheduler with a controllable clock, real Papermill runs and a real SMTP server.

Notebooks are tiny ones written into a temporary project, so each run takes a kernel start
and little more; the cron decisions are driven by a fake clock.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import nbformat
import pandas as pd
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from auterity import access, business, charts, metrics, reports, warehouse
from auterity.errors import ConfigError
from auterity.reports import scheduler as sched
from auterity.reports.prometheus import SchedulerMetrics
from auterity.reports.schedule import Schedule, load_schedule
from auterity.warehouse import schema
from conftest import Inbox, cell_started, free_port

BERLIN = ZoneInfo("Europe/Berlin")
FAST = sched.SchedulerSettings(grace_s=3600, max_parallel=2, smtp_attempts=2, smtp_backoff_s=0.1)

HELLO_PARAMS = (
    'greeting: str = "hello"  # what to say\n'
    "anomalies: int = 0  # how many anomalies to report\n"
    "record: bool = True  # record the anomaly count\n"
    "seconds: float = 0.0  # how long to sleep first"
)
KPI_PARAMS = (
    'period: str = "last_28_days"  # which period\n'
    'start: str = ""  # first day\n'
    'end: str = ""  # day after the last one\n'
    'timezone: str = ""  # business time zone'
)
SCHEDULE = """
timezone: Europe/Berlin
jobs:
  greet:
    notebook: hello
    parameters: alert
    cron: "0 8 * * *"
    to: [team@example.com]
    bcc: [audit@example.com]
    subject: "Hello {start:%d %b %Y}"
  alert:
    notebook: hello
    parameters: alert
    cron: "0 8 * * *"
    condition: anomalies
    to: [oncall@example.com]
  quiet:
    notebook: hello
    parameters: quiet
    cron: "0 8 * * *"
    condition: anomalies
    to: [oncall@example.com]
  silent:
    notebook: hello
    parameters: norecord
    cron: "0 8 * * *"
    condition: anomalies
    to: [oncall@example.com]
  broken:
    notebook: broken
    cron: "0 8 * * *"
    to: [team@example.com]
    failure_to: [data-team@example.com]
  slow:
    notebook: hello
    parameters: slow
    cron: "0 8 * * *"
    to: [team@example.com]
  kpi:
    notebook: kpi
    parameters: fixed
    cron: "0 8 * * MON"
    to: [ceo@example.com]
    subject: "Revenue {kpi[revenue]}"
    attachments: [html, pdf, csv]
  hourly:
    notebook: hello
    cron: "0 * * * *"
    to: [team@example.com]
    enabled: false
"""


def _notebook(path: Path, parameters: str, body: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {path.stem.title()} report\n> For tests."),
        nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        *[nbformat.v4.new_code_cell(src) for src in body],
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with tiny notebooks, parameter sets and a schedule file."""
    root = tmp_path / "project"
    monkeypatch.setenv("AUTERITY_HOME", str(root))
    _notebook(
        root / "notebooks" / "hello.ipynb",
        HELLO_PARAMS,
        [
            "import time\nfrom auterity.reports import record_value\ntime.sleep(seconds)",
            "if record:\n    record_value('anomalies', anomalies)\nprint(greeting)",
        ],
    )
    _notebook(
        root / "notebooks" / "broken.ipynb",
        HELLO_PARAMS,
        ["x = 1", "raise ValueError(f'bad data for {greeting}')", "print('never')"],
    )
    _notebook(
        root / "notebooks" / "kpi.ipynb",
        KPI_PARAMS,
        [
            "from auterity import business, present\n"
            "s, e = present.resolve_period(period, start, end, tz=timezone or None)\n"
            "business.kpi_summary(s, e, tz=timezone or None)[['label', 'current']]"
        ],
    )
    sets = root / "parameters"
    for name, body in {
        "alert": "anomalies: 2\n",
        "quiet": "anomalies: 0\n",
        "norecord": "record: false\n",
        "slow": "seconds: 3.0\n",
    }.items():
        (sets / "hello").mkdir(parents=True, exist_ok=True)
        (sets / "hello" / f"{name}.yml").write_text(body)
    (sets / "kpi").mkdir()
    (sets / "kpi" / "fixed.yml").write_text(
        "period: custom\nstart: '2026-10-01'\nend: '2026-11-01'\n"
    )
    (sets / "schedule.yml").write_text(SCHEDULE)
    for shared in ("metrics.yml", "slos.yml"):  # the metric catalog the KPI report uses
        shutil.copy(Path(__file__).parents[1] / "parameters" / shared, sets / shared)
    warehouse.ensure_schema()
    return root


@pytest.fixture
def smtp_env(monkeypatch: pytest.MonkeyPatch) -> int:
    port = free_port()
    monkeypatch.setenv("AUTERITY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("AUTERITY_SMTP_PORT", str(port))
    monkeypatch.setenv("AUTERITY_SMTP_SECURITY", "none")
    monkeypatch.setenv("AUTERITY_MAIL_FROM", "reports@auterity.example")
    return port


@pytest.fixture
def inbox(smtp_env: int):
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_env)
    controller.start()
    yield box
    controller.stop()


def _only(loaded: Schedule, *names: str) -> Schedule:
    return Schedule(loaded.source, {n: loaded.jobs[n] for n in names})


def _samples(exposition: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def _runs(url: str | None = None) -> list[dict]:
    with warehouse.connect(url) as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(schema.report_runs))]


# --------------------------------------------------------------------------- decisions


def test_cron_in_berlin_across_the_dst_change_with_a_fake_clock(project: Path) -> None:
    """Daily 08:00 Berlin is 06:00 UTC before 25 Oct 2026 and 07:00 UTC after it."""
    job = load_schedule().job("greet")
    runner = sched.Scheduler(_only(load_schedule(), "greet"), settings=FAST)
    clock = datetime(2026, 10, 23, 12, 0, tzinfo=BERLIN)
    assert runner.due(clock) == []  # first sight registers the job; nothing before is due
    seen = []
    for day in (24, 25, 26):
        before = datetime(2026, 10, day, 7, 59, tzinfo=BERLIN)
        assert runner.due(before) == []
        now = datetime(2026, 10, day, 8, 0, 30, tzinfo=BERLIN)
        (slot,) = runner.due(now)
        assert sched.claim(slot)
        assert runner.due(now + timedelta(minutes=5)) == []  # taken: not due twice
        seen.append(slot.scheduled_for)
    assert [s.strftime("%d %H:%M") for s in seen] == ["24 06:00", "25 07:00", "26 07:00"]
    assert all(s.astimezone(BERLIN).hour == 8 for s in seen)
    assert sched.fire_times(job, seen[0], seen[-1]) == seen[1:]
    just_before = seen[0] - timedelta(microseconds=500_000)  # 05:59:59.5 UTC
    assert sched.fire_times(job, just_before, seen[0]) == [seen[0]]
    # Spring forward (29 March 2026): 08:00 still fires once, now at 06:00 UTC.
    spring = sched.fire_times(
        job, datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 30, 12, tzinfo=UTC)
    )
    assert [s.strftime("%d %H:%M") for s in spring] == ["29 06:00", "30 06:00"]


def test_disabled_jobs_are_never_due_and_claims_are_exclusive(project: Path) -> None:
    loaded = load_schedule()
    runner = sched.Scheduler(_only(loaded, "hourly", "greet"), settings=FAST)
    t0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    runner.due(t0)
    (slot,) = runner.due(t0 + timedelta(days=1, hours=1))
    assert slot.job.name == "greet"
    assert sched.claim(slot) is True
    assert sched.claim(slot) is False  # the same slot
    earlier = sched.Slot(slot.job, slot.scheduled_for - timedelta(days=1))
    assert sched.claim(earlier) is False  # an older slot once a newer one is taken
    (row,) = sched.slot_history(job="greet")
    assert row["status"] == "claimed" and row["claimed_by"].endswith(f":{os.getpid()}")


CLAIM_SCRIPT = """
import sys
from datetime import datetime
from auterity.reports import scheduler
from auterity.reports.schedule import Job
job = Job("greet", "hello", None, None, "0 8 * * *", "Europe/Berlin", ("a@example.com",))
slot = scheduler.Slot(job, datetime.fromisoformat(sys.argv[1]))
print("claimed" if scheduler.claim(slot) else "taken")
"""


def test_processes_racing_for_one_slot_on_duckdb_claim_it_once(project: Path) -> None:
    """Several processes claim the same slot at once: the DuckDB file lock lets one win."""
    warehouse.dispose_engines()
    when = "2026-11-02T07:00:00+00:00"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM_SCRIPT, when], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = sorted(p.communicate(timeout=120)[0].strip() for p in racers)
    assert results == ["claimed", "taken"]
    (row,) = sched.slot_history(job="greet")
    assert row["scheduled_for"] == datetime(2026, 11, 2, 7, 0)


@pytest.mark.postgres
def test_claims_are_exclusive_on_postgres(project: Path, pg_url: str) -> None:
    runner = sched.Scheduler(_only(load_schedule(), "greet"), url=pg_url, settings=FAST)
    t0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    runner.due(t0)
    (slot,) = runner.due(t0 + timedelta(days=1, hours=1))
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(sched.claim(slot, url=pg_url)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]


# --------------------------------------------------------------------------- runs


def test_restart_catch_up_runs_a_missed_slot_once(
    project: Path, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = _only(load_schedule(), "greet")
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=BERLIN)
    sched.Scheduler(loaded, settings=FAST).due(t0)  # the scheduler knew the job, then went down
    # Back 2 days and 1 hour later: the 08:00 runs of 3 and 4 Nov were missed while down.
    back = datetime(2026, 11, 4, 9, 0, tzinfo=BERLIN)
    restarted = sched.Scheduler(loaded, settings=dataclasses.replace(FAST, grace_s=2 * 3600))
    (outcome,) = restarted.run_due(back)
    assert outcome.scheduled_for == datetime(2026, 11, 4, 7, 0, tzinfo=UTC)  # coalesced: latest
    assert outcome.status == "ok" and outcome.delivery_status == "sent"
    assert restarted.run_due(back + timedelta(minutes=10)) == []
    assert sched.Scheduler(loaded, settings=FAST).run_due(back + timedelta(minutes=20)) == []
    (run,) = _runs()
    assert run["trigger"] == "schedule" and run["job_id"] == "greet"
    assert run["scheduled_for"] == datetime(2026, 11, 4, 7, 0)
    assert run["delivery_status"] == "sent"
    ((rcpts, message),) = inbox.messages
    assert "audit@example.com" in rcpts and "audit@example.com" not in message.as_string()
    assert message["Subject"] == "Hello 04 Nov 2026"
    # Missed beyond the grace period: not run at all.
    much_later = datetime(2026, 11, 6, 12, 0, tzinfo=BERLIN)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="auterity.reports.scheduler"):
        assert restarted.due(much_later) == []
        assert restarted.due(much_later + timedelta(minutes=1)) == []
    (warning,) = [r.getMessage() for r in caplog.records if "grace period" in r.getMessage()]
    assert warning.startswith("greet: run(s) from 2026-11-05T07:00:00+00:00 on missed")


def test_run_and_run_due_never_both_run_a_slot(project: Path, inbox: Inbox) -> None:
    loaded = _only(load_schedule(), "slow")
    t0 = datetime(2026, 11, 2, 7, 0, tzinfo=BERLIN)
    daemon = sched.Scheduler(loaded, settings=FAST)
    daemon.due(t0)
    now = datetime(2026, 11, 2, 8, 0, 5, tzinfo=BERLIN)
    started = daemon.tick(now)  # the daemon starts the 08:00 run in the background
    assert [s.scheduled_for for s in started] == [datetime(2026, 11, 2, 7, 0, tzinfo=UTC)]
    assert daemon.busy == 1
    assert daemon.wait(timeout=0.01) is False  # still running
    # Meanwhile system cron calls run-due: the slot is taken, nothing runs twice.
    assert sched.Scheduler(loaded, settings=FAST).run_due(now + timedelta(seconds=30)) == []
    assert daemon.tick(now + timedelta(seconds=40)) == []
    assert daemon.wait(timeout=90)
    (run,) = _runs()
    assert run["status"] == "ok" and run["delivery_status"] == "sent"
    (slot,) = sched.slot_history()
    assert slot["status"] == "done" and slot["run_id"] == run["run_id"]
    assert len(inbox.messages) == 1


def test_one_failing_job_does_not_block_others_and_conditions(project: Path, inbox: Inbox) -> None:
    """Broken notebook, condition outcomes and an unrunnable job, all in one due tick."""
    names = ("broken", "alert", "quiet", "silent", "greet")
    loaded = load_schedule()
    jobs = _only(loaded, *names)
    # A job whose parameter set went bad after loading: it errors, the others still run.
    gone = project / "parameters" / "hello" / "gone.yml"
    gone.write_text("nope: 1\n")
    jobs.jobs["gone"] = dataclasses.replace(loaded.jobs["greet"], name="gone", parameters_file=gone)
    metrics = SchedulerMetrics()
    runner = sched.Scheduler(jobs, settings=FAST, metrics=metrics)
    t0 = datetime(2026, 11, 2, 7, 0, tzinfo=BERLIN)
    runner.due(t0)
    outcomes = {o.job: o for o in runner.run_due(datetime(2026, 11, 2, 8, 1, tzinfo=BERLIN))}
    assert set(outcomes) == {*names, "gone"}
    assert outcomes["gone"].status == "error" and "unknown parameter" in (
        outcomes["gone"].error_message or ""
    )
    assert (outcomes["broken"].status, outcomes["broken"].delivery_status) == (
        "failed",
        "failure_sent",
    )
    assert (outcomes["alert"].delivery_status, outcomes["alert"].delivery_error) == ("sent", None)
    assert outcomes["quiet"].delivery_status == "skipped"
    assert outcomes["silent"].delivery_status == "delivery_failed"
    assert "record its anomaly count" in (outcomes["silent"].delivery_error or "")
    assert outcomes["greet"].delivery_status == "sent"
    rows = {r["job_id"]: r for r in _runs()}
    assert rows["quiet"]["delivery_status"] == "skipped"
    assert rows["quiet"]["delivery_error"] == "no anomalies found"
    assert rows["broken"]["status"] == "failed" and rows["broken"]["trigger"] == "schedule"
    assert "gone" not in rows  # refused before anything ran
    assert {s["job_name"]: s["status"] for s in sched.slot_history()}["gone"] == "error"

    # The failure email: error summary, partial report attached.
    (failure,) = inbox.to("data-team@example.com")
    assert failure["Subject"] == "[failed] broken: broken (defaults)"
    text = failure.get_body(preferencelist=("plain",)).get_content()
    assert "ValueError: bad data for hello" in text
    assert f"failed at cell {rows['broken']['error_cell']}:" in text
    attached = {a.get_filename(): a for a in failure.iter_attachments()}
    assert set(attached) == {"broken.html", "broken.ipynb"}
    partial = nbformat.reads(attached["broken.ipynb"].get_content().decode(), as_version=4)
    assert partial.cells[-1].get("execution_count") is None  # stopped at the failing cell
    assert "bad data for hello" in attached["broken.html"].get_content()
    assert len(inbox.to("oncall@example.com")) == 1  # alert sent, quiet skipped

    # Prometheus metrics, scraped over HTTP.
    port = metrics.serve(0)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        metrics.close()
    samples = _samples(body.decode())
    assert samples[("auterity_report_runs_total", (("job", "broken"), ("status", "failed")))] == 1
    assert samples[("auterity_report_runs_total", (("job", "gone"), ("status", "error")))] == 1
    assert samples[("auterity_report_runs_total", (("job", "alert"), ("status", "ok")))] == 1
    deliveries = "auterity_report_deliveries_total"
    assert samples[(deliveries, (("job", "quiet"), ("status", "skipped")))] == 1
    assert samples[(deliveries, (("job", "silent"), ("status", "delivery_failed")))] == 1
    assert samples[(deliveries, (("job", "broken"), ("status", "failure_sent")))] == 1
    assert samples[("auterity_report_run_duration_seconds_count", (("job", "greet"),))] == 1
    last = "auterity_report_last_success_timestamp_seconds"
    finished = rows["greet"]["finished_at"].replace(tzinfo=UTC).timestamp()
    assert samples[(last, (("job", "greet"),))] == pytest.approx(finished)
    assert (last, (("job", "broken"),)) not in samples
    # A restarted daemon starts its last-success gauges from the run records.
    fresh = SchedulerMetrics()
    fresh.load_last_success()
    assert fresh.last_success.labels(job="greet")._value.get() == finished


def test_smtp_down_then_up(
    project: Path, smtp_env: int, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setenv("AUTERITY_SMTP_USER", "bot")
    monkeypatch.setenv("AUTERITY_SMTP_PASSWORD", "pw-never-shown-42")
    loaded = _only(load_schedule(), "greet")
    runner = sched.Scheduler(loaded, settings=FAST)
    runner.due(datetime(2026, 11, 2, 7, 0, tzinfo=BERLIN))
    (down,) = runner.run_due(datetime(2026, 11, 2, 8, 0, 10, tzinfo=BERLIN))
    assert down.status == "ok" and down.delivery_status == "delivery_failed"
    assert f"127.0.0.1:{smtp_env}" in (down.delivery_error or "")
    assert "after 2 attempt(s)" in (down.delivery_error or "")
    (run,) = _runs()
    assert run["delivery_status"] == "delivery_failed"
    assert Path(json.loads(run["outputs"])["html"]).is_file()  # the report is kept
    with warehouse.connect() as conn:
        audit = conn.execute(sa.select(schema.audit_log.c.details)).scalars().all()
    for text in [run["delivery_error"], *audit, caplog.text]:
        assert "pw-never-shown-42" not in (text or "")

    # The next day the server comes up while the scheduler is retrying: delivered.
    monkeypatch.delenv("AUTERITY_SMTP_USER")
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_env)
    patient = sched.Scheduler(
        loaded, settings=sched.SchedulerSettings(smtp_attempts=6, smtp_backoff_s=0.3)
    )
    starter = threading.Timer(0.6, controller.start)
    starter.start()
    try:
        (up,) = patient.run_due(datetime(2026, 11, 3, 8, 0, 10, tzinfo=BERLIN))
    finally:
        starter.join()
        controller.stop()
    assert up.delivery_status == "sent"
    assert [m["Subject"] for _, m in box.messages] == ["Hello 03 Nov 2026"]


def test_report_email_kpis_charts_and_attachments(
    project: Path, inbox: Inbox, analytics_duckdb: str, tmp_path: Path, monkeypatch
) -> None:
    """The scheduled email of a KPI report: numbers are the library's, attachments valid."""
    copy = tmp_path / "kpi.duckdb"
    shutil.copy(sched.warehouse.duckdb_path(sa.make_url(analytics_duckdb)), copy)
    url = f"duckdb:///{copy}"
    monkeypatch.setenv("AUTERITY_DB_URL", url)
    warehouse.ensure_schema(url)
    runner = sched.Scheduler(_only(load_schedule(), "kpi"), settings=FAST)
    outcome = runner.trigger("kpi")
    assert (outcome.status, outcome.delivery_status) == ("ok", "sent"), outcome
    # the copied warehouse may hold runs other tests made on the shared fixture
    (run,) = [r for r in _runs(url) if r["run_id"] == outcome.run_id]
    assert run["trigger"] == "manual" and run["scheduled_for"] is None
    ((_, message),) = inbox.messages
    kpis = business.kpi_summary(
        pd.Timestamp("2026-10-01").date(), pd.Timestamp("2026-11-01").date(), url=url
    )
    revenue = kpis.set_index("metric").loc["revenue"]
    assert message["Subject"] == f"Revenue {charts.format_value(revenue['current'], 'currency')}"
    html_body = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "<script" not in html_body.lower()
    for _, row in kpis.iterrows():
        shown = charts.format_value(row["current"], row["unit"])
        assert shown in text and shown.replace("'", "&#x27;") in html_body
    images = [p for p in message.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1 and images[0].get_content().startswith(b"\x89PNG")
    assert f'src="cid:{images[0]["Content-ID"].strip("<>")}"' in html_body
    attached = {a.get_filename(): a for a in message.iter_attachments()}
    assert set(attached) == {"kpi.html", "kpi.pdf", "kpis.csv", "revenue_per_day.csv"}
    pdf = attached["kpi.pdf"].get_content()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF") and b"/Page" in pdf
    csv = pd.read_csv(io.StringIO(attached["kpis.csv"].get_content()))
    assert list(csv["metric"]) == list(kpis["metric"])
    assert csv["current"].tolist() == pytest.approx(kpis["current"].astype(float).tolist())
    daily = pd.read_csv(io.StringIO(attached["revenue_per_day.csv"].get_content()))
    assert len(daily) == 31 and daily["revenue"].sum() == pytest.approx(revenue["current"])
    report = attached["kpi.html"].get_content()
    report = report.decode() if isinstance(report, bytes) else report
    assert "Kpi report" in report


def test_a_job_run_as_a_user_emails_only_what_they_may_see(
    project: Path, inbox: Inbox, analytics_duckdb: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """`as:` in schedule.yml: the report and its email show the user's rows only."""
    copy = tmp_path / "kpi.duckdb"
    shutil.copy(sched.warehouse.duckdb_path(sa.make_url(analytics_duckdb)), copy)
    url = f"duckdb:///{copy}"
    monkeypatch.setenv("AUTERITY_DB_URL", url)
    warehouse.ensure_schema(url)
    policy = tmp_path / "access.yml"
    policy.write_text(
        "roles:\n  viewer: {dashboards: []}\n  analyst: {dashboards: '*'}\n"
        "  admin: {dashboards: '*', notebooks: '*', pii: true, may: [manage_users]}\n"
        "  kpi_emea: {dashboards: [], notebooks: [kpi], row_filters: {region: EMEA}}\n"
    )
    monkeypatch.setenv("AUTERITY_ACCESS_FILE", str(policy))
    access.add_user("root", "admin", "correct horse battery", url=url)
    access.add_user("pia", "kpi_emea", "correct horse battery", actor="root", url=url)
    jobs = project / "parameters" / "emea-schedule.yml"
    jobs.write_text(
        "jobs:\n  kpi-emea:\n    notebook: kpi\n    parameters: fixed\n    cron: '0 8 * * MON'\n"
        "    to: [emea@example.com]\n    subject: 'Revenue {kpi[revenue]}'\n"
        "    attachments: [csv]\n    as: pia\n"
    )
    loaded = load_schedule(jobs)
    assert loaded.jobs["kpi-emea"].as_user == "pia"
    outcome = sched.Scheduler(loaded, settings=FAST).trigger("kpi-emea")
    assert (outcome.status, outcome.delivery_status) == ("ok", "sent"), outcome
    start, end = pd.Timestamp("2026-10-01").date(), pd.Timestamp("2026-11-01").date()
    everyone = business.kpi_summary(start, end, url=url).set_index("metric").loc["revenue"]
    with metrics.acting_as("pia", url=url):
        emea = business.kpi_summary(start, end, url=url).set_index("metric").loc["revenue"]
    assert 0 < emea["current"] < everyone["current"]
    ((_, message),) = inbox.messages
    assert message["Subject"] == f"Revenue {charts.format_value(emea['current'], 'currency')}"
    attached = {a.get_filename(): a for a in message.iter_attachments()}
    daily = pd.read_csv(io.StringIO(attached["revenue_per_day.csv"].get_content()))
    assert daily["revenue"].sum() == pytest.approx(emea["current"])
    (run,) = [r for r in _runs(url) if r["run_id"] == outcome.run_id]
    assert run["acting_user"] == "pia"
    # `schedule trigger --as`: run the same job as someone else, their role decides
    from auterity.cli import main

    as_root = [r["acting_user"] for r in _runs(url)].count("root")  # the copy holds others'
    assert main(["schedule", "trigger", "kpi-emea", "--file", str(jobs), "--as", "root"]) == 0
    assert inbox.messages[-1][1]["Subject"] == (
        f"Revenue {charts.format_value(everyone['current'], 'currency')}"
    )
    assert [r["acting_user"] for r in _runs(url)].count("root") == as_root + 1
    access.add_user("vera", "viewer", "correct horse battery", actor="root", url=url)
    monkeypatch.setenv("AUTERITY_USER", "vera")  # the default for --as once users exist
    assert main(["schedule", "trigger", "kpi-emea", "--file", str(jobs)]) == 2
    assert "'vera' (role viewer) may not run kpi" in capsys.readouterr().err
    assert len(inbox.messages) == 2
    jobs.write_text(jobs.read_text().replace("as: pia", "as: 'not a name'"))
    with pytest.raises(ConfigError, match=r"kpi-emea.*as: user name 'not a name'"):
        load_schedule(jobs)


def test_cli_list_trigger_and_run_due(project: Path, inbox: Inbox, capsys) -> None:
    from auterity.cli import main

    assert main(["schedule", "list", "--format", "json", "--count", "2"]) == 0
    rows = {r["job"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["hourly"]["enabled"] is False and rows["hourly"]["next_runs"] == []
    first = datetime.fromisoformat(rows["greet"]["next_runs"][0])
    assert first.utcoffset() in (timedelta(hours=1), timedelta(hours=2))  # Berlin
    assert (first.hour, first.minute) == (8, 0)
    assert main(["schedule", "list"]) == 0
    assert "greet  (enabled; hello/alert" in capsys.readouterr().out

    assert main(["schedule", "trigger", "broken"]) == 1
    assert "broken: run failed, email failure_sent" in capsys.readouterr().out
    assert main(["schedule", "trigger", "nope"]) == 2
    assert [(r["trigger"], r["delivery_status"]) for r in _runs()] == [("manual", "failure_sent")]
    assert inbox.to("data-team@example.com")
    assert main(["schedule", "run-due"]) == 0  # first sight: registers the jobs only
    assert "nothing due" in capsys.readouterr().out


def _env(project: Path, smtp_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AUTERITY_HOME=str(project),
        AUTERITY_SMTP_HOST="127.0.0.1",
        AUTERITY_SMTP_PORT=str(smtp_port),
        AUTERITY_SMTP_SECURITY="none",
        AUTERITY_MAIL_FROM="reports@auterity.example",
    )
    return env


def test_daemon_process_metrics_run_due_and_sigterm(
    project: Path, inbox: Inbox, smtp_env: int
) -> None:
    """A real `auterity schedule run`: a due slot runs, the metrics endpoint answers, SIGTERM
    lets the running report finish, and run-due afterwards finds the slot taken."""
    now = datetime.now(UTC)
    slot = (now - timedelta(minutes=2)).replace(second=0, microsecond=0)
    (project / "parameters" / "schedule.yml").write_text(
        "jobs:\n  slow:\n    notebook: hello\n    parameters: slow\n"
        f'    cron: "{slot.minute} {slot.hour} * * *"\n    timezone: UTC\n'
        "    to: [team@example.com]\n"
    )
    with warehouse.connect(write=True) as conn:  # known since 10 minutes: the slot is due
        warehouse.set_meta(conn, "schedule.since.slow", (now - timedelta(minutes=10)).isoformat())
    warehouse.dispose_engines()
    env = _env(project, smtp_env)
    exe = [str(Path(sys.executable).parent / "auterity")]
    port = free_port()
    daemon = subprocess.Popen(
        [*exe, "schedule", "run", "--metrics-port", str(port), "--no-pdf", "--poll", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        running = []
        while time.monotonic() < deadline and not running:
            running = [r for r in _runs() if r["status"] == "running"]
            time.sleep(0.3)
        assert running, "the daemon never started the due run"
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert _samples(scraped.decode())[("auterity_report_runs_in_progress", ())] == 1
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=90)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, out
    assert "received SIGTERM" in out
    (run,) = _runs()
    assert run["status"] == "ok" and run["delivery_status"] == "sent"
    assert run["scheduled_for"] == slot.replace(tzinfo=None)
    assert len(inbox.messages) == 1
    # run-due (system cron) finds the slot the daemon process took: nothing runs twice.
    assert sched.Scheduler(load_schedule(), settings=FAST, pdf=False).run_due() == []
    assert len(_runs()) == 1


def test_concurrency_is_bounded_and_a_waiting_slot_is_not_lost(project: Path, inbox: Inbox) -> None:
    loaded = _only(load_schedule(), "greet", "alert")
    one = dataclasses.replace(FAST, max_parallel=1)
    daemon = sched.Scheduler(loaded, settings=one)
    daemon.due(datetime(2026, 11, 2, 7, 0, tzinfo=BERLIN))
    now = datetime(2026, 11, 2, 8, 0, 5, tzinfo=BERLIN)
    (first,) = daemon.tick(now)
    assert daemon.busy == 1
    assert daemon.tick(now + timedelta(seconds=1)) == []  # no free worker: nothing claimed
    (waiting,) = daemon.due(now + timedelta(seconds=1))
    assert waiting.job.name != first.job.name
    assert daemon.wait(timeout=90)
    (second,) = daemon.tick(now + timedelta(minutes=1))
    assert second.job.name == waiting.job.name
    assert second.scheduled_for == waiting.scheduled_for
    assert daemon.wait(timeout=90)
    runs = sorted(_runs(), key=lambda r: r["started_at"])
    assert [r["job_id"] for r in runs] == [first.job.name, second.job.name]
    assert runs[0]["finished_at"] <= runs[1]["started_at"]  # one at a time
    assert len(inbox.messages) == 2


def test_daemon_stopped_before_a_run_finishes_records_it_interrupted(
    project: Path, smtp_env: int
) -> None:
    runner = sched.Scheduler(_only(load_schedule(), "slow"), settings=FAST)
    runner.due(datetime(2026, 11, 2, 7, 0, tzinfo=BERLIN))
    runner.clock = lambda: datetime(2026, 11, 2, 8, 0, 1, tzinfo=BERLIN)

    def second_sigterm() -> None:  # the first lets runs finish, the second stops waiting
        runner.stop()
        runner.stop()

    stopper = threading.Timer(2.0, second_sigterm)
    stopper.start()
    interrupted = runner.serve_forever(poll_s=0.5, drain_timeout_s=600)
    stopper.join()
    assert interrupted == 1
    (run,) = _runs()
    assert run["status"] == "failed"
    assert run["error_message"] == "interrupted: the scheduler stopped before the run finished"
    (slot,) = sched.slot_history()
    assert slot["status"] == "interrupted"
    assert runner.tick() == []  # a stopped scheduler starts nothing
    assert runner.wait(timeout=60) is False  # hurried: waiting is over
    deadline = time.monotonic() + 60  # (in a real daemon the process ends here)
    while runner.busy and time.monotonic() < deadline:
        time.sleep(0.2)
    assert runner.busy == 0


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from auterity.errors import ConfigError

    monkeypatch.setenv("AUTERITY_SCHEDULE_GRACE", "600")
    monkeypatch.setenv("AUTERITY_SCHEDULE_MAX_PARALLEL", "3")
    assert sched.SchedulerSettings.from_env() == sched.SchedulerSettings(
        grace_s=600, max_parallel=3
    )
    monkeypatch.setenv("AUTERITY_SCHEDULE_MAX_PARALLEL", "0")
    with pytest.raises(ConfigError, match="AUTERITY_SCHEDULE_MAX_PARALLEL='0'"):
        sched.SchedulerSettings.from_env()
    monkeypatch.setenv("AUTERITY_SCHEDULE_GRACE", "soon")
    with pytest.raises(ConfigError, match="AUTERITY_SCHEDULE_GRACE"):
        sched.SchedulerSettings.from_env()


# --------------------------------------------------------------------------- masking

SECRET_URL = "postgresql://bob:pa55-word@db.example:5432/sales"
MASKED_URL = "postgresql://bob:***@db.example:5432/sales"
SMTP_SECRET = "smtp-Hunter2-secret"


def test_parameter_values_and_error_messages_are_masked_everywhere(
    project: Path, inbox: Inbox, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A parameter value and a notebook error holding a database URL with its password and the
    SMTP password: masked in report_runs (parameters, error_message), the executed notebook
    (injected parameters, outputs, traceback, metadata), the HTML report header and body, the
    index, the failure email and its attachments, `auterity runs`; the kernel got them whole."""
    from auterity.cli import main

    monkeypatch.setenv("AUTERITY_SMTP_PASSWORD", SMTP_SECRET)  # no user: no login, still secret
    leaky = f"{SECRET_URL} {SMTP_SECRET}"
    _notebook(
        project / "notebooks" / "leaky.ipynb",
        'source: str = "none"  # where the data comes from',
        [
            "from auterity.reports import record_value\nrecord_value('chars', len(source))",
            "print(source)",
            "raise ValueError(f'cannot open {source}')",
        ],
    )
    (project / "parameters" / "leaky").mkdir()
    (project / "parameters" / "leaky" / "prod.yml").write_text(f"source: '{leaky}'\n")
    (project / "parameters" / "schedule.yml").write_text(
        "jobs:\n  leaky:\n    notebook: leaky\n    parameters: prod\n"
        '    cron: "0 8 * * *"\n    to: [team@example.com]\n'
        "    failure_to: [data-team@example.com]\n"
    )
    outcome = sched.Scheduler(load_schedule(), settings=FAST, pdf=False).trigger("leaky")
    assert (outcome.status, outcome.delivery_status) == ("failed", "failure_sent")
    masked = f"{MASKED_URL} ***"
    secrets = ("pa55-word", SMTP_SECRET)

    def clean(text: str | bytes) -> bool:
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        return not any(secret in text for secret in secrets)

    (row,) = _runs()
    assert json.loads(row["parameters"]) == {"source": masked}
    assert row["error_message"] == f"ValueError: cannot open {masked}"
    assert outcome.error_message == row["error_message"]
    outputs = json.loads(row["outputs"])
    executed_text = Path(outputs["notebook"]).read_text()
    assert clean(executed_text)
    executed = nbformat.reads(executed_text, as_version=4)
    tags = [c.metadata.get("tags", []) for c in executed.cells]
    injected = executed.cells[tags.index(["injected-parameters"])]
    assert f'source = "{masked}"' in injected.source
    assert executed.metadata.papermill.parameters == {"source": masked}
    printed = [o for c in executed.cells for o in c.get("outputs", []) if o.get("name") == "stdout"]
    assert printed[0].text.strip() == masked
    (error,) = [o for c in executed.cells for o in c.get("outputs", []) if o.get("ename")]
    assert error.evalue == f"cannot open {masked}" and clean("".join(error.traceback))
    assert "auterity-masked" not in executed_text  # papermill's output_path is the real one
    # The kernel had the real value: it counted its characters.
    chars = [o for c in executed.cells for o in c.get("outputs", []) if "data" in o]
    assert any(o["data"].get(reports.VALUES_MIME) == {"chars": len(leaky)} for o in chars)

    report = Path(outputs["html"]).read_text()
    assert clean(report)
    assert f"<td>source</td><td>{masked}</td>" in report  # the header's parameter table
    index = (project / "reports" / "index.html").read_text()
    assert clean(index) and f"cannot open {MASKED_URL}" in index

    (failure,) = inbox.to("data-team@example.com")
    assert clean(failure.as_bytes())
    text = failure.get_body(preferencelist=("plain",)).get_content()
    assert f"cannot open {masked}" in text
    attached = {a.get_filename() for a in failure.iter_attachments()}
    assert attached == {"leaky.html", "leaky.ipynb"}

    assert main(["runs", "--format", "json"]) == 0
    listed = capsys.readouterr().out
    assert clean(listed) and MASKED_URL in listed
    with warehouse.connect() as conn:
        audit = conn.execute(sa.select(schema.audit_log.c.details)).scalars().all()
    assert all(clean(details or "") for details in audit)


# --------------------------------------------------------------------------- SMTP checks


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AUTERITY_SMTP_HOST", " ", "AUTERITY_SMTP_HOST is empty"),
        ("AUTERITY_SMTP_PORT", "smtp", "AUTERITY_SMTP_PORT='smtp' is not a port number"),
        ("AUTERITY_SMTP_PORT", "70000", "AUTERITY_SMTP_PORT='70000' is not a port number"),
        ("AUTERITY_SMTP_SECURITY", "tls", "AUTERITY_SMTP_SECURITY='tls' must be one of none,"),
        ("AUTERITY_SMTP_CA_FILE", "/nonexistent/ca.pem", "is not a file"),
        ("AUTERITY_SMTP_CA_FILE", "GARBAGE", "cannot be read as PEM certificates"),
        ("AUTERITY_MAIL_FROM", "reports", "AUTERITY_MAIL_FROM='reports' is not an email"),
    ],
)
def test_bad_smtp_settings_are_refused_before_any_report_runs(
    project: Path,
    smtp_env: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
    variable: str,
    value: str,
    message: str,
) -> None:
    """`schedule trigger`, `run-due` and `run` check the SMTP settings at start: one line,
    exit 2, and no report has run (the daemon in a real process, for one of the cases)."""
    from auterity.cli import main

    if value == "GARBAGE":  # a file, but not certificates
        value = str(project / "ca.pem")
        Path(value).write_text("not a certificate\n")
    monkeypatch.setenv(variable, value)
    assert main(["schedule", "trigger", "greet", "--no-pdf"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("auterity: error: ") and message in err and err.count("\n") == 1
    with warehouse.connect(write=True) as conn:  # make run-due find the greet slot due
        warehouse.set_meta(conn, "schedule.since.greet", "2000-01-01T00:00:00+00:00")
    assert main(["schedule", "run-due", "--no-pdf"]) == 2
    assert message in capsys.readouterr().err
    assert _runs() == [] and sched.slot_history() == []
    if variable == "AUTERITY_SMTP_SECURITY":  # the daemon too (a process: it would loop)
        warehouse.dispose_engines()
        daemon = subprocess.run(
            [str(Path(sys.executable).parent / "auterity"), "schedule", "run", "--no-pdf"],
            env={**_env(project, smtp_env), variable: value},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert daemon.returncode == 2, daemon.stderr
        assert message in daemon.stderr and "Traceback" not in daemon.stderr
        assert _runs() == []


def test_an_smtp_server_that_does_not_answer(
    project: Path, smtp_env: int, capsys, caplog: pytest.LogCaptureFixture
) -> None:
    """`trigger` refuses at once (the report would be for nothing); the daemon starts with a
    warning (an outage may pass; deliveries retry)."""
    from auterity.cli import main

    assert main(["schedule", "trigger", "greet", "--no-pdf"]) == 2  # nothing listens there
    err = capsys.readouterr().err
    assert f"SMTP server 127.0.0.1:{smtp_env} (none) cannot be used (ConnectionRefusedError" in err
    assert err.count("\n") == 1 and _runs() == []
    runner = sched.Scheduler(_only(load_schedule(), "greet"), settings=FAST, pdf=False)
    stopper = threading.Timer(1.0, runner.stop)
    stopper.start()
    with caplog.at_level(logging.WARNING, logger="auterity.reports.scheduler"):
        assert runner.serve_forever(poll_s=0.2) == 0
    stopper.join()
    assert f"SMTP server 127.0.0.1:{smtp_env} (none) cannot be used" in caplog.text
    assert "emails will be retried" in caplog.text


def test_smtp_server_check_passes_against_a_real_server(project: Path, inbox: Inbox) -> None:
    settings = sched.check_smtp_settings(load_schedule().jobs.values())
    assert settings is not None and settings.host == "127.0.0.1"
    sched.check_smtp_server(settings)  # connects, EHLO, QUIT: no message
    assert inbox.messages == []
    assert sched.check_smtp_settings([]) is None


# --------------------------------------------------------------------------- cut-short runs


def _dead_pid() -> int:
    """The pid of a process of this host that has ended (and been reaped)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def _strand(job: str, *, attempt: int = 1, status: str = "claimed", url: str | None = None) -> None:
    """Make a slot look as if its scheduler was killed while running it."""
    slots = schema.schedule_slots
    with warehouse.connect(url, write=True) as conn:
        conn.execute(
            sa.update(slots)
            .where(slots.c.job_name == job)
            .values(
                status=status,
                attempt=attempt,
                claimed_by=f"{socket.gethostname()}:{_dead_pid()}",
                run_id=None,
            )
        )


def test_a_cut_short_slot_is_run_again_once_by_one_scheduler_then_reported(
    project: Path, inbox: Inbox
) -> None:
    """Slot bookkeeping with a fake clock: of two schedulers recovering at once one re-runs
    the slot; cut short again, it is reported to failure_to instead of a third run."""
    loaded = _only(load_schedule(), "greet", "broken")
    t0 = datetime(2026, 11, 2, 7, 0, tzinfo=BERLIN)
    sched.Scheduler(loaded, settings=FAST).due(t0)
    now = datetime(2026, 11, 2, 8, 0, 30, tzinfo=BERLIN)
    first = sched.Scheduler(loaded, settings=FAST)
    slots = [s for s in first.due(now) if sched.claim(s)]
    assert {s.job.name for s in slots} == {"greet", "broken"}
    _strand("greet")  # killed before its notebook started: no run record
    assert [r.job_name for r in sched.stranded_slots()] == ["greet"]
    assert first.recover(now, limit=0) == ([], [])  # no free worker: it waits
    assert [r.job_name for r in sched.stranded_slots()] == ["greet"]

    rivals = [sched.Scheduler(loaded, settings=FAST) for _ in range(3)]
    taken: list[list[sched.Slot]] = []
    threads = [
        threading.Thread(target=lambda r=r: taken.append(r.recover(now + timedelta(minutes=1))[0]))
        for r in rivals
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (again,) = [s for s in taken if s]  # exactly one scheduler took the slot over
    (slot,) = again
    assert (slot.job.name, slot.attempt) == ("greet", 2)
    (row,) = [r for r in sched.slot_history() if r["job_name"] == "greet"]
    assert (row["status"], row["attempt"]) == ("claimed", 2)
    assert row["claimed_by"] == f"{socket.gethostname()}:{os.getpid()}"
    assert sched.stranded_slots() == []  # its new claimer (this process) is alive

    # Cut short again (attempt 2): not run a third time, the failure recipients are told.
    _strand("greet", attempt=2)
    again, lost = rivals[0].recover(now + timedelta(minutes=2))
    assert again == []
    (outcome,) = lost
    assert (outcome.job, outcome.status, outcome.delivery_status) == (
        "greet",
        "failed",
        "failure_not_sent",
    )
    (run,) = _runs()  # the run that never started is recorded, with its delivery status
    assert run["status"] == "failed" and run["scheduled_for"] == datetime(2026, 11, 2, 7, 0)
    assert run["error_message"].startswith("interrupted: the scheduler running it ended")
    assert run["delivery_status"] == "failure_not_sent"  # greet has no failure_to
    (row,) = [r for r in sched.slot_history() if r["job_name"] == "greet"]
    assert (row["status"], row["run_id"]) == ("lost", run["run_id"])
    assert "already been run again once" in row["detail"]
    assert rivals[1].recover(now + timedelta(minutes=3)) == ([], [])  # reported once

    # Past the grace period on its first attempt: reported to failure_to, with the reason.
    _strand("broken")
    late = now + timedelta(seconds=FAST.grace_s + 60)
    outcomes = rivals[2].run_due(late)
    (lost_broken,) = [
        o for o in outcomes if o.job == "broken" and o.scheduled_for == slots[1].scheduled_for
    ]
    assert lost_broken.delivery_status == "failure_sent"
    (mail,) = inbox.to("data-team@example.com")
    assert mail["Subject"] == "[failed] broken: broken (defaults) was interrupted"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "The 2026-11-02 07:00 UTC run of job broken was cut short" in text
    assert "3600 s grace period (AUTERITY_SCHEDULE_GRACE)" in text
    assert "auterity schedule trigger broken" in text
    assert not [o for o in outcomes if o.job == "greet"]  # lost already: left alone


MINUTELY = """jobs:
  minutely:
    notebook: hello
    parameters: crawl
    cron: "* * * * *"
    timezone: UTC
    to: [team@example.com]
    failure_to: [data-team@example.com]
"""


def _daemon(project: Path, smtp_port: int, *flags: str) -> subprocess.Popen:
    """`auterity schedule run` in a process group of its own (it and its kernels)."""
    exe = str(Path(sys.executable).parent / "auterity")
    return subprocess.Popen(
        [exe, "schedule", "run", "--no-pdf", "--poll", "1", *flags],
        env=_env(project, smtp_port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for(check, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _in_slow_cell(run_id: str) -> bool:
    """Papermill has started the run's sleeping cell."""
    return cell_started(run_id, "time.sleep(seconds)")


def _kill_mid_run(project: Path, smtp_port: int) -> tuple[set[datetime], int]:
    """Start the daemon with a job every minute, SIGKILL its process group while a run is in
    progress; the slots cut short (one, or two if the next minute had started too) and the
    killed daemon's pid."""
    (project / "parameters" / "hello" / "crawl.yml").write_text("seconds: 8.0\n")
    (project / "parameters" / "schedule.yml").write_text(MINUTELY)
    with warehouse.connect(write=True) as conn:  # known for 10 minutes: this minute is due
        since = datetime.now(UTC) - timedelta(minutes=10)
        warehouse.set_meta(conn, "schedule.since.minutely", since.isoformat())
    warehouse.dispose_engines()
    daemon = _daemon(project, smtp_port)
    try:
        running = _wait_for(
            lambda: [r for r in _runs() if r["status"] == "running"], "the daemon to start a run"
        )
        _wait_for(  # the kernel is up and in the 8 s sleep (not a fixed wait: CI is slower)
            lambda: _in_slow_cell(running[0]["run_id"]), "the run's kernel to reach its sleep"
        )
        assert [r["status"] for r in _runs() if r["run_id"] == running[0]["run_id"]] == ["running"]
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.communicate(timeout=30)  # reaped: its pid is gone, as after a real crash
    warehouse.dispose_engines()
    cut = {r["scheduled_for"] for r in _runs() if r["status"] == "running"}
    assert running[0]["scheduled_for"] in cut and len(cut) <= 2
    return cut, daemon.pid


def test_a_killed_daemon_runs_the_cut_short_slot_again_once(
    project: Path, inbox: Inbox, smtp_env: int
) -> None:
    """SIGKILL of a real daemon's process group mid-run; the restarted daemon and a run-due
    started with it: the slot runs again exactly once (within the grace period) and its
    email goes out."""
    cut, killed_pid = _kill_mid_run(project, smtp_env)
    for slot in [s for s in sched.slot_history() if s["scheduled_for"] in cut]:
        assert (slot["status"], slot["attempt"]) == ("claimed", 1)
        assert slot["claimed_by"].endswith(f":{killed_pid}")
    restarted = _daemon(project, smtp_env)
    cron = subprocess.run(  # a second scheduler recovering at the same time
        [str(Path(sys.executable).parent / "auterity"), "schedule", "run-due", "--no-pdf"],
        env=_env(project, smtp_env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        _wait_for(
            lambda: (
                {
                    r["scheduled_for"]
                    for r in _runs()
                    if r["scheduled_for"] in cut and r["status"] == "ok" and r["delivery_status"]
                }
                == cut
            ),
            "the cut-short slot to run again",
            timeout=240,
        )
        warehouse.dispose_engines()
        timed_out = ""
    except AssertionError as exc:  # say what the schedulers did, not only that it hung
        timed_out = str(exc)
    finally:
        restarted.send_signal(signal.SIGTERM)
        out, _ = restarted.communicate(timeout=240)
    assert not timed_out, (
        f"{timed_out}\nruns: {_runs()}\nslots: {sched.slot_history()}\n"
        f"daemon:\n{out}\nrun-due:\n{cron.stdout}{cron.stderr}"
    )
    warehouse.dispose_engines()
    assert restarted.returncode == 0, out
    logs = out + cron.stdout + cron.stderr
    runs = _runs()
    slots = {s["scheduled_for"]: s for s in sched.slot_history()}
    for when in cut:
        again = sorted(
            (r for r in runs if r["scheduled_for"] == when), key=lambda r: r["started_at"]
        )
        assert [(r["status"], r["delivery_status"]) for r in again] == [
            ("failed", "retried"),
            ("ok", "sent"),
        ], logs
        assert again[0]["error_message"] == (
            f"interrupted: the process running it (pid {killed_pid}) ended without recording "
            "a result"
        )
        assert again[0]["delivery_error"] == "run again (attempt 2)"
        assert (slots[when]["status"], slots[when]["attempt"]) == ("done", 2)
        assert slots[when]["run_id"] == again[1]["run_id"]
    # Nothing else ran twice, and every report sent is in the inbox.
    others = [r["scheduled_for"] for r in runs if r["scheduled_for"] not in cut]
    assert len(others) == len(set(others)), logs
    assert all(slots[when]["attempt"] == 1 for when in others)
    sent = [r for r in runs if r["delivery_status"] == "sent"]
    assert len(inbox.to("team@example.com")) == len(sent) >= 1
    assert inbox.to("data-team@example.com") == []  # nothing failed for good
    assert "was cut short; running it again" in logs


def test_a_killed_daemon_back_after_the_grace_period_reports_the_lost_slot(
    project: Path, inbox: Inbox, smtp_env: int
) -> None:
    """SIGKILL mid-run, restart after the grace period (5 s here): the slot is not run again,
    the job's failure recipients get the failure email, recorded as its delivery status."""
    cut_slots, killed_pid = _kill_mid_run(project, smtp_env)
    cut = min(cut_slots)
    grace = 5
    _wait_for(
        lambda: (
            datetime.now(UTC).replace(tzinfo=None) - max(cut_slots) > timedelta(seconds=grace + 1)
        ),
        "the grace period to pass",
    )
    restarted = _daemon(project, smtp_env, "--grace", str(grace))
    try:
        failures = _wait_for(
            lambda: (
                len(inbox.to("data-team@example.com")) == len(cut_slots)
                and inbox.to("data-team@example.com")
            ),
            "the failure email",
            timeout=180,
        )
    finally:
        restarted.send_signal(signal.SIGTERM)
        out, _ = restarted.communicate(timeout=240)
    warehouse.dispose_engines()
    assert restarted.returncode == 0, out
    (run,) = [r for r in _runs() if r["scheduled_for"] == cut]  # not run again
    assert (run["status"], run["delivery_status"]) == ("failed", "failure_sent")
    assert f"(pid {killed_pid}) ended without recording a result" in run["error_message"]
    (slot,) = [s for s in sched.slot_history() if s["scheduled_for"] == cut]
    assert (slot["status"], slot["attempt"], slot["run_id"]) == ("lost", 1, run["run_id"])
    failure = next(m for m in failures if f"{cut:%Y-%m-%d %H:%M} UTC" in m.as_string())
    assert failure["Subject"] == "[failed] minutely: hello (crawl) was interrupted"
    text = failure.get_body(preferencelist=("plain",)).get_content()
    assert f"The {cut:%Y-%m-%d %H:%M} UTC run of job minutely was cut short" in text
    assert f"{grace} s grace period" in text and "Its report was not sent." in text
    attached = [a.get_filename() for a in failure.iter_attachments()]
    assert attached == ["hello.ipynb"]  # the notebook as far as it ran (masked on write)


def test_a_slot_whose_run_finished_before_its_process_died_is_only_closed(
    project: Path, inbox: Inbox
) -> None:
    """Killed after the email went out but before the slot was closed: not run again."""
    loaded = _only(load_schedule(), "greet")
    runner = sched.Scheduler(loaded, settings=FAST)
    runner.due(datetime(2026, 11, 2, 7, 0, tzinfo=BERLIN))
    (done,) = runner.run_due(datetime(2026, 11, 2, 8, 0, 30, tzinfo=BERLIN))
    assert done.delivery_status == "sent"
    _strand("greet")
    assert runner.recover(datetime(2026, 11, 2, 8, 5, tzinfo=BERLIN)) == ([], [])
    (slot,) = sched.slot_history()
    assert (slot["status"], slot["run_id"], slot["attempt"]) == ("done", done.run_id, 1)
    assert len(_runs()) == 1 and len(inbox.messages) == 1


@pytest.mark.postgres
def test_one_scheduler_takes_over_a_cut_short_slot_on_postgres(project: Path, pg_url: str) -> None:
    loaded = _only(load_schedule(), "greet")
    runner = sched.Scheduler(loaded, url=pg_url, settings=FAST)
    t0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    runner.due(t0)
    (slot,) = runner.due(t0 + timedelta(hours=1, minutes=1))
    assert sched.claim(slot, url=pg_url)
    _strand("greet", url=pg_url)
    rivals = [sched.Scheduler(loaded, url=pg_url, settings=FAST) for _ in range(4)]
    taken: list[list[sched.Slot]] = []
    threads = [
        threading.Thread(target=lambda r=r: taken.append(r.recover(t0 + timedelta(hours=1))[0]))
        for r in rivals
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(t) for t in taken) == [0, 0, 0, 1]
    (row,) = sched.slot_history(pg_url)
    assert (row["status"], row["attempt"]) == ("claimed", 2)
