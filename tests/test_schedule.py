"""Schedule file validation and next run times (APScheduler's cron, time zones, DST)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from auterity.errors import ConfigError
from auterity.reports import schedule

GOOD_JOB = """
jobs:
  weekly:
    notebook: 03-executive-summary
    parameters: weekly
    cron: "0 8 * * MON"
    to: [boss@example.com]
"""


def test_committed_schedule_is_valid() -> None:
    loaded = schedule.load_schedule()
    assert {"weekly-executive-summary", "monthly-business", "modelhub-weekly"} <= set(loaded.jobs)
    job = loaded.job("modelhub-weekly")
    assert job.timezone == "America/New_York" and job.attachments == ("html", "csv")
    assert loaded.job("monthly-business").timezone == "Europe/Berlin"  # the file's default
    with pytest.raises(ConfigError, match="no job 'nope'"):
        loaded.job("nope")


def test_next_runs_in_the_job_time_zone_across_dst() -> None:
    job = schedule.load_schedule().job("weekly-executive-summary")  # Mondays 08:00 Berlin
    after = datetime(2026, 10, 19, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    runs = job.next_runs(3, after=after)
    assert [r.strftime("%Y-%m-%d %H:%M %Z") for r in runs] == [
        "2026-10-26 08:00 CET",
        "2026-11-02 08:00 CET",
        "2026-11-09 08:00 CET",
    ]
    # Clocks went back on 25 October: the UTC hour moves, the local hour does not.
    assert runs[0].astimezone(ZoneInfo("UTC")).hour == 7
    assert (
        job.next_runs(1, after=datetime(2026, 10, 12, tzinfo=ZoneInfo("UTC")))[0]
        .astimezone(ZoneInfo("UTC"))
        .hour
        == 6
    )


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schedule.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            GOOD_JOB.replace('"0 8 * * MON"', '"61 8 * * MON"'),
            "job 'weekly': cron: '61 8 \\* \\* MON' is not a cron expression",
        ),
        (GOOD_JOB.replace('"0 8 * * MON"', '"0 8 * *"'), "expected 5 fields"),
        (
            GOOD_JOB.replace("notebook: 03-executive-summary", "notebook: 99-missing"),
            "job 'weekly': notebook: no notebook '99-missing'",
        ),
        (
            GOOD_JOB.replace("parameters: weekly", "parameters: daily"),
            "job 'weekly': parameters: no parameter set",
        ),
        (
            GOOD_JOB.replace("[boss@example.com]", "[boss]"),
            "job 'weekly': to: 'boss' is not an email address",
        ),
        (GOOD_JOB.replace("[boss@example.com]", "[]"), "job 'weekly': to: needs at least one"),
        (GOOD_JOB + "    colour: red\n", "job 'weekly': unknown field\\(s\\) colour"),
        (GOOD_JOB + "    timezone: Mars/Base\n", "job 'weekly': timezone: unknown time zone"),
        (GOOD_JOB + "    attachments: [html, docx]\n", "job 'weekly': attachments: must be"),
        (GOOD_JOB + "    enabled: sometimes\n", "job 'weekly': enabled: must be true or false"),
        (GOOD_JOB + "    condition: raining\n", "job 'weekly': condition: 'raining'"),
        (GOOD_JOB + '    subject: "{revenue} up"\n', "job 'weekly': subject: unknown name"),
        (GOOD_JOB + '    subject: "{start"\n', "job 'weekly': subject: not a valid template"),
        (GOOD_JOB.replace("    to: [boss@example.com]\n", ""), "job 'weekly': to: missing"),
        ("jobs: [1]", "jobs: must be a mapping"),
        ("timezone: Nowhere/Land\njobs: {}", "timezone: unknown time zone"),
        ("cron: x", "expected top-level keys"),
    ],
)
def test_bad_jobs_name_job_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as err:
        schedule.load_schedule(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("field", ["to", "cc", "bcc", "failure_to"])
@pytest.mark.parametrize(
    ("address", "message"),
    [
        (
            "finance@x.com,evil@y.net",
            "'finance@x.com,evil@y.net' is 2 addresses \\(finance@x.com, evil@y.net\\), not one",
        ),
        ("finance@x.com;evil@y.net", "is 2 addresses"),
        ("finance@x.com\\nBcc: evil@y.net", "contains a line break or control character"),
        ("finance@x.com\\r\\n", "contains a line break or control character"),
        ("Finance <finance@x.com>", "is not an email address"),
        ("finance@x.com evil@y.net", "is not an email address"),
        ("finance@@x.com", "is not an email address"),
        ("finance@x", "is not an email address"),
    ],
)
def test_each_address_is_exactly_one_valid_address(
    tmp_path: Path, field: str, address: str, message: str
) -> None:
    """An entry that would reach two mailboxes or smuggle a header is refused on load, naming
    the job and the field (YAML double quotes carry the line breaks)."""
    body = GOOD_JOB + f'    {field}: ["{address}"]\n'
    if field == "to":
        body = GOOD_JOB.replace("[boss@example.com]", f'["{address}"]')
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError, match=f"job 'weekly': {field}: .*{message}") as err:
        schedule.load_schedule(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_valid_addresses_load_unchanged(tmp_path: Path) -> None:
    body = GOOD_JOB + "    cc: [first.last+reports@sub.example.co.uk, ops@m\u00fcnchen.de]\n"
    job = schedule.load_schedule(_write(tmp_path, body)).job("weekly")
    assert job.cc == ("first.last+reports@sub.example.co.uk", "ops@m\u00fcnchen.de")


def test_bad_parameter_set_in_a_job_is_refused(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    (home / "parameters" / "03-executive-summary").mkdir(parents=True)
    (home / "notebooks").symlink_to(Path(__file__).parents[1] / "notebooks")
    (home / "parameters" / "03-executive-summary" / "weekly.yml").write_text("perod: x\n")
    monkeypatch.setenv("AUTERITY_HOME", str(home))
    with pytest.raises(ConfigError, match="unknown parameter 'perod'"):
        schedule.load_schedule(_write(tmp_path, GOOD_JOB))


def test_render_subject() -> None:
    job = schedule.load_schedule().job("weekly-executive-summary")
    subject = schedule.render_subject(
        job, start=date(2026, 10, 19), end=date(2026, 10, 26), kpi={"revenue": "$1.2M"}
    )
    assert subject == "Weekly summary 19 Oct - 25 Oct 2026: revenue $1.2M"
    broken = schedule.render_subject(job, start=date(2026, 10, 19), end=date(2026, 10, 26))
    assert "KeyError in subject template" in broken


def test_anomalies_condition_reads_the_recorded_count() -> None:
    job = schedule.load_schedule().job("weekly-executive-summary")
    alert = schedule.Job(**{**job.__dict__, "condition": "anomalies"})
    assert schedule.evaluate_condition(alert, {"anomalies": 3}) == (True, "3 anomalies found")
    assert schedule.evaluate_condition(alert, {"anomalies": [{"day": "2026-11-02"}]}) == (
        True,
        "1 anomaly found",
    )
    assert schedule.evaluate_condition(alert, {"anomalies": 0}) == (False, "no anomalies found")
    with pytest.raises(ConfigError, match='record_value\\("anomalies", count\\)'):
        schedule.evaluate_condition(alert, {})
    with pytest.raises(ConfigError, match="must be a count or a list"):
        schedule.evaluate_condition(alert, {"anomalies": "many"})
    assert schedule.evaluate_condition(job, {}) == (True, "always")


def test_a_registered_condition_is_valid_in_schedule_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        schedule.CONDITIONS, "big_week", lambda v: (v.get("revenue", 0) > 100, "revenue")
    )
    loaded = schedule.load_schedule(_write(tmp_path, GOOD_JOB + "    condition: big_week\n"))
    job = loaded.job("weekly")
    assert schedule.evaluate_condition(job, {"revenue": 150}) == (True, "revenue")
    assert schedule.evaluate_condition(job, {"revenue": 50})[0] is False
    schedule.register_condition("big_week", lambda v: (True, "registered"))
    assert schedule.evaluate_condition(job, {}) == (True, "registered")
