"""``auterity metrics list|query``: the metric layer from the command line."""

from __future__ import annotations

from datetime import date

import click

from auterity import metrics as metric_layer
from auterity.cli.main import cli
from auterity.cli.output import (
    OUTPUT_FORMATS,
    PERIOD_DAYS,
    acting_as_option,
    date_options,
    emit,
    parse_where,
)


@cli.group()
def metrics() -> None:
    """Metrics from parameters/metrics.yml (and AUTERITY_METRICS_FILES)."""


@metrics.command("list")
@click.option("--format", "fmt", type=OUTPUT_FORMATS, default="table", show_default=True)
def metrics_list(fmt: str) -> None:
    """List every metric with its unit, good direction and allowed dimensions."""

    table = metric_layer.describe()
    if fmt == "table":
        table = table.drop(columns=["description"])
    emit(table, fmt)


@metrics.command("query")
@click.argument("metric_names", nargs=-1, required=True, metavar="METRIC...")
@click.option(
    "--grain",
    type=click.Choice(["day", "week", "month", "total"]),
    default="day",
    show_default=True,
    help="Time-series grain; 'total' gives one row per breakdown.",
)
@date_options(PERIOD_DAYS)
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
@acting_as_option
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

    where = parse_where(where_items)
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
    emit(frame, fmt, {name: catalog.metric(name).unit for name in metric_names})
