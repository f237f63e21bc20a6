"""``auterity run``, ``auterity runs`` and ``auterity schedule``: report runs and schedules."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import click

from auterity import config, reports
from auterity.cli.main import cli
from auterity.cli.output import AS_USER, FORMATS, OUTPUT_FORMATS, echo_json, emit, resolve_as
from auterity.errors import AuterityError
from auterity.reports import scheduler as sched
from auterity.reports.schedule import load_schedule


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
@AS_USER
def run_cmd(
    notebook: str | None,
    params_file: Path | None,
    overrides: tuple[str, ...],
    run_every: bool,
    parallel: int | None,
    no_pdf: bool,
    as_user: str | None,
) -> None:
    """Run a notebook with Papermill into reports/<notebook>/<run>/ (ipynb, HTML, PDF).

    Every run is recorded (`auterity runs`); reports/index.html lists them. Exits with
    status 1 if a run failed; bad parameters are refused before anything runs. With
    --as, the run reads as that user (their role must grant the notebook).
    """
    as_user = resolve_as(as_user)

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
            parallel=parallel, notebook=notebook, pdf=not no_pdf, on_done=done, as_user=as_user
        )
        failed = [r for r in records if not r.ok]
        click.echo(
            f"{len(records) - len(failed)} ok, {len(failed)} failed; "
            f"see {config.reports_dir() / 'index.html'}"
        )
        if failed:
            raise SystemExit(1)
        return
    if not notebook:
        raise AuterityError("name a NOTEBOOK to run, or use --all")
    record = reports.run(
        notebook, params_file=params_file, overrides=overrides, pdf=not no_pdf, as_user=as_user
    )
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

    rows = reports.list_runs(notebook=notebook, limit=limit)
    if fmt == "json":
        echo_json(rows)
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
    emit(frame, fmt)


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


class _ScheduleRow(TypedDict):
    """One job as `schedule list` shows it."""

    job: str
    enabled: bool
    notebook: str
    parameters: str | None
    cron: str
    timezone: str
    condition: str
    next_runs: list[str]


@schedule.command("list")
@_schedule_file_option
@click.option("--count", type=int, default=3, show_default=True, help="Next run times per job.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def schedule_list(schedule_file: Path | None, count: int, fmt: str) -> None:
    """Show each job, whether it is enabled and its next run times (in the job's time zone)."""

    loaded = load_schedule(schedule_file)
    rows: list[_ScheduleRow] = [
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
        echo_json(rows)
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
@AS_USER
def schedule_trigger(
    job: str, schedule_file: Path | None, no_pdf: bool, as_user: str | None
) -> None:
    """Run one job now (trigger `manual`), email included. Exit 1 if the run or email failed.

    The job runs as its `as:` user from schedule.yml; --as (or AUTERITY_USER once the
    warehouse has users) runs it as another user, whose role must grant the notebook:
    the report and its email then show what that user may see.
    """

    runner = sched.Scheduler(load_schedule(schedule_file), pdf=not no_pdf)
    outcome = runner.trigger(job, as_user=resolve_as(as_user))
    click.echo(_outcome_line(outcome))
    if outcome.status != "ok" or outcome.delivery_status == "delivery_failed":
        raise SystemExit(1)
