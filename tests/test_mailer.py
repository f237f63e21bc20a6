"""Report emails through a real SMTP server (aiosmtpd on a free loopback port)."""

from __future__ import annotations

import io
import logging
import ssl
import subprocess
import threading
import time
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from auterity import business, charts, metrics, present
from auterity.errors import ConfigError
from auterity.reports import mailer
from conftest import Inbox, free_port


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("AUTERITY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("AUTERITY_SMTP_PORT", str(port))
    monkeypatch.setenv("AUTERITY_SMTP_SECURITY", "none")
    monkeypatch.setenv("AUTERITY_MAIL_FROM", "reports@auterity.example")
    monkeypatch.setenv("AUTERITY_MAIL_REPLY_TO", "data-team@auterity.example")
    yield inbox
    controller.stop()


@pytest.fixture
def report_email(analytics_duckdb: str, tmp_path: Path) -> tuple[mailer.BuiltEmail, pd.DataFrame]:
    start, end = date(2026, 10, 1), date(2026, 11, 1)
    kpis = business.kpi_summary(start, end, url=analytics_duckdb)
    trend = metrics.query(["revenue"], start=start, end=end, grain="day", url=analytics_duckdb)
    images = mailer.chart_images(
        {"Revenue per day": charts.trend(trend, "revenue", unit="currency", interactive=False)}
    )
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + b"0" * 1000 + b"\n%%EOF\n")
    report = tmp_path / "report.html"
    report.write_text("<html><body>full report</body></html>")
    csv = mailer.csv_attachment(kpis[["metric", "current", "previous"]], tmp_path / "kpis.csv")
    built = mailer.build_report_email(
        subject="Weekly report",
        to=["ceo@example.com"],
        cc=["cfo@example.com"],
        title="Weekly business report",
        intro=present.describe_period(start, end),
        kpis=kpis,
        images=images,
        tables_html=[present.table_html(kpis[["label", "current"]])],
        attachments=[report, pdf, csv],
    )
    return built, kpis


def _html_part(message: EmailMessage) -> EmailMessage:
    return message.get_body(preferencelist=("html",))


def test_email_structure_inline_images_and_attachments(smtp: Inbox, report_email) -> None:
    built, kpis = report_email
    mailer.send(built.message, bcc=["audit@example.com"])
    ((rcpts, received),) = smtp.messages
    assert sorted(rcpts) == ["audit@example.com", "ceo@example.com", "cfo@example.com"]
    assert "audit@example.com" not in received.as_string()  # bcc is not a header
    assert received["Reply-To"] == "data-team@auterity.example"
    assert received.get_content_type() == "multipart/mixed"
    alternative = received.get_payload()[0]
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.get_payload()] == [
        "text/plain",
        "multipart/related",
    ]
    html_body = _html_part(received).get_content()
    assert "<script" not in html_body.lower() and "javascript:" not in html_body.lower()
    related = alternative.get_payload()[1].get_payload()
    images = [p for p in related if p.get_content_type() == "image/png"]
    assert len(images) == 1 and images[0].get_content().startswith(b"\x89PNG")
    cid = images[0]["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html_body
    assert 'width="600"' in html_body and "color-scheme" in html_body
    # The KPI numbers in the body are the library's.
    text = received.get_body(preferencelist=("plain",)).get_content()
    for _, row in kpis.iterrows():
        shown = charts.format_value(row["current"], row["unit"])
        assert shown in text
        assert shown.replace("'", "&#x27;") in html_body
    attachments = {a.get_filename(): a for a in received.iter_attachments()}
    assert set(attachments) == {"report.html", "report.pdf", "kpis.csv"}
    assert attachments["report.pdf"].get_content().startswith(b"%PDF")
    csv = pd.read_csv(io.StringIO(attachments["kpis.csv"].get_content()))
    assert list(csv["metric"]) == list(kpis["metric"])
    assert built.dropped == []


def test_size_budget_drops_largest_attachments_with_a_note(tmp_path: Path, smtp: Inbox) -> None:
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF" + b"x" * 200_000)
    small = tmp_path / "small.csv"
    small.write_text("a,b\n1,2\n")
    built = mailer.build_report_email(
        subject="s",
        to=["a@example.com"],
        title="t",
        intro="i",
        attachments=[big, small],
        budget_bytes=100_000,
    )
    assert built.dropped == ["big.pdf"]
    names = [a.get_filename() for a in built.message.iter_attachments()]
    assert names == ["small.csv"]
    assert (
        "over the 0 MB size budget: big.pdf"
        in built.message.get_body(preferencelist=("plain",)).get_content()
    )


def test_smtp_down_retries_then_fails_with_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AUTERITY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("AUTERITY_SMTP_PORT", str(free_port()))  # nothing listens there
    monkeypatch.setenv("AUTERITY_SMTP_PASSWORD", "s3cr3t-smtp-pw")
    monkeypatch.setenv("AUTERITY_SMTP_USER", "bot")
    built = mailer.build_report_email(subject="s", to=["a@example.com"], title="t", intro="i")
    started = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, logger="auterity.reports.mailer"),
        pytest.raises(mailer.DeliveryError, match="after 3 attempt") as err,
    ):
        mailer.send(built.message, attempts=3, backoff_s=0.1)
    assert 0.3 <= time.monotonic() - started < 10  # backoff 0.1 + 0.2
    assert len([r for r in caplog.records if "delivery attempt" in r.getMessage()]) == 3
    assert "s3cr3t-smtp-pw" not in str(err.value) and "s3cr3t-smtp-pw" not in caplog.text


def test_smtp_down_then_up_is_delivered_by_a_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = Inbox()
    port = free_port()
    monkeypatch.setenv("AUTERITY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("AUTERITY_SMTP_PORT", str(port))
    built = mailer.build_report_email(subject="late", to=["a@example.com"], title="t", intro="i")
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    starter = threading.Timer(0.5, controller.start)
    starter.start()
    try:
        mailer.send(built.message, attempts=5, backoff_s=0.4)
    finally:
        starter.join()
        controller.stop()
    assert [m["Subject"] for _, m in inbox.messages] == ["late"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_user_and_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that requires AUTH: our user and password get in; a wrong one does not."""

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == b"bot"
            and (auth_data.password == b"right-pw")
        )
        # handled=False: aiosmtpd answers a refusal with 535 (else it says nothing at all
        # and the client only gives up at its timeout)
        return AuthResult(success=ok, handled=False)

    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        monkeypatch.setenv("AUTERITY_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("AUTERITY_SMTP_PORT", str(port))
        monkeypatch.setenv("AUTERITY_SMTP_USER", "bot")
        monkeypatch.setenv("AUTERITY_SMTP_PASSWORD", "right-pw")
        built = mailer.build_report_email(
            subject="auth", to=["a@example.com"], title="t", intro="i"
        )
        mailer.send(built.message, attempts=1)
        assert len(inbox.messages) == 1
        monkeypatch.setenv("AUTERITY_SMTP_PASSWORD", "wrong-pw-123")
        with pytest.raises(mailer.DeliveryError) as err:
            mailer.send(built.message, attempts=1)
        assert "wrong-pw-123" not in str(err.value)
        assert "SMTPAuthenticationError" in str(err.value)  # refused by the server (535)
    finally:
        controller.stop()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AUTERITY_SMTP_SECURITY", "tls", "must be one of none, starttls, ssl"),
        ("AUTERITY_SMTP_PORT", "smtp", "is not a port number"),
        ("AUTERITY_MAIL_FROM", "reports", "is not an email address"),
    ],
)
def test_bad_smtp_settings(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        mailer.smtp_settings()


def test_build_refuses_missing_recipients_and_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one recipient"):
        mailer.build_report_email(subject="s", to=[], title="t", intro="i")
    with pytest.raises(ConfigError, match="attachment\\(s\\) not found"):
        mailer.build_report_email(
            subject="s",
            to=["a@example.com"],
            title="t",
            intro="i",
            attachments=[tmp_path / "nope.pdf"],
        )
    ssl_settings = mailer.SmtpSettings("h", 465, "ssl", None, None, "a@b.c", None)
    assert "password" not in repr(ssl_settings)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 / localhost, made with the openssl CLI."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _tls_server(cert: Path, key: Path, *, implicit: bool) -> tuple[Controller, Inbox, int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    if implicit:
        controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=context)
    else:
        controller = Controller(
            inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
        )
    controller.start()
    return controller, inbox, port


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_with_a_trusted_ca_file_and_refused_without(
    monkeypatch: pytest.MonkeyPatch, self_signed: tuple[Path, Path], security: str
) -> None:
    cert, key = self_signed
    controller, inbox, port = _tls_server(cert, key, implicit=security == "ssl")
    try:
        monkeypatch.setenv("AUTERITY_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("AUTERITY_SMTP_PORT", str(port))
        monkeypatch.setenv("AUTERITY_SMTP_SECURITY", security)
        built = mailer.build_report_email(
            subject=security, to=["a@example.com"], title="t", intro="i"
        )
        # Not trusted: verification is never switched off, so delivery fails with the reason.
        with pytest.raises(mailer.DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            mailer.send(built.message, attempts=1)
        assert inbox.messages == []
        monkeypatch.setenv("AUTERITY_SMTP_CA_FILE", str(cert))
        mailer.send(built.message, attempts=1)
        ((_, received),) = inbox.messages
        assert received["Subject"] == security
    finally:
        controller.stop()


def test_plain_client_refused_by_a_starttls_only_server(
    monkeypatch: pytest.MonkeyPatch, self_signed: tuple[Path, Path]
) -> None:
    cert, key = self_signed
    controller, inbox, port = _tls_server(cert, key, implicit=False)
    try:
        monkeypatch.setenv("AUTERITY_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("AUTERITY_SMTP_PORT", str(port))
        monkeypatch.setenv("AUTERITY_SMTP_SECURITY", "none")
        built = mailer.build_report_email(
            subject="plain", to=["a@example.com"], title="t", intro="i"
        )
        with pytest.raises(mailer.DeliveryError, match="STARTTLS"):
            mailer.send(built.message, attempts=1)
        assert inbox.messages == []
    finally:
        controller.stop()


def test_ca_file_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTERITY_SMTP_CA_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"AUTERITY_SMTP_CA_FILE=.* is not a file"):
        mailer.smtp_settings()
