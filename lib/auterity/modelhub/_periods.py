"""Report periods of ModelHub: local date ranges in the business time zone, and their UTC bounds.

``start`` is inclusive and ``end`` exclusive, both dates in the business time zone ``tz``
(default ``AUTERITY_TIMEZONE``). They are converted to UTC bounds and the raw ``ts``
column is filtered with them; days are cut in ``tz``.

The one home of ModelHub's time-zone and date-argument helpers (the package's other modules
import them from here).
"""

# TODO(lead): _time — business_tz, as_date and parse_period move to the shared
# auterity/_time.py; this module then re-exports or disappears.

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from auterity.config import get_settings, validate_timezone
from auterity.errors import ConfigError
from auterity.warehouse import dialect, schema

E = schema.inference_events


def business_tz(tz: str | None) -> str:
    """The business time zone of a report.

    Parameters
    ----------
    tz : str, optional
        An IANA time zone name; validated when given.

    Returns
    -------
    str
        ``tz``, else the ``AUTERITY_TIMEZONE`` setting.

    Raises
    ------
    ConfigError
        ``tz`` is not a known time zone.
    """
    return validate_timezone(tz) if tz else get_settings().timezone


def as_date(value: Any, name: str) -> date:
    """A date argument, from a date, a datetime (its date) or an ISO string.

    Parameters
    ----------
    value : date, datetime or str
        The value given by the caller.
    name : str
        What the value is, for the error message (e.g. ``"the start of the period"``).

    Returns
    -------
    datetime.date

    Raises
    ------
    ConfigError
        ``value`` is none of these; the message names ``name``.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"{name} must be a date such as 2026-01-31 (got {value!r})")


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
