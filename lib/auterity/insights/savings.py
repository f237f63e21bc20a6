"""``savings`` cards: a cheaper model serves a feature as well
(:func:`auterity.modelhub.savings` decides which)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from auterity import modelhub
from auterity.insights.cards import InsightCard, chart_spec, importance, in_unit
from auterity.insights.registry import Context, Found, insight_kinds


def _sentence(row: Any) -> str:
    """The opportunity: the switch, the monthly saving, the costs and the quality change."""
    return (
        f"Switching {row.feature} from {row.current_model} to {row.candidate_model} would "
        f"save about {in_unit(float(row.est_monthly_savings), 'currency')} a month (cost per "
        f"request {in_unit(row.current_cost_per_request, 'currency')} -> "
        f"{in_unit(row.candidate_cost_per_request, 'currency')}) for a quality change of "
        f"{-row.quality_gap:+.3f} ({row.current_quality:.3f} -> {row.candidate_quality:.3f})."
    )


def _chart(row: Any) -> dict[str, Any] | None:
    """The cost per request of the current and the candidate model."""
    table = pd.DataFrame(
        {
            "model_id": [row.current_model, row.candidate_model],
            "cost_per_request": [row.current_cost_per_request, row.candidate_cost_per_request],
        }
    )
    return chart_spec(
        "breakdown_bars",
        table,
        "cost_per_request",
        "model_id",
        unit="currency",
        title=f"{row.feature}: cost per request",
    )


def savings_cards(
    start: date, end: date, *, tz: str | None = None, url: str | None = None
) -> list[InsightCard]:
    """One card per savings opportunity of :func:`auterity.modelhub.savings`.

    Parameters
    ----------
    start, end : date
        The range (``end`` exclusive).
    tz, url : str, optional
        Business time zone and warehouse URL.

    Returns
    -------
    list of InsightCard
        The cards, in the order of the opportunities.
    """
    frame = modelhub.savings(start, end, tz=tz, url=url)
    return [
        InsightCard(
            kind="savings",
            title=f"Save on {row.feature}",
            sentence=_sentence(row),
            importance=importance("savings", float(row.est_monthly_savings), 1000),
            evidence={k: getattr(row, k) for k in frame.columns},
            chart=_chart(row),
        )
        for row in frame.itertuples()
    ]


def _find(context: Context) -> Found:
    """The ``savings`` kind: :func:`savings_cards` (nothing counted as tested, never
    skipped)."""
    return Found(cards=savings_cards(context.start, context.end, tz=context.tz, url=context.url))


insight_kinds.register("savings", _find)

__all__ = ["savings_cards"]
