"""parameters/sources.yml: your own tables (DDL, validation, metrics) and its checks."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from auterity import ingest, metrics, warehouse
from auterity.errors import ConfigError
from auterity.ingest import sources
from auterity.warehouse import custom
from conftest import read_table

TICKETS = """
# --- sources ---
tables:
  support_tickets:
    description: One row per support ticket.
    primary_key: ticket_id
    time_column: opened_at
    columns:
      ticket_id: {type: string, required: true}
      customer_id: string(64)
      opened_at: {type: timestamp, required: true}
      priority: {type: string, allowed: [low, normal, high]}
      minutes: {type: float, min: 0}
      reopened: boolean
      cost: decimal(10,2)
files:
  support_tickets:
    columns: {Ticket: ticket_id, Opened: opened_at}
"""

METRICS = """
dimensions:
  priority: {table: support_tickets, column: priority, label: Priority}
metrics:
  tickets:
    label: Tickets
    table: support_tickets
    time_column: opened_at
    aggregate: count
    dimensions: [priority, region, segment]
    unit: count
    good: down
  minutes_per_ticket:
    table: support_tickets
    time_column: opened_at
    aggregate: avg
    column: minutes
    dimensions: [priority, region]
    unit: number
    good: down
"""


@pytest.fixture
def declared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sources file declaring support_tickets, named by AUTERITY_SOURCES_FILE."""
    path = tmp_path / "sources.yml"
    path.write_text(TICKETS)
    monkeypatch.setenv("AUTERITY_SOURCES_FILE", str(path))
    return path


@pytest.fixture(params=["duckdb", "postgres"])
def wh(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The warehouse: the embedded DuckDB file, or a PostgreSQL database."""
    if request.param == "duckdb":
        return os.environ["AUTERITY_DB_URL"]
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("AUTERITY_DB_URL", url)
    return url


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3"],
            "signup_ts": ["2026-01-01"] * 3,
            "region": ["EMEA", "NA", "EMEA"],
            "segment": ["smb", "enterprise", "enterprise"],
        }
    )


def _tickets() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticket_id": ["t1", "t2", "t3", "t4", "t5", "t6", "t7"],
            "customer_id": ["c1", "c2", "c3", "c1", None, "c2", "c1"],
            "opened_at": [
                "2026-10-01 09:00",
                "2026-10-01 10:00",
                "2026-10-01 23:30",
                "2026-10-02 08:00",
                "2026-10-02 09:00",
                "2026-10-03 12:00",
                "2026-10-03 13:00",
            ],
            "priority": ["high", "low", "high", "normal", "low", "urgent", "high"],
            "minutes": [30, 10, 50, 20, 5, 1, -4],
            "reopened": [True, False, None, "true", "false", False, True],
            "cost": ["1.25", 2, None, 3.5, 0, 1, 1],
        }
    )


def test_declared_table_is_created_loaded_validated_and_measured(declared: Path, wh: str) -> None:
    assert custom.ensure_custom_tables(wh) == {"support_tickets": ["created"]}
    assert custom.ensure_custom_tables(wh) == {}  # idempotent
    ingest.load("customers", _customers(), source="test", url=wh)
    result = ingest.load("support_tickets", _tickets(), source="test", url=wh)
    # t6 (priority urgent) and t7 (negative minutes) are quarantined by the declared rules
    assert result.counts() == {
        "read": 7,
        "inserted": 5,
        "updated": 0,
        "unchanged": 0,
        "quarantined": 2,
    }
    reasons = read_table(wh, "quarantine").set_index("row_number")["reason"]
    assert "priority: not one of low, normal, high" in reasons[5]
    assert "minutes: negative" in reasons[6]
    rows = read_table(wh, "support_tickets").set_index("ticket_id").sort_index()
    assert list(rows.index) == ["t1", "t2", "t3", "t4", "t5"]
    assert list(rows["reopened"]) == [True, False, None, True, False]
    assert [None if pd.isna(c) else float(c) for c in rows["cost"]] == [1.25, 2.0, None, 3.5, 0.0]
    again = ingest.load("support_tickets", _tickets(), source="test", url=wh)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 5)

    catalog = _catalog(declared.parent)
    by_priority = metrics.query(
        ["tickets"],
        start=date(2026, 10, 1),
        end=date(2026, 10, 3),
        by=["priority"],
        catalog=catalog,
        url=wh,
    )
    counts = {
        (str(p.date()), prio): int(n)
        for p, prio, n in by_priority[["period", "priority", "tickets"]].itertuples(index=False)
    }
    assert counts == {
        ("2026-10-01", "high"): 2,
        ("2026-10-01", "low"): 1,
        ("2026-10-01", "normal"): 0,
        ("2026-10-02", "high"): 0,
        ("2026-10-02", "low"): 1,
        ("2026-10-02", "normal"): 1,
    }
    by_region = metrics.query(
        ["tickets", "minutes_per_ticket"],
        start=date(2026, 10, 1),
        end=date(2026, 10, 3),
        grain=None,
        by=["region"],
        catalog=catalog,
        url=wh,
    )
    got = {
        r.region: (int(r.tickets), float(r.minutes_per_ticket))
        for r in by_region.itertuples(index=False)
    }
    # t5 has no customer: its region is empty (still counted, not dropped)
    assert {k: v for k, v in got.items() if isinstance(k, str)} == {
        "EMEA": (3, (30 + 50 + 20) / 3),
        "NA": (1, 10.0),
    }
    assert sum(v[0] for v in got.values()) == 5
    assert metrics.dimension_values("priority", catalog=catalog, url=wh) == [
        "high",
        "low",
        "normal",
    ]


def _catalog(folder: Path) -> metrics.Catalog:
    extra = folder / "ticket_metrics.yml"
    extra.write_text(METRICS)
    return metrics.load_catalog([Path("parameters/metrics.yml").resolve(), extra])


def test_metric_on_an_undeclared_table_says_where_to_declare(tmp_path: Path) -> None:
    extra = tmp_path / "m.yml"
    extra.write_text(
        "metrics:\n  tickets:\n    table: my_table\n    time_column: ts\n    aggregate: count\n"
    )
    with pytest.raises(ConfigError, match=r"'my_table' is not a warehouse table .*tables: in"):
        metrics.load_catalog([extra])


def test_migration_safe_ddl(declared: Path, wh: str) -> None:
    custom.ensure_custom_tables(wh)
    ingest.load(
        "support_tickets",
        pd.DataFrame({"ticket_id": ["t1"], "opened_at": ["2026-10-01"]}),
        source="test",
        url=wh,
    )
    declared.write_text(
        TICKETS.replace(
            "      cost: decimal(10,2)\n", "      cost: decimal(10,2)\n      team: text\n"
        )
    )
    assert custom.ensure_custom_tables(wh) == {"support_tickets": ["added column team"]}
    assert read_table(wh, "support_tickets")["team"].isna().all()
    for change, message in [
        (("minutes: {type: float, min: 0}", "minutes: integer"), "minutes: the warehouse column"),
        (("primary_key: ticket_id", "primary_key: [ticket_id, customer_id]"), "primary_key"),
        (
            ("reopened: boolean", "reopened: boolean\n      must: {type: text, required: true}"),
            "cannot be required",
        ),
    ]:
        declared.write_text(TICKETS.replace(*change))
        with pytest.raises(ConfigError, match=message):
            custom.ensure_custom_tables(wh)
    assert len(read_table(wh, "support_tickets")) == 1  # nothing was lost


def test_declared_tables_stay_out_of_the_contracts_metadata(declared: Path) -> None:
    tables = custom.custom_tables()
    assert list(tables) == ["support_tickets"]
    assert "support_tickets" not in warehouse.schema.metadata.tables
    table = tables["support_tickets"]
    assert table.c.minutes.info == {"min": 0}
    assert table.c.priority.info == {"allowed": ("low", "normal", "high")}
    assert table.info["time_column"] == "opened_at"
    assert not table.c.opened_at.nullable and table.c.customer_id.type.length == 64
    assert custom.custom_tables() is tables  # parsed once per version of the file
    assert sources.file_column_map("support_tickets") == {
        "Ticket": "ticket_id",
        "Opened": "opened_at",
    }
    assert sources.file_column_map("orders") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope: {}", r"unknown key\(s\) nope \(known: databases, files, tables, telemetry\)"),
        ("tables:\n  orders: {columns: {a: string}, primary_key: a}", "tables: orders: is a table"),
        (
            "tables:\n  t: {columns: {a: strin}, primary_key: a}",
            "tables: t: columns: a: type: 'strin' is not a type",
        ),
        ("tables:\n  t: {columns: {a: string}, primary_key: b}", "primary_key: 'b' is not one"),
        (
            "tables:\n  t: {columns: {a: string, b: {type: text, min: 1}}, primary_key: a}",
            "b: min: only numeric columns",
        ),
        (
            "tables:\n  t: {columns: {a: string}, primary_key: a, time_column: a}",
            "time_column: 'a' must be a timestamp",
        ),
        ("files:\n  orders: {columns: {X: nope}}", "files: orders: columns: X: orders has no col"),
        ("files:\n  nope: {columns: {X: y}}", "files: nope: not a data table"),
        (
            "databases:\n  s: {url_env: U, tables: {orders: {table: o}}}",
            "databases: s: tables: orders: cursor: expected",
        ),
        (
            "databases:\n  s: {url_env: U, tables: {orders: {table: o, query: q, cursor: c}}}",
            "give exactly one of table",
        ),
        (
            "databases:\n  s: {url_env: 'postgresql://x', tables: {}}",
            "url_env: expected the name of the environment variable",
        ),
        (
            "databases:\n  s: {url_env: U, tables: {orders: {table: o, cursor: c, "
            "columns: {id: order_id}}}}",
            "nothing maps to the required column",
        ),
        (
            "databases:\n  s: {url_env: U, tables: {orders: {table: o, cursor: c, colums: {}}}}",
            r"unknown key\(s\) colums",
        ),
    ],
)
def test_mistakes_are_one_line_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sources.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        sources.load_sources(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_shipped_file_and_its_commented_example_are_valid(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[1] / "parameters" / "sources.yml"
    sources.load_sources(shipped)  # telemetry (if any) is left to its own reader
    example = shipped.read_text().split("# --- sources ---\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(example) if line == "# tables:")
    uncommented = tmp_path / "example.yml"
    uncommented.write_text("\n".join(line[2:] for line in example[start:]) + "\n")
    declared = sources.load_sources(uncommented)
    assert list(declared.tables) == ["support_tickets"]
    assert declared.files["orders"]["Total"] == "amount"
    shop = declared.databases["shop"]
    assert list(shop.tables) == ["customers", "orders", "support_tickets"]
    assert shop.tables["orders"].deleted == sources.Deleted("deleted")
    assert shop.tables["customers"].key == ("account_id",)
    parsed = sources.parse_sources({"telemetry": {"anything": 1}}, Path("x.yml"))
    assert parsed.databases == {} and parsed.tables == {}


def test_no_sources_file_means_only_the_contract(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUTERITY_SOURCES_FILE", str(tmp_path / "absent.yml"))
    assert custom.custom_tables() == {}
    assert custom.data_table_names() == list(warehouse.schema.DATA_TABLES)
    with pytest.raises(ConfigError, match="'tickets' is not a data table"):
        custom.data_table("tickets")
    assert isinstance(custom.data_table("orders"), sa.Table)


def test_db_upgrade_creates_declared_tables(declared: Path, capsys) -> None:
    from auterity.cli import main

    assert main(["db", "upgrade"]) == 0
    assert "support_tickets: created" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert "support_tickets" not in capsys.readouterr().out
