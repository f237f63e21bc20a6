"""``mover`` cards: a KPI changed between the last ``period_days`` and the ones before.

A move is the daily values of the two windows differing (Mann-Whitney test,
Benjamini-Hochberg over the KPIs) by at least a minimum relative change of the totals,
with the segment that explains most of it (:func:`auterity.business.top_movers`: for
ratios the rate and mix effects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd

from auterity import business, correlate, metrics
from auterity._json import records
from auterity.insights.cards import (
    InsightCard,
    chart_spec,
    importance,
    in_unit,
    iso_day,
    metric_label,
    metric_meta,
    short_range,
    signed_pct,
)
from auterity.insights.registry import Context, Found, insight_kinds

MOVER_METRICS = {
    "revenue": ("segment", "region", "channel"),
    "orders": ("segment", "region", "channel"),
    "average_order_value": ("segment", "channel"),
    "active_customers": ("segment", "region", "feature"),
    "conversion_rate": (),
}
"""KPIs checked for significant moves, and the dimensions that may explain them."""

_Window = tuple[date, date]


@dataclass(frozen=True)
class _Move:
    """A significant move of one KPI between two windows."""

    metric: str
    current: float
    previous: float
    change: float
    p_value: float
    q_value: float


def _moves(
    daily: pd.DataFrame, totals: pd.DataFrame, cur: _Window, alpha: float, min_change: float
) -> list[_Move]:
    """The KPIs whose daily values differ between the windows (Mann-Whitney, BH at
    ``alpha``) and whose totals changed by at least ``min_change``."""
    from scipy import stats

    names = list(MOVER_METRICS)
    before = daily[daily["period"] < pd.Timestamp(cur[0])]
    after = daily[daily["period"] >= pd.Timestamp(cur[0])]
    pvalues = []
    for name in names:
        # a window without data gives NULLs (object dtype): numbers only
        a = pd.to_numeric(before[name], errors="coerce").dropna()
        b = pd.to_numeric(after[name], errors="coerce").dropna()
        if len(a) < 7 or len(b) < 7:
            pvalues.append(1.0)
            continue
        pvalues.append(float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue))
    reject, q = correlate.benjamini_hochberg(pvalues, alpha)
    moves = []
    for name, p, qv, ok in zip(names, pvalues, q, reject, strict=True):
        if not ok or "current" not in totals.index or "previous" not in totals.index:
            continue
        now, was = float(totals.loc["current", name]), float(totals.loc["previous", name])
        if not was or math.isnan(was) or math.isnan(now):
            continue
        change = (now - was) / abs(was)
        if abs(change) < min_change:
            continue
        moves.append(_Move(name, now, was, change, p, qv))
    return moves


def _explanation(
    name: str, cur: _Window, prev: _Window, tz: str | None, url: str | None
) -> tuple[pd.DataFrame, str] | None:
    """The segments of the dimension whose top segment explains the largest share of the
    move, and that dimension (None when none explains any)."""
    found: tuple[pd.DataFrame, str] | None = None
    for by in MOVER_METRICS[name]:
        frame = business.top_movers(name, by, cur, prev, tz=tz, url=url)
        if frame.empty or pd.isna(frame["share_of_change"].iloc[0]):
            continue
        top = frame.iloc[0]
        if found is None or abs(top["share_of_change"]) > abs(found[0].iloc[0]["share_of_change"]):
            found = (frame, by)
    return found


def _sentence(
    move: _Move,
    unit: str,
    label: str,
    cur: _Window,
    period_days: int,
    explained: tuple[pd.DataFrame, str] | None,
) -> str:
    """The finding: the change, the windows, the test, and the segment behind it."""
    explain = ""
    if explained is not None:
        movers, by = explained
        top = movers.iloc[0]
        explain = f"; {by} {top[by]} explains {top['share_of_change'] * 100:.0f} % of it"
        if "rate_effect" in movers.columns:
            explain += (
                f" (rate effect {in_unit(top['rate_effect'], unit)}, "
                f"mix effect {in_unit(top['mix_effect'], unit)})"
            )
    return (
        f"{label} {'rose' if move.change > 0 else 'fell'} {signed_pct(move.change)} to "
        f"{in_unit(move.current, unit)} in {iso_day(cur[0])} to "
        f"{iso_day(cur[1] - timedelta(days=1))} against {in_unit(move.previous, unit)} in the "
        f"{period_days} days before (Mann-Whitney p = {move.p_value:.2g}, "
        f"q = {move.q_value:.2g}){explain}."
    )


def _evidence(
    move: _Move, cur: _Window, prev: _Window, explained: tuple[pd.DataFrame, str] | None
) -> dict[str, Any]:
    """The numbers behind a mover card."""
    evidence: dict[str, Any] = {
        "metric": move.metric,
        "current": move.current,
        "previous": move.previous,
        "change_pct": move.change,
        "current_window": [cur[0], cur[1]],
        "previous_window": [prev[0], prev[1]],
        "p_value": move.p_value,
        "q_value": move.q_value,
        "metrics_tested": len(MOVER_METRICS),
    }
    if explained is not None:
        movers, by = explained
        evidence["explained_by"] = by
        evidence["movers"] = records(movers.head(5))
    return evidence


def _chart(
    daily: pd.DataFrame,
    name: str,
    unit: str,
    good: str,
    label: str,
    explained: tuple[pd.DataFrame, str] | None,
) -> dict[str, Any] | None:
    """The segments' contributions to the move, or the KPI's daily values when no segment
    explains it."""
    if explained is not None:
        movers, by = explained
        return chart_spec("movers_chart", movers, by, unit=unit, good=good, top=8, title=label)
    return chart_spec(
        "trend",
        daily[["period", name]],
        name,
        unit=unit,
        title=f"{label}, daily",
        interactive=False,
    )


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
    ``min_change`` (relative).

    Parameters
    ----------
    start, end : date
        The range (``end`` exclusive); it needs ``2 * period_days`` days.
    period_days : int
        Length of each window.
    alpha : float
        False discovery rate over the KPIs of :data:`MOVER_METRICS`.
    min_change : float
        Smallest relative change of the total reported.
    tz, url : str, optional
        Business time zone and warehouse URL.

    Returns
    -------
    tuple
        The cards and the number of KPIs tested (0 when the range is too short).
    """
    if (end - start).days < 2 * period_days:
        return [], 0
    cur = (end - timedelta(days=period_days), end)
    prev = (cur[0] - timedelta(days=period_days), cur[0])
    names = list(MOVER_METRICS)
    daily = metrics.query(names, start=prev[0], end=end, grain="day", tz=tz, url=url)
    daily["period"] = pd.to_datetime(daily["period"])
    windows = {"current": cur, "previous": prev}
    totals = metrics.query_windows(names, windows, tz=tz, url=url).set_index("period")
    cards = []
    for move in _moves(daily, totals, cur, alpha, min_change):
        unit, good = metric_meta(move.metric)
        label = metric_label(move.metric)
        explained = _explanation(move.metric, cur, prev, tz, url)
        cards.append(
            InsightCard(
                kind="mover",
                title=f"{label} {signed_pct(move.change)}",
                sentence=_sentence(move, unit, label, cur, period_days, explained),
                importance=importance("mover", move.change, 0.5),
                evidence=_evidence(move, cur, prev, explained),
                chart=_chart(daily, move.metric, unit, good, label, explained),
            )
        )
    return cards, len(names)


def _find(context: Context) -> Found:
    """The ``mover`` kind: :func:`mover_cards` (skipped when the range is shorter than two
    windows)."""
    start, end, period_days = context.start, context.end, context.period_days
    cards, tested = mover_cards(
        start, end, period_days=period_days, alpha=context.alpha, tz=context.tz, url=context.url
    )
    return Found(
        cards=cards,
        tested={"mover_metrics": tested},
        skipped=None
        if tested
        else short_range(
            2 * period_days, start, end, f"the last {period_days} against the ones before"
        ),
    )


insight_kinds.register("mover", _find)

__all__ = ["MOVER_METRICS", "mover_cards"]
