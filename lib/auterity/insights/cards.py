"""Insight cards and reports, and the helpers every kind of card shares.

A card is a sentence with its evidence and a chart (:class:`InsightCard`); a report is the
cards of a range with what was tested and what could not be (:class:`InsightReport`). The
helpers below give every kind the same importance scale, the same way of writing dates,
changes and values in a sentence, and the same tolerance of a chart that cannot be built.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from auterity import _json, charts, metrics
from auterity.errors import ConfigError

log = logging.getLogger("auterity.insights")

KINDS = ("correlation", "anomaly", "level_shift", "forecast_risk", "drift", "savings", "mover")
"""Every kind of card, in the order of :data:`KIND_BASE` (which also breaks ties of
importance when cards are ranked)."""
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
            "evidence": _json.json_value(self.evidence),
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
            "tested": _json.json_value(self.tested),
            "skipped": dict(self.skipped),
        }


def importance(kind: str, effect: float, full: float) -> float:
    """The importance of a card: its kind's base (:data:`KIND_BASE`) plus up to 0.4 for the
    size of the effect (all of it from ``|effect| >= full``).

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    effect : float
        The size of the finding (a relative change, a correlation, a saving...).
    full : float
        The effect size that earns the whole 0.4.

    Returns
    -------
    float
        A score in [0, 1].
    """
    return KIND_BASE[kind] + 0.4 * min(1.0, abs(effect) / full)


def iso_day(value: Any) -> str:
    """The day of a date-like value as a sentence shows it (``2026-03-08``).

    Parameters
    ----------
    value : date, datetime, Timestamp or str
        A date-like value.

    Returns
    -------
    str
        The ISO date.
    """
    return pd.Timestamp(value).date().isoformat()


def signed_pct(value: float) -> str:
    """A relative change as a sentence shows it (``+12.3 %``, ``-4.0 %``).

    Parameters
    ----------
    value : float
        The change as a fraction (0.123 is +12.3 %).

    Returns
    -------
    str
        The signed percentage with one decimal.
    """
    return f"{value * 100:+.1f} %"


def in_unit(value: float, unit: str) -> str:
    """A value as a sentence shows it, in its unit (:func:`auterity.charts.format_value`).

    Parameters
    ----------
    value : float
        The value.
    unit : str
        Its unit (``currency``, ``percent``, ``ms``, ``count``, ``tokens``, ``number``).

    Returns
    -------
    str
        The formatted value.
    """
    return charts.format_value(value, unit)


def chart_spec(builder: str, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    """The Vega-Lite spec of a chart of :mod:`auterity.charts`, or None when it cannot be
    built (a chart must never cost a card its finding; a warning is logged).

    Parameters
    ----------
    builder : str
        The name of the chart builder (``"trend"``, ``"anomaly_chart"``...).
    *args, **kwargs
        Its arguments.

    Returns
    -------
    dict or None
        ``auterity.charts.to_dict(auterity.charts.<builder>(*args, **kwargs))``.
    """
    try:
        return charts.to_dict(getattr(charts, builder)(*args, **kwargs))
    except Exception as exc:  # a chart must never cost us the finding
        log.warning("insight chart not built: %s", exc)
        return None


def metric_label(metric: str) -> str:
    """A metric's label from the catalog (or its name with spaces, when not in it).

    Parameters
    ----------
    metric : str
        A metric name.

    Returns
    -------
    str
        Its label.
    """
    try:
        return metrics.load_catalog().metric(metric).label
    except ConfigError:
        return metric.replace("_", " ")


def metric_meta(metric: str) -> tuple[str, str]:
    """A catalog metric's unit and good direction.

    Parameters
    ----------
    metric : str
        A metric of the catalog.

    Returns
    -------
    tuple of str
        ``(unit, good)``, ``good`` being ``"up"`` or ``"down"``.
    """
    definition = metrics.load_catalog().metric(metric)
    return definition.unit, definition.good


def short_range(needed: int, start: date, end: date, what: str) -> str:
    """Why a kind that needs ``needed`` days of the range was not run.

    Parameters
    ----------
    needed : int
        Days the kind needs.
    start, end : date
        The range (``end`` exclusive).
    what : str
        What the days are for.

    Returns
    -------
    str
        For example ``needs 84 days (28 days on each side of every candidate step);
        2026-06-11 to 2026-08-10 has 60``.
    """
    return f"needs {needed} days ({what}); {start} to {end} has {(end - start).days}"


__all__ = [
    "KINDS",
    "KIND_BASE",
    "InsightCard",
    "InsightReport",
    "chart_spec",
    "importance",
    "in_unit",
    "iso_day",
    "metric_label",
    "metric_meta",
    "short_range",
]
