"""The emails of scheduled jobs (report, failure, cut short) and the SMTP checks at start.

A job's email leads with the report's headline KPIs (:func:`headline`), carries its chart
inline and the HTML (and PDF) report attached; a failed run sends the failure email to
the job's ``failure_to``. The SMTP settings are checked when a scheduler starts, so a
typo fails at once instead of after the first report.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from auterity import business, charts, config, metrics, present, reports
from auterity.errors import ConfigError
from auterity.redact import mask_secrets
from auterity.reports import mailer, params
from auterity.reports.schedule import Job, render_subject


@dataclass
class Headline:
    """What a report email shows besides the report: period, KPIs, charts, CSV tables."""

    start: date
    end: date
    kpis: Any = None
    charts: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)


def _parameter_values(record: reports.RunRecord) -> dict[str, Any]:
    """The notebook's defaults overlaid with the values the run used."""

    values = {
        name: spec.default_value()
        for name, spec in params.notebook_parameters(record.notebook).items()
    }
    values.update(record.parameters)
    return values


def headline(record: reports.RunRecord, url: str | None = None) -> Headline | None:
    """The headline KPIs and revenue trend of the run's period, from the library.

    Notebooks with a ``period`` parameter (the business, ModelHub and executive reports)
    get the same :func:`auterity.business.kpi_summary` numbers their report shows, for the
    same period and filters; other notebooks get no headline (None).
    """
    values = _parameter_values(record)
    if "period" not in values:
        return None

    tz = values.get("timezone") or None
    where = {k: values[k] for k in ("region", "segment") if values.get(k)}
    start, end = present.resolve_period(
        values["period"], values.get("start", ""), values.get("end", ""), tz=tz, url=url
    )
    kpis = business.kpi_summary(start, end, where=where or None, tz=tz, url=url)
    trend = metrics.query(
        ["revenue"], start=start, end=end, grain="day", where=where or None, tz=tz, url=url
    )
    chart = charts.trend(trend, "revenue", unit="currency", interactive=False)
    columns = ["metric", "label", "unit", "current", "previous", "previous_delta_pct"]
    tables = {
        "kpis": kpis[[c for c in columns if c in kpis.columns]],
        "revenue_per_day": trend,
    }
    return Headline(start, end, kpis, {"Revenue per day": chart}, tables)


def _title(record: reports.RunRecord) -> str:
    """The report's title (the notebook's H1)."""
    import nbformat

    executed = record.outputs.get("notebook")
    if executed and Path(executed).is_file():
        return reports.report_title(nbformat.read(executed, as_version=4), record.notebook)
    return record.notebook


def build_job_email(
    job: Job,
    record: reports.RunRecord,
    *,
    url: str | None = None,
    settings: mailer.SmtpSettings | None = None,
) -> mailer.BuiltEmail:
    """The report email of a successful run: headline, inline charts, job's attachments."""

    top = headline(record, url)
    day = (record.scheduled_for or record.started_at).date()
    start, end = (top.start, top.end) if top else (day, day + timedelta(days=1))
    kpi_text: dict[str, str] = {}
    attachments: list[Path] = []
    notes: list[str] = []
    if top is not None and top.kpis is not None:
        for _, row in top.kpis.iterrows():
            kpi_text[row["metric"]] = charts.format_value(row["current"], row["unit"])
    for kind in job.attachments:
        if kind == "csv":
            for name, frame in (top.tables if top else {}).items():
                target = Path(record.output_dir or ".") / f"{name}.csv"
                attachments.append(mailer.csv_attachment(frame, target))
            if not top:
                notes.append("This report has no headline tables to attach as CSV.")
            continue
        path = record.outputs.get(kind)
        if path and Path(path).is_file():
            attachments.append(Path(path))
        else:
            notes.append(f"The {kind.upper()} was not produced.")
    images = mailer.chart_images(top.charts) if top else []
    footer = "The full interactive report is attached (it opens offline)."
    if "html" not in job.attachments:
        footer = f"The full report is kept on the report server as run {record.run_id[:12]}."
    return mailer.build_report_email(
        subject=render_subject(job, start=start, end=end, kpi=kpi_text),
        to=job.to,
        cc=job.cc,
        title=_title(record),
        intro=" ".join(filter(None, [present.describe_period(start, end), job.description])),
        kpis=top.kpis if top else None,
        images=images,
        attachments=attachments,
        footer=" ".join([footer, *notes]),
        settings=settings,
    )


def build_failure_email(
    job: Job, record: reports.RunRecord, *, settings: mailer.SmtpSettings | None = None
) -> mailer.BuiltEmail:
    """The failure email: what failed and where, with the partial report attached."""
    where = f"cell {record.error_cell}" if record.error_cell is not None else "the run"
    attachments = [
        Path(p)
        for p in (record.outputs.get("html"), record.outputs.get("notebook"))
        if p and Path(p).is_file()
    ]
    return mailer.build_report_email(
        subject=f"[failed] {job.name}: {record.notebook} ({record.parameter_set or 'defaults'})",
        to=job.failure_to,
        title=f"Report failed: {_title(record)}",
        intro=f"Run {record.run_id[:12]} of job {job.name} failed at {where}: "
        f"{record.error_message or 'no message'}",
        attachments=attachments,
        footer="Attached: the partial report and the notebook executed up to the failing cell.",
        settings=settings,
    )


def build_interrupted_email(
    job: Job,
    record: reports.RunRecord,
    reason: str,
    *,
    settings: mailer.SmtpSettings | None = None,
) -> mailer.BuiltEmail:
    """The failure email of a scheduled run that was cut short and is not run again."""
    when = record.scheduled_for or record.started_at
    notebook = record.outputs.get("notebook")
    return mailer.build_report_email(
        subject=f"[failed] {job.name}: {record.notebook} ({record.parameter_set or 'defaults'})"
        " was interrupted",
        to=job.failure_to,
        title=f"Report not sent: {_title(record)}",
        intro=f"The {when:%Y-%m-%d %H:%M} UTC run of job {job.name} was cut short "
        f"({record.error_message or 'no message'}) and {reason}. Its report was not sent.",
        attachments=[Path(notebook)] if notebook and Path(notebook).is_file() else [],
        footer=f"Run it now with: auterity schedule trigger {job.name}"
        + (". Attached: the notebook as far as it ran." if notebook else ""),
        settings=settings,
    )


def check_smtp_settings(jobs: Iterable[Job]) -> mailer.SmtpSettings | None:
    """Check the SMTP settings the jobs' emails need, before any report runs.

    Every job emails (``to`` is required), so with any job given the settings must be
    usable: a host, a port number, a known security mode, a readable CA file holding PEM
    certificates and a sender address.

    Returns
    -------
    SmtpSettings or None
        The settings; None if no job was given.

    Raises
    ------
    ConfigError
        One line naming the variable and what is wrong with it.
    """
    if not list(jobs):
        return None
    if not (config.value(config.ENV_SMTP_HOST) or "").strip():
        raise ConfigError(
            "AUTERITY_SMTP_HOST is empty: set the SMTP server the report emails go through"
        )
    raw_port = config.value(config.ENV_SMTP_PORT)
    settings = mailer.smtp_settings()  # the security mode, a numeric port, CA file, sender
    if not 0 < settings.port < 65536:
        raise ConfigError(f"AUTERITY_SMTP_PORT={raw_port!r} is not a port number (1-65535)")
    if settings.ca_file:
        try:
            ssl.create_default_context().load_verify_locations(cafile=settings.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"AUTERITY_SMTP_CA_FILE={settings.ca_file!r} cannot be read as PEM "
                f"certificates: {exc.strerror or exc}"
            ) from None
    return settings


def check_smtp_server(settings: mailer.SmtpSettings, *, timeout_s: float = 10.0) -> None:
    """Connect to the SMTP server as a delivery would (TLS, login), send nothing.

    Raises
    ------
    ConfigError
        One line: which server did not answer, or refused the TLS handshake or the login.
    """
    server = f"{settings.host}:{settings.port} ({settings.security})"
    context = ssl.create_default_context()
    if settings.ca_file:
        context.load_verify_locations(cafile=settings.ca_file)
    try:
        if settings.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=timeout_s, context=context
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=timeout_s)
        with client:
            client.ehlo()
            if settings.security == "starttls":
                client.starttls(context=context)
            if settings.user:
                client.login(settings.user, settings.password or "")
    except smtplib.SMTPAuthenticationError as exc:
        raise ConfigError(
            f"SMTP server {server} refused the login of AUTERITY_SMTP_USER={settings.user!r}: "
            + mask_secrets(f"{exc.smtp_code} {exc.smtp_error!r}")
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        reason = mask_secrets(f"{type(exc).__name__}: {exc}")
        raise ConfigError(
            f"SMTP server {server} cannot be used ({reason}); check AUTERITY_SMTP_HOST, "
            "AUTERITY_SMTP_PORT and AUTERITY_SMTP_SECURITY"
        ) from None
