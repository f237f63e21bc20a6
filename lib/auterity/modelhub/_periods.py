"""Report periods of ModelHub: local date ranges in the business time zone, and their UTC bounds.

``start`` is inclusive and ``end`` exclusive, both dates in the business time zone ``tz``
(default ``AUTERITY_TIMEZONE``). They are converted to UTC bounds and the raw ``ts``
column is filtered with them; days are cut in ``tz``.

Dates and the time zone come from the shared toolkit :mod:`auterity._time`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from auterity._time import as_date, business_tz
from auterity.errors import ConfigError
from auterity.warehouse import dialect, schema

E = schema.inference_events


@dataclass(frozen=True)
class Period:
    """A local date range ``[start, end)`` and its UTC bounds.

    Attributes
    ----------
    start, end : date
        Local dates in ``tz``; ``start`` inclusive, ``end`` exclusive.
    tz : str
        The business time zone the days are cut in.
    lo, hi : datetime
        Naive UTC bounds of the range (``lo`` inclusive, ``hi`` exclusive), for the raw
        ``ts`` column.
    """

    start: date
    end: date
    tz: str
    lo: datetime
    hi: datetime

    @property
    def days(self) -> int:
        """Number of local days in the period."""
        return (self.end - self.start).days

    def where(self) -> ColumnElement[bool]:
        """Filter of the raw ``ts`` column on the UTC bounds."""
        return sa.and_(E.c.ts >= self.lo, E.c.ts < self.hi)


def parse_period(start: Any, end: Any, tz: str | None, what: str = "period") -> Period:
    """Validate a report's period and compute its UTC bounds.

    Parameters
    ----------
    start, end : date, datetime or str
        Local dates in ``tz``; ``start`` inclusive, ``end`` exclusive.
    tz : str, optional
        Business time zone; default ``AUTERITY_TIMEZONE``.
    what : str
        What the range is, for error messages (``"period"``, ``"reference window"``...).

    Returns
    -------
    Period

    Raises
    ------
    ConfigError
        A bound is not a date, the end is not after the start, or the zone is unknown.
    """
    zone = business_tz(tz)
    first, last = (
        as_date(start, f"the start of the {what}"),
        as_date(end, f"the end of the {what}"),
    )
    if last <= first:
        raise ConfigError(
            f"the end of the {what} ({last}) must be after its start ({first}); the end is "
            "exclusive"
        )
    lo, hi = dialect.utc_bounds(first, last, zone)
    return Period(first, last, zone, lo, hi)
