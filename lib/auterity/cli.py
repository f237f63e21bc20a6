"""The ``auterity`` command line: a thin wrapper over the library.

Every command has ``--help``; configuration problems print one line (``auterity: error:
...``) and exit with status 2, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import click

from auterity import __version__
from auterity.errors import AuterityError

FORMATS = click.Choice(["table", "json"])


def _echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (dates as ISO strings)."""
    click.echo(json.dumps(data, indent=2, default=str))


class _Progress:
    """Progress of a chunked load: a live bar on a terminal, one line per chunk otherwise."""

    def __init__(self, expected: dict[str, int], enabled: bool) -> None:
        self.expected = expected
        self.enabled = enabled
        self.done: dict[str, int] = {}
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=sum(expected.values()), unit="rows", unit_scale=True, file=sys.stderr
            )

    def __call__(self, table: str, rows: int) -> None:
        self.done[table] = self.done.get(table, 0) + rows
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_description(table)
            self.bar.update(rows)
            return
        total = self.expected.get(table, 0)
        pct = f" ({100 * self.done[table] / total:.0f} %)" if total else ""
        click.echo(f"  {table}: {self.done[table]:,} rows{pct}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="auterity")
def cli() -> None:
    """Auterity Analytics: business and AI/ML model analytics, reports and dashboards.

    The warehouse is AUTERITY_DB_URL (default: the DuckDB file data/auterity.duckdb).
    """


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
    from auterity import config, demo_data, warehouse

    end = demo_data.parse_date(end_text) if end_text else demo_data.default_end()
    cfg = demo_data.DemoConfig(
        seed=seed, events=events, months=months, end=end, effects=not no_effects
    )
    url = warehouse.database_url()
    started = time.perf_counter()
    world = demo_data.generate(cfg)
    if not quiet:
        click.echo(
            f"Building demo data (seed {seed}, {events:,} inference events, {months} months "
            f"to {end}) in {warehouse.mask_url(url)}",
            err=True,
        )
    progress = _Progress(world.expected_rows, enabled=not quiet)
    target = manifest_path or config.data_dir() / "demo_manifest.json"
    try:
        manifest = demo_data.build(world, url=url, progress=progress, manifest_path=target)
    finally:
        progress.close()
    elapsed = time.perf_counter() - started
    summary = warehouse.table_summary(url)
    if fmt == "json":
        _echo_json(
            {"manifest": manifest, "manifest_path": str(target), "seconds": elapsed, **summary}
        )
        return
    click.echo(_summary_text(summary, url=warehouse.mask_url(url)))
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
    """Warehouse administration: schema upgrades and a summary of what is loaded."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the schema or upgrade it to the newest revision (idempotent)."""
    from auterity import warehouse

    url = warehouse.database_url()
    revision = warehouse.ensure_schema(url)
    click.echo(f"{warehouse.mask_url(url)} is at schema revision {revision}")


@db.command("info")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def db_info(fmt: str) -> None:
    """Show the warehouse URL (password masked), schema revision and table sizes."""
    from auterity import warehouse

    url = warehouse.database_url()
    with warehouse.connect(url) as conn:
        revision = warehouse.current_revision(conn)
    if revision is None:
        raise AuterityError(
            f"{warehouse.mask_url(url)} has no Auterity schema yet; run `auterity db upgrade` "
            "or `auterity demo-data`"
        )
    summary = warehouse.table_summary(url)
    if fmt == "json":
        _echo_json({"url": warehouse.mask_url(url), "revision": revision, "tables": summary})
        return
    click.echo(_summary_text(summary, url=warehouse.mask_url(url)))
    click.echo(f"Schema revision {revision}, data version {warehouse.data_version(url)}")


OUTPUT_FORMATS = click.Choice(["table", "csv", "json"])


PERIOD_DAYS = 28
"""Default period of most commands: --start is this many days before --end."""
SAVINGS_DAYS = 90
"""Default period of `modelhub savings` (quality needs many scored requests)."""
DRIFT_DAYS = 7
"""Default current window of `modelhub drift`."""
DRIFT_REFERENCE_DAYS = 28
"""Default reference window of `modelhub drift`, just before the current one."""
INSIGHTS_DAYS = 90
"""Default period of `insights` (its tests need at least 8 weeks)."""
ANOMALY_DAYS = 90
"""Default period of `anomalies`."""
FORECAST_HISTORY_DAYS = 365
"""Default history of `forecast`."""


def _range(start: str | None, end: str | None, default_days: int) -> tuple[Any, Any]:
    """Parse the date range; defaults: the last ``default_days`` days up to today."""
    from datetime import timedelta

    from auterity import demo_data

    end_date = demo_data.parse_date(end) if end else demo_data.default_end()
    start_date = demo_data.parse_date(start) if start else end_date - timedelta(days=default_days)
    return start_date, end_date


def _dates(
    default_days: int,
    start_help: str = "First local date (inclusive)",
    end_help: str = "Local date after the last one (exclusive)",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--start``/``--end`` options (YYYY-MM-DD) resolved to dates before the command runs.

    The command receives ``start`` and ``end`` as dates: ``end`` defaults to today and
    ``start`` to ``default_days`` before ``end``, the very number its help states.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def resolved(*args: Any, start: str | None, end: str | None, **kwargs: Any) -> Any:
            lo, hi = _range(start, end, default_days)
            return fn(*args, start=lo, end=hi, **kwargs)

        resolved = click.option("--end", metavar="YYYY-MM-DD", help=f"{end_help}. Default: today.")(
            resolved
        )
        return click.option(
            "--start",
            metavar="YYYY-MM-DD",
            help=f"{start_help}. Default: {default_days} days before --end.",
        )(resolved)

    return decorate


def _emit(frame: Any, fmt: str, units: dict[str, str] | None = None) -> None:
    """Print a DataFrame as an aligned table, CSV, or a JSON list of rows.

    Tables are for people: numbers in their unit's house style (``5.3 %``, ``$1.2K``,
    ``1,834 ms``; units from :data:`auterity.charts.COLUMN_UNITS`, then ``units``), missing
    values blank or an en dash, text without control characters (a value from the
    warehouse cannot send escape sequences to the terminal). CSV and JSON keep the raw
    values for machines, except that CSV text cannot start a spreadsheet formula.
    """
    import pandas as pd

    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            times = out[col]
            has_time = bool((times.dropna() != times.dropna().dt.normalize()).any())
            out[col] = times.dt.strftime("%Y-%m-%dT%H:%M:%S" if has_time else "%Y-%m-%d")
    if fmt == "json":
        records = out.astype(object).where(out.notna(), None).to_dict(orient="records")
        _echo_json(records)
    elif fmt == "csv":
        from auterity import escape

        click.echo(escape.csv_safe(out).to_csv(index=False), nl=False)
    elif out.empty:
        click.echo("(no rows)")
    else:
        click.echo(_for_people(out, units).to_string(index=False))


def _for_people(frame: Any, units: dict[str, str] | None) -> Any:
    """A copy of ``frame`` as display strings (see :func:`_emit`)."""
    import pandas as pd

    from auterity import charts, escape

    known = {**charts.COLUMN_UNITS, **(units or {})}
    out = frame.copy()
    by_row = "unit" in out.columns and "current" in out.columns  # metrics compare: a unit a row
    for col in out.columns:
        values = out[col]
        if by_row and (col in ("current", "previous", "last_year") or col.endswith("_delta")):
            unit_of = out["unit"]
            out[col] = [charts.format_value(v, u) for v, u in zip(values, unit_of, strict=True)]
        elif by_row and col.endswith("_delta_pct"):
            out[col] = [charts.format_value(v, "percent") for v in values]
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            unit = known.get(col)
            out[col] = [charts.format_value(v, unit) if unit else _fmt(v) for v in values]
        else:  # text from the warehouse: no control characters (terminal escapes) reach it
            out[col] = ["" if _missing(v) else escape.one_line(v) for v in values]
    return out


def _missing(value: Any) -> bool:
    """True for None, NaN, NaT and pd.NA."""
    import pandas as pd

    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, dicts: not a missing scalar
        return False


def _fmt(value: float) -> str:
    """Compact number formatting for tables (an en dash when missing)."""
    if _missing(value):
        return "\u2013"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def _where(items: tuple[str, ...]) -> dict[str, list[str]]:
    """``DIM=VALUE[,VALUE]`` options -> ``{dim: [values]}``."""
    where: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise AuterityError(f"--where {item!r}: expected DIM=VALUE (e.g. region=EMEA)")
        dim, values = item.split("=", 1)
        where.setdefault(dim.strip(), []).extend(v.strip() for v in values.split(","))
    return where


@cli.group()
def metrics() -> None:
    """Metrics from parameters/metrics.yml (and AUTERITY_METRICS_FILES)."""


@metrics.command("list")
@click.option("--format", "fmt", type=OUTPUT_FORMATS, default="table", show_default=True)
def metrics_list(fmt: str) -> None:
    """List every metric with its unit, good direction and allowed dimensions."""
    from auterity import metrics as metric_layer

    table = metric_layer.describe()
    if fmt == "table":
        table = table.drop(columns=["description"])
    _emit(table, fmt)


@metrics.command("query")
@click.argument("metric_names", nargs=-1, required=True, metavar="METRIC...")
@click.option(
    "--grain",
    type=click.Choice(["day", "week", "month", "total"]),
    default="day",
    show_default=True,
    help="Time-series grain; 'total' gives one row per breakdown.",
)
@_dates(PERIOD_DAYS)
@click.option("--by", multiple=True, metavar="DIM", help="Break down by a dimension (repeatable).")
@click.option(
    "--where",
    "where_items",
    multiple=True,
    metavar="DIM=VALUE",
    help="Filter: DIM=VALUE or DIM=V1,V2 (repeatable).",
)
@click.option(
    "--compare",
    is_flag=True,
    help="Compare with the previous period and the same period last year.",
)
@click.option("--tz", help="Business time zone (default AUTERITY_TIMEZONE).")
@click.option("--format", "fmt", type=OUTPUT_FORMATS, default="table", show_default=True)
def metrics_query(
    metric_names: tuple[str, ...],
    grain: str,
    start: date,
    end: date,
    by: tuple[str, ...],
    where_items: tuple[str, ...],
    compare: bool,
    tz: str | None,
    fmt: str,
) -> None:
    """Query metrics: a time series at a grain, broken down and filtered, in one SQL query.

    JSON output is a list of rows with `period`, one key per dimension and one key per
    metric (with --compare: one row per metric with current, previous and last-year values
    and their deltas).
    """
    from auterity import metrics as metric_layer

    where = _where(where_items)
    if compare:
        frame = metric_layer.compare(
            list(metric_names), start=start, end=end, by=list(by), where=where, tz=tz
        )
    else:
        frame = metric_layer.query(
            list(metric_names),
            start=start,
            end=end,
            grain=None if grain == "total" else grain,
            by=list(by),
            where=where,
            tz=tz,
        )
    catalog = metric_layer.load_catalog()
    _emit(frame, fmt, {name: catalog.metric(name).unit for name in metric_names})


@cli.group()
def modelhub() -> None:
    """AI model analytics: leaderboard, SLOs, cost, drift, savings."""


def _period_options(default_days: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--start/--end (:func:`_dates`), --tz and --format options of the modelhub commands."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option(
            "--format", "fmt", type=OUTPUT_FORMATS, default="table", show_default=True
        )(fn)
        fn = click.option("--tz", help="Business time zone (default AUTERITY_TIMEZONE).")(fn)
        return _dates(default_days)(fn)

    return decorate


@modelhub.command("leaderboard")
@_period_options(PERIOD_DAYS)
@click.option("--model", "models", multiple=True, help="Only these models (repeatable).")
def modelhub_leaderboard(
    start: date, end: date, tz: str | None, fmt: str, models: tuple[str, ...]
) -> None:
    """Per-model requests, error/timeout rates, p50/p95/p99 latency, tokens, cost, quality.

    --start is inclusive and --end exclusive, dates in the business time zone.
    """
    from auterity import modelhub as mh

    _emit(mh.leaderboard(start, end, tz=tz, models=list(models) or None), fmt)


@modelhub.command("slo")
@_period_options(PERIOD_DAYS)
def modelhub_slo(start: date, end: date, tz: str | None, fmt: str) -> None:
    """SLO compliance per model against parameters/slos.yml."""
    from auterity import modelhub as mh

    _emit(mh.slo_report(start, end, tz=tz), fmt)


@modelhub.command("costs")
@_period_options(PERIOD_DAYS)
@click.option(
    "--by", type=click.Choice(["feature", "customer"]), default="feature", show_default=True
)
def modelhub_costs(start: date, end: date, tz: str | None, fmt: str, by: str) -> None:
    """Model cost broken down by feature or by customer."""
    from auterity import modelhub as mh

    frame = (
        mh.cost_by_feature(start, end, tz=tz)
        if by == "feature"
        else mh.cost_by_customer(start, end, tz=tz)
    )
    _emit(frame, fmt)


@modelhub.command("savings")
@_period_options(SAVINGS_DAYS)
@click.option(
    "--tolerance",
    type=float,
    default=0.02,
    show_default=True,
    help="Largest acceptable drop in mean quality (0..1).",
)
def modelhub_savings(start: date, end: date, tz: str | None, fmt: str, tolerance: float) -> None:
    """Cheaper models whose quality is within the tolerance, with estimated monthly savings."""
    from auterity import modelhub as mh

    _emit(mh.savings(start, end, tolerance=tolerance, tz=tz), fmt)


@modelhub.command("drift")
@_period_options(DRIFT_DAYS)
@click.option(
    "--reference-days",
    type=int,
    default=DRIFT_REFERENCE_DAYS,
    show_default=True,
    help="Length of the reference window just before --start.",
)
@click.option("--model", help="Only this model.")
@click.option("--feature", help="Only this feature.")
def modelhub_drift(
    start: date,
    end: date,
    tz: str | None,
    fmt: str,
    reference_days: int,
    model: str | None,
    feature: str | None,
) -> None:
    """PSI and KS drift of tokens, latency and quality: [--start, --end) against the
    --reference-days before it."""
    from datetime import timedelta

    from auterity import modelhub as mh

    reference = (start - timedelta(days=reference_days), start)
    _emit(mh.drift(reference, (start, end), model=model, feature=feature, tz=tz), fmt)


@cli.command("run")
@click.argument("notebook", required=False)
@click.option(
    "--params",
    "params_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A parameter set: parameters/<notebook>/<name>.yml.",
)
@click.option(
    "-p",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set one parameter (repeatable; typed as the notebook declares it).",
)
@click.option(
    "--all",
    "run_every",
    is_flag=True,
    help="Run every parameter set of every notebook (or of NOTEBOOK).",
)
@click.option("--parallel", type=int, help="Concurrent runs with --all (default: CPU cores).")
@click.option("--no-pdf", is_flag=True, help="Skip the PDF (no Chromium needed).")
def run_cmd(
    notebook: str | None,
    params_file: Path | None,
    overrides: tuple[str, ...],
    run_every: bool,
    parallel: int | None,
    no_pdf: bool,
) -> None:
    """Run a notebook with Papermill into reports/<notebook>/<run>/ (ipynb, HTML, PDF).

    Every run is recorded (`auterity runs`); reports/index.html lists them. Exits with
    status 1 if a run failed; bad parameters are refused before anything runs.
    """
    from auterity import reports

    if run_every:
        if params_file or overrides:
            raise AuterityError("--all runs the committed parameter sets; drop --params and -p")

        def done(record: reports.RunRecord, finished: int, total: int) -> None:
            where = record.outputs.get("html") or record.output_dir
            note = f" ({record.error_message})" if record.error_message else ""
            click.echo(
                f"[{finished}/{total}] {record.status:<6} {record.notebook}/"
                f"{record.parameter_set} in {record.duration_s:.1f} s -> {where}{note}",
                err=True,
            )

        records = reports.run_all(
            parallel=parallel, notebook=notebook, pdf=not no_pdf, on_done=done
        )
        failed = [r for r in records if not r.ok]
        click.echo(
            f"{len(records) - len(failed)} ok, {len(failed)} failed; "
            f"see {reports.reports_dir() / 'index.html'}"
        )
        if failed:
            raise SystemExit(1)
        return
    if not notebook:
        raise AuterityError("name a NOTEBOOK to run, or use --all")
    record = reports.run(notebook, params_file=params_file, overrides=overrides, pdf=not no_pdf)
    for kind, path in record.outputs.items():
        click.echo(f"  {kind:<10} {path}")
    if not record.ok:
        click.echo(
            f"run {record.run_id} failed at cell {record.error_cell}: {record.error_message}",
            err=True,
        )
        raise SystemExit(1)
    click.echo(f"run {record.run_id} ok in {record.duration_s:.1f} s")


@cli.command("runs")
@click.option("--notebook", help="Only runs of this notebook.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--format", "fmt", type=OUTPUT_FORMATS, default="table", show_default=True)
def runs_cmd(notebook: str | None, limit: int, fmt: str) -> None:
    """List recorded report runs, newest first."""
    import pandas as pd

    from auterity import reports

    rows = reports.list_runs(notebook=notebook, limit=limit)
    if fmt == "json":
        _echo_json(rows)
        return
    columns = [
        "run_id",
        "notebook",
        "parameter_set",
        "trigger",
        "job_id",
        "status",
        "delivery_status",
        "started_at",
        "duration_s",
        "error_message",
    ]
    frame = pd.DataFrame(rows, columns=columns).rename(columns={"job_id": "job"})
    frame["run_id"] = frame["run_id"].str[:12]
    _emit(frame, fmt)


@cli.group()
def schedule() -> None:
    """Scheduled report runs and emails (parameters/schedule.yml)."""


def _schedule_file_option(fn: Any) -> Any:
    return click.option(
        "--file",
        "schedule_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Schedule file (default parameters/schedule.yml).",
    )(fn)


@schedule.command("list")
@_schedule_file_option
@click.option("--count", type=int, default=3, show_default=True, help="Next run times per job.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def schedule_list(schedule_file: Path | None, count: int, fmt: str) -> None:
    """Show each job, whether it is enabled and its next run times (in the job's time zone)."""
    from auterity.schedule import load_schedule

    loaded = load_schedule(schedule_file)
    rows = [
        {
            "job": job.name,
            "enabled": job.enabled,
            "notebook": job.notebook,
            "parameters": job.parameter_set,
            "cron": job.cron,
            "timezone": job.timezone,
            "condition": job.condition,
            "next_runs": [t.isoformat() for t in job.next_runs(count)] if job.enabled else [],
        }
        for job in loaded.jobs.values()
    ]
    if fmt == "json":
        _echo_json(rows)
        return
    for row in rows:
        state = "enabled" if row["enabled"] else "disabled"
        click.echo(
            f"{row['job']}  ({state}; {row['notebook']}/{row['parameters'] or 'defaults'}; "
            f"cron '{row['cron']}' {row['timezone']}; condition {row['condition']})"
        )
        for when in row["next_runs"]:
            click.echo(f"    {when}")


@schedule.command("run")
@_schedule_file_option
@click.option("--metrics-port", type=int, help="Serve Prometheus metrics on 127.0.0.1:PORT.")
@click.option("--max-parallel", type=int, help="Concurrent runs (AUTERITY_SCHEDULE_MAX_PARALLEL).")
@click.option(
    "--grace", type=float, help="Seconds a missed run may be late (AUTERITY_SCHEDULE_GRACE)."
)
@click.option("--poll", type=float, default=30.0, show_default=True, help="Longest sleep, seconds.")
@click.option(
    "--drain-timeout",
    type=float,
    default=3600.0,
    show_default=True,
    help="On SIGTERM, seconds running reports get to finish before they are recorded interrupted.",
)
@click.option("--no-pdf", is_flag=True, help="Skip PDFs (no Chromium needed).")
def schedule_run(
    schedule_file: Path | None,
    metrics_port: int | None,
    max_parallel: int | None,
    grace: float | None,
    poll: float,
    drain_timeout: float,
    no_pdf: bool,
) -> None:
    """Run the scheduler until SIGTERM/Ctrl-C; job state persists in the warehouse."""
    import dataclasses
    import logging

    from auterity import scheduler as sched
    from auterity.schedule import load_schedule

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # the scheduler's own INFO lines matter; per-cell and migration chatter does not
    for noisy in ("papermill", "alembic", "traitlets", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = sched.SchedulerSettings.from_env()
    if max_parallel is not None:
        settings = dataclasses.replace(settings, max_parallel=max(1, max_parallel))
    if grace is not None:
        settings = dataclasses.replace(settings, grace_s=max(0.0, grace))
    runner = sched.Scheduler(load_schedule(schedule_file), settings=settings, pdf=not no_pdf)
    runner.metrics.load_last_success()
    if metrics_port is not None:
        bound = runner.metrics.serve(metrics_port)
        click.echo(f"metrics on http://127.0.0.1:{bound}/metrics", err=True)
    sched.install_signal_handlers(runner)
    try:
        interrupted = runner.serve_forever(poll_s=poll, drain_timeout_s=drain_timeout)
    finally:
        runner.metrics.close()
    if interrupted:
        raise SystemExit(1)


@schedule.command("run-due")
@_schedule_file_option
@click.option("--max-parallel", type=int, help="Concurrent runs (AUTERITY_SCHEDULE_MAX_PARALLEL).")
@click.option("--no-pdf", is_flag=True, help="Skip PDFs (no Chromium needed).")
def schedule_run_due(schedule_file: Path | None, max_parallel: int | None, no_pdf: bool) -> None:
    """Run whatever is due once and exit (for system cron); never re-runs a taken slot."""
    import dataclasses

    from auterity import scheduler as sched
    from auterity.schedule import load_schedule

    settings = sched.SchedulerSettings.from_env()
    if max_parallel is not None:
        settings = dataclasses.replace(settings, max_parallel=max(1, max_parallel))
    runner = sched.Scheduler(load_schedule(schedule_file), settings=settings, pdf=not no_pdf)
    outcomes = runner.run_due()
    for o in outcomes:
        click.echo(_outcome_line(o))
    if not outcomes:
        click.echo("nothing due")
    if any(o.status != "ok" or o.delivery_status == "delivery_failed" for o in outcomes):
        raise SystemExit(1)


def _outcome_line(outcome: Any) -> str:
    slot = f" for {outcome.scheduled_for:%Y-%m-%d %H:%M} UTC" if outcome.scheduled_for else ""
    error = outcome.error_message or outcome.delivery_error
    note = f" ({error})" if error else ""
    email = outcome.delivery_status or "-"
    return f"{outcome.job}{slot}: run {outcome.status}, email {email}{note}"


@schedule.command("trigger")
@click.argument("job")
@_schedule_file_option
@click.option("--no-pdf", is_flag=True, help="Skip the PDF (no Chromium needed).")
def schedule_trigger(job: str, schedule_file: Path | None, no_pdf: bool) -> None:
    """Run one job now (trigger `manual`), email included. Exit 1 if the run or email failed."""
    from auterity import scheduler as sched
    from auterity.schedule import load_schedule

    runner = sched.Scheduler(load_schedule(schedule_file), pdf=not no_pdf)
    outcome = runner.trigger(job)
    click.echo(_outcome_line(outcome))
    if outcome.status != "ok" or outcome.delivery_status == "delivery_failed":
        raise SystemExit(1)


@cli.command("insights")
@_dates(INSIGHTS_DAYS)
@click.option("--limit", type=click.IntRange(min=1), help="Only the most important cards.")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    help="Only these kinds (repeatable): correlation, anomaly, level_shift, forecast_risk, "
    "drift, savings, mover.",
)
@click.option("--alpha", type=float, default=0.05, show_default=True, help="False discovery rate.")
@click.option("--no-charts", is_flag=True, help="Leave the Vega-Lite chart specs out of JSON.")
@click.option(
    "--holidays",
    default="US",
    show_default=True,
    help="Country whose public holidays are expected, not findings ('' for none).",
)
@click.option("--tz", help="Business time zone (default AUTERITY_TIMEZONE).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def insights_cmd(
    start: date,
    end: date,
    limit: int | None,
    kinds: tuple[str, ...],
    alpha: float,
    no_charts: bool,
    holidays: str,
    tz: str | None,
    fmt: str,
) -> None:
    """Significant findings of a period as ranked insight cards: ML-business correlations
    (BH-controlled over all pairs and lags), anomalies, level shifts, forecast risks, drift,
    savings and KPI movers, each a sentence with its evidence (JSON: also a Vega-Lite chart).

    --start is inclusive and --end exclusive (at least 8 weeks apart)."""
    from auterity import insights

    report = insights.run(
        start,
        end,
        tz=tz,
        kinds=list(kinds) or insights.KINDS,
        alpha=alpha,
        limit=limit,
        holidays=holidays or None,
    )
    data = report.to_dict()
    if no_charts:
        for card in data["cards"]:
            card.pop("chart", None)
    if fmt == "json":
        _echo_json(data)
        return
    click.echo(f"Insights {start} to {end}: {len(report.cards)} significant finding(s)")
    for number, card in enumerate(report.cards, 1):
        click.echo(f"{number:>3}. [{card.kind}, {card.importance:.2f}] {card.sentence}")
    for kind, why in report.skipped.items():
        click.echo(f"  not checked: {kind}: {why}")


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8866, show_default=True, help="Port to listen on.")
def serve_cmd(host: str, port: int) -> None:
    """Serve the Voila dashboards (notebooks/dashboards, configured by its voila.json).

    Access needs a token: AUTERITY_DASHBOARD_TOKEN, else a random one; the printed URL
    carries it. Stop with Ctrl-C.
    """
    from auterity.dashboards import serve

    code = serve.serve(host, port)
    if code:
        raise SystemExit(code)


def _series_input(
    metric: str | None,
    csv_path: Path | None,
    start: date,
    end: date,
    grain: str | None,
) -> tuple[Any, str, dict[str, Any] | None]:
    """The series to forecast or scan: (frame, grain, CSV report or None)."""
    from auterity import timeseries

    if (metric is None) == (csv_path is None):
        raise AuterityError("give either a METRIC or --csv FILE (not both)")
    if csv_path is not None:
        load = timeseries.read_csv_series(csv_path)
        return load.frame, grain or timeseries.grain_of(load.report["frequency"]), load.report
    grain = grain or "day"
    assert metric is not None
    return timeseries.metric_series(metric, start=start, end=end, grain=grain), grain, None


@cli.command("forecast")
@click.argument("metric", required=False)
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Read ds,y from a CSV.")
@click.option("--horizon", type=click.IntRange(min=1), required=True, help="Periods ahead.")
@click.option(
    "--grain",
    type=click.Choice(["day", "week", "month"]),
    help="Grain (default: day for a metric; inferred from the timestamps for a CSV).",
)
@_dates(
    FORECAST_HISTORY_DAYS,
    "First local date of the history",
    "Local date after the last one of the history",
)
@click.option("--country", help="ISO country code whose holidays are modelled (daily grain).")
@click.option("--interval", type=float, default=0.8, show_default=True, help="Interval width.")
@click.option("--no-backtest", is_flag=True, help="Skip the rolling-origin backtest.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def forecast_cmd(
    metric: str | None,
    csv_path: Path | None,
    horizon: int,
    grain: str | None,
    start: date,
    end: date,
    country: str | None,
    interval: float,
    no_backtest: bool,
    fmt: str,
) -> None:
    """Forecast a metric (or a CSV series) with Prophet, with its track record.

    JSON: `forecast` (rows of ds, yhat, yhat_lower, yhat_upper), `backtest` (rolling-origin
    MAE, MAPE, sMAPE and MASE of Prophet, naive and seasonal naive) and, for a CSV,
    `series` (rows read, duplicates merged, gaps, frequency).
    """
    from auterity import forecast as fc

    frame, grain, report = _series_input(metric, csv_path, start, end, grain)
    predicted = fc.forecast(
        frame, horizon=horizon, grain=grain, country=country, interval_width=interval
    )
    track = None
    if not no_backtest:
        try:
            track = fc.backtest(frame, horizon=horizon, grain=grain, country=country)
        except AuterityError as exc:
            track = {"skipped": str(exc)}
    data: dict[str, Any] = {
        "metric": metric,
        "grain": grain,
        "horizon": horizon,
        "forecast": fc.to_records(predicted),
        "backtest": track,
    }
    if report is not None:
        data["series"] = report
    if fmt == "json":
        _echo_json(data)
        return
    if report is not None:
        click.echo(
            f"{report['source']}: {report['rows']} points ({report['duplicates']} duplicate(s)"
            f" merged, {report['gaps']} gap(s), frequency {report['frequency']})"
        )
    _emit(predicted, "table")
    if track and "models" in track:
        click.echo(f"\nbacktest ({len(track['folds'])} origins, horizon {horizon}):")
        for name, scores in track["models"].items():
            click.echo(
                f"  {name:15} MAE {_fmt(scores['mae'])}  MAPE {_fmt(scores['mape'] or 0)} %"
                f"  sMAPE {_fmt(scores['smape'])} %  MASE {_fmt(scores['mase'])}"
            )
    elif track:
        click.echo(f"\nbacktest skipped: {track['skipped']}")


@cli.command("anomalies")
@click.argument("metric", required=False)
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Read ds,y from a CSV.")
@_dates(ANOMALY_DAYS, "First local date", "Local date after the last one")
@click.option(
    "--grain",
    type=click.Choice(["day", "week", "month"]),
    help="Grain of a metric (default day); ignored for a CSV.",
)
@click.option(
    "--method",
    type=click.Choice(["stl_mad", "rolling_z", "prophet"]),
    default="stl_mad",
    show_default=True,
    help="Detector; prophet is not causal.",
)
@click.option("--non-causal", is_flag=True, help="Let a point be judged with data after it too.")
@click.option(
    "--log",
    "log_scale",
    is_flag=True,
    help="Judge the series on a log scale (multiplicative noise, e.g. revenue); values > 0.",
)
@click.option("--threshold", type=float, default=5.0, show_default=True, help="Score to flag.")
@click.option("--merge-gap", type=click.IntRange(min=0), help="Rows between merged points.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def anomalies_cmd(
    metric: str | None,
    csv_path: Path | None,
    start: date,
    end: date,
    grain: str | None,
    method: str,
    non_causal: bool,
    log_scale: bool,
    threshold: float,
    merge_gap: int | None,
    fmt: str,
) -> None:
    """Find anomalies in a metric (or a CSV series), merged into alert windows.

    JSON: `anomalies` (windows with start - the first flagged timestamp, when a live alert
    fires - end, score, direction, severity, peak and expected values), `causal` (false
    when a point was judged with later data), `method`, `threshold` and, for a CSV,
    `series` (rows read, duplicates merged, gaps).
    """
    from auterity import anomaly

    frame, grain, report = _series_input(metric, csv_path, start, end, grain)
    result = anomaly.detect(
        frame,
        method=method,
        causal=not non_causal,
        threshold=threshold,
        merge_gap=merge_gap,
        log=log_scale,
    )
    data = {"metric": metric, **result.to_dict()}
    if report is not None:
        data["series"] = report
    if fmt == "json":
        _echo_json(data)
        return
    label = metric or str(csv_path)
    click.echo(
        f"{label}: {len(result.windows)} anomaly window(s), method {method}"
        f" ({'causal' if result.causal else 'NOT causal: judged with later data too'})"
    )
    for w in result.windows:
        click.echo(
            f"  {w.to_dict()['start']} .. {w.to_dict()['end']}  {w.direction:4} {w.severity:6}"
            f" score {w.score:.1f}  peak {_fmt(w.peak_value)} (expected {_fmt(w.expected_value)})"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn library errors into one line and exit status 2."""
    try:
        cli.main(args=argv, prog_name="auterity", standalone_mode=False)
    except AuterityError as exc:
        from auterity.warehouse import mask_secrets

        click.echo(f"auterity: error: {mask_secrets(str(exc))}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("auterity: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0
