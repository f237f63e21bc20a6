"""Shared fixtures: isolated warehouses, a real PostgreSQL database, small demo worlds."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from auterity import redact, warehouse
from auterity.demo import generate as demo_data

PG_SERVER_URL = os.environ.get(
    "AUTERITY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
DEMO_END = date(2026, 11, 1)


def need_service(name: str, reason: str) -> None:
    """Skip locally when a service is down, but fail in CI (a skip there would hide it)."""
    message = f"{name} is not available: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: services the suite needs must be running)")
    pytest.skip(message)


def need_chromium() -> str:
    """The Chromium that prints PDFs and runs browser tests (see :func:`need_service`)."""
    from auterity import reports

    path = reports.chromium_path()
    if path is None:
        need_service("Chromium (/usr/bin/chromium)", "install it with apt-get install chromium")
    return path


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary (fails in CI, skips locally, when it is not installed)."""
    return need_chromium()


@pytest.fixture(autouse=True)
def _isolated_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test gets its own DuckDB file as the default warehouse; engines are disposed."""
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    monkeypatch.setenv("AUTERITY_DB_URL", url)
    monkeypatch.delenv("AUTERITY_TIMEZONE", raising=False)
    monkeypatch.delenv("AUTERITY_HOME", raising=False)
    # pseudonyms need a key: a test's own, never one generated into the checkout's data/
    monkeypatch.setenv("AUTERITY_PII_KEY", "test-pseudonym-key-" + "k" * 24)
    yield url
    warehouse.dispose_engines()


@pytest.fixture(scope="session")
def pg_server() -> str:
    """URL of the PostgreSQL server the suite may create databases on."""
    engine = sa.create_engine(PG_SERVER_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        need_service(f"PostgreSQL at {redact.mask_url(PG_SERVER_URL)}", str(exc.orig).strip())
    finally:
        engine.dispose()
    return PG_SERVER_URL


def _create_pg_database(server_url: str) -> str:
    """Create a fresh, uniquely named database and return its URL."""
    name = f"auterity_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(server_url: str, url: str) -> None:
    """Drop a database made by :func:`_create_pg_database`."""
    warehouse.dispose_engines()
    name = sa.make_url(url).database
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    url = _create_pg_database(pg_server)
    yield url
    _drop_pg_database(pg_server, url)


SMALL = demo_data.DemoConfig(seed=7, events=20_000, months=6, end=DEMO_END)
EFFECTS = demo_data.DemoConfig(seed=11, events=300_000, months=18, end=DEMO_END)


def build_duckdb(cfg: demo_data.DemoConfig, path: Path) -> tuple[str, dict]:
    """Build a demo world into the DuckDB file ``path``; its URL and manifest.

    The build's write connection is closed afterwards, so the tests' readers can open the
    file read-only in this process.
    """
    url = f"duckdb:///{path}"
    manifest = demo_data.build(cfg, url=url)
    warehouse.dispose_engines()
    return url, manifest


@pytest.fixture(scope="session")
def effects_warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """A DuckDB warehouse with planted effects, big enough to measure them (built once)."""
    return build_duckdb(EFFECTS, tmp_path_factory.mktemp("effects") / "effects.duckdb")


@pytest.fixture(scope="session")
def plain_warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """The same world as :func:`effects_warehouse` with nothing planted."""
    plain = dataclasses.replace(EFFECTS, effects=False)
    return build_duckdb(plain, tmp_path_factory.mktemp("plain") / "plain.duckdb")


ANALYTICS = demo_data.DemoConfig(seed=17, events=30_000, months=5, end=DEMO_END)
"""A small world (June..October 2026) for correctness tests of the analytics modules."""


@pytest.fixture(scope="session")
def analytics_duckdb(tmp_path_factory: pytest.TempPathFactory) -> str:
    """:data:`ANALYTICS` in a DuckDB file (built once per session)."""
    return build_duckdb(ANALYTICS, tmp_path_factory.mktemp("analytics") / "a.duckdb")[0]


@pytest.fixture(scope="session")
def analytics_pg(pg_server: str) -> Iterator[str]:
    """:data:`ANALYTICS` in a PostgreSQL database (built once per session)."""
    url = _create_pg_database(pg_server)
    demo_data.build(ANALYTICS, url=url)
    yield url
    _drop_pg_database(pg_server, url)


@pytest.fixture(params=["duckdb", "postgres"])
def analytics_url(request: pytest.FixtureRequest) -> str:
    """Each analytics correctness test runs on both databases."""
    return request.getfixturevalue(
        "analytics_duckdb" if request.param == "duckdb" else "analytics_pg"
    )


def read_table(url: str, table: str) -> pd.DataFrame:
    """All rows of a table (tests only: the library never pulls raw rows)."""
    with warehouse.connect(url) as conn:
        result = conn.execute(sa.text(f"SELECT * FROM {table}"))
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


# --------------------------------------------------------------------------- SMTP


class Inbox:
    """aiosmtpd handler keeping every message it receives (recipients, parsed message)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        """The messages delivered to ``address``."""
        return [m for rcpts, m in self.messages if address in rcpts]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def auterity_serve(
    env: dict[str, str], log_path: Path, api_port: int | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``auterity serve`` as a user starts it, on a free loopback port, in its own process
    group with its output in ``log_path``; stopped (SIGTERM, then SIGKILL) afterwards.
    The JSON API next to it only when ``api_port`` is given.

    Yields ``(process, port)``.
    """
    port = free_port()
    exe = Path(sys.executable).with_name("auterity")
    api = ["--api-port", str(api_port)] if api_port else ["--no-api"]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), *api],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, port
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):  # pragma: no cover
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def cell_started(run_id: str, source: str) -> bool:
    """Papermill has started the cell of run ``run_id`` holding ``source`` (it stamps and
    saves a cell as it starts it, in the run's partial notebook)."""
    import nbformat

    from auterity import reports

    partial = reports.get_run(run_id).outputs.get("notebook")
    try:
        cells = nbformat.read(partial, as_version=4).cells if partial else []
    except (OSError, ValueError):  # not saved yet, or cut off mid-write
        return False
    return any(
        source in c.source and c.metadata.get("papermill", {}).get("start_time") for c in cells
    )
