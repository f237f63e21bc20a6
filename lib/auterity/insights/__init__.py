"""Automated insights: significant findings across business and ModelHub data, as cards.

:func:`generate` looks at a date range from several angles and turns only *significant*
findings into :class:`InsightCard` objects (precision over volume), ranked by importance:

* ``correlation``: an ML metric of one model moves with a business metric, at some lag
  (:mod:`auterity.correlate`: residuals, effective sample size, Benjamini-Hochberg over
  every pair and lag, and not carried by a single episode);
* ``mover``: a KPI changed between the last ``period_days`` and the ``period_days``
  before (Mann-Whitney test on the daily values, Benjamini-Hochberg over the KPIs), with
  the segment that explains most of it (:func:`auterity.business.top_movers`: for ratios
  the rate and mix effects);
* ``anomaly``: alert windows of :func:`auterity.anomaly.detect` (causal, given five weeks
  of history before the period) on the business KPIs (revenue on a log scale: its noise is
  multiplicative; orders only beyond Poisson counting noise), and medium or high ones on
  the per-model series; a rise of a model's p95 latency only when significantly more than
  5 % of the window's requests were slower than the expected p95 (a daily p95 of a few
  dozen requests is mostly sampling noise);
* ``level_shift``: a KPI without a growth trend (average order value) that stepped to a new
  level and stayed there *at constant segment mix* (within-segment prices, not a few
  weeks with more orders from the segment with the largest orders): the 28 days after
  some day differ from the 28 before (Mann-Whitney on the daily values, Bonferroni over
  every candidate day at a fifth of ``alpha``), explained by segment with rate and mix
  effects;
* ``forecast_risk``: a KPI whose forecast for the next ``period_days`` lies, band and
  all, below (or above, for metrics where up is bad) the last ``period_days``;
* ``drift``: a model's token, latency or quality distribution moved significantly (PSI
  beyond sampling noise >= 0.25, KS significant after Bonferroni) between the first third
  and the last ``period_days`` of the range (:func:`auterity.modelhub.drift`);
* ``savings``: a cheaper model serves a feature as well
  (:func:`auterity.modelhub.savings`).

Every card is a sentence with its evidence (numbers, dates) and an Altair chart spec
built with :mod:`auterity.charts`; :meth:`InsightCard.to_dict` is JSON-serialisable.

Importance is a score in [0, 1]: a base per kind (what a reader must act on first) raised
by the size of the effect. See :data:`KIND_BASE`.

The package: :mod:`~auterity.insights.cards` holds the card, the report and what every kind
shares (importance, how a sentence writes a date, a change or a value, a chart that may
fail); one module per kind decides (the statistics), writes the sentence and builds the
chart, and registers its finder in :mod:`~auterity.insights.registry`, whose :func:`run`
asks every registered kind (the papermill engine registry's shape). Adding a kind is a
module ending in ``insight_kinds.register("<kind>", <finder>)`` and its import below.
"""

from __future__ import annotations

# isort: off
# Each kind registers itself when its module is imported: the order of these imports is the
# order in which run() asks the kinds (and in which the report lists tested and skipped).
from auterity.insights.correlation import correlation_cards
from auterity.insights.mover import MOVER_METRICS, mover_cards
from auterity.insights.level_shift import (
    LEVEL_ALPHA_SHARE,
    LEVEL_METRICS,
    LEVEL_WINDOW_DAYS,
    level_shift_cards,
    mix_adjusted,
    step_scan,
)
from auterity.insights.drift import DRIFT_BINS, DRIFT_PSI, drift_cards
from auterity.insights.savings import savings_cards
from auterity.insights.anomaly import (
    ANOMALY_BUSINESS,
    ANOMALY_HISTORY_DAYS,
    ANOMALY_LOG_SCALE,
    ANOMALY_ML,
    BUSINESS_SEVERITIES,
    MIN_SERIES_DAYS,
    ML_SEVERITIES,
    anomaly_cards,
)
from auterity.insights.forecast_risk import (
    FORECAST_HISTORY_PERIODS,
    FORECAST_METRICS,
    forecast_cards,
    forecast_series,
)

# isort: on
from auterity.insights.anomaly_checks import (
    PERCENTILE_SERIES,
    POISSON_COUNTS,
    SlowCounter,
    poisson_score,
    slow_share_test,
)
from auterity.insights.cards import KIND_BASE, KINDS, InsightCard, InsightReport
from auterity.insights.registry import Context, Found, generate, insight_kinds, run

__all__ = [
    "ANOMALY_BUSINESS",
    "ANOMALY_HISTORY_DAYS",
    "ANOMALY_LOG_SCALE",
    "ANOMALY_ML",
    "BUSINESS_SEVERITIES",
    "DRIFT_BINS",
    "DRIFT_PSI",
    "FORECAST_HISTORY_PERIODS",
    "FORECAST_METRICS",
    "KINDS",
    "KIND_BASE",
    "LEVEL_ALPHA_SHARE",
    "LEVEL_METRICS",
    "LEVEL_WINDOW_DAYS",
    "MIN_SERIES_DAYS",
    "ML_SEVERITIES",
    "MOVER_METRICS",
    "PERCENTILE_SERIES",
    "POISSON_COUNTS",
    "Context",
    "Found",
    "InsightCard",
    "InsightReport",
    "SlowCounter",
    "anomaly_cards",
    "correlation_cards",
    "drift_cards",
    "forecast_cards",
    "forecast_series",
    "generate",
    "insight_kinds",
    "level_shift_cards",
    "mix_adjusted",
    "mover_cards",
    "poisson_score",
    "run",
    "savings_cards",
    "slow_share_test",
    "step_scan",
]
