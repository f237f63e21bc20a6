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
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from auterity import correlate
from auterity.correlate import ML_LABELS, ML_UNITS, as_records, describe_lag
from auterity.errors import ConfigError

log = logging.getLogger("auterity.insights")

KINDS = ("correlation", "anomaly", "level_shift", "forecast_risk", "drift", "savings", "mover")
"""Every kind of card, in the order of :data:`KIND_BASE`."""
KIND_BASE = {
    "correlation": 0.6,
    "anomaly": 0.55,
    "level_shift": 0.55,
    "forecast_risk": 0.5,
    "drift": 0.5,
    "savings": 0.45,
    "mover": 0.4,
}
"""Importance of a card of each kind before its effect size is added (up to +0.4)."""
MOVER_METRICS = {
    "revenue": ("segment", "region", "channel"),
    "orders": ("segment", "region", "channel"),
    "average_order_value": ("segment", "channel"),
    "active_customers": ("segment", "region", "feature"),
    "conversion_rate": (),
}
"""KPIs checked for significant moves, and the dimensions that may explain them."""
ANOMALY_BUSINESS = ("revenue", "orders", "conversion_rate", "active_customers")
ANOMALY_LOG_SCALE = ("revenue",)
"""Business KPIs judged on a log scale (:func:`auterity.anomaly.detect` with ``log=True``):
a day's revenue is a sum of skewed order amounts, so its noise is multiplicative and its
linear right tail long (a day with a few more large orders than usual is no anomaly),
and a fall to a third of the usual is as strong a signal as a tripling. Order counts
(Poisson-like, symmetric noise) stay on the linear scale."""
POISSON_COUNTS = ("orders",)
"""Business KPIs that count independent events: their day-to-day noise is at least a
Poisson count's, ``sqrt(expected)``. An alert on one becomes a card only when its peak is
also ``threshold`` Poisson standard deviations from the expected count: early in a
range, four weeks of residuals can give the robust scale of a 30-order day as 3 orders
when counting noise alone is 5.5 (see :func:`poisson_score`)."""
BUSINESS_SEVERITIES = ("low", "medium", "high")
"""Every alert of the detector's own threshold on the four business KPIs ..."""
ML_SEVERITIES = ("medium", "high")
"""... but only medium and high ones (score >= 1.5 x threshold) on the per-model series:
there are about 20 of those, and false alarms grow with the number of series watched."""
ANOMALY_HISTORY_DAYS = 35
"""Days before the period given to the causal detector as history (it needs four weeks
before it judges a day), so the first days of the period are judged too."""
ANOMALY_ML = ("p95_latency_ms", "cost_per_request")
"""Per-model series checked for anomalies (as loaded by :func:`correlate.load_series`: days
with few requests and flat-fee costs left out); only rises are reported (a drop in latency
or cost is no alert). Daily error rates of most models are a handful of events, too few to
judge."""
PERCENTILE_SERIES = {"p95_latency_ms": 0.95}
"""Per-model percentile series and their quantile. A daily p95 of a few dozen requests is
its second- or third-slowest request, so a rise is only reported when the share of the
window's requests slower than the expected p95 is significantly above 5 % (one-sided
binomial test, Bonferroni over every (series, day) watched; see :func:`slow_share_test`):
that is the claim 'this model was slower', and it needs enough requests to be told
from the sampling noise of a percentile."""
FORECAST_METRICS = ("revenue", "orders", "active_customers")
FORECAST_HISTORY_PERIODS = 4
"""A forecast for the next ``period_days`` is fitted on at least this many ``period_days``
of daily history up to the period end (112 days for 28), read before the period when the
period is shorter, as the anomaly cards read theirs."""
MIN_SERIES_DAYS = 28
"""Days with data a series needs before the anomaly detector judges it."""
LEVEL_WINDOW_DAYS = 28
"""Days on each side of a candidate step of :func:`level_shift_cards` (its default window)."""
LEVEL_METRICS = {"average_order_value": ("segment", "channel")}
"""Ratio KPIs scanned for a lasting step, and the dimensions that may explain it (the first
is the one the scan holds the mix of constant). Only metrics without a growth trend: in a
growing metric every 28-day window differs from the last."""
LEVEL_ALPHA_SHARE = 0.2
"""Share of the report's ``alpha`` at which level shifts are reported (Bonferroni over the
candidate days). A report should carry no false card at all in ``1 - alpha`` of effect-free
periods, and five kinds of card can raise one (correlation, anomaly, level shift, drift,
savings): a scan that is family-wise on its own gets a fifth of the budget."""
DRIFT_PSI = 0.25
"""PSI beyond sampling noise from which drift is reported ('significant' by convention)."""
DRIFT_BINS = 20
"""Bins of :func:`auterity.modelhub.drift` (its default)."""


@dataclass
class InsightCard:
    """One finding: what happened, the evidence, and a chart.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    title : str
        A short headline.
    sentence : str
        The finding in one sentence with its numbers and dates.
    importance : float
        Ranking score in [0, 1].
    evidence : dict
        The numbers behind the sentence (JSON-safe).
    chart : dict or None
        A Vega-Lite spec (:func:`auterity.charts.to_dict`).

    ``title`` and ``sentence`` are plain text holding warehouse values (segment, region,
    channel, model and feature names): whoever shows them escapes them for the format
    (:func:`auterity.present.insight_markdown`, :func:`auterity.present.table_html`); the
    chart's texts are made safe by the chart builders.
    """

    kind: str
    title: str
    sentence: str
    importance: float
    evidence: dict[str, Any] = field(default_factory=dict)
    chart: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the card."""
        return {
            "kind": self.kind,
            "title": self.title,
            "sentence": self.sentence,
            "importance": round(float(self.importance), 4),
            "evidence": correlate.json_safe(self.evidence),
            "chart": self.chart,
        }


@dataclass
class InsightReport:
    """Cards plus how they were found: what was tested and what could not be run."""

    start: date
    end: date
    cards: list[InsightCard]
    tested: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the report."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "cards": [c.to_dict() for c in self.cards],
            "tested": correlate.json_safe(self.tested),
            "skipped": dict(self.skipped),
        }


# --------------------------------------------------------------------------- helpers


def _importance(kind: str, effect: float, full: float) -> float:
    """The kind's base (:data:`KIND_BASE`) plus up to 0.4 for the size of the effect (all of
    it from ``|effect| >= full``)."""
    return KIND_BASE[kind] + 0.4 * min(1.0, abs(effect) / full)


def _day(value: Any) -> str:
    """``2026-03-08`` from a date-like value."""
    return pd.Timestamp(value).date().isoformat()


def _pct(value: float) -> str:
    """``+12.3 %`` / ``-4 %``."""
    return f"{value * 100:+.1f} %"


def _num(value: float, unit: str) -> str:
    """A value formatted for a sentence in its unit."""
    from auterity.charts import format_value

    return format_value(value, unit)


def _chart(builder: str, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    """The spec of ``auterity.charts.<builder>(*args, **kwargs)``, or None (with a warning)
    when it cannot be built."""
    from auterity import charts

    try:
        return charts.to_dict(getattr(charts, builder)(*args, **kwargs))
    except Exception as exc:  # a chart must never cost us the finding
        log.warning("insight chart not built: %s", exc)
        return None


def _label(metric: str) -> str:
    """A metric's label from the catalog (or the name)."""
    from auterity import metrics

    try:
        return metrics.load_catalog().metric(metric).label
    except ConfigError:
        return metric.replace("_", " ")


def _metric_meta(metric: str) -> tuple[str, str]:
    """``(unit, good)`` of a catalog metric."""
    from auterity import metrics

    definition = metrics.load_catalog().metric(metric)
    return definition.unit, definition.good


# --------------------------------------------------------------------------- correlation


def correlation_cards(result: correlate.CorrelationResult) -> list[InsightCard]:
    """Cards for the significant correlations of a :func:`correlate.correlate` result."""
    cards = []
    for row in result.findings.itertuples():
        x = result.series.ml[row.ml_series]
        y = result.series.business[row.business_metric]
        rx, ry = correlate.residuals(x), correlate.residuals(y)
        lag = int(row.lag)
        shifted = ry.shift(-lag)
        product = ((rx - rx.mean()) / rx.std()) * ((shifted - shifted.mean()) / shifted.std())
        product = product * np.sign(row.pearson_r)
        top_days = product.dropna().sort_values(ascending=False).head(3).index
        ml_label = ML_LABELS[row.ml_metric]
        biz_label = _label(row.business_metric)
        direction = "falls" if row.pearson_r < 0 else "rises"
        sentence = (
            f"When {row.model_id}'s {ml_label} rises, {biz_label.lower()} {direction} "
            f"{describe_lag(lag)} (r = {row.pearson_r:+.2f}, 95 % CI {row.pearson_ci_low:+.2f} "
            f"to {row.pearson_ci_high:+.2f}; Spearman {row.spearman_r:+.2f}; "
            f"q = {row.q_value:.2g} over {result.hypotheses:,} pair-lag tests); clearest on "
            + ", ".join(_day(d) for d in top_days)
            + "."
        )
        evidence = {
            "ml_series": row.ml_series,
            "model_id": row.model_id,
            "ml_metric": row.ml_metric,
            "business_metric": row.business_metric,
            "lag_days": lag,
            "significant_lags": list(row.significant_lags),
            "pearson_r": row.pearson_r,
            "pearson_ci": [row.pearson_ci_low, row.pearson_ci_high],
            "spearman_r": row.spearman_r,
            "spearman_ci": [row.spearman_ci_low, row.spearman_ci_high],
            "p_value": row.p_value,
            "q_value": row.q_value,
            "n_days": row.n,
            "effective_n": row.n_eff,
            "r_without_top_episode": row.r_without_top_episode,
            "hypotheses_tested": result.hypotheses,
            "alpha": result.alpha,
            "clearest_days": [_day(d) for d in top_days],
        }
        frame = pd.concat(
            [
                pd.DataFrame(
                    {
                        "day": rx.index + pd.Timedelta(days=lag),
                        "series": f"{row.model_id} {ml_label} (shifted {lag:+d} d)",
                        "z": (rx - rx.mean()) / rx.std(),
                    }
                ),
                pd.DataFrame(
                    {"day": ry.index, "series": biz_label, "z": (ry - ry.mean()) / ry.std()}
                ),
            ]
        ).dropna()

        cards.append(
            InsightCard(
                kind="correlation",
                title=f"{row.model_id} {ml_label} and {biz_label.lower()}",
                sentence=sentence,
                importance=_importance("correlation", row.pearson_r, 0.5),
                evidence=evidence,
                chart=_chart(
                    "trend",
                    frame,
                    "z",
                    unit="number",
                    by="series",
                    title=f"{ml_label} vs {biz_label} (standardised residuals)",
                    interactive=False,
                    time_col="day",
                ),
            )
        )
    return cards


# --------------------------------------------------------------------------- movers


def mover_cards(
    start: date,
    end: date,
    *,
    period_days: int = 28,
    alpha: float = 0.05,
    min_change: float = 0.05,
    tz: str | None = None,
    url: str | None = None,
) -> tuple[list[InsightCard], int]:
    """KPIs that moved significantly between the last two ``period_days`` windows.

    A move is reported when the daily values of the two windows differ (Mann-Whitney,
    Benjamini-Hochberg over the KPIs at ``alpha``) and the total changed by at least
    ``min_change`` (relative). Returns the cards and the number of KPIs tested.
    """
    from scipy import stats

    from auterity import business, metrics

    if (end - start).days < 2 * period_days:
        return [], 0
    cur = (end - timedelta(days=period_days), end)
    prev = (cur[0] - timedelta(days=period_days), cur[0])
    names = list(MOVER_METRICS)
    daily = metrics.query(names, start=prev[0], end=end, grain="day", tz=tz, url=url)
    daily["period"] = pd.to_datetime(daily["period"])
    before = daily[daily["period"] < pd.Timestamp(cur[0])]
    after = daily[daily["period"] >= pd.Timestamp(cur[0])]
    pvalues, totals = (
        [],
        metrics.query_windows(names, {"current": cur, "previous": prev}, tz=tz, url=url).set_index(
            "period"
        ),
    )
    for name in names:
        a, b = before[name].dropna(), after[name].dropna()
        if len(a) < 7 or len(b) < 7:
            pvalues.append(1.0)
            continue
        pvalues.append(float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue))
    reject, q = correlate.benjamini_hochberg(pvalues, alpha)
    cards = []
    for name, p, qv, ok in zip(names, pvalues, q, reject, strict=True):
        if not ok or "current" not in totals.index or "previous" not in totals.index:
            continue
        now, was = float(totals.loc["current", name]), float(totals.loc["previous", name])
        if not was or math.isnan(was) or math.isnan(now):
            continue
        change = (now - was) / abs(was)
        if abs(change) < min_change:
            continue
        unit, good = _metric_meta(name)
        label = _label(name)
        explain, movers, by_used = "", None, None
        for by in MOVER_METRICS[name]:
            frame = business.top_movers(name, by, cur, prev, tz=tz, url=url)
            if frame.empty or pd.isna(frame["share_of_change"].iloc[0]):
                continue
            top = frame.iloc[0]
            if movers is None or abs(top["share_of_change"]) > abs(
                movers.iloc[0]["share_of_change"]
            ):
                movers, by_used = frame, by
        if movers is not None and by_used is not None:
            top = movers.iloc[0]
            explain = (
                f"; {by_used} {top[by_used]} explains {top['share_of_change'] * 100:.0f} % of it"
            )
            if "rate_effect" in movers.columns:
                explain += (
                    f" (rate effect {_num(top['rate_effect'], unit)}, "
                    f"mix effect {_num(top['mix_effect'], unit)})"
                )
        sentence = (
            f"{label} {'rose' if change > 0 else 'fell'} {_pct(change)} to {_num(now, unit)} in "
            f"{_day(cur[0])} to {_day(cur[1] - timedelta(days=1))} against "
            f"{_num(was, unit)} in the {period_days} days before (Mann-Whitney p = {p:.2g}, "
            f"q = {qv:.2g}){explain}."
        )
        evidence: dict[str, Any] = {
            "metric": name,
            "current": now,
            "previous": was,
            "change_pct": change,
            "current_window": [cur[0], cur[1]],
            "previous_window": [prev[0], prev[1]],
            "p_value": p,
            "q_value": qv,
            "metrics_tested": len(names),
        }
        chart = _chart(
            "trend",
            daily[["period", name]],
            name,
            unit=unit,
            title=f"{label}, daily",
            interactive=False,
        )
        if movers is not None and by_used is not None:
            evidence["explained_by"] = by_used
            evidence["movers"] = as_records(movers.head(5))

            chart = _chart(
                "movers_chart", movers, by_used, unit=unit, good=good, top=8, title=label
            )
        cards.append(
            InsightCard(
                kind="mover",
                title=f"{label} {_pct(change)}",
                sentence=sentence,
                importance=_importance("mover", change, 0.5),
                evidence=evidence,
                chart=chart,
            )
        )
    return cards, len(names)


def mix_adjusted(
    parts: pd.DataFrame, numerator: str, denominator: str, by: str, time_col: str = "period"
) -> pd.Series:
    """A ratio KPI per period at constant ``by`` mix (e.g. average order value at each
    segment's usual prices).

    ``parts`` has one row per period and value of ``by`` with the ratio's ``numerator``
    and ``denominator``. Each group's numerator is divided by the group's own ratio over
    the whole frame, so a period's value is ``overall ratio x sum(numerator_g / ratio_g) /
    sum(denominator_g)``: it equals the overall ratio whenever every group is at its usual
    level, whatever the mix of groups that period, and moves only when ratios *within*
    groups move (a price increase for everyone lifts it by the increase; more orders from
    the segment with the largest orders does not). Periods without any denominator are NaN.
    """
    totals = parts.groupby(by)[[numerator, denominator]].sum()
    usual = totals[numerator] / totals[denominator].where(totals[denominator] > 0)
    overall = totals[numerator].sum() / totals[denominator].sum()
    level = parts[by].map(usual)
    at_usual = (parts[numerator] / level).where(level > 0, 0.0)
    grouped = (
        pd.DataFrame({time_col: parts[time_col], "x": at_usual, "n": parts[denominator]})
        .groupby(time_col, sort=True)[["x", "n"]]
        .sum()
    )
    return overall * grouped["x"] / grouped["n"].where(grouped["n"] > 0)


def step_scan(values: np.ndarray, window: int) -> tuple[float, int | None, int]:
    """``(p, t, candidates)``: the day ``t`` whose ``window`` values before and after differ
    most (smallest two-sided Mann-Whitney p), over every day with ``window`` days on each
    side (at least half of them not NaN); ``t`` is None when no day qualifies."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    candidates = range(window, len(values) - window + 1)
    best_p, best_t = 1.0, None
    for t in candidates:
        before, after = values[t - window : t], values[t : t + window]
        before, after = before[~np.isnan(before)], after[~np.isnan(after)]
        if len(before) < window // 2 or len(after) < window // 2:
            continue
        p = float(stats.mannwhitneyu(before, after, alternative="two-sided").pvalue)
        if p < best_p:
            best_p, best_t = p, t
    return best_p, best_t, len(candidates)


def level_shift_cards(
    start: date,
    end: date,
    *,
    window: int = LEVEL_WINDOW_DAYS,
    alpha: float = 0.05,
    tz: str | None = None,
    url: str | None = None,
) -> tuple[list[InsightCard], int]:
    """Lasting steps in trend-free ratio KPIs (:data:`LEVEL_METRICS`), at constant mix.

    The KPI is scanned at constant mix of the first dimension listed for it
    (:func:`mix_adjusted`: for average order value, each segment's orders at that
    segment's usual value), so a step is a change *within* segments (prices), not days
    with more or fewer orders from the segment with the largest orders: a few weeks of
    mix drift are common and are what the ``mover`` cards describe. Every day ``t`` with
    ``window`` days on each side is a candidate (:func:`step_scan`); the day with the
    smallest p-value is reported when that p-value, multiplied by the number of candidate
    days (Bonferroni), is below ``alpha``. The card gives the KPI itself (mix included)
    next to the constant-mix step, and the rate and mix effects across each dimension.

    Returns the cards and the number of metrics scanned.
    """
    from auterity import business, metrics

    names = list(LEVEL_METRICS)
    if (end - start).days < 3 * window:
        return [], 0
    catalog = metrics.load_catalog()
    daily = metrics.query(names, start=start, end=end, grain="day", tz=tz, url=url)
    daily["period"] = pd.to_datetime(daily["period"])
    cards = []
    for name in names:
        definition = catalog.metric(name)
        by_mix = LEVEL_METRICS[name][0] if LEVEL_METRICS[name] else None
        raw = daily[name].astype(float).to_numpy()
        if definition.aggregate == "ratio" and by_mix is not None:
            numerator, denominator = definition.operands
            parts = metrics.query(
                [numerator, denominator],
                start=start,
                end=end,
                grain="day",
                by=[by_mix],
                tz=tz,
                url=url,
            )
            parts["period"] = pd.to_datetime(parts["period"])
            adjusted = mix_adjusted(parts, numerator, denominator, by_mix)
            values = adjusted.reindex(daily["period"]).to_numpy(float)
        else:
            by_mix, values = None, raw
        best_p, best_t, candidates = step_scan(values, window)
        adjusted_p = min(1.0, best_p * candidates)
        if best_t is None or adjusted_p >= alpha:
            continue
        day = daily["period"].iloc[best_t].date()
        was = float(np.nanmedian(values[best_t - window : best_t]))
        now = float(np.nanmedian(values[best_t : best_t + window]))
        change = (now - was) / abs(was) if was else float("nan")
        raw_was = float(np.nanmedian(raw[best_t - window : best_t]))
        raw_now = float(np.nanmedian(raw[best_t : best_t + window]))
        unit = _metric_meta(name)[0]
        label = _label(name)
        subject = f"{label} at constant {by_mix} mix" if by_mix else label
        before_w = (day - timedelta(days=window), day)
        after_w = (day, day + timedelta(days=window))
        explain, movers = "", None
        for by in LEVEL_METRICS[name]:
            frame = business.top_movers(name, by, after_w, before_w, tz=tz, url=url)
            if frame.empty or "rate_effect" not in frame.columns:
                continue
            total = frame["contribution"].sum()
            if not total:
                continue
            rate_share = frame["rate_effect"].sum() / total
            explain = (
                f"; by {by}, {rate_share * 100:.0f} % of the change is within-{by} "
                f"{'prices' if name == 'average_order_value' else 'rates'} (rate effect) "
                f"and {(1 - rate_share) * 100:.0f} % a shift of the mix"
            )
            movers = frame
            break
        itself = (
            f"; {label.lower()} itself, mix included, {_num(raw_was, unit)} -> "
            f"{_num(raw_now, unit)}"
            if by_mix
            else ""
        )
        sentence = (
            f"{subject} {'stepped up' if change > 0 else 'stepped down'} {_pct(change)} on "
            f"{day.isoformat()} and stayed there: median {_num(now, unit)} in the {window} days "
            f"from then against {_num(was, unit)} in the {window} days before (Mann-Whitney "
            f"p = {best_p:.2g}, {adjusted_p:.2g} after Bonferroni over {candidates} days)"
            f"{itself}{explain}."
        )
        evidence: dict[str, Any] = {
            "metric": name,
            "date": day,
            "median_before": was,
            "median_after": now,
            "change_pct": change,
            "constant_mix_of": by_mix,
            "metric_median_before": raw_was,
            "metric_median_after": raw_now,
            "p_value": best_p,
            "p_bonferroni": adjusted_p,
            "alpha": alpha,
            "candidate_days": candidates,
            "window_days": window,
        }
        if movers is not None:
            evidence["movers"] = as_records(movers.head(5))
        series = pd.DataFrame({"period": daily["period"], name: values})
        cards.append(
            InsightCard(
                kind="level_shift",
                title=f"{subject} {_pct(change)} from {day.isoformat()}",
                sentence=sentence,
                importance=_importance("level_shift", change, 0.5),
                evidence=evidence,
                chart=_chart(
                    "anomaly_chart",
                    series,
                    pd.DataFrame([{"start": day, "end": min(after_w[1], end) - timedelta(days=1)}]),
                    value_col=name,
                    time_col="period",
                    unit=unit,
                    title=f"{subject}, daily",
                ),
            )
        )
    return cards, len(names)


# --------------------------------------------------------------------------- drift, savings


def drift_cards(
    start: date,
    end: date,
    *,
    period_days: int = 28,
    alpha: float = 0.05,
    models: Sequence[str] | None = None,
    tz: str | None = None,
    url: str | None = None,
) -> tuple[list[InsightCard], int]:
    """Significant distribution drift per model between the start and the end of the range.

    The reference window is the first third of the range (at least ``period_days``), the
    current window the last ``period_days``. A drift is significant when its PSI exceeds
    :data:`DRIFT_PSI` *after* subtracting the PSI that sampling noise alone produces,
    ``(bins - 1) (1/n_ref + 1/n_cur)``, and the KS p-value is below ``alpha`` divided by
    the number of comparisons (Bonferroni): a PSI over 20 bins from a few dozen requests
    is noise.

    Returns the cards and the number of (model, metric) comparisons made.
    """
    from auterity import modelhub

    if (end - start).days < 2 * period_days:
        return [], 0
    reference = (start, start + timedelta(days=max(period_days, (end - start).days // 3)))
    current = (end - timedelta(days=period_days), end)
    if reference[1] > current[0]:
        reference = (start, current[0])
    if models is None:
        board = modelhub.leaderboard(start, end, tz=tz, url=url)
        models = [str(m) for m in board.loc[board["requests"] > 0, "model_id"]]
    frames = {m: modelhub.drift(reference, current, model=m, tz=tz, url=url) for m in models}
    tested = sum(len(f) for f in frames.values())
    cards = []
    for model_id, frame in frames.items():
        for row in frame.itertuples():
            if not row.n_reference or not row.n_current or pd.isna(row.psi):
                continue
            noise = (DRIFT_BINS - 1) * (1 / row.n_reference + 1 / row.n_current)
            excess = float(row.psi) - noise
            if excess < DRIFT_PSI or not row.ks_pvalue < alpha / max(tested, 1):
                continue
            sentence = (
                f"{model_id}'s {row.metric.replace('_', ' ')} distribution shifted between "
                f"{_day(reference[0])} to {_day(reference[1] - timedelta(days=1))} and "
                f"{_day(current[0])} to {_day(current[1] - timedelta(days=1))} "
                f"(PSI {row.psi:.2f}, of which about {noise:.2f} is sampling noise; KS "
                f"{row.ks_statistic:.2f}, p = {row.ks_pvalue:.2g}; {int(row.n_reference):,} vs "
                f"{int(row.n_current):,} requests)."
            )
            cards.append(
                InsightCard(
                    kind="drift",
                    title=f"{model_id} {row.metric.replace('_', ' ')} drift",
                    sentence=sentence,
                    importance=_importance("drift", excess, 2),
                    evidence={
                        "model_id": model_id,
                        "metric": row.metric,
                        "psi": row.psi,
                        "psi_noise": noise,
                        "ks_statistic": row.ks_statistic,
                        "ks_pvalue": row.ks_pvalue,
                        "reference_window": list(reference),
                        "current_window": list(current),
                        "n_reference": row.n_reference,
                        "n_current": row.n_current,
                        "comparisons": tested,
                    },
                    chart=_drift_chart(model_id, row.metric, start, end, tz, url),
                )
            )
    return cards, tested


def _drift_chart(
    model_id: str, metric: str, start: date, end: date, tz: str | None, url: str | None
) -> dict[str, Any] | None:
    """Daily total of the drifting token metric for the model (None for other metrics)."""
    if metric not in ("input_tokens", "output_tokens"):
        return None
    from auterity import metrics

    frame = metrics.query(
        [metric, "requests"], start=start, end=end, where={"model": model_id}, tz=tz, url=url
    )
    frame["tokens_per_request"] = frame[metric] / frame["requests"].where(frame["requests"] > 0)
    return _chart(
        "trend",
        frame,
        "tokens_per_request",
        unit="tokens",
        title=f"{model_id}: {metric.replace('_', ' ')} per request",
        interactive=False,
    )


def savings_cards(
    start: date, end: date, *, tz: str | None = None, url: str | None = None
) -> list[InsightCard]:
    """One card per savings opportunity of :func:`auterity.modelhub.savings`."""
    from auterity import modelhub

    frame = modelhub.savings(start, end, tz=tz, url=url)
    cards = []
    for row in frame.itertuples():
        saving = float(row.est_monthly_savings)
        sentence = (
            f"Switching {row.feature} from {row.current_model} to {row.candidate_model} would "
            f"save about {_num(saving, 'currency')} a month (cost per request "
            f"{_num(row.current_cost_per_request, 'currency')} -> "
            f"{_num(row.candidate_cost_per_request, 'currency')}) for a quality change of "
            f"{-row.quality_gap:+.3f} ({row.current_quality:.3f} -> {row.candidate_quality:.3f})."
        )
        table = pd.DataFrame(
            {
                "model_id": [row.current_model, row.candidate_model],
                "cost_per_request": [row.current_cost_per_request, row.candidate_cost_per_request],
            }
        )

        cards.append(
            InsightCard(
                kind="savings",
                title=f"Save on {row.feature}",
                sentence=sentence,
                importance=_importance("savings", saving, 1000),
                evidence={k: getattr(row, k) for k in frame.columns},
                chart=_chart(
                    "breakdown_bars",
                    table,
                    "cost_per_request",
                    "model_id",
                    unit="currency",
                    title=f"{row.feature}: cost per request",
                ),
            )
        )
    return cards


# --------------------------------------------------------------------------- anomaly, forecast


def _series_frames(series: correlate.Series) -> dict[str, Any]:
    """``{name: (frame[ds, y], unit, label, directions, severities, log)}`` of the series
    checked for anomalies (which directions and severities are worth a card, and whether
    the series is judged on a log scale: :data:`ANOMALY_LOG_SCALE`)."""
    out: dict[str, Any] = {}
    for name in ANOMALY_BUSINESS:
        if name in series.business.columns:
            values = series.business[name]
            out[name] = (
                pd.DataFrame({"ds": values.index, "y": values.to_numpy(float)}),
                _metric_meta(name)[0],
                _label(name),
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


def _windows_in(result: Any, directions: Sequence[str]) -> list[Any]:
    """The alert windows of an :class:`auterity.anomaly.AnomalyResult` formed by its flagged
    points in ``directions`` only.

    When only rises matter, the fall back to normal after a lasting episode (by then the
    causal expectation has caught up with the episode, so the fall is flagged too) must not
    join the rise's window: it would give the window the direction of the larger of the two
    peaks, and a slowdown whose end scores higher than its onset would read as a 'drop'.
    """
    from auterity import anomaly

    points = result.points
    if set(directions) >= {"up", "down"}:
        return list(result.windows)
    wanted = points["is_anomaly"] & points["direction"].isin(list(directions))
    return anomaly.alert_windows(points.assign(is_anomaly=wanted), result.options["merge_gap"])


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


def _slow_requests(
    model_id: str,
    thresholds: Sequence[tuple[date, float]],
    *,
    metric: str = "p95_latency_ms",
    tz: str | None = None,
    url: str | None = None,
) -> tuple[int, int]:
    """``(slow, total)``: the requests counted in ``metric`` (a catalog percentile of
    latency) of a model on each local day of ``thresholds`` and, of those, the ones slower
    than that day's threshold (one statement per day, through the metric layer)."""
    from dataclasses import replace

    from auterity import metrics

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
:func:`_slow_requests`)."""


def anomaly_cards(
    frames: dict[str, Any],
    *,
    method: str = "stl_mad",
    report_from: date | None = None,
    expected_days: Sequence[Any] = (),
    slow_requests: SlowCounter | None = None,
    alpha: float = 0.05,
) -> tuple[list[InsightCard], int]:
    """Cards for the alert windows of :func:`auterity.anomaly.detect` on each series.

    ``frames`` is ``{name: (frame[ds, y], unit, label, directions, severities, log)}``;
    only windows of flagged points in one of ``directions`` (see :func:`_windows_in`) with
    one of ``severities`` become cards, and only those starting on or after
    ``report_from`` (earlier rows are history the causal detector learns from), and not
    windows lying wholly within a day of one of ``expected_days`` (public holidays: a
    holiday dip is expected, not an anomaly). ``log`` judges the series on a log scale.
    Windows of :data:`POISSON_COUNTS` need their peak beyond Poisson noise too
    (:func:`poisson_score` at least the detector's threshold).

    A rise of a per-model percentile series (:data:`PERCENTILE_SERIES`, named
    ``"<model_id>:<metric>"``) also needs its requests: ``slow_requests`` counts them, and
    the window becomes a card only when :func:`slow_share_test` (Bonferroni over every
    day of every percentile series judged) is below ``alpha``. Without ``slow_requests``
    percentile windows are reported on the detector's word alone.

    A series with fewer than :data:`MIN_SERIES_DAYS` days of data is not judged. Returns
    the cards and the number of series judged.
    """
    from auterity import anomaly

    weight = {"low": 0.0, "medium": 0.2, "high": 0.4}
    expected = pd.DatetimeIndex(expected_days)
    near_holiday = expected.union(expected + pd.Timedelta(days=1)).union(
        expected - pd.Timedelta(days=1)
    )
    percentile_days = 0
    for name, (frame, *_rest) in frames.items():
        if name.rpartition(":")[2] in PERCENTILE_SERIES and (
            len(frame.dropna()) >= MIN_SERIES_DAYS
        ):
            judged = frame.dropna()
            if report_from is not None:
                judged = judged[judged["ds"] >= pd.Timestamp(report_from)]
            percentile_days += len(judged)
    cards, series_judged = [], 0
    for name, (frame, unit, label, directions, severities, log) in frames.items():
        data = frame.dropna()
        if len(data) < MIN_SERIES_DAYS:  # listed in the report's skipped (run)
            continue
        series_judged += 1
        scale_log = bool(log) and bool((data["y"] > 0).all())
        result = anomaly.detect(data, method=method, log=scale_log)
        points = result.points.set_index("ds")
        if report_from is not None:
            data = data[data["ds"] >= pd.Timestamp(report_from)]
        model_id, _, metric = name.rpartition(":")
        for window in _windows_in(result, directions):
            if window.severity not in severities:
                continue
            if report_from is not None and pd.Timestamp(window.start) < pd.Timestamp(report_from):
                continue
            span_days = pd.date_range(
                pd.Timestamp(window.start).normalize(), pd.Timestamp(window.end).normalize()
            )
            if len(near_holiday) and span_days.isin(near_holiday).all():
                continue
            confirmation: dict[str, Any] = {}
            if name in POISSON_COUNTS:
                beyond = poisson_score(window.peak_value, window.expected_value)
                if not abs(beyond) >= result.threshold:
                    continue
                confirmation = {"poisson_score": beyond}
            if metric in PERCENTILE_SERIES and slow_requests is not None and model_id:
                days = points.loc[window.start : window.end]
                slow, total = slow_requests(
                    model_id,
                    metric,
                    [(pd.Timestamp(d).date(), float(e)) for d, e in days["expected"].items()],
                )
                p_slow = slow_share_test(
                    slow, total, quantile=PERCENTILE_SERIES[metric], tests=percentile_days
                )
                if not p_slow < alpha:
                    continue
                confirmation = {
                    "requests": total,
                    "slower_than_expected": slow,
                    "slow_share": slow / total if total else float("nan"),
                    "slow_share_p_bonferroni": p_slow,
                }
            start, end = _day(window.start), _day(window.end)
            span = start if start == end else f"{start} to {end}"
            change = (
                (window.peak_value - window.expected_value) / abs(window.expected_value)
                if window.expected_value
                else float("nan")
            )
            sentence = (
                f"{label} was anomalously {'high' if window.direction == 'up' else 'low'} on "
                f"{span}: {_num(window.peak_value, unit)} on {_day(window.peak_ds)} against "
                f"{_num(window.expected_value, unit)} expected"
                + (f" ({_pct(change)})" if change == change else "")
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
                + ("" if result.causal else " (not causal: judged with later data)")
                + "."
            )
            windows = pd.DataFrame(
                [{"start": window.start, "end": window.end, "severity": window.severity}]
            )

            cards.append(
                InsightCard(
                    kind="anomaly",
                    title=f"{label}: {'spike' if window.direction == 'up' else 'drop'} on {start}",
                    sentence=sentence,
                    importance=KIND_BASE["anomaly"] + weight.get(window.severity, 0.0),
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
                    chart=_chart(
                        "anomaly_chart",
                        data,
                        windows,
                        value_col="y",
                        time_col="ds",
                        unit=unit,
                        title=label,
                    ),
                )
            )
    return cards, series_judged


def forecast_cards(
    series: correlate.Series, *, period_days: int = 28
) -> tuple[list[InsightCard], int]:
    """KPIs whose forecast band for the next ``period_days`` lies wholly on the bad side of
    the last ``period_days``' total."""
    from auterity import forecast

    cards, tested = [], 0
    for name in FORECAST_METRICS:
        if name not in series.business.columns:
            continue
        if _history_days(series.business[name]) < FORECAST_HISTORY_PERIODS * period_days:
            continue  # listed in the report's skipped (run)
        values = _with_data(series.business[name]).dropna()
        tested += 1
        unit, good = _metric_meta(name)
        frame = pd.DataFrame({"ds": values.index, "y": values.to_numpy(float)})
        fc = forecast.forecast(frame, horizon=period_days, grain="day")
        last = float(values.iloc[-period_days:].sum())
        total, low, high = (float(fc[c].sum()) for c in ("yhat", "yhat_lower", "yhat_upper"))
        falling, rising = high < last, low > last
        risk = (falling and good == "up") or (rising and good == "down")
        if not risk:
            continue
        change = (total - last) / abs(last) if last else float("nan")
        label = _label(name)
        sentence = (
            f"{label} is forecast at {_num(total, unit)} for the next {period_days} days "
            f"({_pct(change)} against {_num(last, unit)} in the last {period_days}); even the "
            f"upper end of the 80 % band, {_num(high, unit)}, is below it."
        )

        cards.append(
            InsightCard(
                kind="forecast_risk",
                title=f"{label} forecast {_pct(change)}",
                sentence=sentence,
                importance=_importance("forecast_risk", change, 0.5),
                evidence={
                    "metric": name,
                    "last_total": last,
                    "forecast_total": total,
                    "forecast_band": [low, high],
                    "horizon_days": period_days,
                    "change_pct": change,
                },
                chart=_chart(
                    "forecast_chart", frame.tail(4 * period_days), fc, unit=unit, label=label
                ),
            )
        )
    return cards, tested


def _with_data(values: pd.Series) -> pd.Series:
    """A daily series from its first day with data: a warehouse's days before its data
    begin are zeros (sums and counts of nothing), not history."""
    return values[values.fillna(0).ne(0).cummax()]


def _history_days(values: pd.Series) -> int:
    """Days from a daily series' first day with data to its end (holidays left out as NaN
    still count)."""
    return len(_with_data(values))


def forecast_series(
    start: date,
    end: date,
    *,
    period_days: int = 28,
    holidays: str | None = "US",
    tz: str | None = None,
    url: str | None = None,
) -> correlate.Series:
    """The daily KPIs :func:`forecast_cards` forecasts, with the history they need.

    From ``FORECAST_HISTORY_PERIODS * period_days`` days before ``end`` when the range
    ``[start, end)`` is shorter, else the range; public holidays of ``holidays`` are left
    out (NaN) as in :func:`auterity.correlate.load_series`. One metric-layer statement.
    """
    from auterity import metrics

    first = min(start, end - timedelta(days=FORECAST_HISTORY_PERIODS * period_days))
    daily = metrics.query(list(FORECAST_METRICS), start=first, end=end, grain="day", tz=tz, url=url)
    index = pd.DatetimeIndex(pd.to_datetime(daily["period"]), name="day")
    business = daily[list(FORECAST_METRICS)].astype(float).set_axis(index)
    business.loc[correlate.holiday_days(index, holidays)] = np.nan
    return correlate.Series(ml=pd.DataFrame(index=index), business=business)


def _forecast_skipped(series: correlate.Series, end: date, period_days: int) -> str | None:
    """Why some forecast KPIs were not tested (too little history), or None."""
    needed = FORECAST_HISTORY_PERIODS * period_days
    short = {
        name: _history_days(series.business[name])
        for name in FORECAST_METRICS
        if name in series.business.columns and _history_days(series.business[name]) < needed
    }
    if not short:
        return None
    return (
        f"a forecast of the next {period_days} days needs {needed} days of daily history up "
        f"to {end}; the warehouse has "
        + ", ".join(f"{days} for {name.replace('_', ' ')}" for name, days in short.items())
    )


def _anomaly_skipped(frames: dict[str, Any]) -> str | None:
    """Which series the anomaly detector could not judge (too few days with data), or None."""
    short = [
        name for name, (frame, *_rest) in frames.items() if len(frame.dropna()) < MIN_SERIES_DAYS
    ]
    if not short:
        return None
    return (
        f"{len(short)} series with fewer than {MIN_SERIES_DAYS} days of data (history "
        f"included) not judged: {', '.join(short)}"
    )


def _short_range(needed: int, start: date, end: date, what: str) -> str:
    """The reason a kind that needs ``needed`` days of the range was not run."""
    return f"needs {needed} days ({what}); {start} to {end} has {(end - start).days}"


# --------------------------------------------------------------------------- generate


def run(
    start: date,
    end: date,
    *,
    url: str | None = None,
    tz: str | None = None,
    kinds: Sequence[str] = KINDS,
    alpha: float = 0.05,
    period_days: int = 28,
    limit: int | None = None,
    holidays: str | None = "US",
) -> InsightReport:
    """Find the significant insights of a date range, with what was tested.

    Parameters
    ----------
    start, end : date
        Local dates, ``start`` inclusive, ``end`` exclusive (at least 8 weeks).
    url, tz : str, optional
        Warehouse URL and business time zone.
    kinds : sequence of str
        Which kinds of card to look for (default all of :data:`KINDS`).
    alpha : float
        False discovery rate of the correlation and mover tests; family-wise error rate of
        the latency confirmations (Bonferroni over every day of every p95 series) and,
        times :data:`LEVEL_ALPHA_SHARE`, of the level-shift scan.
    period_days : int
        Window length of movers, drift and forecasts.
    limit : int, optional
        Keep only the most important cards.
    holidays : str, optional
        Country whose public holidays are expected, not findings: left out of the
        correlated and the anomaly-checked series (ISO code; None: keep every day).

    Returns
    -------
    InsightReport
        Cards ranked by importance, the number of hypotheses tested per kind, and the
        kinds that could not be run (with why).
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"unknown insight kind {unknown[0]!r} (known: {', '.join(KINDS)})")
    if end <= start:
        raise ConfigError(f"end ({end}) must be after start ({start})")
    if (end - start).days < 56:
        raise ConfigError(
            f"insights need at least 8 weeks of data ({start} to {end} is "
            f"{(end - start).days} days)"
        )
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1 (got {limit})")
    report = InsightReport(start=start, end=end, cards=[])
    wanted = tuple(dict.fromkeys([*correlate.BUSINESS_METRICS, *ANOMALY_BUSINESS]))
    series = correlate.load_series(
        start, end, business_metrics=wanted, holidays=holidays, tz=tz, url=url
    )
    if "correlation" in kinds:
        pairs = correlate.Series(
            ml=series.ml,
            business=series.business[list(correlate.BUSINESS_METRICS)],
            requests=series.requests,
        )
        result = correlate.correlate(start, end, alpha=alpha, series=pairs)
        report.cards += correlation_cards(result)
        report.tested["correlation_hypotheses"] = result.hypotheses
        report.tested["correlation_single_episode_dropped"] = len(result.single_episode)
        if not result.hypotheses:
            report.skipped["correlation"] = (
                "no model series to correlate (a model needs a median of 20 requests a day)"
            )
    if "mover" in kinds:
        cards, n = mover_cards(start, end, period_days=period_days, alpha=alpha, tz=tz, url=url)
        report.cards += cards
        report.tested["mover_metrics"] = n
        if not n:
            report.skipped["mover"] = _short_range(
                2 * period_days, start, end, f"the last {period_days} against the ones before"
            )
    if "level_shift" in kinds:
        cards, n = level_shift_cards(start, end, alpha=alpha * LEVEL_ALPHA_SHARE, tz=tz, url=url)
        report.cards += cards
        report.tested["level_shift_metrics"] = n
        if not n:
            report.skipped["level_shift"] = _short_range(
                3 * LEVEL_WINDOW_DAYS,
                start,
                end,
                f"{LEVEL_WINDOW_DAYS} days on each side of every candidate step",
            )
    if "drift" in kinds:
        cards, n = drift_cards(start, end, period_days=period_days, alpha=alpha, tz=tz, url=url)
        report.cards += cards
        report.tested["drift_comparisons"] = n
        if not n:
            report.skipped["drift"] = (
                _short_range(2 * period_days, start, end, "a reference and a current window")
                if (end - start).days < 2 * period_days
                else "no model had requests in the range"
            )
    if "savings" in kinds:
        report.cards += savings_cards(start, end, tz=tz, url=url)
    if "anomaly" in kinds:
        history = correlate.load_series(
            start - timedelta(days=ANOMALY_HISTORY_DAYS),
            end,
            business_metrics=wanted,
            ml_metrics=ANOMALY_ML,
            holidays=None,
            tz=tz,
            url=url,
        )
        off = correlate.holiday_days(pd.DatetimeIndex(history.business.index), holidays)
        frames = _series_frames(history)
        cards, n = anomaly_cards(
            frames,
            report_from=start,
            expected_days=off,
            slow_requests=lambda model_id, metric, thresholds: _slow_requests(
                model_id, thresholds, metric=metric, tz=tz, url=url
            ),
            alpha=alpha,
        )
        report.cards += cards
        report.tested["anomaly_series"] = n
        why = _anomaly_skipped(frames)
        if why:
            report.skipped["anomaly"] = why
    if "forecast_risk" in kinds:
        history = forecast_series(
            start, end, period_days=period_days, holidays=holidays, tz=tz, url=url
        )
        cards, n = forecast_cards(history, period_days=period_days)
        report.cards += cards
        report.tested["forecast_metrics"] = n
        why = _forecast_skipped(history, end, period_days)
        if why:
            report.skipped["forecast_risk"] = why
    report.cards.sort(key=lambda c: (-c.importance, KINDS.index(c.kind), c.title))
    if limit is not None:
        report.cards = report.cards[:limit]
    return report


def generate(
    start: date,
    end: date,
    *,
    url: str | None = None,
    tz: str | None = None,
    kinds: Sequence[str] = KINDS,
    alpha: float = 0.05,
    period_days: int = 28,
    limit: int | None = None,
    holidays: str | None = "US",
) -> list[InsightCard]:
    """The insight cards of a date range, most important first (see :func:`run`)."""
    return run(
        start,
        end,
        url=url,
        tz=tz,
        kinds=kinds,
        alpha=alpha,
        period_days=period_days,
        limit=limit,
        holidays=holidays,
    ).cards


__all__ = [
    "KINDS",
    "InsightCard",
    "InsightReport",
    "anomaly_cards",
    "correlation_cards",
    "drift_cards",
    "forecast_cards",
    "generate",
    "level_shift_cards",
    "mix_adjusted",
    "mover_cards",
    "poisson_score",
    "run",
    "savings_cards",
    "slow_share_test",
    "step_scan",
]
