"""``auterity insights``, ``auterity forecast`` and ``auterity anomalies``."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from auterity import anomaly, insights, timeseries
from auterity import forecast as fc
from auterity.cli.main import cli
from auterity.cli.output import (
    ANOMALY_DAYS,
    FORECAST_HISTORY_DAYS,
    FORMATS,
    INSIGHTS_DAYS,
    acting_as_option,
    date_options,
    echo_json,
    emit,
    fmt_number,
)
from auterity.errors import AuterityError


@cli.command("insights")
@date_options(INSIGHTS_DAYS)
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
@acting_as_option
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
        echo_json(data)
        return
    click.echo(f"Insights {start} to {end}: {len(report.cards)} significant finding(s)")
    for number, card in enumerate(report.cards, 1):
        click.echo(f"{number:>3}. [{card.kind}, {card.importance:.2f}] {card.sentence}")
    for kind, why in report.skipped.items():
        click.echo(f"  not checked: {kind}: {why}")


def _series_input(
    metric: str | None,
    csv_path: Path | None,
    start: date,
    end: date,
    grain: str | None,
) -> tuple[Any, str, dict[str, Any] | None]:
    """The series to forecast or scan: (frame, grain, CSV report or None)."""

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
@date_options(
    FORECAST_HISTORY_DAYS,
    "First local date of the history",
    "Local date after the last one of the history",
)
@click.option("--country", help="ISO country code whose holidays are modelled (daily grain).")
@click.option("--interval", type=float, default=0.8, show_default=True, help="Interval width.")
@click.option("--no-backtest", is_flag=True, help="Skip the rolling-origin backtest.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@acting_as_option
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
        echo_json(data)
        return
    if report is not None:
        click.echo(
            f"{report['source']}: {report['rows']} points ({report['duplicates']} duplicate(s)"
            f" merged, {report['gaps']} gap(s), frequency {report['frequency']})"
        )
    emit(predicted, "table")
    if track and "models" in track:
        click.echo(f"\nbacktest ({len(track['folds'])} origins, horizon {horizon}):")
        for name, scores in track["models"].items():
            click.echo(
                f"  {name:15} MAE {fmt_number(scores['mae'])}  "
                f"MAPE {fmt_number(scores['mape'] or 0)} %"
                f"  sMAPE {fmt_number(scores['smape'])} %  MASE {fmt_number(scores['mase'])}"
            )
    elif track:
        click.echo(f"\nbacktest skipped: {track['skipped']}")


@cli.command("anomalies")
@click.argument("metric", required=False)
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Read ds,y from a CSV.")
@date_options(ANOMALY_DAYS, "First local date", "Local date after the last one")
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
@acting_as_option
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
        echo_json(data)
        return
    label = metric or str(csv_path)
    click.echo(
        f"{label}: {len(result.windows)} anomaly window(s), method {method}"
        f" ({'causal' if result.causal else 'NOT causal: judged with later data too'})"
    )
    for w in result.windows:
        click.echo(
            f"  {w.to_dict()['start']} .. {w.to_dict()['end']}  {w.direction:4} {w.severity:6}"
            f" score {w.score:.1f}  peak {fmt_number(w.peak_value)}"
            f" (expected {fmt_number(w.expected_value)})"
        )
