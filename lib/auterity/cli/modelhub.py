"""``auterity modelhub leaderboard|slo|costs|savings|drift``: ModelHub analytics."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import click

from auterity import modelhub as mh
from auterity.cli.main import cli
from auterity.cli.output import (
    DRIFT_DAYS,
    DRIFT_REFERENCE_DAYS,
    OUTPUT_FORMATS,
    PERIOD_DAYS,
    SAVINGS_DAYS,
    acting_as_option,
    date_options,
    emit,
)


@cli.group()
def modelhub() -> None:
    """AI model analytics: leaderboard, SLOs, cost, drift, savings."""


def _period_options(default_days: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--start/--end (:func:`date_options`), --tz and --format options of the modelhub commands."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option(
            "--format", "fmt", type=OUTPUT_FORMATS, default="table", show_default=True
        )(fn)
        fn = click.option("--tz", help="Business time zone (default AUTERITY_TIMEZONE).")(fn)
        return date_options(default_days)(fn)

    return decorate


@modelhub.command("leaderboard")
@_period_options(PERIOD_DAYS)
@click.option("--model", "models", multiple=True, help="Only these models (repeatable).")
@acting_as_option
def modelhub_leaderboard(
    start: date, end: date, tz: str | None, fmt: str, models: tuple[str, ...]
) -> None:
    """Per-model requests, error/timeout rates, p50/p95/p99 latency, tokens, cost, quality.

    --start is inclusive and --end exclusive, dates in the business time zone.
    """

    emit(mh.leaderboard(start, end, tz=tz, models=list(models) or None), fmt)


@modelhub.command("slo")
@_period_options(PERIOD_DAYS)
@acting_as_option
def modelhub_slo(start: date, end: date, tz: str | None, fmt: str) -> None:
    """SLO compliance per model against parameters/slos.yml."""

    emit(mh.slo_report(start, end, tz=tz), fmt)


@modelhub.command("costs")
@_period_options(PERIOD_DAYS)
@click.option(
    "--by", type=click.Choice(["feature", "customer"]), default="feature", show_default=True
)
@acting_as_option
def modelhub_costs(start: date, end: date, tz: str | None, fmt: str, by: str) -> None:
    """Model cost broken down by feature or by customer."""

    frame = (
        mh.cost_by_feature(start, end, tz=tz)
        if by == "feature"
        else mh.cost_by_customer(start, end, tz=tz)
    )
    emit(frame, fmt)


@modelhub.command("savings")
@_period_options(SAVINGS_DAYS)
@click.option(
    "--tolerance",
    type=float,
    default=0.02,
    show_default=True,
    help="Largest acceptable drop in mean quality (0..1).",
)
@acting_as_option
def modelhub_savings(start: date, end: date, tz: str | None, fmt: str, tolerance: float) -> None:
    """Cheaper models whose quality is within the tolerance, with estimated monthly savings."""

    emit(mh.savings(start, end, tolerance=tolerance, tz=tz), fmt)


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
@acting_as_option
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

    reference = (start - timedelta(days=reference_days), start)
    emit(mh.drift(reference, (start, end), model=model, feature=feature, tz=tz), fmt)
