"""Encryption at rest of the DuckDB warehouse, with real DuckDB, Papermill and Voila kernels.

One small demo warehouse is built encrypted; the tests show it unreadable without the key
(DuckDB refuses, and its bytes hold no customer email), refused with a wrong key, and fully
usable with it: metric queries, rebuilds, a report run and a dashboard kernel (both separate
processes that get the key from their environment). ``auterity db encrypt`` and ``decrypt``
convert a file both ways. A PostgreSQL URL that requires TLS reaches the driver.

DuckDB's httpfs extension (OpenSSL) is not installed here, so the tests write with
``AUTERITY_DB_CRYPTO=builtin``; one test shows what happens without it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import nbformat
import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner

from auterity import business, charts, metrics, present, reports, warehouse
from auterity._time import utcnow
from auterity.cli import cli, main
from auterity.dashboards import serve
from auterity.demo import generate as demo_data
from auterity.errors import ConfigError, DatabaseUnavailable
from auterity.warehouse import encryption, schema
from conftest import PG_SERVER_URL, auterity_serve

KEY = "test-warehouse-key-" + "e" * 24
WRONG_KEY = "test-wrong-key-" + "w" * 28
TOKEN = "encryption-test-token-1234567890"
CFG = demo_data.DemoConfig(
    seed=9, events=3000, months=2, end=utcnow().date() + timedelta(days=1), effects=False
)


def _key_env(key: str | None = KEY) -> dict[str, str]:
    """The environment of a process that uses the encrypted warehouse."""
    env = {**os.environ, encryption.ENV_DB_CRYPTO: "builtin"}
    env.pop(encryption.ENV_DB_KEY, None)
    if key is not None:
        env[encryption.ENV_DB_KEY] = key
    return env


@pytest.fixture(scope="module")
def emails() -> list[str]:
    """Every customer email of the demo world (generated, not read from any file)."""
    world = demo_data.generate(CFG)
    chunks = dict(world.chunks())  # the last chunk of each table wins; customers is one chunk
    return sorted(chunks["customers"]["email"].dropna().unique())


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A small demo warehouse built encrypted from the start; its URL."""
    path = tmp_path_factory.mktemp("encrypted") / "warehouse.duckdb"
    url = f"duckdb:///{path}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(encryption.ENV_DB_KEY, KEY)
        mp.setenv(encryption.ENV_DB_CRYPTO, "builtin")
        demo_data.build(CFG, url=url)
        warehouse.dispose_engines()
    yield url
    warehouse.dispose_engines()


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's process has the key (and accepts DuckDB's built-in crypto)."""
    monkeypatch.setenv(encryption.ENV_DB_KEY, KEY)
    monkeypatch.setenv(encryption.ENV_DB_CRYPTO, "builtin")
    warehouse.dispose_engines()


def _path(url: str) -> Path:
    path = warehouse.duckdb_path(sa.make_url(url))
    assert path is not None
    return path


def test_the_encrypted_file_is_unreadable_without_the_key(
    encrypted: str, emails: list[str]
) -> None:
    path = _path(encrypted)
    assert encryption.is_encrypted(path) and not path.with_name(path.name + ".wal").exists()
    content = path.read_bytes()
    assert len(emails) > 100
    assert [e for e in emails if e.encode() in content] == []
    # DuckDB itself refuses: no key, and a wrong key
    with pytest.raises(duckdb.Error, match="without a key"):
        duckdb.connect(str(path), read_only=True)
    raw = duckdb.connect()
    with pytest.raises(duckdb.Error, match="Wrong encryption key"):
        raw.execute("ATTACH ? AS w (ENCRYPTION_KEY ?, READ_ONLY)", [str(path), WRONG_KEY])
    raw.close()


def test_no_key_or_a_wrong_key_is_one_clear_line(
    encrypted: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _path(encrypted)
    monkeypatch.delenv(encryption.ENV_DB_KEY, raising=False)
    with pytest.raises(ConfigError, match=f"{path} is encrypted: set AUTERITY_DB_KEY to its key"):
        warehouse.table_summary(encrypted)
    monkeypatch.setenv(encryption.ENV_DB_KEY, WRONG_KEY)
    with pytest.raises(ConfigError) as wrong:
        warehouse.table_summary(encrypted)
    assert str(wrong.value) == (
        f"AUTERITY_DB_KEY is not the key the warehouse file {path} was encrypted with; "
        "set the right one"
    )
    monkeypatch.setenv(encryption.ENV_DB_KEY, "too-short")
    with pytest.raises(ConfigError, match=r"9 characters long; .* at least 32"):
        warehouse.table_summary(encrypted)
    # the CLI: one line naming the setting, no traceback, no key (in a fresh process too)
    monkeypatch.setenv("AUTERITY_DB_URL", encrypted)
    monkeypatch.setenv(encryption.ENV_DB_KEY, WRONG_KEY)
    assert main(["db", "info"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"auterity: error: {wrong.value}\n" and WRONG_KEY not in err
    exe = Path(sys.executable).with_name("auterity")
    done = subprocess.run(
        [str(exe), "db", "info"], capture_output=True, text=True, timeout=60, env=_key_env(None)
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"auterity: error: the warehouse file {path} is encrypted: set " + (
        "AUTERITY_DB_KEY to its key (in the environment or .env of every process that reads it)\n"
    )


def test_with_the_key_everything_works_and_the_key_shows_nowhere(
    encrypted: str, keyed: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    summary = warehouse.table_summary(encrypted)
    assert summary["customers"]["rows"] == demo_data.generate(CFG).expected_rows["customers"]
    start, end = present.resolve_period("last_28_days", url=encrypted)
    revenue = metrics.query(["revenue", "orders"], start=start, end=end, grain=None, url=encrypted)
    assert revenue.loc[0, "orders"] > 0 and revenue.loc[0, "revenue"] > 0
    with warehouse.connect(encrypted) as conn:
        assert conn.execute(sa.text("SELECT current_database()")).scalar() == encryption.CATALOG
        spills = "SELECT current_setting('temp_file_encryption'), current_setting('temp_directory')"
        assert tuple(conn.execute(sa.text(spills)).one()) == (True, f"{_path(encrypted)}.tmp")
        databases = str(conn.execute(sa.text("SELECT * FROM duckdb_databases()")).all())
    # writes: an audit row, then a full rebuild over the encrypted file keeps it
    with warehouse.connect(encrypted, write=True) as conn:
        warehouse.audit(conn, "test.encrypted", object_type="warehouse")
    demo_data.build(CFG, url=encrypted)
    with warehouse.connect(encrypted) as conn:
        kept = conn.execute(
            sa.select(sa.func.count()).where(schema.audit_log.c.action == "test.encrypted")
        ).scalar()
    assert kept == 1 and encryption.is_encrypted(_path(encrypted))
    engine = warehouse.get_engine(encrypted)
    shown = [repr(engine), str(engine.url), databases, caplog.text]
    assert [s for s in shown if KEY in s] == []


def _report_project(root: Path) -> Path:
    """A project with one small report that reads the warehouse in its kernel."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Customers\n> How many, read in the kernel."),
        nbformat.v4.new_code_cell(
            'label: str = "customers"  # what to call them', metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_markdown_cell("## Count"),
        nbformat.v4.new_code_cell(
            "import sqlalchemy as sa\nfrom auterity import warehouse\n"
            "with warehouse.connect() as conn:\n"
            "    n = conn.execute(sa.text('SELECT count(*) FROM customers')).scalar()\n"
            "from IPython.display import Markdown\nMarkdown(f'**{label}:** {n}')"
        ),
    ]
    (root / "notebooks").mkdir(parents=True)
    nbformat.write(nb, root / "notebooks" / "count.ipynb")
    return root


def test_a_report_kernel_reads_the_encrypted_warehouse(
    encrypted: str, keyed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTERITY_HOME", str(_report_project(tmp_path / "project")))
    monkeypatch.setenv("AUTERITY_DB_URL", encrypted)
    record = reports.run("count", pdf=False)
    assert record.ok, record.error_message
    expected = warehouse.table_summary(encrypted)["customers"]["rows"]
    assert f"<strong>customers:</strong> {expected}" in Path(record.outputs["html"]).read_text()
    executed = Path(record.outputs["notebook"]).read_text()
    assert KEY not in executed and KEY not in Path(record.outputs["html"]).read_text()


def test_a_dashboard_kernel_shows_a_kpi_from_the_encrypted_warehouse(
    encrypted: str, keyed: None, tmp_path: Path
) -> None:
    folder = tmp_path / "dashboards"
    folder.mkdir()
    shutil.copy(serve.dashboards_dir() / "business.ipynb", folder)
    shutil.copytree(serve.dashboards_dir() / serve.TEMPLATES, folder / serve.TEMPLATES)
    config = serve.read_config(serve.dashboards_dir())
    config["VoilaKernelManager"]["kernel_pools_config"] = {"default": {"pool_size": 0}}
    (folder / "voila.json").write_text(json.dumps(config))
    env = {
        **_key_env(),
        "AUTERITY_DB_URL": encrypted,
        serve.ENV_DIR: str(folder),
        serve.ENV_TOKEN: TOKEN,
        "AUTERITY_DASHBOARD_AUTH": "token",
    }
    log_path = tmp_path / "serve.log"
    with auterity_serve(env, log_path) as (process, port):
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120  # a loaded machine starts Jupyter slowly
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if requests.get(f"{base}/login", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        page = requests.Session().get(
            f"{base}/voila/render/business.ipynb?token={TOKEN}", timeout=120
        )
    assert page.status_code == 200, page.text[-2000:]
    shown = re.search(r'au-kpi-value" data-metric="revenue"[^>]*>([^<]+)<', page.text)
    assert shown is not None, page.text[-3000:]
    start, end = present.resolve_period("last_28_days", url=encrypted)
    kpis = business.kpi_summary(start, end, url=encrypted).set_index("metric")
    assert kpis.loc["revenue", "current"] > 0
    assert shown.group(1) == charts.format_value(kpis.loc["revenue", "current"], "currency")
    assert KEY not in log_path.read_text() and KEY not in page.text


def test_db_encrypt_and_decrypt_convert_a_warehouse_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.duckdb"
    url = f"duckdb:///{path}"
    monkeypatch.setenv("AUTERITY_DB_URL", url)
    with warehouse.connect(url, write=True) as conn:
        conn.execute(sa.text("CREATE TABLE notes (who TEXT, note TEXT)"))
        conn.execute(sa.text("INSERT INTO notes VALUES ('ann@example.com', 'secret plan')"))
    warehouse.dispose_engines()
    wal = path.with_name("plain.duckdb.wal")
    assert b"ann@example.com" in path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert main(["db", "encrypt"]) == 2
    assert "set AUTERITY_DB_KEY to the key to encrypt" in capsys.readouterr().err
    monkeypatch.setenv(encryption.ENV_DB_KEY, KEY)
    monkeypatch.setenv(encryption.ENV_DB_CRYPTO, "builtin")
    # a plain file opened with a key set: said so
    refused = pytest.raises(ConfigError, match="is not encrypted, but AUTERITY_DB_KEY is set")
    with refused, warehouse.connect(url):
        pass
    assert main(["db", "encrypt", "--keep-backup"]) == 0
    out, err = capsys.readouterr()
    assert f"Encrypting {path}" in err
    assert f"{path} is encrypted: 1 tables, 1 rows copied" in out
    backup = path.with_name("plain.duckdb.unencrypted")
    assert f"UNENCRYPTED backup {backup}" in out and KEY not in out + err
    assert encryption.is_encrypted(path) and not encryption.is_encrypted(backup)
    assert b"ann@example.com" not in path.read_bytes()
    assert not path.with_name("plain.duckdb.wal").exists()
    with warehouse.connect(url) as conn:
        assert conn.execute(sa.text("SELECT who FROM notes")).scalar() == "ann@example.com"
    warehouse.ensure_schema(url)
    assert main(["db", "info"]) == 0
    assert "File encrypted at rest: yes" in capsys.readouterr().out
    assert main(["db", "encrypt"]) == 2
    assert "is already encrypted; nothing to do" in capsys.readouterr().err
    # and back, without a backup this time
    assert main(["db", "decrypt"]) == 0
    out = capsys.readouterr().out
    assert "is no longer encrypted" in out and "Unset AUTERITY_DB_KEY now" in out
    assert not encryption.is_encrypted(path) and b"ann@example.com" in path.read_bytes()
    assert not path.with_name("plain.duckdb.encrypted").exists()
    monkeypatch.delenv(encryption.ENV_DB_KEY)
    with warehouse.connect(url) as conn:
        assert conn.execute(sa.text("SELECT note FROM notes")).scalar() == "secret plan"
    for command in ("encrypt", "decrypt"):
        help_text = CliRunner().invoke(cli, ["db", command, "--help"]).output
        assert "AUTERITY_DB_KEY" in help_text and "--keep-backup" in help_text


def _httpfs_loads() -> bool:
    """True if DuckDB's httpfs extension (OpenSSL crypto) is installed on this machine."""
    try:
        duckdb.connect().execute("LOAD httpfs")
    except duckdb.Error:
        return False
    return True


def test_without_httpfs_writes_wait_for_a_choice_and_reads_still_work(
    encrypted: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(encryption.ENV_DB_KEY, KEY)
    monkeypatch.delenv(encryption.ENV_DB_CRYPTO, raising=False)
    assert warehouse.table_summary(encrypted)["models"]["rows"] > 0  # reads need no choice
    fresh = f"duckdb:///{tmp_path / 'new.duckdb'}"
    if _httpfs_loads():  # a machine with OpenSSL crypto writes securely without being told
        assert warehouse.ensure_schema(fresh)
        assert encryption.is_encrypted(tmp_path / "new.duckdb")
        return
    with pytest.raises(ConfigError, match=r"needs DuckDB's httpfs extension .* AUTERITY_DB_CRYPTO"):
        warehouse.ensure_schema(fresh)
    monkeypatch.setenv(encryption.ENV_DB_CRYPTO, "sideways")
    with pytest.raises(ConfigError, match="AUTERITY_DB_CRYPTO='sideways' must be one of"):
        warehouse.ensure_schema(fresh)


def test_a_postgresql_url_that_requires_tls_reaches_the_driver(pg_server: str) -> None:
    """The local test server has no TLS: ``sslmode=require`` must fail, and say why."""
    with warehouse.connect(pg_server) as conn:
        assert conn.execute(sa.text("SHOW ssl")).scalar() == "off"
    tls = f"{PG_SERVER_URL}?sslmode=require&connect_timeout=5"
    with pytest.raises(DatabaseUnavailable) as refused, warehouse.connect(tls):
        pass
    message = str(refused.value)
    assert "sslmode=require" in message
    assert "server does not support SSL, but SSL was required" in message
