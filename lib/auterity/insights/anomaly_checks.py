"""What confirms an anomaly card beyond the detector's word.

Two kinds of series have a noise the detector's robust scale does not see: counts of
independent events (Poisson noise, :func:`poisson_score`) and daily percentiles of a few
dozen requests (sampling noise of a percentile: :func:`slow_share_test` on the requests
slower than expected, counted by :func:`count_slow_requests`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pandas as pd

from auterity import anomaly, metrics

POISSON_COUNTS = ("orders",)
"""Business KPIs that count independent events: their day-to-day noise is at least a
Poisson count's, ``sqrt(expected)``. An alert on one becomes a card only when its peak is
also ``threshold`` Poisson standard deviations from the expected count: early in a
range, four weeks of residuals can give the robust scale of a 30-order day as 3 orders
when counting noise alone is 5.5 (see :func:`poisson_score`)."""
PERCENTILE_SERIES = {"p95_latency_ms": 0.95}
"""Per-model percentile series and their quantile. A daily p95 of a few dozen requests is
its second- or third-slowest request, so a rise is only reported when the share of the
window's requests slower than the expected p95 is significantly above 5 % (one-sided
binomial test, Bonferroni over every (series, day) watched; see :func:`slow_share_test`):
that is the claim 'this model was slower', and it needs enough requests to be told
from the sampling noise of a percentile."""


def poisson_score(value: float, expected: float) -> float:
    """How many Poisson standard deviations (``sqrt(expected)``) a count is from the
    expected count (signed; NaN when nothing is expected)."""
    if not expected > 0:
        return float("nan")
    return (value - expected) / math.sqrt(expected)


def slow_share_test(slow: int, total: int, *, quantile: float, tests: int = 1) -> float:
    """Bonferroni-adjusted p-value that more than ``1 - quantile`` of requests were slower
    than the expected ``quantile`` latency.

    On a normal day a share ``1 - quantile`` of requests is slower than the day's expected
    percentile, so ``slow`` out of ``total`` is Binomial(``total``, ``1 - quantile``); the
    one-sided p-value of at least ``slow`` is multiplied by ``tests`` (the number of
    (series, day) pairs watched) and capped at 1. Without requests it is 1.
    """
    from scipy import stats

    if total <= 0:
        return 1.0
    p = float(stats.binom.sf(slow - 1, total, 1.0 - quantile))
    return min(1.0, p * max(tests, 1))


def count_slow_requests(
    model_id: str,
    thresholds: Sequence[tuple[date, float]],
    *,
    metric: str = "p95_latency_ms",
    tz: str | None = None,
    url: str | None = None,
) -> tuple[int, int]:
    """The requests of a model counted in a latency percentile on some days, and how many of
    them were slower than each day's threshold (one statement per day, through the metric
    layer).

    Parameters
    ----------
    model_id : str
        The model.
    thresholds : sequence of (date, float)
        Local days and their latency threshold (the expected percentile).
    metric : str
        A catalog percentile of latency (its filters say which requests count).
    tz, url : str, optional
        Business time zone and warehouse URL.

    Returns
    -------
    tuple of int
        ``(slow, total)`` over the days.
    """
    catalog = metrics.load_catalog()
    base = catalog.metric(metric)
    counted = replace(
        base, name="_requests_counted", aggregate="count", column=None, percentile=None
    )
    slow = total = 0
    for day, threshold in thresholds:
        slower = replace(
            counted,
            name="_requests_slower",
            filters=(*base.filters, metrics.Filter(str(base.column), ">", float(threshold))),
        )
        extended = metrics.Catalog(
            metrics={**catalog.metrics, counted.name: counted, slower.name: slower},
            dimensions=catalog.dimensions,
            joins=catalog.joins,
        )
        frame = metrics.query(
            [counted.name, slower.name],
            start=day,
            end=day + timedelta(days=1),
            grain=None,
            where={"model": model_id},
            tz=tz,
            catalog=extended,
            url=url,
        )
        total += int(frame[counted.name].fillna(0).sum())
        slow += int(frame[slower.name].fillna(0).sum())
    return slow, total


SlowCounter = Callable[[str, str, Sequence[tuple[date, float]]], tuple[int, int]]
"""``(model_id, metric, [(day, threshold)]) -> (slow, total)`` requests (see
:func:`count_slow_requests`)."""


def confirm(
    name: str,
    window: anomaly.AlertWindow,
    *,
    threshold: float,
    points: pd.DataFrame,
    slow_requests: SlowCounter | None,
    tests: int,
    alpha: float,
) -> dict[str, Any] | None:
    """What confirms an alert window beyond the detector's word.

    A window of :data:`POISSON_COUNTS` needs its peak :func:`poisson_score` at least
    ``threshold`` from the expected count; a window of a per-model percentile series
    (:data:`PERCENTILE_SERIES`, named ``"<model_id>:<metric>"``) needs
    :func:`slow_share_test` of its requests (counted by ``slow_requests``; without it the
    detector's word is taken) below ``alpha``.

    Parameters
    ----------
    name : str
        The series' name.
    window : auterity.anomaly.AlertWindow
        The alert window.
    threshold : float
        The detector's threshold.
    points : DataFrame
        The detector's points indexed by day (their ``expected`` values are the
        thresholds of slow requests).
    slow_requests : callable, optional
        A :data:`SlowCounter`.
    tests : int
        (series, day) pairs of percentile series watched (the Bonferroni family).
    alpha : float
        Family-wise error rate of the slow-request tests.

    Returns
    -------
    dict or None
        The confirmation's evidence (``{}`` when the series needs none), or None when the
        window is within counting noise or its slow requests are chance.
    """
    model_id, _, metric = name.rpartition(":")
    confirmation: dict[str, Any] = {}
    if name in POISSON_COUNTS:
        beyond = poisson_score(window.peak_value, window.expected_value)
        if not abs(beyond) >= threshold:
            return None
        confirmation = {"poisson_score": beyond}
    if metric in PERCENTILE_SERIES and slow_requests is not None and model_id:
        days = points.loc[window.start : window.end]
        slow, total = slow_requests(
            model_id,
            metric,
            [(pd.Timestamp(d).date(), float(e)) for d, e in days["expected"].items()],
        )
        p_slow = slow_share_test(slow, total, quantile=PERCENTILE_SERIES[metric], tests=tests)
        if not p_slow < alpha:
            return None
        confirmation = {
            "requests": total,
            "slower_than_expected": slow,
            "slow_share": slow / total if total else float("nan"),
            "slow_share_p_bonferroni": p_slow,
        }
    return confirmation


__all__ = [
    "PERCENTILE_SERIES",
    "POISSON_COUNTS",
    "SlowCounter",
    "confirm",
    "count_slow_requests",
    "poisson_score",
    "slow_share_test",
]
