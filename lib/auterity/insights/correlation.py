"""``correlation`` cards: an ML metric of one model moves with a business metric, at a lag.

The statistics are :func:`auterity.correlate.correlate`'s (residuals, effective sample
size, Benjamini-Hochberg over every pair and lag, not carried by a single episode); a
card says which way the business metric goes, when, with which confidence, and on which
days the two moved together most clearly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from auterity import correlate
from auterity.correlate import ML_LABELS, describe_lag
from auterity.insights.cards import InsightCard, chart_spec, importance, iso_day, metric_label
from auterity.insights.registry import Context, Found, insight_kinds

CLEAREST_DAYS = 3
"""Days a correlation card names as the ones where the two series moved together most."""


def _clearest_days(rx: pd.Series, ry: pd.Series, lag: int, r: float) -> pd.Index:
    """The days where the standardised residuals (``ry`` shifted by ``lag``) agree most in
    the direction of the correlation ``r``."""
    shifted = ry.shift(-lag)
    product = ((rx - rx.mean()) / rx.std()) * ((shifted - shifted.mean()) / shifted.std())
    product = product * np.sign(r)
    return product.dropna().sort_values(ascending=False).head(CLEAREST_DAYS).index


def _sentence(row: Any, hypotheses: int, ml_label: str, biz_label: str, days: pd.Index) -> str:
    """The finding of one row of :attr:`CorrelationResult.findings`."""
    direction = "falls" if row.pearson_r < 0 else "rises"
    return (
        f"When {row.model_id}'s {ml_label} rises, {biz_label.lower()} {direction} "
        f"{describe_lag(int(row.lag))} (r = {row.pearson_r:+.2f}, 95 % CI "
        f"{row.pearson_ci_low:+.2f} to {row.pearson_ci_high:+.2f}; Spearman "
        f"{row.spearman_r:+.2f}; q = {row.q_value:.2g} over {hypotheses:,} pair-lag tests); "
        "clearest on " + ", ".join(iso_day(d) for d in days) + "."
    )


def _evidence(row: Any, result: correlate.CorrelationResult, days: pd.Index) -> dict[str, Any]:
    """The numbers behind a correlation card."""
    return {
        "ml_series": row.ml_series,
        "model_id": row.model_id,
        "ml_metric": row.ml_metric,
        "business_metric": row.business_metric,
        "lag_days": int(row.lag),
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
        "clearest_days": [iso_day(d) for d in days],
    }


def _chart(
    rx: pd.Series, ry: pd.Series, lag: int, series_label: str, ml_label: str, biz_label: str
) -> dict[str, Any] | None:
    """Both standardised residual series, the ML one shifted by the lag."""
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "day": rx.index + pd.Timedelta(days=lag),
                    "series": f"{series_label} (shifted {lag:+d} d)",
                    "z": (rx - rx.mean()) / rx.std(),
                }
            ),
            pd.DataFrame({"day": ry.index, "series": biz_label, "z": (ry - ry.mean()) / ry.std()}),
        ]
    ).dropna()
    return chart_spec(
        "trend",
        frame,
        "z",
        unit="number",
        by="series",
        title=f"{ml_label} vs {biz_label} (standardised residuals)",
        interactive=False,
        time_col="day",
    )


def correlation_cards(result: correlate.CorrelationResult) -> list[InsightCard]:
    """Cards for the significant correlations of a :func:`auterity.correlate.correlate`
    result.

    Parameters
    ----------
    result : CorrelationResult
        The tests, findings and series of a correlation run.

    Returns
    -------
    list of InsightCard
        One card per finding, in the findings' order.
    """
    cards = []
    for row in result.findings.itertuples():
        rx = correlate.residuals(result.series.ml[row.ml_series])
        ry = correlate.residuals(result.series.business[row.business_metric])
        lag = int(row.lag)
        days = _clearest_days(rx, ry, lag, row.pearson_r)
        ml_label = ML_LABELS[row.ml_metric]
        biz_label = metric_label(row.business_metric)
        cards.append(
            InsightCard(
                kind="correlation",
                title=f"{row.model_id} {ml_label} and {biz_label.lower()}",
                sentence=_sentence(row, result.hypotheses, ml_label, biz_label, days),
                importance=importance("correlation", row.pearson_r, 0.5),
                evidence=_evidence(row, result, days),
                chart=_chart(rx, ry, lag, f"{row.model_id} {ml_label}", ml_label, biz_label),
            )
        )
    return cards


def _find(context: Context) -> Found:
    """The ``correlation`` kind: every per-model ML series against the business metrics
    of :data:`auterity.correlate.BUSINESS_METRICS` (tested: the BH family and the pairs a
    single episode carried)."""
    series = correlate.load_series(
        context.start,
        context.end,
        business_metrics=correlate.BUSINESS_METRICS,
        holidays=context.holidays,
        tz=context.tz,
        url=context.url,
    )
    result = correlate.correlate(context.start, context.end, alpha=context.alpha, series=series)
    return Found(
        cards=correlation_cards(result),
        tested={
            "correlation_hypotheses": result.hypotheses,
            "correlation_single_episode_dropped": len(result.single_episode),
        },
        skipped=None
        if result.hypotheses
        else "no model series to correlate (a model needs a median of 20 requests a day)",
    )


insight_kinds.register("correlation", _find)

__all__ = ["CLEAREST_DAYS", "correlation_cards"]
