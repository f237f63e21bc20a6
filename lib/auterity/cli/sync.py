"""``auterity sync``: pull what changed in source databases into the warehouse."""

from __future__ import annotations

import click
import pandas as pd

from auterity import redact, warehouse
from auterity.cli.main import cli
from auterity.cli.output import FORMATS, Progress, echo_json, emit
from auterity.ingest import sync as syncing


@cli.command("sync")
@click.argument("source", required=False)
@click.option(
    "--table",
    "tables",
    multiple=True,
    metavar="TABLE",
    help="Only this warehouse table (repeatable). Default: every table the source feeds.",
)
@click.option("--full", is_flag=True, help="Read every row again, ignoring the watermarks.")
@click.option(
    "--batch-rows",
    type=click.IntRange(min=1),
    default=syncing.DEFAULT_BATCH_ROWS,
    show_default=True,
    help="Rows per batch; each batch is one transaction, watermark included.",
)
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def sync_cmd(
    source: str | None,
    tables: tuple[str, ...],
    full: bool,
    batch_rows: int,
    quiet: bool,
    fmt: str,
) -> None:
    """Sync SOURCE (default: every source) from parameters/sources.yml (databases:).

    Reads only rows whose cursor column is at or past the table's watermark, in batches,
    each loaded (validated, quarantined, upserted, soft deletes applied) in the same
    transaction that moves the watermark: an interrupted sync resumes where it stopped.
    JSON output: {source: {table: {read, inserted, updated, unchanged, quarantined}}}.
    """
    url = warehouse.database_url()
    if not quiet:
        click.echo(f"Syncing into {redact.mask_url(url)}", err=True)
    progress = Progress({}, enabled=not quiet)
    try:
        outcomes = syncing.sync(
            source,
            tables=list(tables) or None,
            full=full,
            batch_rows=batch_rows,
            url=url,
            progress=progress,
        )
    finally:
        progress.close()
    if fmt == "json":
        out: dict[str, dict[str, dict[str, int]]] = {}
        for outcome in outcomes:
            out.setdefault(outcome.source, {})[outcome.table] = outcome.counts()
        echo_json(out)
        return
    frame = pd.DataFrame(
        [
            {"source": o.source, "table": o.table, **o.counts(), "deleted": o.deleted}
            for o in outcomes
        ]
    )
    emit(frame, "table")
