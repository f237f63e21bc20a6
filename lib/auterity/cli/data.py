"""``auterity demo-data`` and ``auterity db``: build the demo warehouse, upgrade, inspect."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from auterity import _time, access, config, ingest, redact, warehouse
from auterity.cli.main import cli
from auterity.cli.output import AS_USER, FORMATS, Progress, echo_json, resolve_as
from auterity.demo import generate as demo_data
from auterity.errors import AuterityError
from auterity.warehouse import convert, encryption, retention, rollups


@cli.command("demo-data")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed.")
@click.option(
    "--events",
    type=int,
    default=1_000_000,
    show_default=True,
    help="Approximate number of inference events; business volume scales with it.",
)
@click.option("--months", type=int, default=18, show_default=True, help="Months of history.")
@click.option(
    "--end",
    "end_text",
    metavar="YYYY-MM-DD",
    help="First day after the data (UTC). Default: today. Fix it for reproducible data.",
)
@click.option("--no-effects", is_flag=True, help="Plant no effects (for false-positive checks).")
@click.option(
    "--manifest",
    "manifest_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the manifest JSON. Default: data/demo_manifest.json.",
)
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def demo_data_cmd(
    seed: int,
    events: int,
    months: int,
    end_text: str | None,
    no_effects: bool,
    manifest_path: Path | None,
    quiet: bool,
    fmt: str,
) -> None:
    """Build the demo warehouse: deterministic synthetic business and ModelHub data.

    Replaces the analysed data (run history and audit rows are kept) and writes a
    manifest of the planted effects. Readers keep working while it builds.
    """

    end = _time.parse_date(end_text) if end_text else _time.today_utc()
    cfg = demo_data.DemoConfig(
        seed=seed, events=events, months=months, end=end, effects=not no_effects
    )
    url = warehouse.database_url()
    started = time.perf_counter()
    world = demo_data.generate(cfg)
    if not quiet:
        click.echo(
            f"Building demo data (seed {seed}, {events:,} inference events, {months} months "
            f"to {end}) in {redact.mask_url(url)}",
            err=True,
        )
    progress = Progress(world.expected_rows, enabled=not quiet)
    target = manifest_path or config.data_dir() / "demo_manifest.json"
    try:
        manifest = demo_data.build(world, url=url, progress=progress, manifest_path=target)
    finally:
        progress.close()
    elapsed = time.perf_counter() - started
    summary = warehouse.table_summary(url)
    if fmt == "json":
        echo_json(
            {"manifest": manifest, "manifest_path": str(target), "seconds": elapsed, **summary}
        )
        return
    click.echo(_summary_text(summary, url=redact.mask_url(url)))
    click.echo(f"\nPlanted effects ({len(manifest['effects'])}), see {target}:")
    for effect in manifest["effects"]:
        click.echo(f"  - {effect['type']}: {effect['description']}")
    if not manifest["effects"]:
        click.echo("  (none: generated with --no-effects)")
    click.echo(f"\nBuilt in {elapsed:.1f} s.")


def _summary_text(summary: dict[str, dict[str, Any]], *, url: str) -> str:
    """A small table of row counts and time ranges."""
    lines = [f"Warehouse {url}", f"  {'table':<18}{'rows':>12}  first .. last (UTC)"]
    for table, info in summary.items():
        span = ""
        if info["first"] is not None:
            span = f"  {info['first']:%Y-%m-%d} .. {info['last']:%Y-%m-%d %H:%M}"
        lines.append(f"  {table:<18}{info['rows']:>12,}{span}")
    return "\n".join(lines)


@cli.group()
def db() -> None:
    """Warehouse administration: schema upgrades, a summary of what is loaded, encryption."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the schema or upgrade it to the newest revision (idempotent).

    Also creates the tables declared in parameters/sources.yml and adds their new columns.
    """

    url = warehouse.database_url()
    revision = warehouse.ensure_schema(url)
    click.echo(f"{redact.mask_url(url)} is at schema revision {revision}")
    for table, changes in warehouse.ensure_custom_tables(url).items():
        click.echo(f"  {table}: {', '.join(changes)}")


@db.command("info")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def db_info(fmt: str) -> None:
    """Show the warehouse URL (password masked), schema revision, table sizes, encryption."""

    url = warehouse.database_url()
    with warehouse.connect(url) as conn:
        revision = warehouse.current_revision(conn)
    if revision is None:
        raise AuterityError(
            f"{redact.mask_url(url)} has no Auterity schema yet; run `auterity db upgrade` "
            "or `auterity demo-data`"
        )
    summary = warehouse.table_summary(url)
    path = warehouse.duckdb_path(url)
    encrypted = encryption.is_encrypted(path) if path is not None else None
    if fmt == "json":
        echo_json(
            {
                "url": redact.mask_url(url),
                "revision": revision,
                "encrypted": encrypted,
                "tables": summary,
            }
        )
        return
    click.echo(_summary_text(summary, url=redact.mask_url(url)))
    click.echo(f"Schema revision {revision}, data version {warehouse.data_version(url)}")
    if encrypted is not None:
        click.echo(f"File encrypted at rest: {'yes' if encrypted else 'no'}")


def _convert_cmd(encrypt: bool, keep_backup: bool, quiet: bool) -> None:
    """``db encrypt`` / ``db decrypt``: convert, then say what was done."""
    url = warehouse.database_url()
    path = warehouse.duckdb_path(url)
    verb = "Encrypting" if encrypt else "Decrypting"
    if not quiet and path is not None and encryption.is_encrypted(path) != encrypt:
        size = path.stat().st_size / 1e6
        click.echo(f"{verb} {path} ({size:,.1f} MB) ...", err=True)
    run = convert.encrypt_warehouse if encrypt else convert.decrypt_warehouse
    done = run(keep_backup=keep_backup)
    rows = sum(done.tables.values())
    state = "encrypted" if encrypt else "no longer encrypted"
    click.echo(
        f"{done.path} is {state}: {len(done.tables)} tables, {rows:,} rows copied and "
        f"swapped in atomically in {done.seconds:.1f} s"
    )
    if done.backup is not None:
        kind = "UNENCRYPTED " if encrypt else ""
        click.echo(f"The old file is kept as {kind}backup {done.backup}; delete it once checked.")
    if encrypt and done.crypto == "builtin":
        click.echo(
            f"Written with DuckDB's built-in crypto ({encryption.ENV_DB_CRYPTO}=builtin); "
            "see Encryption at rest in the README."
        )
    if encrypt:
        click.echo(
            f"Every process that reads it needs {encryption.ENV_DB_KEY} (reports, dashboards, "
            "the scheduler)."
        )
    else:
        click.echo(f"Unset {encryption.ENV_DB_KEY} now: a plain file opened with a key is refused.")


_BACKUP_HELP = "Keep the old file beside the new one (default: it is replaced)."


@db.command("encrypt")
@click.option("--keep-backup", is_flag=True, help=_BACKUP_HELP + " It is NOT encrypted.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def db_encrypt(keep_backup: bool, quiet: bool) -> None:
    """Encrypt the DuckDB warehouse file at rest with the key in AUTERITY_DB_KEY.

    Copies every table into a new encrypted file (DuckDB's COPY FROM DATABASE), checks the
    row counts and replaces the old file atomically; readers and writers wait their turn.
    The key comes only from the environment (or .env), never from the command line.
    """
    _convert_cmd(True, keep_backup, quiet)


@db.command("decrypt")
@click.option("--keep-backup", is_flag=True, help=_BACKUP_HELP)
@click.option("--quiet", is_flag=True, help="No progress output.")
def db_decrypt(keep_backup: bool, quiet: bool) -> None:
    """Turn the encrypted DuckDB warehouse file (key in AUTERITY_DB_KEY) back into a plain one.

    Afterwards unset AUTERITY_DB_KEY.
    """
    _convert_cmd(False, keep_backup, quiet)


@db.command("quarantine")
@click.option("--table", "-t", help="Only rows meant for this table.")
@click.option("--source", help="Only rows from this source (a file path, sync:NAME, otlp).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=20, show_default=True)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@AS_USER
def db_quarantine(
    table: str | None, source: str | None, limit: int, fmt: str, as_user: str | None
) -> None:
    """Show the newest rows that failed the data contract on the way in, with reasons.

    The rows are shown raw, as they came (they failed the checks that make them safe to
    read through the metric layer), so once the warehouse has users only a role that
    sees personal data (pii) may read them.
    """

    acting = resolve_as(as_user)
    if acting is not None:
        _user, role = access.active_user(acting)
        if not role.pii:
            raise access.AccessDenied(
                f"{acting!r} (role {role.name}) may not read the quarantine: its raw rows "
                "may hold personal data"
            )
    rows = ingest.quarantined(table, source=source, limit=limit)
    if fmt == "json":
        echo_json(rows.to_dict("records"))
        return
    if rows.empty:
        click.echo("The quarantine is empty.")
        return
    for row in rows.itertuples():
        click.echo(
            f"{row.quarantined_at:%Y-%m-%d %H:%M:%S}  {row.table_name}  row {row.row_number}"
            f"  {row.source}\n    {row.reason}\n    {row.raw}"
        )


@db.command("rollups")
@click.option("--tz", help="Time zone to cut days in. Default: AUTERITY_TIMEZONE.")
def rollups_cmd(tz: str | None) -> None:
    """Rebuild the daily ModelHub rollups from every model request.

    Writes keep the rollups current; this is for a warehouse upgraded from before they
    existed (questions read raw events until the rollups are built) or another zone.
    """
    started = time.perf_counter()
    rows = rollups.rebuild_warehouse(tz=tz)
    for table, count in rows.items():
        click.echo(f"{table}: {count:,} rows")
    click.echo(f"rollups rebuilt in {time.perf_counter() - started:.1f} s")


@db.command("purge")
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=1),
    help="Days of raw events to keep. Default: AUTERITY_RETENTION_DAYS.",
)
@click.option(
    "--table",
    "tables",
    multiple=True,
    type=click.Choice(list(retention.RAW_EVENT_TABLES)),
    help="Only this table (repeatable). Default: every raw event table.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge_cmd(days: int | None, tables: tuple[str, ...], yes: bool) -> None:
    """Delete raw events (product events, model requests) older than the retention.

    One transaction and one audit row; caches are cleared. The scheduler daemon applies
    AUTERITY_RETENTION_DAYS by itself when it starts and once a day.
    """
    keep = days if days is not None else retention.retention_days()
    if keep is None:
        raise AuterityError("give --older-than DAYS or set AUTERITY_RETENTION_DAYS")
    if not yes:
        click.confirm(f"Delete raw events older than {keep} days?", abort=True)
    deleted = retention.purge(keep, tables=list(tables) or retention.RAW_EVENT_TABLES)
    for table, rows in deleted.items():
        click.echo(f"{table}: {rows:,} rows older than {keep} days deleted")
