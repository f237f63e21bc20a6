"""The kinds of insight card by name, and :func:`run`, which asks every one of them.

Shaped like papermill's engine registry (``papermill_engines.register('nbclient',
NBClientEngine)``, and the dispatcher just looks the name up): a kind is a *finder*, a
function from the range and the options of :func:`run` (a :class:`Context`) to what it
found (:class:`Found`: its cards, what it tested, why it could not run). Each kind's
module ends with one line, ``insight_kinds.register("<kind>", <finder>)``; :func:`run`
asks the registered kinds in the order they registered (the order in which
:mod:`auterity.insights` imports their modules) and merges what they found. Adding a kind
is a new module plus its import there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from auterity import correlate
from auterity.errors import ConfigError
from auterity.insights.cards import KINDS, InsightCard, InsightReport


@dataclass(frozen=True)
class Context:
    """What a finder is asked: the range (local dates, ``end`` exclusive) and the options
    of :func:`run`."""

    start: date
    end: date
    url: str | None = None
    tz: str | None = None
    alpha: float = 0.05
    period_days: int = 28
    holidays: str | None = "US"


@dataclass
class Found:
    """What a finder found: its cards, the number of hypotheses, series or metrics it
    tested (keys of :attr:`InsightReport.tested`), and why it could not run, or None."""

    cards: list[InsightCard] = field(default_factory=list)
    tested: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None


Finder = Callable[[Context], Found]
"""A kind of card: the range and options of a report in, its :class:`Found` out."""


class InsightKinds:
    """The registry of insight kinds: name -> finder, in registration order."""

    def __init__(self) -> None:
        self._finders: dict[str, Finder] = {}

    def register(self, name: str, finder: Finder) -> None:
        """Add a kind of card.

        Parameters
        ----------
        name : str
            The kind's name (the ``kind`` of its cards, a key of the report's ``skipped``).
        finder : callable
            ``finder(context) -> Found``.

        Raises
        ------
        ConfigError
            A kind of that name is registered already.
        """
        if name in self._finders:
            raise ConfigError(f"insight kind {name!r} is registered already")
        self._finders[name] = finder

    def unregister(self, name: str) -> None:
        """Remove a kind of card (unknown names are ignored).

        Parameters
        ----------
        name : str
            The kind's name.
        """
        self._finders.pop(name, None)

    def get(self, name: str) -> Finder:
        """The finder of a kind.

        Parameters
        ----------
        name : str
            The kind's name.

        Returns
        -------
        callable
            Its finder.

        Raises
        ------
        ConfigError
            No kind of that name is registered.
        """
        if name not in self._finders:
            raise ConfigError(f"unknown insight kind {name!r} (known: {', '.join(self.ranked())})")
        return self._finders[name]

    def names(self) -> tuple[str, ...]:
        """Every registered kind, in registration order (the order :func:`run` asks them).

        Returns
        -------
        tuple of str
            The kinds' names.
        """
        return tuple(self._finders)

    def ranked(self) -> tuple[str, ...]:
        """Every registered kind in ranking order, which breaks ties of importance:
        :data:`~auterity.insights.cards.KINDS` first, then kinds registered later, in
        registration order.

        Returns
        -------
        tuple of str
            The kinds' names.
        """
        return tuple(k for k in KINDS if k in self._finders) + tuple(
            k for k in self._finders if k not in KINDS
        )

    def __contains__(self, name: object) -> bool:
        return name in self._finders

    def __iter__(self) -> Iterator[str]:
        return iter(self._finders)


insight_kinds = InsightKinds()
"""The kinds :func:`run` asks (each kind's module registers itself here)."""


def run(
    start: date,
    end: date,
    *,
    url: str | None = None,
    tz: str | None = None,
    kinds: Sequence[str] | None = None,
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
    kinds : sequence of str, optional
        Which kinds of card to look for (default every registered kind: all of
        :data:`~auterity.insights.cards.KINDS`).
    alpha : float
        False discovery rate of the correlation and mover tests; family-wise error rate of
        the latency confirmations (Bonferroni over every day of every p95 series) and,
        times :data:`~auterity.insights.level_shift.LEVEL_ALPHA_SHARE`, of the level-shift
        scan.
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
    wanted = insight_kinds.names() if kinds is None else tuple(kinds)
    for name in wanted:
        insight_kinds.get(name)  # an unknown kind is a ConfigError naming the known ones
    if end <= start:
        raise ConfigError(f"end ({end}) must be after start ({start})")
    if (end - start).days < 56:
        raise ConfigError(
            f"insights need at least 8 weeks of data ({start} to {end} is "
            f"{(end - start).days} days)"
        )
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1 (got {limit})")
    # an unknown holiday country is refused up front, whichever kinds are asked for
    correlate.holiday_days(pd.DatetimeIndex([pd.Timestamp(start)]), holidays)
    context = Context(
        start=start,
        end=end,
        url=url,
        tz=tz,
        alpha=alpha,
        period_days=period_days,
        holidays=holidays,
    )
    report = InsightReport(start=start, end=end, cards=[])
    for name in insight_kinds.names():
        if name not in wanted:
            continue
        found = insight_kinds.get(name)(context)
        report.cards += found.cards
        report.tested.update(found.tested)
        if found.skipped:
            report.skipped[name] = found.skipped
    rank = {kind: i for i, kind in enumerate(insight_kinds.ranked())}
    report.cards.sort(key=lambda c: (-c.importance, rank.get(c.kind, len(rank)), c.title))
    if limit is not None:
        report.cards = report.cards[:limit]
    return report


def generate(
    start: date,
    end: date,
    *,
    url: str | None = None,
    tz: str | None = None,
    kinds: Sequence[str] | None = None,
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


__all__ = ["Context", "Finder", "Found", "InsightKinds", "generate", "insight_kinds", "run"]
