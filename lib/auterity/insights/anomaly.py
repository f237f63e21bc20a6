"""``anomaly`` cards: alert windows of the causal detector on business KPIs and per-model
series.

:func:`auterity.anomaly.detect` judges each series, given five weeks of history before
the period. Business KPIs: every alert (revenue on a log scale: its noise is
multiplicative; orders only beyond Poisson counting noise). Per-model series: medium or
high alerts, rises only; a rise of a model's p95 latency only when significantly more
than 5 % of the window's requests were slower than the expected p95 (a daily p95 of a few
dozen requests is mostly sampling noise).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pandas as pd

from auterity import anomaly, correlate
from auterity.correlate import ML_LABELS, ML_UNITS
from auterity.insights.anomaly_checks import (
    PERCENTILE_SERIES,
    SlowCounter,
    confirm,
    count_slow_requests,
)
from auterity.insights.cards import (
    KIND_BASE,
    InsightCard,
    chart_spec,
    in_unit,
    iso_day,
    metric_label,
    metric_meta,
    signed_pct,
)
from auterity.insights.registry import Context, Found, insight_kinds

ANOMALY_BUSINESS = ("revenue", "orders", "conversion_rate", "active_customers")
ANOMALY_LOG_SCALE = ("revenue",)
"""Business KPIs judged on a log scale (:func:`auterity.anomaly.detect` with ``log=True``):
a day's revenue is a sum of skewed order amounts, so its noise is multiplicative and its
linear right tail long (a day with a few more large orders than usual is no anomaly),
and a fall to a third of the usual is as strong a signal as a tripling. Order counts
(Poisson-like, symmetric noise) stay on the linear scale."""
BUSINESS_SEVERITIES = ("low", "medium", "high")
"""Every alert of the detector's own threshold on the four business KPIs ..."""
ML_SEVERITIES = ("medium", "high")
"""... but only medium and high ones (score >= 1.5 x threshold) on the per-model series:
there are about 20 of those, and false alarms grow with the number of series watched."""
SEVERITY_IMPORTANCE = {"low": 0.0, "medium": 0.2, "high": 0.4}
"""Importance an anomaly card gets on top of its kind's base, by severity."""
ANOMALY_HISTORY_DAYS = 35
"""Days before the period given to the causal detector as history (it needs four weeks
before it judges a day), so the first days of the period are judged too."""
ANOMALY_ML = ("p95_latency_ms", "cost_per_request")
"""Per-model series checked for anomalies (as loaded by :func:`correlate.load_series`: days
with few requests and flat-fee costs left out); only rises are reported (a drop in latency
or cost is no alert). Daily error rates of most models are a handful of events, too few to
judge."""
MIN_SERIES_DAYS = 28
"""Days with data a series needs before the anomaly detector judges it."""

Watched = dict[str, tuple[pd.DataFrame, str, str, Sequence[str], Sequence[str], bool]]
"""``{name: (frame[ds, y], unit, label, directions, severities, log)}``: the series
:func:`anomaly_cards` judges, which directions and severities are worth a card, and
whether the series is judged on a log scale."""


def series_frames(series: correlate.Series) -> Watched:
    """The series checked for anomalies, as :func:`anomaly_cards` takes them.

    Parameters
    ----------
    series : auterity.correlate.Series
        Daily business KPIs and per-model ML series (``"<model_id>:<metric>"``).

    Returns
    -------
    dict
        ``{name: (frame[ds, y], unit, label, directions, severities, log)}`` of the KPIs of
        :data:`ANOMALY_BUSINESS` (both directions, :data:`BUSINESS_SEVERITIES`, log scale
        for :data:`ANOMALY_LOG_SCALE`) and the ML series of :data:`ANOMALY_ML` (rises,
        :data:`ML_SEVERITIES`).
    """
    out: Watched = {}
    for name in ANOMALY_BUSINESS:
        if name in series.business.columns:
            values = series.business[name]
            out[name] = (
                pd.DataFrame({"ds": values.index, "y": values.to_numpy(float)}),
                metric_meta(name)[0],
                metric_label(name),
                ("up", "down"),
                BUSINESS_SEVERITIES,
                name in ANOMALY_LOG_SCALE,
            )
    for column in series.ml.columns:
        model_id, _, metric = column.rpartition(":")
        if metric not in ANOMALY_ML:
            continue
        values = series.ml[column]
        out[column] = (
            pd.DataFrame({"ds": values.index, "y": values.to_numpy(float)}),
            ML_UNITS[metric],
            f"{model_id} {ML_LABELS[metric]}",
            ("up",),
            ML_SEVERITIES,
            False,
        )
    return out


def windows_in(
    result: anomaly.AnomalyResult, directions: Sequence[str]
) -> list[anomaly.AlertWindow]:
    """The alert windows of an :class:`auterity.anomaly.AnomalyResult` formed by its flagged
    points in ``directions`` only.

    When only rises matter, the fall back to normal after a lasting episode (by then the
    causal expectation has caught up with the episode, so the fall is flagged too) must not
    join the rise's window: it would give the window the direction of the larger of the two
    peaks, and a slowdown whose end scores higher than its onset would read as a 'drop'.

    Parameters
    ----------
    result : auterity.anomaly.AnomalyResult
        A detector's result.
    directions : sequence of str
        ``"up"``, ``"down"`` or both.

    Returns
    -------
    list
        The alert windows (the result's own when both directions matter).
    """
    points = result.points
    if set(directions) >= {"up", "down"}:
        return list(result.windows)
    wanted = points["is_anomaly"] & points["direction"].isin(list(directions))
    return anomaly.alert_windows(points.assign(is_anomaly=wanted), result.options["merge_gap"])


def _percentile_days(frames: Watched, report_from: date | None) -> int:
    """The (series, day) pairs of the percentile series judged: the Bonferroni family of
    the slow-request tests."""
    days = 0
    for name, (frame, *_rest) in frames.items():
        if name.rpartition(":")[2] in PERCENTILE_SERIES and (
            len(frame.dropna()) >= MIN_SERIES_DAYS
        ):
            judged = frame.dropna()
            if report_from is not None:
                judged = judged[judged["ds"] >= pd.Timestamp(report_from)]
            days += len(judged)
    return days


def _near(expected_days: Sequence[Any]) -> pd.DatetimeIndex:
    """The expected days (holidays) and the days either side of them."""
    expected = pd.DatetimeIndex(expected_days)
    return expected.union(expected + pd.Timedelta(days=1)).union(expected - pd.Timedelta(days=1))


def _reportable(
    window: anomaly.AlertWindow,
    severities: Sequence[str],
    report_from: date | None,
    near_holiday: pd.DatetimeIndex,
) -> bool:
    """A window of a listed severity, in the period, not wholly within a day of a holiday."""
    if window.severity not in severities:
        return False
    if report_from is not None and pd.Timestamp(window.start) < pd.Timestamp(report_from):
        return False
    span_days = pd.date_range(
        pd.Timestamp(window.start).normalize(), pd.Timestamp(window.end).normalize()
    )
    return not (len(near_holiday) and span_days.isin(near_holiday).all())


def _span(window: anomaly.AlertWindow) -> str:
    """``2026-03-08`` or ``2026-03-08 to 2026-03-10``."""
    start, end = iso_day(window.start), iso_day(window.end)
    return start if start == end else f"{start} to {end}"


def _sentence(
    name: str,
    label: str,
    unit: str,
    window: anomaly.AlertWindow,
    scale_log: bool,
    causal: bool,
    confirmation: dict[str, Any],
) -> str:
    """The finding: the window, the peak against the expected value, the severity and
    score, and what confirmed it."""
    metric = name.rpartition(":")[2]
    change = (
        (window.peak_value - window.expected_value) / abs(window.expected_value)
        if window.expected_value
        else float("nan")
    )
    return (
        f"{label} was anomalously {'high' if window.direction == 'up' else 'low'} on "
        f"{_span(window)}: {in_unit(window.peak_value, unit)} on {iso_day(window.peak_ds)} "
        f"against {in_unit(window.expected_value, unit)} expected"
        + (f" ({signed_pct(change)})" if change == change else "")
        + f"; severity {window.severity}, score {window.score:.1f}"
        + (" on a log scale" if scale_log else "")
        + (
            f"; {confirmation['slower_than_expected']:,} of "
            f"{confirmation['requests']:,} requests "
            f"({confirmation['slow_share'] * 100:.0f} %, "
            f"{(1 - PERCENTILE_SERIES[metric]) * 100:.0f} % on a normal day) were "
            "slower than expected"
            if "requests" in confirmation
            else ""
        )
        + ("" if causal else " (not causal: judged with later data)")
        + "."
    )


def _chart(
    data: pd.DataFrame, window: anomaly.AlertWindow, unit: str, label: str
) -> dict[str, Any] | None:
    """The series over the period with the window marked."""
    windows = pd.DataFrame(
        [{"start": window.start, "end": window.end, "severity": window.severity}]
    )
    return chart_spec(
        "anomaly_chart", data, windows, value_col="y", time_col="ds", unit=unit, title=label
    )


def anomaly_cards(
    frames: Watched,
    *,
    method: str = "stl_mad",
    report_from: date | None = None,
    expected_days: Sequence[Any] = (),
    slow_requests: SlowCounter | None = None,
    alpha: float = 0.05,
) -> tuple[list[InsightCard], int]:
    """Cards for the alert windows of :func:`auterity.anomaly.detect` on each series.

    ``frames`` is ``{name: (frame[ds, y], unit, label, directions, severities, log)}``;
    only windows of flagged points in one of ``directions`` (see :func:`windows_in`) with
    one of ``severities`` become cards, and only those starting on or after
    ``report_from`` (earlier rows are history the causal detector learns from), and not
    windows lying wholly within a day of one of ``expected_days`` (public holidays: a
    holiday dip is expected, not an anomaly). ``log`` judges the series on a log scale.
    Windows of :data:`~auterity.insights.anomaly_checks.POISSON_COUNTS` need their peak
    beyond Poisson noise too (:func:`~auterity.insights.anomaly_checks.poisson_score` at
    least the detector's threshold).

    A rise of a per-model percentile series
    (:data:`~auterity.insights.anomaly_checks.PERCENTILE_SERIES`, named
    ``"<model_id>:<metric>"``) also needs its requests: ``slow_requests`` counts them, and
    the window becomes a card only when
    :func:`~auterity.insights.anomaly_checks.slow_share_test` (Bonferroni over every day of
    every percentile series judged) is below ``alpha``. Without ``slow_requests``
    percentile windows are reported on the detector's word alone (see
    :func:`~auterity.insights.anomaly_checks.confirm`).

    A series with fewer than :data:`MIN_SERIES_DAYS` days of data is not judged. Returns
    the cards and the number of series judged.
    """
    near_holiday = _near(expected_days)
    percentile_days = _percentile_days(frames, report_from)
    cards, series_judged = [], 0
    for name, (frame, unit, label, directions, severities, log) in frames.items():
        data = frame.dropna()
        if len(data) < MIN_SERIES_DAYS:  # listed in the report's skipped (by _find)
            continue
        series_judged += 1
        scale_log = bool(log) and bool((data["y"] > 0).all())
        result = anomaly.detect(data, method=method, log=scale_log)
        points = result.points.set_index("ds")
        if report_from is not None:
            data = data[data["ds"] >= pd.Timestamp(report_from)]
        for window in windows_in(result, directions):
            if not _reportable(window, severities, report_from, near_holiday):
                continue
            confirmation = confirm(
                name,
                window,
                threshold=result.threshold,
                points=points,
                slow_requests=slow_requests,
                tests=percentile_days,
                alpha=alpha,
            )
            if confirmation is None:
                continue
            cards.append(
                InsightCard(
                    kind="anomaly",
                    title=f"{label}: {'spike' if window.direction == 'up' else 'drop'} on "
                    f"{iso_day(window.start)}",
                    sentence=_sentence(
                        name, label, unit, window, scale_log, result.causal, confirmation
                    ),
                    importance=KIND_BASE["anomaly"] + SEVERITY_IMPORTANCE.get(window.severity, 0.0),
                    evidence={
                        "series": name,
                        "start": window.start,
                        "end": window.end,
                        "peak_ds": window.peak_ds,
                        "peak_value": window.peak_value,
                        "expected_value": window.expected_value,
                        "score": window.score,
                        "direction": window.direction,
                        "severity": window.severity,
                        "method": method,
                        "causal": result.causal,
                        "log_scale": scale_log,
                        **confirmation,
                    },
                    chart=_chart(data, window, unit, label),
                )
            )
    return cards, series_judged


def skipped_reason(frames: Watched) -> str | None:
    """Which series the anomaly detector could not judge (too few days with data).

    Parameters
    ----------
    frames : dict
        The series of :func:`anomaly_cards`.

    Returns
    -------
    str or None
        The reason, naming the series; None when every series can be judged.
    """
    short = [
        name for name, (frame, *_rest) in frames.items() if len(frame.dropna()) < MIN_SERIES_DAYS
    ]
    if not short:
        return None
    return (
        f"{len(short)} series with fewer than {MIN_SERIES_DAYS} days of data (history "
        f"included) not judged: {', '.join(short)}"
    )


def _find(context: Context) -> Found:
    """The ``anomaly`` kind: :func:`anomaly_cards` on the business KPIs and per-model series
    with :data:`ANOMALY_HISTORY_DAYS` of history, holidays expected, slow p95 latencies
    confirmed by their requests (skipped names the series too short to judge)."""
    start, end, tz, url = context.start, context.end, context.tz, context.url
    history = correlate.load_series(
        start - timedelta(days=ANOMALY_HISTORY_DAYS),
        end,
        business_metrics=ANOMALY_BUSINESS,
        ml_metrics=ANOMALY_ML,
        holidays=None,
        tz=tz,
        url=url,
    )
    off = correlate.holiday_days(pd.DatetimeIndex(history.business.index), context.holidays)
    frames = series_frames(history)
    cards, judged = anomaly_cards(
        frames,
        report_from=start,
        expected_days=off,
        slow_requests=lambda model_id, metric, thresholds: count_slow_requests(
            model_id, thresholds, metric=metric, tz=tz, url=url
        ),
        alpha=context.alpha,
    )
    return Found(cards=cards, tested={"anomaly_series": judged}, skipped=skipped_reason(frames))


insight_kinds.register("anomaly", _find)

__all__ = [
    "ANOMALY_BUSINESS",
    "ANOMALY_HISTORY_DAYS",
    "ANOMALY_LOG_SCALE",
    "ANOMALY_ML",
    "BUSINESS_SEVERITIES",
    "MIN_SERIES_DAYS",
    "ML_SEVERITIES",
    "SEVERITY_IMPORTANCE",
    "Watched",
    "anomaly_cards",
    "series_frames",
    "skipped_reason",
    "windows_in",
]
