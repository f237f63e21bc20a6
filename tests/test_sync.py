"""`auterity sync`: a real PostgreSQL source with its own names, into DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from auterity import warehouse
from auterity.cli import main
from auterity.errors import ConfigError
from auterity.ingest import sync as syncing
from conftest import _create_pg_database, _drop_pg_database, read_table

T0 = datetime(2026, 10, 1, 9, 0)

SOURCES = """
tables:
  support_tickets:
    primary_key: ticket_id
    time_column: opened_at
    columns:
      ticket_id: {type: string, required: true}
      customer_id: string
      opened_at: {type: timestamp, required: true}
      priority: {type: string, allowed: [low, high]}
      minutes: {type: float, min: 0}

databases:
  shop:
    url_env: SHOP_TEST_URL
    tables:
      customers:
        table: crm_accounts
        cursor: modified_at
        columns: {account_id: customer_id, created: signup_ts, cc: country, zone: region}
      orders:
        table: public.shop_orders
        cursor: updated_at
        columns:
          id: order_id
          account: customer_id
          placed_at: ts
          total: amount
          cur: currency
          state: status
        deleted: is_deleted
      inference_events:
        query: >
          SELECT call_id, started, model, ms, tin, tout, outcome, seq FROM llm_calls
        cursor: seq
        columns:
          call_id: request_id
          started: ts
          model: model_id
          ms: latency_ms
          tin: input_tokens
          tout: output_tokens
          outcome: status
      support_tickets:
        table: helpdesk
        cursor: changed
        key: ticket_no
        columns: {ticket_no: ticket_id, acct: customer_id, opened: opened_at, prio: priority}
        deleted: {column: state, value: gone}
"""


def _source_schema(url: str, orders: int = 6) -> None:
    """The source database: business and model tables under their own names."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE crm_accounts (account_id text PRIMARY KEY, created timestamptz, "
            "cc text, zone text, modified_at timestamptz)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE shop_orders (id bigint PRIMARY KEY, account text, placed_at "
            "timestamp, total numeric(12,2), cur text, state text, is_deleted boolean "
            "DEFAULT false, updated_at timestamp)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE llm_calls (call_id text PRIMARY KEY, started timestamp, model text, "
            "ms double precision, tin int, tout int, outcome text, seq bigserial)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE helpdesk (ticket_no text PRIMARY KEY, acct text, opened timestamp, "
            "prio text, state text, changed timestamp)"
        )
        conn.execute(
            sa.text(
                "INSERT INTO crm_accounts VALUES (:a, :c, :cc, :z, :m)",
            ),
            [
                {"a": "c1", "c": "2026-01-01T00:00:00+02:00", "cc": "DE", "z": "EMEA", "m": T0},
                {"a": "c2", "c": "2026-02-01T00:00:00Z", "cc": "US", "z": "NA", "m": T0},
            ],
        )
        orders_rows = [
            {
                "i": i,
                "a": "c1" if i % 2 else "c2",
                "p": T0 + timedelta(hours=i),
                "t": 10 * i + 0.5,
                # two orders share each cursor value: ties across batch boundaries
                "u": T0 + timedelta(minutes=(i + 1) // 2),
            }
            for i in range(1, orders + 1)
        ]
        if orders_rows:
            conn.execute(
                sa.text(
                    "INSERT INTO shop_orders VALUES (:i, :a, :p, :t, 'EUR', 'completed', false, :u)"
                ),
                orders_rows,
            )
        conn.execute(
            sa.text(
                "INSERT INTO llm_calls (call_id, started, model, ms, tin, tout, outcome) "
                "VALUES (:c, :s, 'gpt', :ms, 10, 5, 'ok')"
            ),
            [{"c": f"r{i}", "s": T0 + timedelta(minutes=i), "ms": 100.0 + i} for i in range(4)],
        )
        conn.execute(
            sa.text("INSERT INTO helpdesk VALUES (:t, :a, :o, :p, 'open', :c)"),
            [
                {"t": "t1", "a": "c1", "o": T0, "p": "high", "c": T0},
                {"t": "t2", "a": "c2", "o": T0, "p": "low", "c": T0},
            ],
        )
    engine.dispose()


@pytest.fixture
def source(pg_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh source database and a sources file pointing at it (URL in an env var)."""
    url = _create_pg_database(pg_server)
    _source_schema(url)
    path = tmp_path / "sources.yml"
    path.write_text(SOURCES)
    monkeypatch.setenv("AUTERITY_SOURCES_FILE", str(path))
    monkeypatch.setenv("SHOP_TEST_URL", url)
    yield url
    _drop_pg_database(pg_server, url)


@pytest.fixture(params=["duckdb", "postgres"])
def wh(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The warehouse: the embedded DuckDB file, or a PostgreSQL database."""
    if request.param == "duckdb":
        return os.environ["AUTERITY_DB_URL"]
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("AUTERITY_DB_URL", url)
    return url


def _counts(outcomes: list[syncing.TableSync]) -> dict[str, dict[str, int]]:
    return {o.table: o.counts() for o in outcomes}


def _zero(read: int = 0) -> dict[str, int]:
    return {"read": read, "inserted": 0, "updated": 0, "unchanged": read, "quarantined": 0}


def _run(source_url: str, *statements: str) -> None:
    engine = sa.create_engine(source_url)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def test_sync_pulls_only_what_changed(source: str, wh: str) -> None:
    first = syncing.sync("shop", batch_rows=3, url=wh)
    assert [o.table for o in first] == [
        "customers",
        "orders",
        "inference_events",
        "support_tickets",
    ]
    assert _counts(first) == {
        "customers": {"read": 2, "inserted": 2, "updated": 0, "unchanged": 0, "quarantined": 0},
        "orders": {"read": 6, "inserted": 6, "updated": 0, "unchanged": 0, "quarantined": 0},
        "inference_events": {
            "read": 4,
            "inserted": 4,
            "updated": 0,
            "unchanged": 0,
            "quarantined": 0,
        },
        "support_tickets": {
            "read": 2,
            "inserted": 2,
            "updated": 0,
            "unchanged": 0,
            "quarantined": 0,
        },
    }
    assert first[1].batches == 2 and first[1].watermark == T0 + timedelta(minutes=3)
    customers = read_table(wh, "customers").set_index("customer_id")
    assert customers.loc["c1", "signup_ts"] == datetime(2025, 12, 31, 22, 0)  # to UTC
    assert customers.loc["c2", "region"] == "NA"
    orders = read_table(wh, "orders").set_index("order_id").sort_index()
    assert list(orders.index) == ["1", "2", "3", "4", "5", "6"]
    assert [float(a) for a in orders["amount"]] == [10.5, 20.5, 30.5, 40.5, 50.5, 60.5]
    assert set(orders["status"]) == {"completed"} and set(orders["currency"]) == {"EUR"}
    events = read_table(wh, "inference_events")
    assert sorted(events["latency_ms"]) == [100.0, 101.0, 102.0, 103.0]
    assert set(read_table(wh, "support_tickets")["priority"]) == {"high", "low"}

    # nothing changed in the source: nothing read
    assert _counts(syncing.sync("shop", url=wh)) == {t: _zero() for t in _counts(first)}

    later = T0 + timedelta(days=1)
    _run(
        source,
        f"UPDATE shop_orders SET total = 99.99, updated_at = '{later}' WHERE id = 2",
        f"UPDATE shop_orders SET is_deleted = true, updated_at = '{later}' WHERE id = 3",
        f"INSERT INTO shop_orders VALUES (7, 'c1', '{later}', 5, 'EUR', 'completed', false, "
        f"'{later}')",
        f"INSERT INTO shop_orders VALUES (8, 'c1', '{later}', -5, 'EUR', 'completed', false, "
        f"'{later}')",
        f"UPDATE helpdesk SET state = 'gone', changed = '{later}' WHERE ticket_no = 't2'",
        "INSERT INTO llm_calls (call_id, started, model, ms, tin, tout, outcome) "
        "VALUES ('r9', '2026-10-02', 'gpt', 7, 1, 1, 'ok')",
    )
    second = syncing.sync("shop", url=wh)
    assert _counts(second)["orders"] == {
        "read": 4,
        "inserted": 1,
        "updated": 2,
        "unchanged": 0,
        "quarantined": 1,
    }
    assert second[1].deleted == 1 and second[3].deleted == 1
    assert _counts(second)["inference_events"]["inserted"] == 1
    assert _counts(second)["customers"] == _zero()
    orders = read_table(wh, "orders").set_index("order_id")
    assert sorted(orders.index) == ["1", "2", "4", "5", "6", "7"]
    assert float(orders.loc["2", "amount"]) == 99.99
    assert list(read_table(wh, "support_tickets")["ticket_id"]) == ["t1"]
    quarantine = read_table(wh, "quarantine")
    assert len(quarantine) == 1
    assert quarantine.iloc[0]["table_name"] == "orders"
    assert quarantine.iloc[0]["source"] == "sync:shop"
    assert "amount" in quarantine.iloc[0]["reason"]
    assert json.loads(quarantine.iloc[0]["raw"])["order_id"] in (8, "8")

    # a row committed late with the watermark's very cursor value is not missed
    _run(
        source,
        f"INSERT INTO shop_orders VALUES (0, 'c2', '{later}', 1, 'EUR', 'completed', false, "
        f"'{later}')",
    )
    late = syncing.sync("shop", tables=["orders"], url=wh)
    assert _counts(late) == {
        "orders": {"read": 1, "inserted": 1, "updated": 0, "unchanged": 0, "quarantined": 0}
    }
    # --full reads everything again and changes nothing
    full = syncing.sync("shop", tables=["orders"], full=True, url=wh)
    assert _counts(full)["orders"]["inserted"] == 0
    assert _counts(full)["orders"]["updated"] == 0
    assert _counts(full)["orders"]["unchanged"] == 8  # the deleted order 3 stays away
    assert _counts(full)["orders"]["quarantined"] == 1
    assert syncing.watermark("shop", "orders", url=wh) == later


def test_cli_json_prints_exactly_the_counts(
    source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sync", "shop", "--table", "orders", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {
        "shop": {
            "orders": {"read": 6, "inserted": 6, "updated": 0, "unchanged": 0, "quarantined": 0}
        }
    }
    assert "orders: 6 rows" in captured.err
    assert main(["sync", "nope"]) == 2
    assert "no source 'nope' (declared: shop)" in capsys.readouterr().err


def test_source_url_problems_are_one_line_without_the_password(
    source: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SHOP_TEST_URL")
    assert main(["sync", "shop"]) == 2
    assert "SHOP_TEST_URL is not set" in capsys.readouterr().err
    monkeypatch.setenv("SHOP_TEST_URL", "postgresql+psycopg://bob:s3cr3t-pw@127.0.0.1:1/nowhere")
    assert main(["sync", "shop", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach postgresql+psycopg://bob:***@127.0.0.1:1/nowhere" in err
    assert "s3cr3t-pw" not in err and len(err.strip().splitlines()) == 1


def test_a_missing_source_column_is_named(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(
        "databases:\n  shop:\n    url_env: SHOP_TEST_URL\n    tables:\n      orders:\n"
        "        table: shop_orders\n        cursor: no_such_column\n"
        "        columns: {id: order_id, account: customer_id, placed_at: ts, total: amount,"
        " cur: currency, state: status}\n"
    )
    with pytest.raises(ConfigError, match="source 'shop', table orders: the source refused"):
        syncing.sync("shop", path=path)


def test_killed_mid_sync_resumes_with_nothing_lost_or_doubled(
    pg_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _create_pg_database(pg_server)
    try:
        _source_schema(url, orders=0)
        _run(
            url,
            "INSERT INTO shop_orders SELECT i, 'c1', timestamp '2026-10-01' + i * interval '1 "
            "second', i, 'EUR', 'completed', false, timestamp '2026-10-01' + (i / 7) * interval "
            "'1 minute' FROM generate_series(1, 30000) AS i",
        )
        path = tmp_path / "sources.yml"
        path.write_text(SOURCES)
        env = {
            **os.environ,
            "AUTERITY_SOURCES_FILE": str(path),
            "SHOP_TEST_URL": url,
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
        command = [
            sys.executable,
            "-c",
            "import sys; from auterity.cli import main; sys.exit(main(sys.argv[1:]))",
            "sync",
            "shop",
            "--table",
            "orders",
            "--batch-rows",
            "700",
        ]
        process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        committed = 0
        deadline = time.monotonic() + 120
        while committed < 3 and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            committed += "orders:" in line
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert committed == 3, "the sync ended before it could be killed"
        wh = os.environ["AUTERITY_DB_URL"]
        warehouse.dispose_engines()
        partial = read_table(wh, "orders")
        assert 2100 <= len(partial) < 30000
        assert len(partial) % 700 == 0  # whole batches only
        rerun = subprocess.run(
            [*command, "--format", "json"], env=env, capture_output=True, text=True, timeout=300
        )
        assert rerun.returncode == 0, rerun.stderr
        counts = json.loads(rerun.stdout)["shop"]["orders"]
        assert counts["inserted"] == 30000 - len(partial)
        assert counts["updated"] == counts["quarantined"] == 0
        orders = read_table(wh, "orders")
        assert len(orders) == orders["order_id"].nunique() == 30000
        assert sorted(orders["order_id"].astype(int)) == list(range(1, 30001))
    finally:
        _drop_pg_database(pg_server, url)
