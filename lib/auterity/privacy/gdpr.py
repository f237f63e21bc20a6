"""GDPR requests: everything held about a customer (export), and their erasure.

:func:`export` gathers every row that names the customer: their ``customers`` row, their
orders, product events and model requests, rows of declared tables with their
``customer_id``, quarantined rows that mention their id, email or name, and the kept
report runs whose files show any of them.

:func:`erase` removes the customer from all of it, in one transaction on the warehouse:

* the ``customers`` row (email, name, country...) is **deleted**;
* their events are **kept, anonymised**: ``customer_id`` becomes a random token
  (``erased-3f9a1c0b7d2e4a51``) that nothing links back to the customer, the same in every
  table, so revenue, order counts, conversion and distinct-customer counts still add up
  (the choice: aggregates stay true, the person is gone);
* quarantined rows mentioning their id, email or name are **deleted**;
* kept report runs whose files (HTML, notebook, CSV) show any of them are **deleted**
  (all of that run's files, PDF included) and marked pruned;
* the data version is bumped and the result cache cleared, so no cached answer keeps them;
  on DuckDB a checkpoint folds the write-ahead log into the file.

Both are ``audit_log`` rows (``gdpr.export``, ``gdpr.erase``) that never hold the
customer's id, email or name: a keyed pseudonym of the id stands for the request.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from auterity import access, warehouse
from auterity._json import json_value
from auterity._time import utcnow
from auterity.config import reports_dir
from auterity.errors import ConfigError
from auterity.reports import runs as report_runs
from auterity.warehouse import cache, custom, schema
from auterity.warehouse.writes import audit, mark_data_changed

ARTIFACT_SUFFIXES = (".html", ".ipynb", ".csv", ".json", ".md", ".txt")
"""Report files scanned for the customer (a PDF is printed from the HTML beside it)."""


@dataclass(frozen=True)
class Subject:
    """The customer a request is about and the values that identify them."""

    customer_id: str
    email: str | None = None
    name: str | None = None

    @property
    def identifiers(self) -> list[str]:
        """The id, email and name (those that are known)."""
        return [v for v in (self.customer_id, self.email, self.name) if v]


@dataclass
class Erasure:
    """What :func:`erase` changed."""

    token: str
    anonymised: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    report_runs: int = 0


def _tables_with_customers() -> dict[str, sa.Table]:
    """Data tables (contract and declared) whose rows name a customer."""
    tables = {
        name: schema.metadata.tables[name]
        for name in schema.DATA_TABLES
        if name != "customers" and "customer_id" in schema.metadata.tables[name].c
    }
    tables.update({n: t for n, t in custom.custom_tables().items() if "customer_id" in t.c})
    return tables


def subject(customer_id: str, url: str | None = None) -> Subject:
    """The customer ``customer_id`` with their email and name, if the warehouse knows them.

    Raises
    ------
    ConfigError
        No table of the warehouse names this customer.
    """
    if not customer_id or not customer_id.strip():
        raise ConfigError("--customer: give a customer id")
    c = schema.customers
    with warehouse.connect(url) as conn:
        row = conn.execute(
            sa.select(c.c.email, c.c.name).where(c.c.customer_id == customer_id)
        ).first()
        if row is None:
            named = any(
                conn.execute(
                    sa.select(sa.literal(1)).where(t.c.customer_id == customer_id).limit(1)
                ).first()
                for t in _tables_with_customers().values()
            )
            if not named:
                raise ConfigError(f"no customer {customer_id!r} in the warehouse")
            return Subject(customer_id)
    return Subject(customer_id, row.email, row.name)


def _mentions(column: sa.ColumnElement[Any], who: Subject) -> sa.ColumnElement[bool]:
    """Rows whose JSON text holds one of the subject's values as a whole JSON string."""
    quoted = [json.dumps(v) for v in who.identifiers]
    return sa.or_(*(column.contains(q, autoescape=True) for q in quoted))


def _runs_showing(who: Subject, url: str | None) -> list[dict[str, Any]]:
    """Kept report runs whose files show the subject's id, email or name."""
    r = schema.report_runs
    with warehouse.connect(url) as conn:
        rows = conn.execute(
            sa.select(r.c.run_id, r.c.notebook, r.c.parameter_set, r.c.started_at, r.c.output_dir)
            .where(r.c.pruned.is_(False), r.c.status != "running")
            .order_by(r.c.started_at)
        ).all()
    root = reports_dir().resolve()
    found = []
    for row in rows:
        folder = Path(row.output_dir or "").resolve()
        if not row.output_dir or root not in folder.parents or not folder.is_dir():
            continue
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in ARTIFACT_SUFFIXES)
        showing = [
            str(p)
            for p in files
            if any(v in p.read_text(encoding="utf-8", errors="replace") for v in who.identifiers)
        ]
        if showing:
            found.append({**row._asdict(), "files": showing, "folder": str(folder)})
    return found


def _request_id(who: Subject) -> str:
    """What the audit row records instead of the customer: a keyed pseudonym of the id."""
    return str(access.pseudonym(who.customer_id, "customer"))


def export(customer_id: str, *, actor: str | None = None, url: str | None = None) -> dict[str, Any]:
    """Everything held about a customer, as JSON-ready data.

    Returns
    -------
    dict
        ``customer_id``, ``exported_at``, ``tables`` (table -> rows, ``customers``
        first), ``quarantine`` (rows mentioning them) and ``report_runs`` (runs whose
        files show them, with those files).
    """
    who = subject(customer_id, url)
    tables: dict[str, list[dict[str, Any]]] = {}
    c, q = schema.customers, schema.quarantine
    with warehouse.connect(url) as conn:
        tables["customers"] = [
            dict(r)
            for r in conn.execute(sa.select(c).where(c.c.customer_id == customer_id)).mappings()
        ]
        for name, table in _tables_with_customers().items():
            tables[name] = [
                dict(r)
                for r in conn.execute(
                    sa.select(table).where(table.c.customer_id == customer_id)
                ).mappings()
            ]
        quarantined = [
            dict(r) for r in conn.execute(sa.select(q).where(_mentions(q.c.raw, who))).mappings()
        ]
    shown = [{k: v for k, v in run.items() if k != "folder"} for run in _runs_showing(who, url)]
    with warehouse.connect(url, write=True) as conn:
        audit(
            conn,
            "gdpr.export",
            actor=actor,
            object_type="customer",
            object_id=_request_id(who),
            details={
                "rows": {name: len(rows) for name, rows in tables.items()},
                "quarantine": len(quarantined),
                "report_runs": len(shown),
            },
        )
    return json_value(
        {
            "customer_id": customer_id,
            "exported_at": utcnow(),
            "tables": tables,
            "quarantine": quarantined,
            "report_runs": shown,
        }
    )


def erase(customer_id: str, *, actor: str | None = None, url: str | None = None) -> Erasure:
    """Delete or irreversibly anonymise the customer everywhere (see the module doc).

    Returns
    -------
    Erasure
        The token their events now carry and how many rows and runs changed.
    """
    who = subject(customer_id, url)
    result = Erasure(token=f"erased-{secrets.token_hex(8)}")
    c, q = schema.customers, schema.quarantine
    with warehouse.connect(url, write=True) as conn:
        for name, table in _tables_with_customers().items():
            changed = conn.execute(
                sa.update(table)
                .where(table.c.customer_id == customer_id)
                .values(customer_id=result.token)
            )
            result.anonymised[name] = int(changed.rowcount)
        result.deleted["customers"] = int(
            conn.execute(sa.delete(c).where(c.c.customer_id == customer_id)).rowcount
        )
        result.deleted["quarantine"] = int(
            conn.execute(sa.delete(q).where(_mentions(q.c.raw, who))).rowcount
        )
        mark_data_changed(conn, rollups_unaffected=True)  # they hold no customer
    runs = _runs_showing(who, url)
    for run in runs:
        shutil.rmtree(run["folder"], ignore_errors=True)
    if runs:
        r = schema.report_runs
        with warehouse.connect(url, write=True) as conn:
            conn.execute(
                sa.update(r).where(r.c.run_id.in_([x["run_id"] for x in runs])).values(pruned=True)
            )
        report_runs.write_index(url)
    result.report_runs = len(runs)
    cache.clear()
    with warehouse.connect(url, write=True) as conn:
        audit(
            conn,
            "gdpr.erase",
            actor=actor,
            object_type="customer",
            object_id=_request_id(who),
            details={
                "token": result.token,
                "anonymised": result.anonymised,
                "deleted": result.deleted,
                "report_runs": result.report_runs,
            },
        )
    if warehouse.database_url(url).get_backend_name() == "duckdb":
        warehouse.checkpoint(url)
    return result
