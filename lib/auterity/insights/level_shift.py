"""``level_shift`` cards: a trend-free KPI stepped to a new level and stayed there.

Only KPIs without a growth trend (average order value) are scanned, at constant segment
mix (within-segment prices, not a few weeks with more orders from the segment with the
largest orders): the ``window`` days after some day differ from the ``window`` before
(Mann-Whitney on the daily values, Bonferroni over every candidate day), explained by
segment with rate and mix effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from auterity import business, metrics
from auterity._json import records
from auterity.insights.cards import (
    InsightCard,
    chart_spec,
    importance,
    in_unit,
    metric_label,
    metric_meta,
    short_range,
    signed_pct,
)
from auterity.insights.registry import Context, Found, insight_kinds

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
    whole = float(totals[denominator].sum())  # 0 over a range without data
    overall = float(totals[numerator].sum()) / whole if whole > 0 else float("nan")
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


@dataclass(frozen=True)
class _Step:
    """A significant lasting step of one KPI: where, how large, and how sure."""

    metric: str
    by_mix: str | None
    values: np.ndarray
    t: int
    day: date
    p_value: float
    p_bonferroni: float
    candidates: int
    before: float
    after: float
    change: float
    metric_before: float
    metric_after: float


def _scanned(
    name: str,
    daily: pd.DataFrame,
    catalog: metrics.Catalog,
    start: date,
    end: date,
    tz: str | None,
    url: str | None,
) -> tuple[np.ndarray, str | None]:
    """The daily values scanned for a step (at constant mix of the metric's first
    dimension when it is a ratio and has one), and that dimension or None."""
    definition = catalog.metric(name)
    by_mix = LEVEL_METRICS[name][0] if LEVEL_METRICS[name] else None
    if definition.aggregate != "ratio" or by_mix is None:
        return daily[name].astype(float).to_numpy(), None
    numerator, denominator = definition.operands
    parts = metrics.query(
        [numerator, denominator], start=start, end=end, grain="day", by=[by_mix], tz=tz, url=url
    )
    parts["period"] = pd.to_datetime(parts["period"])
    adjusted = mix_adjusted(parts, numerator, denominator, by_mix)
    return adjusted.reindex(daily["period"]).to_numpy(float), by_mix


def _step(
    name: str,
    values: np.ndarray,
    by_mix: str | None,
    daily: pd.DataFrame,
    window: int,
    alpha: float,
) -> _Step | None:
    """The most significant step of ``values``, when significant after Bonferroni over the
    candidate days."""
    best_p, best_t, candidates = step_scan(values, window)
    adjusted_p = min(1.0, best_p * candidates)
    if best_t is None or adjusted_p >= alpha:
        return None
    raw = daily[name].astype(float).to_numpy()
    was = float(np.nanmedian(values[best_t - window : best_t]))
    now = float(np.nanmedian(values[best_t : best_t + window]))
    return _Step(
        metric=name,
        by_mix=by_mix,
        values=values,
        t=best_t,
        day=daily["period"].iloc[best_t].date(),
        p_value=best_p,
        p_bonferroni=adjusted_p,
        candidates=candidates,
        before=was,
        after=now,
        change=(now - was) / abs(was) if was else float("nan"),
        metric_before=float(np.nanmedian(raw[best_t - window : best_t])),
        metric_after=float(np.nanmedian(raw[best_t : best_t + window])),
    )


def _explanation(
    name: str, window: int, day: date, tz: str | None, url: str | None
) -> tuple[pd.DataFrame, str, float] | None:
    """The segments of the first dimension with rate and mix effects across the step, the
    dimension, and the share of the change that is within segments (rate effect)."""
    before_w = (day - timedelta(days=window), day)
    after_w = (day, day + timedelta(days=window))
    for by in LEVEL_METRICS[name]:
        frame = business.top_movers(name, by, after_w, before_w, tz=tz, url=url)
        if frame.empty or "rate_effect" not in frame.columns:
            continue
        total = frame["contribution"].sum()
        if not total:
            continue
        return frame, by, frame["rate_effect"].sum() / total
    return None


def _subject(step: _Step, label: str) -> str:
    """What stepped: the metric, or the metric at constant mix."""
    return f"{label} at constant {step.by_mix} mix" if step.by_mix else label


def _sentence(
    step: _Step,
    label: str,
    unit: str,
    window: int,
    explained: tuple[pd.DataFrame, str, float] | None,
) -> str:
    """The finding: the step, its date, the test, the metric itself, and how much of it is
    within segments."""
    explain = ""
    if explained is not None:
        _, by, rate_share = explained
        explain = (
            f"; by {by}, {rate_share * 100:.0f} % of the change is within-{by} "
            f"{'prices' if step.metric == 'average_order_value' else 'rates'} (rate effect) "
            f"and {(1 - rate_share) * 100:.0f} % a shift of the mix"
        )
    itself = (
        f"; {label.lower()} itself, mix included, {in_unit(step.metric_before, unit)} -> "
        f"{in_unit(step.metric_after, unit)}"
        if step.by_mix
        else ""
    )
    return (
        f"{_subject(step, label)} {'stepped up' if step.change > 0 else 'stepped down'} "
        f"{signed_pct(step.change)} on {step.day.isoformat()} and stayed there: median "
        f"{in_unit(step.after, unit)} in the {window} days from then against "
        f"{in_unit(step.before, unit)} in the {window} days before (Mann-Whitney "
        f"p = {step.p_value:.2g}, {step.p_bonferroni:.2g} after Bonferroni over "
        f"{step.candidates} days){itself}{explain}."
    )


def _evidence(
    step: _Step, window: int, alpha: float, explained: tuple[pd.DataFrame, str, float] | None
) -> dict[str, Any]:
    """The numbers behind a level-shift card."""
    evidence: dict[str, Any] = {
        "metric": step.metric,
        "date": step.day,
        "median_before": step.before,
        "median_after": step.after,
        "change_pct": step.change,
        "constant_mix_of": step.by_mix,
        "metric_median_before": step.metric_before,
        "metric_median_after": step.metric_after,
        "p_value": step.p_value,
        "p_bonferroni": step.p_bonferroni,
        "alpha": alpha,
        "candidate_days": step.candidates,
        "window_days": window,
    }
    if explained is not None:
        evidence["movers"] = records(explained[0].head(5))
    return evidence


def _chart(
    step: _Step, daily: pd.DataFrame, label: str, unit: str, window: int, end: date
) -> dict[str, Any] | None:
    """The scanned daily series with the ``window`` days after the step marked."""
    series = pd.DataFrame({"period": daily["period"], step.metric: step.values})
    last = min(step.day + timedelta(days=window), end) - timedelta(days=1)
    after = pd.DataFrame([{"start": step.day, "end": last}])
    return chart_spec(
        "anomaly_chart",
        series,
        after,
        value_col=step.metric,
        time_col="period",
        unit=unit,
        title=f"{_subject(step, label)}, daily",
    )


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

    Parameters
    ----------
    start, end : date
        The range (``end`` exclusive); it needs ``3 * window`` days.
    window : int
        Days on each side of a candidate step.
    alpha : float
        Family-wise error rate over the candidate days.
    tz, url : str, optional
        Business time zone and warehouse URL.

    Returns
    -------
    tuple
        The cards and the number of metrics scanned (0 when the range is too short).
    """
    names = list(LEVEL_METRICS)
    if (end - start).days < 3 * window:
        return [], 0
    catalog = metrics.load_catalog()
    daily = metrics.query(names, start=start, end=end, grain="day", tz=tz, url=url)
    daily["period"] = pd.to_datetime(daily["period"])
    cards = []
    for name in names:
        values, by_mix = _scanned(name, daily, catalog, start, end, tz, url)
        step = _step(name, values, by_mix, daily, window, alpha)
        if step is None:
            continue
        unit = metric_meta(name)[0]
        label = metric_label(name)
        explained = _explanation(name, window, step.day, tz, url)
        cards.append(
            InsightCard(
                kind="level_shift",
                title=f"{_subject(step, label)} {signed_pct(step.change)} from "
                f"{step.day.isoformat()}",
                sentence=_sentence(step, label, unit, window, explained),
                importance=importance("level_shift", step.change, 0.5),
                evidence=_evidence(step, window, alpha, explained),
                chart=_chart(step, daily, label, unit, window, end),
            )
        )
    return cards, len(names)


def _find(context: Context) -> Found:
    """The ``level_shift`` kind: :func:`level_shift_cards` at :data:`LEVEL_ALPHA_SHARE` of
    the report's ``alpha`` (skipped when the range is shorter than three windows)."""
    start, end = context.start, context.end
    cards, tested = level_shift_cards(
        start, end, alpha=context.alpha * LEVEL_ALPHA_SHARE, tz=context.tz, url=context.url
    )
    return Found(
        cards=cards,
        tested={"level_shift_metrics": tested},
        skipped=None
        if tested
        else short_range(
            3 * LEVEL_WINDOW_DAYS,
            start,
            end,
            f"{LEVEL_WINDOW_DAYS} days on each side of every candidate step",
        ),
    )


insight_kinds.register("level_shift", _find)

__all__ = [
    "LEVEL_ALPHA_SHARE",
    "LEVEL_METRICS",
    "LEVEL_WINDOW_DAYS",
    "level_shift_cards",
    "mix_adjusted",
    "step_scan",
]
