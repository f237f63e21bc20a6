"""Report schedules: ``parameters/schedule.yml``, validated on load.

Each job names a notebook and one of its parameter sets, a cron expression in a time zone,
recipients, a subject template and attachments. Cron expressions are parsed by APScheduler
(never by hand), so next run times - daylight-saving changes included - are APScheduler's.

Example::

    timezone: Europe/Berlin          # default for every job
    jobs:
      weekly-business:
        notebook: 01-business-overview
        parameters: weekly           # parameters/01-business-overview/weekly.yml
        cron: "0 8 * * MON"          # minute hour day-of-month month day-of-week
        to: [ceo@example.com]
        failure_to: [data-team@example.com]
        subject: "Revenue {kpi[revenue]} - week of {start:%d %b %Y}"
        attachments: [html, pdf, csv]
        as: mia                      # optional: run as this user (their rows, their PII rule)
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import getaddresses
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from auterity._yaml import read_yaml
from auterity.access.users import check_name
from auterity.config import parameters_dir, validate_timezone
from auterity.errors import ConfigError
from auterity.reports import params

ATTACHMENT_KINDS = ("html", "pdf", "csv")
Condition = Callable[[dict[str, Any]], tuple[bool, str]]
"""Decides from a run's recorded values whether to send its email: ``(send, reason)``."""


def _always(values: dict[str, Any]) -> tuple[bool, str]:
    """Every successful run is emailed."""
    return True, "always"


def _anomalies(values: dict[str, Any]) -> tuple[bool, str]:
    """Send only when the notebook recorded at least one anomaly.

    The notebook records the count (or the list of anomalies) with
    ``auterity.reports.record_value("anomalies", ...)``; a notebook that recorded nothing
    is an error, not a quiet "no anomalies", so a broken alert cannot go silent.
    """
    if "anomalies" not in values:
        raise ConfigError(
            "condition 'anomalies' needs the notebook to record its anomaly count: "
            'auterity.reports.record_value("anomalies", count)'
        )
    found = values["anomalies"]
    count = len(found) if isinstance(found, list | dict) else found
    if isinstance(count, bool) or not isinstance(count, int | float):
        raise ConfigError(f"recorded 'anomalies' must be a count or a list, not {found!r}")
    if count > 0:
        return True, f"{count:g} anomal{'y' if count == 1 else 'ies'} found"
    return False, "no anomalies found"


CONDITIONS: dict[str, Condition] = {"always": _always, "anomalies": _anomalies}
"""Known conditions; add one with :func:`register_condition`."""


def register_condition(name: str, condition: Condition) -> None:
    """Make ``condition: <name>`` valid in schedule files (call before loading them)."""
    CONDITIONS[name] = condition


def evaluate_condition(job: Job, values: dict[str, Any]) -> tuple[bool, str]:
    """Whether a successful run of ``job`` with these recorded values sends its email.

    Raises
    ------
    ConfigError
        If the values the condition needs were not recorded.
    """
    return CONDITIONS[job.condition](values)


_JOB_FIELDS = {
    "as",
    "notebook",
    "parameters",
    "cron",
    "timezone",
    "to",
    "cc",
    "bcc",
    "failure_to",
    "subject",
    "attachments",
    "enabled",
    "condition",
    "description",
}
SUBJECT_FIELDS = ("job", "notebook", "parameter_set", "start", "end", "kpi", "status")
"""Names a subject template may use, e.g. ``{kpi[revenue]}`` or ``{start:%d %b}``."""


@dataclass(frozen=True)
class Job:
    """One scheduled report."""

    name: str
    notebook: str
    parameter_set: str | None
    parameters_file: Path | None
    cron: str
    timezone: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    failure_to: tuple[str, ...] = ()
    subject: str = "{notebook}: {start:%d %b %Y} - {end:%d %b %Y}"
    attachments: tuple[str, ...] = ("html",)
    enabled: bool = True
    condition: str = "always"
    description: str = ""
    as_user: str | None = None
    """The user the job runs as (``as:``): the run and its email show what they may see."""

    def trigger(self) -> Any:
        """The APScheduler cron trigger of this job."""
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(self.cron, timezone=ZoneInfo(self.timezone))

    def next_runs(self, count: int = 3, *, after: datetime | None = None) -> list[datetime]:
        """The next ``count`` fire times, in the job's time zone."""
        trigger = self.trigger()
        now = after or datetime.now(ZoneInfo(self.timezone))
        out: list[datetime] = []
        previous = None
        for _ in range(count):
            fire = trigger.get_next_fire_time(previous, now)
            if fire is None:
                break
            out.append(fire)
            previous, now = fire, fire
        return out


@dataclass
class Schedule:
    """All jobs of a schedule file."""

    source: str
    jobs: dict[str, Job] = field(default_factory=dict)

    def job(self, name: str) -> Job:
        """The job called ``name``; ConfigError listing the jobs if there is none."""
        try:
            return self.jobs[name]
        except KeyError:
            raise ConfigError(
                f"no job {name!r} in {self.source} (jobs: {', '.join(self.jobs) or 'none'})"
            ) from None


_ADDRESS_SPECIALS = set('()<>[]:;,\\"')


def _valid_address(address: str) -> bool:
    """True for a plain ``local@domain.tld`` address (no display name, no quoting)."""
    local, at, domain = address.rpartition("@")
    if not at or not local or "@" in local or len(address) > 254:
        return False
    if any(c.isspace() or c in _ADDRESS_SPECIALS for c in local):
        return False
    labels = domain.split(".")
    return len(labels) > 1 and all(
        label and label.replace("-", "").isalnum() and not label.startswith("-") for label in labels
    )


def _addresses(value: Any, where: str) -> tuple[str, ...]:
    """A list of email addresses, each exactly one valid address.

    Each entry is parsed as a header would be (``email.utils.getaddresses``), so an entry
    that would reach two mailboxes (``a@x.com,b@y.net``) or carry another header (a line
    break) is refused, not split at delivery.
    """
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(a, str) for a in items):
        raise ConfigError(f"{where}: must be a list of email addresses")
    for address in items:
        if any(ord(c) < 32 or ord(c) == 127 for c in address):
            raise ConfigError(f"{where}: {address!r} contains a line break or control character")
        parsed = [pair for pair in getaddresses([address]) if any(pair)]
        if len(parsed) > 1:
            found = ", ".join(addr for _, addr in parsed)
            raise ConfigError(
                f"{where}: {address!r} is {len(parsed)} addresses ({found}), not one; "
                "list each address as its own entry"
            )
        if len(parsed) != 1 or parsed[0] != ("", address) or not _valid_address(address):
            raise ConfigError(f"{where}: {address!r} is not an email address")
    return tuple(items)


def _check_subject(template: Any, where: str) -> str:
    """A subject template using only the known names."""
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"{where}: must be a non-empty text")
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"{where}: not a valid template ({exc})") from None
    for name in names:
        root = name.split("[", 1)[0].split(".", 1)[0]
        if root not in SUBJECT_FIELDS:
            raise ConfigError(f"{where}: unknown name {{{name}}} (use {', '.join(SUBJECT_FIELDS)})")
    return template


def _parse_job(name: str, raw: Any, source: str, default_tz: str) -> Job:
    """Validate one job; errors name the file, the job and the field."""
    where = f"{source}: job {name!r}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping of fields")
    unknown = set(raw) - _JOB_FIELDS
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(_JOB_FIELDS))})"
        )
    for required in ("notebook", "cron", "to"):
        if required not in raw:
            raise ConfigError(f"{where}: {required}: missing")
    try:
        notebook = params.resolve_notebook(str(raw["notebook"]))
    except ConfigError as exc:
        raise ConfigError(f"{where}: notebook: {exc}") from None
    set_name = raw.get("parameters")
    set_file = None
    if set_name is not None:
        set_file = parameters_dir() / notebook.stem / f"{set_name}.yml"
        if not set_file.is_file():
            raise ConfigError(f"{where}: parameters: no parameter set {set_file}")
        params.load_parameter_set(notebook, set_file)
    try:
        tz = validate_timezone(str(raw.get("timezone") or default_tz))
    except ConfigError as exc:
        raise ConfigError(f"{where}: timezone: {exc}") from None
    attachments = raw.get("attachments", ["html"])
    if not isinstance(attachments, list) or set(attachments) - set(ATTACHMENT_KINDS):
        raise ConfigError(f"{where}: attachments: must be a list of {', '.join(ATTACHMENT_KINDS)}")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: enabled: must be true or false")
    condition = raw.get("condition") or "always"
    if condition not in CONDITIONS:
        raise ConfigError(
            f"{where}: condition: {condition!r} is not one of {', '.join(CONDITIONS)}"
        )
    to = _addresses(raw["to"], f"{where}: to")
    if not to:
        raise ConfigError(f"{where}: to: needs at least one address")
    as_user = raw.get("as")
    if as_user is not None:
        try:
            check_name(as_user)
        except ConfigError as exc:
            raise ConfigError(f"{where}: as: {exc}") from None
    job = Job(
        name=name,
        notebook=notebook.stem,
        parameter_set=set_name,
        parameters_file=set_file,
        cron=str(raw["cron"]),
        timezone=tz,
        to=to,
        cc=_addresses(raw.get("cc"), f"{where}: cc"),
        bcc=_addresses(raw.get("bcc"), f"{where}: bcc"),
        failure_to=_addresses(raw.get("failure_to"), f"{where}: failure_to"),
        subject=_check_subject(raw.get("subject", Job.subject), f"{where}: subject"),
        attachments=tuple(attachments),
        enabled=enabled,
        condition=condition,
        description=str(raw.get("description") or ""),
        as_user=as_user,
    )
    try:
        job.trigger()
    except ValueError as exc:
        raise ConfigError(
            f"{where}: cron: {raw['cron']!r} is not a cron expression ({exc}); "
            "expected 5 fields: minute hour day-of-month month day-of-week"
        ) from None
    return job


def load_schedule(path: str | Path | None = None) -> Schedule:
    """Load and validate ``parameters/schedule.yml`` (or ``path``).

    Returns
    -------
    Schedule
        The jobs by name.

    Raises
    ------
    ConfigError
        Naming the file, the job and the field of the first problem.
    """

    file = Path(path) if path else parameters_dir() / "schedule.yml"
    data = read_yaml(file) or {}
    source = str(file)
    if not isinstance(data, dict) or set(data) - {"timezone", "jobs"}:
        raise ConfigError(f"{source}: expected top-level keys timezone and jobs")
    try:
        default_tz = validate_timezone(str(data.get("timezone") or "UTC"))
    except ConfigError as exc:
        raise ConfigError(f"{source}: timezone: {exc}") from None
    jobs = data.get("jobs") or {}
    if not isinstance(jobs, dict):
        raise ConfigError(f"{source}: jobs: must be a mapping of job name to job")
    return Schedule(
        source, {name: _parse_job(name, raw, source, default_tz) for name, raw in jobs.items()}
    )


def render_subject(
    job: Job, *, start: date, end: date, kpi: dict[str, str] | None = None, status: str = "ok"
) -> str:
    """Fill a job's subject template (``end`` shown as the last day, inclusive)."""
    from datetime import timedelta

    values = {
        "job": job.name,
        "notebook": job.notebook,
        "parameter_set": job.parameter_set,
        "start": start,
        "end": end - timedelta(days=1),
        "kpi": kpi or {},
        "status": status,
    }
    try:
        return job.subject.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        return f"{job.notebook}: {start:%d %b %Y} ({type(exc).__name__} in subject template)"
