"""Credentials only from the environment, never in what the product writes or prints.

A PostgreSQL warehouse reached with a password in ``AUTERITY_DB_URL`` and an SMTP server
that requires AUTH with ``AUTERITY_SMTP_PASSWORD``; then everything the product produces:
a run refused for a bad parameter, a failed run of a notebook that prints both secrets
(``print``, a displayed dict) and raises with them, a real report run through Papermill
as a scheduled job with its email (``schedule trigger``), the scheduler daemon's log,
the CLI's error for a warehouse that does not answer, ``runs`` and ``audit`` output,
every file under ``reports/`` (executed notebooks, HTML, PDF text, CSV, the index),
every row of every warehouse table (run records, audit rows, schedule slots...),
in-process log records, and every email as sent. Both passwords, raw and in every one or
two of their URL-, HTML-, JSON- and repr-encoded forms: zero hits. The same scan finds
them in a file known to hold them (so it can fail). It found one leak, fixed in
:mod:`auterity.redact`: a displayed dict showed a password with a quote in it as
``repr`` escapes it, which the masking did not know.
"""

from __future__ import annotations

import html
import io
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pypdf import PdfReader

from auterity import warehouse
from auterity._time import utcnow
from auterity.demo import generate as demo_data
from auterity.errors import AuterityError, ConfigError
from auterity.reports import scheduler as sched
from auterity.reports.schedule import load_schedule
from conftest import Inbox, _create_pg_database, _drop_pg_database, free_port

REPO = Path(__file__).parents[1]
AUTERITY = str(Path(sys.executable).with_name("auterity"))
# characters that URL-, HTML- and JSON-encoding change, so every encoded form differs
DB_SECRET = f"pg{secrets.token_hex(6)}/@&%+"
SMTP_SECRET = f"smtp{secrets.token_hex(6)}&<\"'"
SMTP_USER = "mailer"

LEAKY_NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "print",
            "metadata": {},
            "outputs": [],
            "source": [
                "import os\n",
                "print(os.environ['AUTERITY_DB_URL'])\n",
                "print(os.environ['AUTERITY_SMTP_PASSWORD'])\n",
                "{'url': os.environ['AUTERITY_DB_URL'],"
                " 'smtp': os.environ['AUTERITY_SMTP_PASSWORD']}",
            ],
        },
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "raise",
            "metadata": {},
            "outputs": [],
            "source": [
                "raise RuntimeError('cannot reach ' + os.environ['AUTERITY_DB_URL']"
                " + ' or log in with ' + os.environ['AUTERITY_SMTP_PASSWORD'])"
            ],
        },
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


ENCODINGS = {
    "raw": lambda s: s,
    "url": quote,
    "url-all": lambda s: quote(s, safe=""),
    "url-plus": quote_plus,
    "html": html.escape,
    "html-text": lambda s: html.escape(s, quote=False),
    "json": lambda s: json.dumps(s)[1:-1],
    "repr": lambda s: repr(s)[1:-1],
    "repr-in-double-quotes": lambda s: s.replace("\\", "\\\\").replace("'", "\\'"),
    # as SQLAlchemy writes a password into a URL (it leaves "+" as it is)
    "sqlalchemy": lambda s: sa.URL.create("x", "u", s, "h").render_as_string(False)[6:-2],
}


def forms(secret: str) -> set[str]:
    """A secret as it may appear: raw and every one or two of :data:`ENCODINGS` (a JSON
    file holding a repr, an HTML page quoting a URL...)."""
    once = {encode(secret) for encode in ENCODINGS.values()}
    return {encode(form) for form in once for encode in ENCODINGS.values()}


NEEDLES = {
    f"{name}: {form!r}": form
    for name, secret in (("db", DB_SECRET), ("smtp", SMTP_SECRET))
    for form in forms(secret)
}


def hits(text: str) -> list[str]:
    """Which forms of the two passwords ``text`` holds."""
    return [needle for needle, form in NEEDLES.items() if form in text]


def file_text(path: Path) -> str:
    """A file as text: PDFs as their extracted text plus their raw bytes."""
    raw = path.read_bytes()
    text = raw.decode("utf-8", "replace")
    if path.suffix == ".pdf":
        text += "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
    return text


def message_text(message: Any) -> str:
    """An email as sent (raw) and decoded part by part (PDF attachments as text)."""
    parts = [message.as_string()]
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
    return "\n".join(parts)


class Authenticator:
    """aiosmtpd authenticator: only ``SMTP_USER`` with ``SMTP_SECRET`` gets in."""

    def __init__(self) -> None:
        self.accepted = 0

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
        ok = (
            isinstance(data, LoginPassword)
            and data.login == SMTP_USER.encode()
            and data.password == SMTP_SECRET.encode()
        )
        self.accepted += ok
        return AuthResult(success=ok)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pg_server: str) -> Iterator[dict[str, Any]]:
    """A PostgreSQL warehouse reached with a password, a project home, an SMTP server
    requiring AUTH; the environment holding both passwords the way the product reads them."""
    root = tmp_path_factory.mktemp("credentials")
    home = root / "home"
    home.mkdir()
    (home / "pyproject.toml").write_text("")
    for folder in ("notebooks", "parameters"):
        (home / folder).symlink_to(REPO / folder)
    plain = _create_pg_database(pg_server)  # the server trusts 127.0.0.1: any password works
    url = sa.make_url(plain).set(password=DB_SECRET).render_as_string(hide_password=False)
    assert DB_SECRET not in url
    assert any(form in url for form in forms(DB_SECRET) - {DB_SECRET}), url
    box, authenticator = Inbox(), Authenticator()
    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    env = {
        "AUTERITY_HOME": str(home),
        "AUTERITY_DB_URL": url,
        "AUTERITY_PII_KEY": "c" * 40,
        "AUTERITY_SMTP_HOST": "127.0.0.1",
        "AUTERITY_SMTP_PORT": str(port),
        "AUTERITY_SMTP_SECURITY": "none",
        "AUTERITY_SMTP_USER": SMTP_USER,
        "AUTERITY_SMTP_PASSWORD": SMTP_SECRET,
        "AUTERITY_MAIL_FROM": "reports@auterity.example",
    }
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            for name in ("AUTERITY_TIMEZONE", "AUTERITY_USER", "AUTERITY_AS"):
                mp.delenv(name, raising=False)
            end = utcnow().date() + timedelta(days=1)
            demo_data.build(
                demo_data.DemoConfig(seed=23, events=3000, months=2, end=end, effects=False),
                url=url,
            )
            warehouse.dispose_engines()
            yield {
                "root": root,
                "home": home,
                "url": url,
                "env": {**os.environ},
                "inbox": box,
                "auth": authenticator,
            }
    finally:
        controller.stop()
        _drop_pg_database(pg_server, plain)


def start(world: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> Any:
    """Start ``auterity ARGS`` as a user would, stdout and stderr in one pipe."""
    return subprocess.Popen(
        [AUTERITY, *args],
        env=env or world["env"],
        cwd=world["home"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(process: Any) -> tuple[int, str]:
    """Exit status and output of a command from :func:`start`."""
    out, _ = process.communicate(timeout=300)
    return process.returncode, out


def cli(world: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``auterity ARGS``; exit status and stdout + stderr."""
    return finish(start(world, *args, env=env))


def test_no_artifact_log_record_or_message_holds_a_password(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    home, root = world["home"], world["root"]
    monkeypatch.setenv("AUTERITY_DB_URL", world["url"])
    scanned: dict[str, str] = {}  # what was scanned -> its text

    # independent commands run side by side (each starts Python, some a kernel)
    schedule_file = root / "schedule.yml"
    schedule_file.write_text(
        "jobs:\n"
        "  weekly-mail:\n"
        "    notebook: 01-business-overview\n"
        "    parameters: weekly\n"
        "    cron: '0 8 * * MON'\n"
        "    to: [boss@example.com]\n"
        "    attachments: [html, pdf, csv]\n"
    )
    leaky = root / "leaky.ipynb"
    leaky.write_text(json.dumps(LEAKY_NOTEBOOK))
    bad_url = world["url"].replace(":5432/", f":{free_port()}/")
    # a real report run (Papermill, HTML, PDF) as a scheduled job, its email (HTML, PDF
    # and CSV attached) sent through an SMTP server that requires AUTH
    trigger = start(world, "schedule", "trigger", "weekly-mail", "--file", str(schedule_file))
    # a notebook that prints both secrets and raises with them: a failed run, the worst case
    failing = start(world, "run", str(leaky), "--no-pdf")
    # a run refused for a bad parameter (before anything runs)
    refused = start(world, "run", "01-business-overview", "-p", "grain=fortnight")
    # a warehouse that does not answer: the URL with its password is in the error
    unreachable = start(world, "db", "upgrade", env={**world["env"], "AUTERITY_DB_URL": bad_url})
    # the scheduler daemon's log (INFO), from start to SIGTERM
    daemon = start(
        world, "schedule", "run", "--file", str(schedule_file), "--poll", "1", "--no-pdf"
    )
    lines = []
    assert daemon.stdout is not None
    for line in daemon.stdout:
        lines.append(line)
        if "scheduler started" in line:
            break
    os.killpg(daemon.pid, signal.SIGTERM)
    scanned["scheduler log"] = "".join(lines) + finish(daemon)[1]
    assert "scheduler started: 1 job(s)" in scanned["scheduler log"], scanned["scheduler log"]

    status, out = finish(refused)
    assert status == 2 and "grain" in out, out
    scanned["run refused"] = out
    status, out = finish(failing)
    assert status == 1 and "cannot reach postgresql+psycopg://postgres:***@" in out, out
    scanned["run leaky"] = out
    status, out = finish(unreachable)
    assert status == 2 and "cannot connect to the database" in out, out
    assert "postgresql+psycopg://postgres:***@127.0.0.1" in out, out
    scanned["unreachable warehouse"] = out
    status, out = finish(trigger)
    assert status == 0 and "email sent" in out, out
    scanned["schedule trigger"] = out
    assert world["auth"].accepted >= 1  # the password was really used to log in
    assert len(world["inbox"].to("boss@example.com")) == 1

    # what the CLI shows of runs, the audit trail and the warehouse
    for args in (
        ("runs", "--format", "json"),
        ("audit", "--format", "json"),
    ):
        status, out = cli(world, *args)
        assert status == 0, (args, out)
        scanned[" ".join(args)] = out
    runs = json.loads(scanned["runs --format json"])
    assert sorted(r["status"] for r in runs) == ["failed", "ok"]

    # in-process: a failing scheduled job and a refused connection, every log record
    caplog.set_level(logging.DEBUG)
    schedule = load_schedule(schedule_file)
    monkeypatch.setenv("AUTERITY_SMTP_PORT", str(free_port()))  # nobody listens: not sent
    with pytest.raises(ConfigError, match="cannot be used") as no_smtp:
        sched.Scheduler(schedule, pdf=False).trigger("weekly-mail")
    with pytest.raises(AuterityError, match="cannot connect") as no_db:
        warehouse.ensure_schema(bad_url)
    for name, error in (("smtp", no_smtp), ("db", no_db)):
        scanned[f"in-process error {name}"] = "".join(traceback.format_exception(error.value))
    scanned["log records"] = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    assert scanned["log records"].strip()
    warehouse.dispose_engines()

    # every file the runs left (executed notebooks, HTML, PDF, CSV, index)
    files = [p for p in (home / "reports").rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    assert {".ipynb", ".html", ".pdf", ".csv"} <= kinds, kinds
    for path in files:
        scanned[str(path)] = file_text(path)
    executed = next(p for p in files if p.name == "leaky.ipynb")
    # the notebook really printed and raised with them: masked where they stood
    assert "postgresql+psycopg://postgres:***@127.0.0.1" in scanned[str(executed)]

    # every row of every warehouse table (run records, audit rows, slots, state)
    engine = sa.create_engine(world["url"])
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()
            scanned[f"table {table}"] = "\n".join(repr(tuple(row)) for row in rows)
    engine.dispose()
    assert "01-business-overview" in scanned["table report_runs"]
    assert scanned["table audit_log"].strip()

    # every email as sent
    mails = world["inbox"].messages
    assert mails
    for i, (_rcpts, message) in enumerate(mails):
        scanned[f"email {i}"] = message_text(message)

    leaks = {name: hits(text) for name, text in scanned.items() if hits(text)}
    assert leaks == {}, leaks
    assert len(scanned) > 30, sorted(scanned)

    # the scan can fail: the environment the runs got holds both passwords
    env_dump = root / "env.txt"
    env_dump.write_text("\n".join(f"{k}={v}" for k, v in world["env"].items()))
    found = hits(file_text(env_dump))
    assert any(f.startswith("db: ") for f in found) and f"smtp: {SMTP_SECRET!r}" in found
    assert hits(f"<td>{html.escape(SMTP_SECRET)}</td>") and hits(json.dumps(DB_SECRET))
