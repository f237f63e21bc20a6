"""``drift`` cards: a model's token, latency or quality distribution moved significantly.

Between the first third of the range and its last ``period_days``
(:func:`auterity.modelhub.drift`), a drift is significant when its PSI beyond sampling
noise is at least :data:`DRIFT_PSI` and its KS test is significant after Bonferroni.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pandas as pd

from auterity import metrics, modelhub
from auterity.insights.cards import InsightCard, chart_spec, importance, iso_day, short_range
from auterity.insights.registry import Context, Found, insight_kinds

DRIFT_PSI = 0.25
"""PSI beyond sampling noise from which drift is reported ('significant' by convention)."""
DRIFT_BINS = 20
"""Bins of :func:`auterity.modelhub.drift` (its default)."""
TOKEN_METRICS = ("input_tokens", "output_tokens")
"""Drifting metrics a card charts (per request, day by day); other metrics get no chart."""


def drift_windows(start: date, end: date, period_days: int) -> tuple[tuple[date, date], ...]:
    """The reference and current windows of :func:`drift_cards` (``end`` exclusive each).

    Parameters
    ----------
    start, end : date
        The range (``end`` exclusive).
    period_days : int
        Length of the current window.

    Returns
    -------
    tuple
        ``(reference, current)``: the first third of the range (at least ``period_days``,
        and not into the current window) and the last ``period_days``.
    """
    reference = (start, start + timedelta(days=max(period_days, (end - start).days // 3)))
    current = (end - timedelta(days=period_days), end)
    if reference[1] > current[0]:
        reference = (start, current[0])
    return reference, current


def psi_noise(n_reference: float, n_current: float, bins: int = DRIFT_BINS) -> float:
    """The PSI that sampling noise alone gives two samples of one distribution,
    ``(bins - 1) (1/n_reference + 1/n_current)``.

    Parameters
    ----------
    n_reference, n_current : float
        Sample sizes (requests) of the two windows.
    bins : int
        Bins of the PSI.

    Returns
    -------
    float
        The expected PSI without drift.
    """
    return (bins - 1) * (1 / n_reference + 1 / n_current)


def _window_text(window: tuple[date, date]) -> str:
    """``2026-03-01 to 2026-03-28`` of a window with an exclusive end."""
    return f"{iso_day(window[0])} to {iso_day(window[1] - timedelta(days=1))}"


def _sentence(
    model_id: str, row: Any, noise: float, reference: tuple[date, date], current: tuple[date, date]
) -> str:
    """The finding: the model, the metric, the windows, the PSI with its noise, the KS test."""
    return (
        f"{model_id}'s {row.metric.replace('_', ' ')} distribution shifted between "
        f"{_window_text(reference)} and {_window_text(current)} "
        f"(PSI {row.psi:.2f}, of which about {noise:.2f} is sampling noise; KS "
        f"{row.ks_statistic:.2f}, p = {row.ks_pvalue:.2g}; {int(row.n_reference):,} vs "
        f"{int(row.n_current):,} requests)."
    )


def _chart(
    model_id: str, metric: str, start: date, end: date, tz: str | None, url: str | None
) -> dict[str, Any] | None:
    """Daily tokens per request of the drifting token metric for the model (None for other
    metrics)."""
    if metric not in TOKEN_METRICS:
        return None
    frame = metrics.query(
        [metric, "requests"], start=start, end=end, where={"model": model_id}, tz=tz, url=url
    )
    frame["tokens_per_request"] = frame[metric] / frame["requests"].where(frame["requests"] > 0)
    return chart_spec(
        "trend",
        frame,
        "tokens_per_request",
        unit="tokens",
        title=f"{model_id}: {metric.replace('_', ' ')} per request",
        interactive=False,
    )


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
    current window the last ``period_days`` (:func:`drift_windows`). A drift is significant
    when its PSI exceeds :data:`DRIFT_PSI` *after* subtracting the PSI that sampling noise
    alone produces (:func:`psi_noise`), and the KS p-value is below ``alpha`` divided by
    the number of comparisons (Bonferroni): a PSI over 20 bins from a few dozen requests
    is noise.

    Parameters
    ----------
    start, end : date
        The range (``end`` exclusive); it needs ``2 * period_days`` days.
    period_days : int
        Length of the current window.
    alpha : float
        Family-wise error rate of the KS tests.
    models : sequence of str, optional
        Models compared (default: every model with requests in the range).
    tz, url : str, optional
        Business time zone and warehouse URL.

    Returns
    -------
    tuple
        The cards and the number of (model, metric) comparisons made (0 when the range is
        too short).
    """
    if (end - start).days < 2 * period_days:
        return [], 0
    reference, current = drift_windows(start, end, period_days)
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
            noise = psi_noise(row.n_reference, row.n_current)
            excess = float(row.psi) - noise
            if excess < DRIFT_PSI or not row.ks_pvalue < alpha / max(tested, 1):
                continue
            cards.append(
                InsightCard(
                    kind="drift",
                    title=f"{model_id} {row.metric.replace('_', ' ')} drift",
                    sentence=_sentence(model_id, row, noise, reference, current),
                    importance=importance("drift", excess, 2),
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
                    chart=_chart(model_id, row.metric, start, end, tz, url),
                )
            )
    return cards, tested


def _find(context: Context) -> Found:
    """The ``drift`` kind: :func:`drift_cards` for every model with requests (skipped when
    the range is shorter than two windows or no model had requests)."""
    start, end, period_days = context.start, context.end, context.period_days
    cards, tested = drift_cards(
        start, end, period_days=period_days, alpha=context.alpha, tz=context.tz, url=context.url
    )
    skipped = None
    if not tested:
        skipped = (
            short_range(2 * period_days, start, end, "a reference and a current window")
            if (end - start).days < 2 * period_days
            else "no model had requests in the range"
        )
    return Found(cards=cards, tested={"drift_comparisons": tested}, skipped=skipped)


insight_kinds.register("drift", _find)

__all__ = [
    "DRIFT_BINS",
    "DRIFT_PSI",
    "TOKEN_METRICS",
    "drift_cards",
    "drift_windows",
    "psi_noise",
]
