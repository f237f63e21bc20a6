"""``forecast_risk`` cards: a KPI whose forecast for the next ``period_days`` lies, band and
all, below (or above, for metrics where up is bad) the last ``period_days``.

The forecast (:func:`auterity.forecast.forecast`) is fitted on at least
:data:`FORECAST_HISTORY_PERIODS` windows of daily history up to the end of the range,
read before the range when it is shorter.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from auterity import correlate, forecast, metrics
from auterity.insights.cards import (
    InsightCard,
    chart_spec,
    importance,
    in_unit,
    metric_label,
    metric_meta,
    signed_pct,
)
from auterity.insights.registry import Context, Found, insight_kinds

FORECAST_METRICS = ("revenue", "orders", "active_customers")
"""KPIs forecast for the next ``period_days``."""
FORECAST_HISTORY_PERIODS = 4
"""A forecast for the next ``period_days`` is fitted on at least this many ``period_days``
of daily history up to the period end (112 days for 28), read before the period when the
period is shorter, as the anomaly cards read theirs."""


def _with_data(values: pd.Series) -> pd.Series:
    """A daily series from its first day with data: a warehouse's days before its data
    begin are zeros (sums and counts of nothing), not history."""
    return values[values.fillna(0).ne(0).cummax()]


def _history_days(values: pd.Series) -> int:
    """Days from a daily series' first day with data to its end (holidays left out as NaN
    still count)."""
    return len(_with_data(values))


def _sentence(
    label: str, unit: str, total: float, last: float, high: float, change: float, period_days: int
) -> str:
    """The risk: the forecast total against the last window's, and the band's upper end."""
    return (
        f"{label} is forecast at {in_unit(total, unit)} for the next {period_days} days "
        f"({signed_pct(change)} against {in_unit(last, unit)} in the last {period_days}); "
        f"even the upper end of the 80 % band, {in_unit(high, unit)}, is below it."
    )


def forecast_cards(
    series: correlate.Series, *, period_days: int = 28
) -> tuple[list[InsightCard], int]:
    """KPIs whose forecast band for the next ``period_days`` lies wholly on the bad side of
    the last ``period_days``' total.

    Parameters
    ----------
    series : auterity.correlate.Series
        Daily KPIs of :data:`FORECAST_METRICS` (``business``), as :func:`forecast_series`
        loads them; a KPI with less than ``FORECAST_HISTORY_PERIODS * period_days`` days
        of data is not tested.
    period_days : int
        The forecast horizon, and the window it is compared with.

    Returns
    -------
    tuple
        The cards and the number of KPIs tested.
    """
    cards, tested = [], 0
    for name in FORECAST_METRICS:
        if name not in series.business.columns:
            continue
        if _history_days(series.business[name]) < FORECAST_HISTORY_PERIODS * period_days:
            continue  # listed in the report's skipped (by _find)
        values = _with_data(series.business[name]).dropna()
        tested += 1
        unit, good = metric_meta(name)
        frame = pd.DataFrame({"ds": values.index, "y": values.to_numpy(float)})
        fc = forecast.forecast(frame, horizon=period_days, grain="day")
        last = float(values.iloc[-period_days:].sum())
        total, low, high = (float(fc[c].sum()) for c in ("yhat", "yhat_lower", "yhat_upper"))
        falling, rising = high < last, low > last
        if not ((falling and good == "up") or (rising and good == "down")):
            continue
        change = (total - last) / abs(last) if last else float("nan")
        label = metric_label(name)
        evidence: dict[str, Any] = {
            "metric": name,
            "last_total": last,
            "forecast_total": total,
            "forecast_band": [low, high],
            "horizon_days": period_days,
            "change_pct": change,
        }
        cards.append(
            InsightCard(
                kind="forecast_risk",
                title=f"{label} forecast {signed_pct(change)}",
                sentence=_sentence(label, unit, total, last, high, change, period_days),
                importance=importance("forecast_risk", change, 0.5),
                evidence=evidence,
                chart=chart_spec(
                    "forecast_chart", frame.tail(4 * period_days), fc, unit=unit, label=label
                ),
            )
        )
    return cards, tested


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
    first = min(start, end - timedelta(days=FORECAST_HISTORY_PERIODS * period_days))
    daily = metrics.query(list(FORECAST_METRICS), start=first, end=end, grain="day", tz=tz, url=url)
    index = pd.DatetimeIndex(pd.to_datetime(daily["period"]), name="day")
    business = daily[list(FORECAST_METRICS)].astype(float).set_axis(index)
    business.loc[correlate.holiday_days(index, holidays)] = np.nan
    return correlate.Series(ml=pd.DataFrame(index=index), business=business)


def _skipped_reason(series: correlate.Series, end: date, period_days: int) -> str | None:
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


def _find(context: Context) -> Found:
    """The ``forecast_risk`` kind: :func:`forecast_cards` on :func:`forecast_series`
    (skipped names the KPIs with too little history)."""
    history = forecast_series(
        context.start,
        context.end,
        period_days=context.period_days,
        holidays=context.holidays,
        tz=context.tz,
        url=context.url,
    )
    cards, tested = forecast_cards(history, period_days=context.period_days)
    return Found(
        cards=cards,
        tested={"forecast_metrics": tested},
        skipped=_skipped_reason(history, context.end, context.period_days),
    )


insight_kinds.register("forecast_risk", _find)

__all__ = [
    "FORECAST_HISTORY_PERIODS",
    "FORECAST_METRICS",
    "forecast_cards",
    "forecast_series",
]
