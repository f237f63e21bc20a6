"""``auterity gdpr``: export everything held about a customer, or erase them."""

from __future__ import annotations

from pathlib import Path

import click

from auterity import _json
from auterity.cli.main import cli
from auterity.cli.output import AS_USER, require
from auterity.privacy import gdpr as gdpr_requests


def _may_handle(as_user: str | None) -> str | None:
    """The acting user, who needs the gdpr permission once the warehouse has users."""
    return require(as_user, "gdpr", "handle GDPR requests")


@cli.group("gdpr")
def gdpr() -> None:
    """GDPR requests about one customer: export what is held, or erase it.

    Both are audit rows that never hold the customer's id, email or name. Handling them
    needs the gdpr permission once the warehouse has users (--as).
    """


@gdpr.command("export")
@click.option("--customer", "customer_id", required=True, metavar="ID", help="The customer id.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON here (default: standard output).",
)
@AS_USER
def export_cmd(customer_id: str, out: Path | None, as_user: str | None) -> None:
    """Everything held about customer ID (every table, quarantine, report runs) as JSON."""
    acting = _may_handle(as_user)
    data = gdpr_requests.export(customer_id, actor=acting)
    text = _json.dumps(data, indent=1)
    if out is None:
        click.echo(text)
        return
    out.write_text(text + "\n", encoding="utf-8")
    rows = sum(len(r) for r in data["tables"].values())
    click.echo(
        f"wrote {out}: {rows} rows, {len(data['quarantine'])} quarantined, "
        f"{len(data['report_runs'])} report runs",
        err=True,
    )


@gdpr.command("erase")
@click.option("--customer", "customer_id", required=True, metavar="ID", help="The customer id.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@AS_USER
def erase_cmd(customer_id: str, yes: bool, as_user: str | None) -> None:
    """Erase customer ID: their row deleted, their events anonymised (aggregates still add
    up), quarantined rows and report runs that show them deleted, caches cleared."""
    acting = _may_handle(as_user)
    gdpr_requests.subject(customer_id)  # refuses an unknown customer before asking
    if not yes:
        click.confirm(f"Erase customer {customer_id} everywhere? This cannot be undone", abort=True)
    done = gdpr_requests.erase(customer_id, actor=acting)
    anonymised = sum(done.anonymised.values())
    click.echo(
        f"erased: {done.deleted.get('customers', 0)} customer row, {anonymised} events "
        f"anonymised as {done.token}, {done.deleted.get('quarantine', 0)} quarantined rows "
        f"and {done.report_runs} report runs deleted"
    )
