"""Number formats: d3-format strings for chart axes and tooltips, text for tiles and emails.

:func:`d3_format` gives the d3-format string of a unit for axes and tooltips, and
:func:`format_value` / :func:`format_delta` the text of a value or change for tiles,
labels and emails. d3-format has no literal prefixes, so currency formats use d3's ``$``
*placeholder*; the theme's ``locale`` turns it into the settings' symbol (``$``, ``€``,
``£``, else the ISO code, e.g. ``CHF 1,234``). d3 writes percentages as ``5.3%``; text
uses ``5.3 %`` like the rest of the reports. :func:`axis_format` and :func:`tooltip_format`
pick a d3 format that suits the magnitude of the values a chart draws.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from auterity import config
from auterity.errors import ConfigError

UNITS = ("currency", "percent", "ms", "count", "tokens", "number")
"""Units of :mod:`auterity.metrics` (kept in sync by a test; importing it would pull SQL)."""

GOOD = ("up", "down", "neutral")
"""Which direction of change is good news (as in :mod:`auterity.metrics`)."""

DASH = "\u2013"
"""Shown for missing values."""

MINUS = "\u2212"
"""The minus sign of negative values (d3-format uses it too)."""

_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
_COMPACT = ((1e12, "T"), (1e9, "B"), (1e6, "M"))


def check_unit(unit: str) -> str:
    """Check that a unit is one of :data:`UNITS`.

    Parameters
    ----------
    unit : str
        The unit name.

    Returns
    -------
    str
        ``unit``, unchanged.

    Raises
    ------
    ConfigError
        Unknown unit.
    """
    if unit not in UNITS:
        raise ConfigError(f"unknown unit {unit!r} (use one of: {', '.join(UNITS)})")
    return unit


def check_good(good: str) -> str:
    """Check that a good direction is one of :data:`GOOD`.

    Parameters
    ----------
    good : str
        The direction name.

    Returns
    -------
    str
        ``good``, unchanged.

    Raises
    ------
    ConfigError
        Unknown direction.
    """
    if good not in GOOD:
        raise ConfigError(f"unknown good direction {good!r} (use one of: {', '.join(GOOD)})")
    return good


def currency_prefix(code: str | None = None) -> str:
    """The text written before an amount: a symbol for USD/EUR/GBP, else the code.

    Parameters
    ----------
    code : str, optional
        ISO currency code; default ``AUTERITY_CURRENCY`` (see :mod:`auterity.config`).
    """
    if code is None:
        code = config.get_settings().currency
    code = code.upper()
    return _CURRENCY_SYMBOLS.get(code, f"{code} ")


def d3_format(unit: str, *, compact: bool = False, decimals: int | None = None) -> str:
    """The d3-format string of a unit, for chart axes and tooltips.

    Parameters
    ----------
    unit : {"currency", "percent", "ms", "count", "tokens", "number"}
        The metric's unit.
    compact : bool
        SI-style short numbers (``$1.23M``, ``4.5k``) for big currency, count, token
        and number values.
    decimals : int, optional
        Digits after the decimal point instead of the unit's default (not with
        ``compact``).

    Returns
    -------
    str
        ``currency`` -> ``"$,.0f"`` (``$`` is d3's currency placeholder: the theme's
        locale renders it as the settings' symbol), ``percent`` -> ``".1%"``, ``ms`` ->
        ``",.0f"`` (the unit goes in the title), ``count``/``tokens`` -> ``",.0f"``,
        ``number`` -> ``",.3~f"``; compact: ``"$.3~s"`` or ``".3~s"``.

    Raises
    ------
    ConfigError
        Unknown unit or negative ``decimals``.
    """
    check_unit(unit)
    if decimals is not None and decimals < 0:
        raise ConfigError(f"decimals must be >= 0, not {decimals}")
    if compact and unit in ("currency", "count", "tokens", "number"):
        return "$.3~s" if unit == "currency" else ".3~s"
    if unit == "percent":
        return f".{1 if decimals is None else decimals}%"
    if unit == "number":
        return ",.3~f" if decimals is None else f",.{decimals}f"
    places = 0 if decimals is None else decimals
    return f"$,.{places}f" if unit == "currency" else f",.{places}f"


def is_missing(value: Any) -> bool:
    """Whether a value is missing.

    Parameters
    ----------
    value : any
        A scalar (lists and other containers are not missing).

    Returns
    -------
    bool
        True for None, NaN, NaT and pd.NA.
    """
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _compact(value: float) -> str | None:
    """``1.23M``-style text of a non-negative value of at least a million, else None."""
    if value < 1e6:
        return None
    rounded = float(f"{value:.3g}")  # 999,999,999 -> 1e9 -> "1B", not "1000M"
    for divisor, suffix in _COMPACT:
        if rounded >= divisor:
            scaled = rounded / divisor
            digits = 2 if scaled < 10 else 1 if scaled < 100 else 0
            text = f"{scaled:,.{digits}f}"
            if "." in text:
                text = text.rstrip("0").rstrip(".")
            return text + suffix
    return None  # pragma: no cover - rounded >= value >= 1e6 always matches "M"


def format_value(value: Any, unit: str, *, currency: str | None = None) -> str:
    """A value as text for tiles, labels and emails, in the unit's house style.

    Parameters
    ----------
    value : number or None
        The value; None, NaN, NaT and pd.NA are shown as an en dash.
    unit : {"currency", "percent", "ms", "count", "tokens", "number"}
        The metric's unit; percentages are fractions (0.053 is 5.3 %).
    currency : str, optional
        ISO code of the currency; default ``AUTERITY_CURRENCY``.

    Returns
    -------
    str
        For example ``1234567.8`` currency -> ``"$1.23M"``, ``865.5`` -> ``"$866"``,
        ``0.42`` -> ``"$0.42"``, ``0.0534`` percent -> ``"5.3 %"``, ``1834.2`` ms ->
        ``"1,834 ms"``, ``12345`` count -> ``"12,345"``, ``2.5e9`` tokens -> ``"2.5B"``,
        ``1.23456`` number -> ``"1.235"``, NaN -> ``"–"``. Negative values get a minus
        sign (U+2212, as in d3-format), unless they round to zero.

    Raises
    ------
    ConfigError
        Unknown unit.
    """
    check_unit(unit)
    if is_missing(value):
        return DASH
    number = float(value)
    if math.isinf(number):
        return ("" if number > 0 else MINUS) + "∞"
    size = abs(number)
    if unit == "percent":
        body = f"{size * 100:,.1f} %"
    elif unit == "ms":
        body = f"{size:,.1f} ms" if size < 10 else f"{size:,.0f} ms"
    else:
        body = _compact(size) or ""
        if not body:
            if unit == "currency":
                body = f"{size:,.2f}" if size < 100 else f"{size:,.0f}"
            elif unit == "number":
                body = f"{size:,.3f}".rstrip("0").rstrip(".")
            else:
                body = f"{size:,.0f}"
        if unit == "currency":
            body = currency_prefix(currency) + body
    negative = number < 0 and any(ch in "123456789" for ch in body)
    return (MINUS if negative else "") + body


def format_delta(delta_pct: Any, good: str) -> tuple[str, str]:
    """A relative change as text with an arrow, and whether it is good news.

    Parameters
    ----------
    delta_pct : float
        The change as a fraction of the previous value (0.125 is +12.5 %), as in
        ``business.kpi_summary``'s ``previous_delta_pct``.
    good : {"up", "down", "neutral"}
        Which direction of change is good news for the metric.

    Returns
    -------
    (str, str)
        The text (``"▲ 12.5 %"``, ``"▼ 3.0 %"``, ``"0.0 %"`` for changes that round to
        zero, ``"–"`` for NaN) and the tone: ``"good"``, ``"bad"`` or ``"neutral"``
        (no change, unknown change, or a metric whose direction is neutral).

    Raises
    ------
    ConfigError
        Unknown ``good`` direction.
    """
    check_good(good)
    if is_missing(delta_pct):
        return DASH, "neutral"
    delta = float(delta_pct)
    size = "∞ %" if math.isinf(delta) else f"{abs(delta) * 100:,.1f} %"
    if size == "0.0 %":
        return size, "neutral"
    arrow = "▲" if delta > 0 else "▼"
    if good == "neutral":
        return f"{arrow} {size}", "neutral"
    return f"{arrow} {size}", "good" if (delta > 0) == (good == "up") else "bad"


def numeric(values: Iterable[Any]) -> pd.Series:
    """Values as floats.

    Parameters
    ----------
    values : iterable
        Any values.

    Returns
    -------
    pandas.Series
        Float values; those that are not numbers become NaN.
    """
    return pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").astype(float)


def axis_format(values: Iterable[Any], unit: str) -> str:
    """The d3 format for an axis over some values: compact when big, decimals when small.

    Parameters
    ----------
    values : iterable
        The values the axis spans.
    unit : str
        Their unit (one of :data:`UNITS`).

    Returns
    -------
    str
        A :func:`d3_format` string: compact from a million (currency, counts, tokens,
        numbers), two decimals for currency under 10 and percentages under 1 %, one for
        milliseconds under 10, else the unit's default.
    """
    top = numeric(values).abs().max()
    if pd.isna(top):
        return d3_format(unit)
    if top >= 1e6 and unit in ("currency", "count", "tokens", "number"):
        return d3_format(unit, compact=True)
    if unit == "currency" and top < 10:
        return d3_format(unit, decimals=2)
    if unit == "percent" and top < 0.01:
        return d3_format(unit, decimals=2)
    if unit == "ms" and top < 10:
        return d3_format(unit, decimals=1)
    return d3_format(unit)


def tooltip_format(values: Iterable[Any], unit: str) -> str:
    """The d3 format for tooltips: like the axis, but cents and small shares stay exact.

    Parameters
    ----------
    values : iterable
        The values the tooltips show.
    unit : str
        Their unit (one of :data:`UNITS`).

    Returns
    -------
    str
        Currency with cents, counts and tokens in full, else :func:`axis_format`.
    """
    if unit == "currency":
        return d3_format(unit, decimals=2)
    if unit in ("count", "tokens"):
        return d3_format(unit)
    return axis_format(values, unit)
