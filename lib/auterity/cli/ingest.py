"""``auterity ingest``: load CSV, Parquet and JSON Lines files into a warehouse table."""

from __future__ import annotations

import time
from pathlib import Path

import click

from auterity import redact, warehouse
from auterity.cli.main import cli
from auterity.cli.output import FORMATS, echo_json
from auterity.errors import ConfigError
from auterity.ingest import COUNTS, BatchResult, files


def _column_map(items: tuple[str, ...]) -> dict[str, str]:
    """``--map src=dst`` options as a mapping; one clear line for a malformed one."""
    mapping: dict[str, str] = {}
    for item in items:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ConfigError(f"--map {item!r}: expected FILE_COLUMN=TABLE_COLUMN")
        mapping[src.strip()] = dst.strip()
    return mapping


@cli.command("ingest")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--table", "-t", required=True, help="The warehouse table to load into.")
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="SRC=DST",
    help="Load the file column SRC into the table column DST (repeatable).",
)
@click.option(
    "--input-format",
    type=click.Choice(["csv", "parquet", "jsonl"]),
    help="File format; default from each file's suffix (.csv, .parquet, .jsonl, ...).",
)
@click.option(
    "--encoding",
    type=click.Choice(list(files.ENCODINGS)),
    default="utf-8",
    show_default=True,
    help="Text encoding of CSV and JSON Lines files.",
)
@click.option(
    "--deleted-column",
    metavar="COLUMN",
    help="A (mapped) column that is true where the source marks a row deleted.",
)
@click.option("--quiet", is_flag=True, help="No progress lines.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def ingest_cmd(
    paths: tuple[str, ...],
    table: str,
    maps: tuple[str, ...],
    input_format: str | None,
    encoding: str,
    deleted_column: str | None,
    quiet: bool,
    fmt: str,
) -> None:
    """Load files (paths or glob patterns) into TABLE: checked, quarantined, upserted.

    Each file is one transaction: rows that break the data contract go to the
    quarantine table with every reason, valid rows are inserted or update the row with
    their key, and loading a file again changes nothing. With --format json, prints the
    totals: read, inserted, updated, unchanged, quarantined.
    """
    column_map = _column_map(maps)
    found = files.expand(paths)
    url = warehouse.database_url()
    if not quiet:
        click.echo(f"Loading {len(found)} file(s) into {table} of {redact.mask_url(url)}", err=True)
    started = time.perf_counter()
    done: list[tuple[Path, BatchResult, float]] = []
    last = [started]

    def on_file(path: Path, result: BatchResult) -> None:
        now = time.perf_counter()
        done.append((path, result, now - last[0]))
        if not quiet:
            counts = ", ".join(f"{k} {v:,}" for k, v in result.counts().items())
            click.echo(
                f"  [{len(done)}/{len(found)}] {path}: {counts} ({now - last[0]:.1f} s)",
                err=True,
            )
            for column, unknown in result.unknown_references.items():
                click.echo(
                    f"      note: {unknown['values']:,} {column} value(s) have no row in "
                    f"{unknown['table']} yet (e.g. {', '.join(map(str, unknown['examples']))})",
                    err=True,
                )
        last[0] = now

    def on_stage(path: Path, stage: str, seconds: float) -> None:
        if not quiet and stage in ("check", "merge"):
            done_as = {"check": "read and checked", "merge": "written"}
            click.echo(f"      {path.name}: {done_as[stage]} ({seconds:.1f} s)", err=True)

    try:
        files.load_files(
            table,
            [str(p) for p in found],
            column_map=column_map,
            input_format=input_format,
            encoding=encoding,
            deleted_column=deleted_column,
            url=url,
            on_file=on_file,
            on_stage=on_stage,
        )
    finally:
        totals = {k: sum(r.counts()[k] for _, r, _ in done) for k in COUNTS}
        if done and len(done) < len(found):
            click.echo(
                f"{len(done)} of {len(found)} file(s) were loaded before the error", err=True
            )
    if fmt == "json":
        echo_json(totals)
        return
    elapsed = time.perf_counter() - started
    rate = totals["read"] / elapsed * 60 if elapsed > 0 else 0.0
    for key in COUNTS:
        click.echo(f"{key:<12}{totals[key]:>14,}")
    click.echo(f"{len(done)} file(s) in {elapsed:.1f} s ({rate:,.0f} rows/min)")
    if totals["quarantined"]:
        click.echo(
            f"{totals['quarantined']:,} row(s) quarantined: see the quarantine table "
            "(auterity db quarantine)"
        )
