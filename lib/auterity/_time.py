"""One toolkit for time: the current UTC instant, dates from text, the business time zone.

The warehouse stores UTC instants without a zone; periods are local dates ``[start, end)``
in the business time zone (``AUTERITY_TIMEZONE``). Every module asks here instead of
writing its own ``_utcnow``/``_tz``/date parser.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from auterity.config import get_settings, validate_timezone
from auterity.errors import ConfigError


def utcnow() -> datetime:
    """The current UTC time without a zone, as the warehouse stores instants."""
    return datetime.now(UTC).replace(tzinfo=None)


def today_utc() -> date:
    """Today's date in UTC (the default exclusive end of generated data and of periods)."""
    return datetime.now(UTC).date()


def parse_date(text: str) -> date:
    """Parse ``YYYY-MM-DD``.

    Parameters
    ----------
    text
        The date as typed by a user.

    Returns
    -------
    date
        The parsed date; a :class:`~auterity.errors.ConfigError` says what was expected.
    """
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def as_date(value: Any, name: str) -> date:
    """A date from a date, a datetime or an ISO string.

    Parameters
    ----------
    value
        What the caller passed.
    name
        How the error message names the value (e.g. "the start of the period").

    Returns
    -------
    date
        The date; otherwise a :class:`~auterity.errors.ConfigError` naming ``name``.
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


def business_tz(tz: str | None = None) -> str:
    """The business time zone: ``tz`` if given (validated), else ``AUTERITY_TIMEZONE``.

    Parameters
    ----------
    tz
        An IANA zone name, or None for the setting.

    Returns
    -------
    str
        A valid IANA zone name (a :class:`~auterity.errors.ConfigError` otherwise).
    """
    return validate_timezone(tz) if tz else get_settings().timezone
