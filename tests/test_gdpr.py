"""GDPR export and erasure against a real DuckDB warehouse with a real report run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import sqlalchemy as sa

from auterity import access, ingest, reports, warehouse
from auterity.cli import main
from auterity.privacy import gdpr
from auterity.warehouse import cache, schema

REPO = Path(__file__).parents[1]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with demo data, one report that shows a customer, and a bad row."""
    root = tmp_path / "project"
    (root / "parameters").mkdir(parents=True)
    for name in ("metrics.yml", "slos.yml", "access.yml", "sources.yml"):
        shutil.copy(REPO / "parameters" / name, root / "parameters" / name)
    (root / "pyproject.toml").write_text("")
    monkeypatch.setenv("AUTERITY_HOME", str(root))
    monkeypatch.setenv("AUTERITY_PII_KEY", "g" * 40)
    assert main(["demo-data", "--events", "2000", "--months", "3", "--no-effects", "--quiet"]) == 0
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('customer: str = ""  # who', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import sqlalchemy as sa\nfrom auterity.warehouse import cache, schema\n"
            "c = schema.customers\n"
            "cache.fetch(sa.select(c.c.customer_id, c.c.email, c.c.name)"
            ".order_by(c.c.customer_id).limit(5))"
        ),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    (root / "notebooks").mkdir()
    nbformat.write(nb, root / "notebooks" / "customers.ipynb")
    return root


def _someone() -> dict:
    """A customer with orders and model requests (the first by id, as the report shows)."""
    with warehouse.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT c.customer_id, c.email, c.name FROM customers c "
                "WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id) "
                "ORDER BY c.customer_id LIMIT 1"
            )
        ).one()
    return dict(row._mapping)


def _holding(values: list[str]) -> dict[str, int]:
    """Rows of every table of the warehouse whose text holds any of ``values``."""
    found = {}
    with warehouse.connect() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
                )
            )
        ]
        for table in tables:
            hits = conn.execute(
                sa.text(
                    f'SELECT count(*) FROM "{table}" t WHERE '
                    + " OR ".join(
                        f"contains(CAST(t AS VARCHAR), :v{i})" for i in range(len(values))
                    )
                ),
                {f"v{i}": v for i, v in enumerate(values)},
            ).scalar_one()
            if hits:
                found[table] = hits
    return found


def _totals() -> dict:
    with warehouse.connect() as conn:
        return dict(
            conn.execute(
                sa.text(
                    "SELECT sum(amount) AS revenue, count(*) AS orders, "
                    "count(DISTINCT customer_id) AS buyers, "
                    "(SELECT count(*) FROM inference_events) AS requests FROM orders"
                )
            )
            .one()
            ._mapping
        )


def test_export_then_erase_leaves_nothing_and_aggregates_add_up(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    who = _someone()
    values = [who["customer_id"], who["email"], who["name"]]
    # a quarantined row that names them, a report run that shows them
    bad = pd.DataFrame(
        [
            {
                "order_id": "o-bad",
                "customer_id": who["customer_id"],
                "ts": "2026-10-01T10:00:00",
                "amount": -5,
                "currency": "USD",
                "status": "completed",
            }
        ]
    )
    assert ingest.load("orders", bad, source="test").quarantined == 1
    run = reports.run("customers", pdf=False)
    assert run.ok, run.error_message
    assert who["email"] in Path(run.outputs["html"]).read_text()
    before = _totals()
    shown = cache.fetch(
        sa.select(schema.customers.c.email).where(
            schema.customers.c.customer_id == who["customer_id"]
        )
    )
    assert list(shown["email"]) == [who["email"]]  # now cached

    out = project / "export.json"
    assert main(["gdpr", "export", "--customer", who["customer_id"], "--out", str(out)]) == 0
    exported = json.loads(out.read_text())
    assert exported["tables"]["customers"][0]["email"] == who["email"]
    with warehouse.connect() as conn:
        orders = conn.execute(
            sa.text("SELECT count(*) FROM orders WHERE customer_id = :c"), {"c": who["customer_id"]}
        ).scalar_one()
    assert len(exported["tables"]["orders"]) == orders > 0
    assert [q["batch_id"] for q in exported["quarantine"]] and exported["report_runs"][0][
        "run_id"
    ] == run.run_id

    assert main(["gdpr", "erase", "--customer", who["customer_id"], "--yes"]) == 0
    said = capsys.readouterr().out
    assert "erased: 1 customer row" in said and "1 report runs deleted" in said
    assert _holding(values) == {}  # no table, quarantine, audit log or meta row holds them
    assert not Path(run.output_dir).exists()
    reports_text = " ".join(
        p.read_text(errors="replace") for p in (project / "reports").rglob("*") if p.is_file()
    )
    assert not any(v in reports_text for v in values)
    after = _totals()
    assert after["revenue"] == before["revenue"] and after["orders"] == before["orders"]
    assert after["buyers"] == before["buyers"] and after["requests"] == before["requests"]
    again = cache.fetch(
        sa.select(schema.customers.c.email).where(
            schema.customers.c.customer_id == who["customer_id"]
        )
    )
    assert again.empty  # the cached answer did not survive
    wal = Path(str(warehouse.duckdb_path(warehouse.database_url()))).with_suffix(".duckdb.wal")
    assert not wal.exists() or not any(v.encode() in wal.read_bytes() for v in values)
    trail = access.audit_trail(action="gdpr.")
    assert list(trail["action"]) == ["gdpr.erase", "gdpr.export"]
    assert set(trail["object_id"]) == {access.pseudonym(who["customer_id"], "customer")}
    assert trail.iloc[0]["details"]["deleted"] == {"customers": 1, "quarantine": 1}
    # erased means gone: asking again is an unknown customer
    assert main(["gdpr", "export", "--customer", who["customer_id"]]) == 2
    assert f"no customer {who['customer_id']!r}" in capsys.readouterr().err


def test_gdpr_needs_the_permission_once_there_are_users(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    who = _someone()
    access.add_user("root", "admin", "correct horse battery")
    access.add_user("vic", "viewer", "correct horse battery", actor="root")
    assert main(["gdpr", "erase", "--customer", who["customer_id"], "--yes", "--as", "vic"]) == 2
    assert "may not handle GDPR requests" in capsys.readouterr().err
    assert main(["gdpr", "export", "--customer", who["customer_id"], "--as", "root"]) == 0
    assert json.loads(capsys.readouterr().out)["customer_id"] == who["customer_id"]
    # the quarantine holds raw rows (personal data too): only for roles with pii
    assert main(["db", "quarantine", "--as", "vic"]) == 2
    assert "may not read the quarantine" in capsys.readouterr().err
    assert main(["db", "quarantine", "--format", "json", "--as", "root"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # read, and nothing is quarantined here
    assert main(["gdpr", "erase", "--customer", "nobody-at-all", "--yes"]) == 2
    assert "no customer 'nobody-at-all'" in capsys.readouterr().err
    with pytest.raises(Exception, match="give a customer id"):
        gdpr.subject(" ")
