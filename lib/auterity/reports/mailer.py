"""Report emails that any mail client shows, and their delivery over SMTP.

Mail clients run no JavaScript, so an email is built with the standard library's
``email`` package as ``multipart/alternative``: a plain-text part, and an HTML part
(inline CSS, tables for layout, 600 px wide, light and dark friendly, no scripts) inside
``multipart/related`` with the charts as inline PNGs referenced by ``cid:``. The full
interactive report, its PDF and CSVs of the key tables travel as attachments, within a
size budget: over it, the largest attachments are dropped and the email says so.

SMTP settings come from the environment (``AUTERITY_SMTP_HOST``, ``_PORT``,
``_SECURITY`` none|starttls|ssl, ``_USER``, ``_PASSWORD``, ``AUTERITY_MAIL_FROM``,
``AUTERITY_MAIL_REPLY_TO``, and ``AUTERITY_SMTP_CA_FILE``: a PEM bundle to trust for a
server whose certificate is not signed by a system CA). Certificates and host names are
always verified for ``starttls`` and ``ssl``. Delivery retries with backoff; the password
never appears in logs, records or error messages.
"""

from __future__ import annotations

import logging
import mimetypes
import smtplib
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any, cast

import pandas as pd

from auterity import charts, config, present
from auterity.errors import AuterityError, ConfigError
from auterity.escape import csv_safe, html_attr, html_text, one_line
from auterity.redact import mask_secrets, register_secret

log = logging.getLogger("auterity.reports.mailer")

DEFAULT_BUDGET_BYTES = 5 * 1024 * 1024
SECURITY = ("none", "starttls", "ssl")


class DeliveryError(AuterityError):
    """The email could not be delivered (after retries); the message says why."""


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send mail (from the environment, see :func:`smtp_settings`)."""

    host: str
    port: int
    security: str
    user: str | None
    password: str | None = field(repr=False)
    sender: str
    reply_to: str | None
    timeout_s: float = 10.0
    ca_file: str | None = None


def smtp_settings() -> SmtpSettings:
    """Read the SMTP settings from the environment; ConfigError names the bad variable."""
    host = config.value(config.ENV_SMTP_HOST) or ""
    security = (config.value(config.ENV_SMTP_SECURITY) or "").lower()
    if security not in SECURITY:
        raise ConfigError(
            f"AUTERITY_SMTP_SECURITY={security!r} must be one of {', '.join(SECURITY)}"
        )
    default_port = {"none": 25, "starttls": 587, "ssl": 465}[security]
    raw_port = config.value(config.ENV_SMTP_PORT) or str(default_port)
    try:
        port = int(raw_port)
    except ValueError:
        raise ConfigError(f"AUTERITY_SMTP_PORT={raw_port!r} is not a port number") from None
    password = config.value(config.ENV_SMTP_PASSWORD) or None
    register_secret(password)
    ca_file = config.value(config.ENV_SMTP_CA_FILE) or None
    if ca_file and not Path(ca_file).is_file():
        raise ConfigError(f"AUTERITY_SMTP_CA_FILE={ca_file!r} is not a file")
    sender = config.value(config.ENV_MAIL_FROM) or ""
    if "@" not in sender:
        raise ConfigError(f"AUTERITY_MAIL_FROM={sender!r} is not an email address")
    return SmtpSettings(
        host,
        port,
        security,
        config.value(config.ENV_SMTP_USER) or None,
        password,
        sender,
        config.value(config.ENV_MAIL_REPLY_TO) or None,
        ca_file=ca_file,
    )


# --------------------------------------------------------------------------- building


@dataclass
class InlineChart:
    """A chart to show in the email body: a title and PNG bytes."""

    title: str
    png: bytes


def chart_images(charts_by_title: dict[str, Any], *, scale: float = 1.5) -> list[InlineChart]:
    """Render Altair charts to PNG (vl-convert) for inline display."""
    return [
        InlineChart(title, charts.to_png(chart, scale=scale))
        for title, chart in charts_by_title.items()
    ]


def _html_body(
    title: str,
    intro: str,
    kpi_html: str,
    images: list[tuple[InlineChart, str]],
    tables_html: Sequence[str],
    footer: str,
) -> str:
    """The HTML part: tables for layout, inline CSS, 600 px, no scripts; every text escaped
    (``kpi_html`` and ``tables_html`` are markup built by :mod:`auterity.present`)."""
    blocks = [
        f'<h1 style="font-size:22px;margin:0 0 6px;">{html_text(title)}</h1>',
        f'<p style="margin:0 0 16px;color:#5b6470;font-size:14px;">{html_text(intro)}</p>',
        kpi_html,
    ]
    for chart, cid in images:
        blocks.append(
            f'<h2 style="font-size:16px;margin:20px 0 6px;">{html_text(chart.title)}</h2>'
            f'<img src="cid:{html_attr(cid[1:-1])}" alt="{html_attr(chart.title)}" width="600" '
            'style="display:block;width:100%;max-width:600px;height:auto;border:0;'
            'background:#ffffff;border-radius:4px;">'
        )
    blocks.extend(tables_html)
    blocks.append(
        f'<p style="margin:24px 0 0;color:#5b6470;font-size:12px;">{html_text(footer)}</p>'
    )
    cells = "".join(f'<tr><td style="padding:0 16px 8px;">{b}</td></tr>' for b in blocks)
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        '<meta name="supported-color-schemes" content="light dark">'
        f"<title>{html_text(title)}</title></head>"
        '<body style="margin:0;padding:0;">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
        'style="border-collapse:collapse;"><tr><td align="center">'
        '<table role="presentation" width="600" cellpadding="0" cellspacing="0" '
        'style="border-collapse:collapse;width:600px;max-width:100%;'
        'font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;">'
        f"{cells}</table></td></tr></table></body></html>"
    )


def _text_body(title: str, intro: str, kpis: pd.DataFrame | None, footer: str) -> str:
    """The plain-text part: the same headline numbers, readable anywhere."""
    lines = [title, "=" * len(title), "", intro, ""]
    if kpis is not None:
        for _, row in kpis.iterrows():
            delta, _tone = charts.format_delta(row.get("previous_delta_pct"), row["good"])
            value = charts.format_value(row["current"], row["unit"])
            lines.append(f"- {row['label']}: {value} ({delta} vs previous period)")
        lines.append("")
    lines.append(footer)
    return "\n".join(lines) + "\n"


def _attach(message: EmailMessage, path: Path) -> None:
    """Attach a file with its MIME type."""
    kind, _ = mimetypes.guess_type(path.name)
    maintype, subtype = (kind or "application/octet-stream").split("/", 1)
    message.add_attachment(
        path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
    )


@dataclass
class BuiltEmail:
    """A built email and the attachments left out to respect the size budget."""

    message: EmailMessage
    dropped: list[str]


def build_report_email(
    *,
    subject: str,
    to: Sequence[str],
    title: str,
    intro: str,
    kpis: pd.DataFrame | None = None,
    images: Sequence[InlineChart] = (),
    tables_html: Sequence[str] = (),
    attachments: Sequence[Path] = (),
    cc: Sequence[str] = (),
    footer: str = "The full interactive report is attached (it opens offline).",
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
    settings: SmtpSettings | None = None,
) -> BuiltEmail:
    """Build a mail-client-safe report email.

    Parameters
    ----------
    subject, title, intro : str
        Subject line, heading and one-line introduction.
    to, cc : sequence of str
        Recipients (at least one ``to``); blind copies are given to :func:`send`.
    kpis : DataFrame, optional
        :func:`auterity.business.kpi_summary` output, shown as tiles and in the text part.
    images : sequence of InlineChart
        Charts shown inline (``cid:`` references to related PNG parts).
    tables_html : sequence of str
        Extra inline-styled HTML tables (e.g. :func:`auterity.present.table_html`).
    attachments : sequence of Path
        Files to attach (report HTML, PDF, CSV), dropped largest first over the budget.
    budget_bytes : int
        Largest total size of the attachments (default 5 MB).
    settings : SmtpSettings, optional
        For the From and Reply-To headers (default: from the environment).

    Returns
    -------
    BuiltEmail
        The message (``multipart/mixed`` > ``multipart/alternative`` (text,
        ``multipart/related`` (HTML + PNGs)) + attachments) and the names of attachments
        dropped to respect the budget.
    """

    if not to:
        raise ConfigError("an email needs at least one recipient in 'to'")
    settings = settings or smtp_settings()
    files = [Path(p) for p in attachments]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise ConfigError(f"attachment(s) not found: {', '.join(missing)}")
    kept, dropped = list(files), []
    while kept and sum(p.stat().st_size for p in kept) > budget_bytes:
        biggest = max(kept, key=lambda p: p.stat().st_size)
        kept.remove(biggest)
        dropped.append(biggest)
    if dropped:
        names = ", ".join(p.name for p in dropped)
        footer = (
            f"{footer} Not attached, over the {budget_bytes / 2**20:.0f} MB size budget: {names}."
        )

    message = EmailMessage()
    message["Subject"] = one_line(subject)  # a line break would start another header
    message["From"] = settings.sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    if settings.reply_to:
        message["Reply-To"] = settings.reply_to
    message["Message-ID"] = make_msgid(domain=settings.sender.split("@", 1)[1] or "localhost")
    cids = [(image, make_msgid(domain="auterity")) for image in images]
    kpi_html = present.kpi_tiles_html(kpis, columns=2) if kpis is not None else ""
    message.set_content(_text_body(title, intro, kpis, footer))
    message.add_alternative(
        _html_body(title, intro, kpi_html, cids, tables_html, footer), subtype="html"
    )
    # The parts of a multipart EmailMessage are EmailMessages (typeshed says Message).
    html_part = cast("list[EmailMessage]", message.get_payload())[1]
    for image, cid in cids:
        html_part.add_related(
            image.png,
            maintype="image",
            subtype="png",
            cid=cid,
            filename=f"{one_line(image.title)}.png",
            disposition="inline",
        )
    for path in kept:
        _attach(message, path)
    return BuiltEmail(message, [p.name for p in dropped])


# --------------------------------------------------------------------------- sending


def send(
    message: EmailMessage,
    *,
    settings: SmtpSettings | None = None,
    attempts: int = 4,
    backoff_s: float = 2.0,
    bcc: Sequence[str] | None = None,
) -> None:
    """Deliver a message over SMTP, retrying with exponential backoff.

    ``bcc`` recipients get the message without appearing in any header.

    Raises
    ------
    DeliveryError
        After the last attempt, naming the server and the reason (secrets masked).
    """
    settings = settings or smtp_settings()
    hidden = list(bcc or [])
    recipients = [
        a.strip() for h in ("To", "Cc") for a in (message.get(h) or "").split(",") if a.strip()
    ] + hidden
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            _deliver(message, settings, recipients)
            log.info(
                "sent %r to %d recipient(s) via %s:%s",
                message["Subject"],
                len(recipients),
                settings.host,
                settings.port,
            )
            return
        except smtplib.SMTPRecipientsRefused as exc:  # retrying will not help
            last = exc
            break
        except (OSError, smtplib.SMTPException) as exc:
            last = exc
            log.warning(
                "delivery attempt %d/%d to %s:%s failed: %s",
                attempt,
                attempts,
                settings.host,
                settings.port,
                mask_secrets(str(exc)),
            )
            if attempt < attempts:
                time.sleep(backoff_s * 2 ** (attempt - 1))
    reason = mask_secrets(f"{type(last).__name__}: {last}") if last else "unknown"
    raise DeliveryError(
        f"could not deliver {message['Subject']!r} via {settings.host}:{settings.port} "
        f"after {attempts} attempt(s): {reason}"
    )


def _deliver(message: EmailMessage, settings: SmtpSettings, recipients: list[str]) -> None:
    """One SMTP session: connect, secure, log in, send."""
    # Verified TLS always: the CA file only adds trust (e.g. a company CA), it never disables it.
    context = ssl.create_default_context()
    if settings.ca_file:
        context.load_verify_locations(cafile=settings.ca_file)
    if settings.security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout_s, context=context
        )
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
    with client:
        if settings.security == "starttls":
            client.starttls(context=context)
        if settings.user:
            client.login(settings.user, settings.password or "")
        client.send_message(message, to_addrs=recipients)


def csv_attachment(frame: pd.DataFrame, path: Path) -> Path:
    """Write a table as CSV for attaching (no cell runs as a spreadsheet formula, see
    :func:`auterity.escape.csv_safe`); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    csv_safe(frame).to_csv(path, index=False)
    return path
