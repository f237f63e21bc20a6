"""Charts: one project theme, one set of number formats, offline rendering.

Every chart of the product (notebooks, nbconvert HTML/PDF reports, Voila dashboards,
emails) is an Altair chart built here from the DataFrames the library returns; the
builders never query the warehouse. Importing this module is cheap: Altair loads on the
first chart, ``vl_convert`` on the first render, and ``import auterity`` never imports
this module.

Theme
-----
:func:`theme_config` returns the Vega-Lite ``config`` of the ``"light"`` or ``"dark"``
theme: font stack, sizes, the Okabe-Ito colour-blind-safe palette (ordered so the first
colours have the most contrast on the background), axis/grid/legend styling, the
background, and the number locale (the currency symbol of ``AUTERITY_CURRENCY``). Marks
that need a semantic colour use named styles (``auterity-band``, ``auterity-highlight``...)
or the theme's ``diverging`` range (bad, neutral, good), so a chart built once renders in
either theme. :func:`use_theme` registers the themes with Altair (``auterity-light``,
``auterity-dark``) and enables one. The render functions (:func:`to_png`, :func:`to_svg`,
:func:`chart_html`, :func:`standalone_html`) apply the enabled Auterity theme, else the
light one, whatever Altair theme is active.

Number formats
--------------
:func:`d3_format` gives the d3-format string of a unit for axes and tooltips, and
:func:`format_value` / :func:`format_delta` the text of a value or change for tiles,
labels and emails. d3-format has no literal prefixes, so currency formats use d3's ``$``
*placeholder*; the theme's ``locale`` turns it into the settings' symbol (``$``, ``€``,
``£``, else the ISO code, e.g. ``CHF 1,234``). d3 writes percentages as ``5.3%``; text
uses ``5.3 %`` like the rest of the reports.

Values from data
----------------
Category values, titles and tooltip titles come from the warehouse (segments, model ids,
features). Vega draws them as text and its tooltip escapes HTML, but Vega-Lite compiles
titles and custom sort orders into Vega expressions, so every such text passes
:func:`auterity.escape.vega_text` and every column name :func:`auterity.escape.vega_field`
(see :mod:`auterity.escape`); no expression is built from a data value.

Offline rendering
-----------------
Reports must draw charts without network access, and emails need images:

* :func:`to_png` / :func:`to_svg` render with ``vl_convert`` (no browser, no network).
* :func:`offline_html_head` is one ``<script>`` with Vega, Vega-Lite and Vega-Embed
  inlined from ``vl_convert.javascript_bundle()`` (about 0.9 MB, built once per process);
  :func:`chart_html` is a ``<div>`` plus a small script calling ``vegaEmbed`` on the inlined
  spec, which waits for the bundle if it comes later in the page.
* :func:`enable_offline_notebook_rendering` makes charts display in Jupyter, Voila and
  nbconvert outputs with no CDN. Of Altair's renderers, ``"jupyter"`` (JupyterChart) needs
  ``anywidget``, which is not installed, and a widget shows nothing in a static nbconvert
  report; ``"html"`` loads the libraries from a CDN unless given ``template="inline"``,
  which puts the whole 0.9 MB bundle into *every* chart's output (a 20-chart report would
  weigh 18 MB) as a complete HTML document each time; ``"png"``/``"svg"`` work offline
  but lose tooltips and selections. So this module registers its own renderer,
  ``"auterity-offline"``: the first chart displayed in a kernel session carries the
  bundle, later ones only their div and script (a few kB plus their data). Outputs render
  in order in JupyterLab, Voila and nbconvert, so every chart finds ``vegaEmbed``; if it
  never appears (say the output that carried it was cleared and the page reloaded), the
  chart says to call :func:`enable_offline_notebook_rendering` again, which re-sends the
  bundle with the next chart. ``png_fallback=True`` adds an ``image/png`` to each output
  for nbconvert's LaTeX/PDF exporter, which cannot run JavaScript.
"""

from __future__ import annotations

import functools
import html
import json
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from auterity.errors import AuterityError, ConfigError
from auterity.escape import vega_field, vega_text

if TYPE_CHECKING:  # pragma: no cover
    import altair as alt

THEMES = ("light", "dark")
"""Names accepted by :func:`theme_config` and :func:`use_theme`."""

UNITS = ("currency", "percent", "ms", "count", "tokens", "number")
"""Units of :mod:`auterity.metrics` (kept in sync by a test; importing it would pull SQL)."""

GOOD = ("up", "down", "neutral")
"""Which direction of change is good news (as in :mod:`auterity.metrics`)."""

COLUMN_UNITS: dict[str, str] = {
    # ModelHub: leaderboard, SLOs, costs, savings, drift, daily trends
    "requests": "count",
    "ok_requests": "count",
    "share_of_traffic": "percent",
    "error_rate": "percent",
    "timeout_rate": "percent",
    "p50_latency_ms": "ms",
    "p95_latency_ms": "ms",
    "p99_latency_ms": "ms",
    "latency_ms": "ms",
    "latency_target_ms": "ms",
    "error_rate_target": "percent",
    "compliance": "percent",
    "days": "count",
    "days_met": "count",
    "input_tokens": "tokens",
    "output_tokens": "tokens",
    "cost": "currency",
    "cost_per_1k_ok": "currency",
    "cost_per_request": "currency",
    "current_cost_per_request": "currency",
    "candidate_cost_per_request": "currency",
    "share_of_cost": "percent",
    "est_monthly_savings": "currency",
    "current_requests": "count",
    "quality_n": "count",
    "n_reference": "count",
    "n_current": "count",
}
"""The unit of each numeric column the ModelHub analytics return, for tables shown to
people (command-line tables); metric columns take their unit from the metric catalog."""

RENDERER = "auterity-offline"
"""Name of the Altair renderer registered by :func:`enable_offline_notebook_rendering`."""

FONT = "Inter, 'Segoe UI', 'Helvetica Neue', Helvetica, Arial, 'DejaVu Sans', sans-serif"
DASH = "\u2013"  # shown for missing values
MINUS = "\u2212"  # the minus sign d3-format uses too
_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
_COMPACT = ((1e12, "T"), (1e9, "B"), (1e6, "M"))
_MAX_SERIES_IN_TOOLTIP = 12

_PALETTES: dict[str, dict[str, Any]] = {
    "light": {
        "background": "#FFFFFF",
        "text": "#1F2328",
        "muted": "#57606A",
        "grid": "#E6E8EB",
        "domain": "#8C959F",
        # Okabe-Ito; the first four have at least 3:1 contrast on white.
        "category": [
            "#0072B2",
            "#D55E00",
            "#009E73",
            "#CC79A7",
            "#E69F00",
            "#56B4E9",
            "#000000",
            "#F0E442",
        ],
        "good": "#009E73",
        "bad": "#D55E00",
        "neutral": "#8C959F",
        "heatmap": "blues",
        "on_strong": "#FFFFFF",  # text on the darkest heatmap cells
        "on_weak": "#1F2328",
    },
    "dark": {
        "background": "#111111",
        "text": "#E6E6E6",
        "muted": "#A6A6A6",
        "grid": "#2B2B2B",
        "domain": "#6E6E6E",
        # Okabe-Ito with black swapped for light grey; all at least 3:1 on #111.
        "category": [
            "#56B4E9",
            "#E69F00",
            "#009E73",
            "#CC79A7",
            "#F0E442",
            "#D55E00",
            "#0072B2",
            "#E0E0E0",
        ],
        "good": "#009E73",
        "bad": "#D55E00",
        "neutral": "#8A8A8A",
        "heatmap": "darkblue",  # dark for low values, light for high ones
        "on_strong": "#111111",
        "on_weak": "#E6E6E6",
    },
}

# Units and good directions of the ModelHub leaderboard's measures.
_MEASURES: dict[str, tuple[str, str]] = {
    "requests": ("count", "neutral"),
    "ok_requests": ("count", "neutral"),
    "share_of_traffic": ("percent", "neutral"),
    "error_rate": ("percent", "down"),
    "timeout_rate": ("percent", "down"),
    "p50_latency_ms": ("ms", "down"),
    "p95_latency_ms": ("ms", "down"),
    "p99_latency_ms": ("ms", "down"),
    "input_tokens": ("tokens", "neutral"),
    "output_tokens": ("tokens", "neutral"),
    "cost": ("currency", "down"),
    "cost_per_1k_ok": ("currency", "down"),
    "quality_mean": ("number", "up"),
}
_LABELS = {
    "period": "Period",
    "day": "Day",
    "model_id": "Model",
    "name": "Model",
    "provider": "Provider",
    "requests": "Requests",
    "ok_requests": "Successful requests",
    "share_of_traffic": "Share of traffic",
    "error_rate": "Error rate",
    "timeout_rate": "Timeout rate",
    "p50_latency_ms": "p50 latency",
    "p95_latency_ms": "p95 latency",
    "p99_latency_ms": "p99 latency",
    "input_tokens": "Input tokens",
    "output_tokens": "Output tokens",
    "cost": "Cost",
    "cost_per_1k_ok": "Cost per 1k successful requests",
    "quality_mean": "Quality (mean score)",
}
_EMBED_ACTIONS = {"export": True, "source": False, "compiled": False, "editor": False}
_MISSING_BUNDLE = (
    "Chart library not loaded: run auterity.charts.enable_offline_notebook_rendering() "
    "again (the library is embedded once per kernel session) or include "
    "offline_html_head() in the page."
)
_renderer_state = {"bundle_sent": False}
_themes_registered = False


# --------------------------------------------------------------------------- theme


def _check_theme(name: str) -> str:
    """Return ``name`` if it is a known theme, else raise ConfigError."""
    if name not in THEMES:
        raise ConfigError(f"unknown chart theme {name!r} (use one of: {', '.join(THEMES)})")
    return name


def currency_prefix(code: str | None = None) -> str:
    """The text written before an amount: a symbol for USD/EUR/GBP, else the code.

    Parameters
    ----------
    code : str, optional
        ISO currency code; default ``AUTERITY_CURRENCY`` (see :mod:`auterity.config`).
    """
    if code is None:
        from auterity.config import get_settings

        code = get_settings().currency
    code = code.upper()
    return _CURRENCY_SYMBOLS.get(code, f"{code} ")


def theme_config(name: str = "light") -> dict[str, Any]:
    """The Vega-Lite ``config`` of a project theme.

    Parameters
    ----------
    name : {"light", "dark"}
        The theme; the dark one is made for a ``#111111`` background.

    Returns
    -------
    dict
        A Vega-Lite config: font stack and sizes, a colour-blind-safe categorical palette
        (``range.category``), the tones bad/neutral/good as ``range.diverging``, axis,
        grid, legend, title and header styling, the background, named mark styles used
        by the chart builders, and a number locale whose currency symbol follows
        ``AUTERITY_CURRENCY`` (read on each call).

    Raises
    ------
    ConfigError
        Unknown theme name.
    """
    p = _PALETTES[_check_theme(name)]
    text, muted, grid, domain = p["text"], p["muted"], p["grid"], p["domain"]
    category = list(p["category"])
    return {
        "background": p["background"],
        "font": FONT,
        "padding": 8,
        "view": {"continuousWidth": 560, "continuousHeight": 260, "stroke": None},
        "title": {
            "color": text,
            "subtitleColor": muted,
            "fontSize": 15,
            "subtitleFontSize": 12,
            "fontWeight": 600,
            "anchor": "start",
            "offset": 10,
        },
        "axis": {
            "labelColor": muted,
            "titleColor": text,
            "labelFontSize": 11,
            "titleFontSize": 12,
            "titleFontWeight": 500,
            "gridColor": grid,
            "domainColor": domain,
            "tickColor": domain,
            "labelPadding": 4,
            "titlePadding": 8,
        },
        "axisX": {"grid": False, "labelAngle": 0},
        "axisY": {"domain": False, "ticks": False},
        "axisBand": {"grid": False},
        "legend": {
            "labelColor": muted,
            "titleColor": text,
            "labelFontSize": 11,
            "titleFontSize": 12,
            "symbolType": "circle",
            "orient": "bottom",
        },
        "header": {
            "labelColor": text,
            "titleColor": text,
            "labelFontSize": 12,
            "titleFontSize": 12,
        },
        "range": {
            "category": category,
            "diverging": [p["bad"], p["neutral"], p["good"]],
            "heatmap": {"scheme": p["heatmap"]},
        },
        "mark": {"color": category[0]},
        "line": {"strokeWidth": 2},
        "point": {"filled": True, "size": 40},
        "bar": {"cornerRadiusEnd": 2},
        "text": {"color": text, "fontSize": 11},
        "style": {
            "auterity-rule": {"color": muted, "strokeWidth": 1, "strokeDash": [3, 3]},
            "auterity-zero": {"color": domain, "strokeWidth": 1},
            "auterity-label": {"color": text, "fontSize": 11},
            "auterity-band": {"color": category[1], "opacity": 0.2},
            "auterity-highlight": {"color": p["bad"], "opacity": 0.15},
            "auterity-alert": {"color": p["bad"]},
            "auterity-spark": {"color": category[0]},
            "auterity-spark-area": {"color": category[0], "opacity": 0.15},
            "auterity-on-strong": {"color": p["on_strong"], "fontSize": 10},
            "auterity-on-weak": {"color": p["on_weak"], "fontSize": 10},
        },
        "locale": {
            "number": {
                "decimal": ".",
                "thousands": ",",
                "grouping": [3],
                "currency": [currency_prefix(), ""],
            }
        },
    }


def _alt() -> Any:
    """Altair, with the project themes registered (imported on first use)."""
    global _themes_registered
    import altair as alt

    if not _themes_registered:
        for name in THEMES:
            alt.theme.register(f"auterity-{name}", enable=False)(_theme_plugin(name))
        _themes_registered = True
    return alt


def _theme_plugin(name: str) -> Any:
    """An Altair theme function for one of :data:`THEMES`."""

    def plugin() -> dict[str, Any]:
        return {"config": theme_config(name)}

    return plugin


def use_theme(name: str = "light") -> None:
    """Register the project themes with Altair and enable one for every chart.

    Parameters
    ----------
    name : {"light", "dark"}
        Enables the Altair theme ``"auterity-<name>"``.

    Raises
    ------
    ConfigError
        Unknown theme name.
    """
    _check_theme(name)
    _alt().theme.enable(f"auterity-{name}")


def _theme_name(theme: str | None) -> str:
    """The theme to render with: the given one, the enabled Auterity theme, else light."""
    if theme is not None:
        return _check_theme(theme)
    active = str(_alt().theme.active)
    return active.removeprefix("auterity-") if active.startswith("auterity-") else "light"


# --------------------------------------------------------------------------- formats


def _check_unit(unit: str) -> str:
    """Return ``unit`` if known, else raise ConfigError."""
    if unit not in UNITS:
        raise ConfigError(f"unknown unit {unit!r} (use one of: {', '.join(UNITS)})")
    return unit


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
    _check_unit(unit)
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


def _missing(value: Any) -> bool:
    """True for None, NaN, NaT and pd.NA."""
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
    _check_unit(unit)
    if _missing(value):
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


def _check_good(good: str) -> str:
    """Return ``good`` if it is a known direction, else raise ConfigError."""
    if good not in GOOD:
        raise ConfigError(f"unknown good direction {good!r} (use one of: {', '.join(GOOD)})")
    return good


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
    _check_good(good)
    if _missing(delta_pct):
        return DASH, "neutral"
    delta = float(delta_pct)
    size = "∞ %" if math.isinf(delta) else f"{abs(delta) * 100:,.1f} %"
    if size == "0.0 %":
        return size, "neutral"
    arrow = "▲" if delta > 0 else "▼"
    if good == "neutral":
        return f"{arrow} {size}", "neutral"
    return f"{arrow} {size}", "good" if (delta > 0) == (good == "up") else "bad"


def _numeric(values: Iterable[Any]) -> pd.Series:
    """Values as floats (non-numbers become NaN)."""
    return pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").astype(float)


def _axis_format(values: Iterable[Any], unit: str) -> str:
    """The d3 format for an axis over ``values``: compact when big, decimals when small."""
    top = _numeric(values).abs().max()
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


def _tip_format(values: Iterable[Any], unit: str) -> str:
    """The d3 format for tooltips: like the axis, but cents and small shares stay exact."""
    if unit == "currency":
        return d3_format(unit, decimals=2)
    if unit in ("count", "tokens"):
        return d3_format(unit)
    return _axis_format(values, unit)


# --------------------------------------------------------------------------- helpers


def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise ConfigError naming the columns ``frame`` lacks for chart ``what``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"{what}: the frame has no column(s) {', '.join(map(repr, missing))} "
            f"(it has: {', '.join(map(str, frame.columns))})"
        )


def _label(name: str) -> str:
    """A human label for a column: known ModelHub names, the metric catalog, else the name."""
    if name in _LABELS:
        return _LABELS[name]
    try:
        from auterity import metrics

        files = metrics.default_files()
        key = tuple((str(p), p.stat().st_mtime_ns if p.is_file() else 0) for p in files)
        labels = _catalog_labels(key)
    except AuterityError:  # a broken catalog must not break charts
        labels = {}
    return vega_text(labels.get(name) or str(name).replace("_", " ").capitalize())


@functools.lru_cache(maxsize=4)
def _catalog_labels(files: tuple[tuple[str, int], ...]) -> dict[str, str]:
    """Labels of the catalog's metrics and dimensions (cached per file set and mtime)."""
    from pathlib import Path

    from auterity import metrics

    catalog = metrics.load_catalog([Path(path) for path, _ in files])
    labels = {name: d.label for name, d in catalog.dimensions.items()}
    labels.update({name: m.label for name, m in catalog.metrics.items()})
    return labels


def _title(label: str, unit: str) -> str:
    """An axis title with its unit: ``p95 latency (ms)``, ``Revenue (USD)``."""
    label = vega_text(label)
    if unit == "ms":
        return f"{label} (ms)"
    if unit == "currency":
        from auterity.config import get_settings

        return f"{label} ({get_settings().currency})"
    return label


def _category(values: pd.Series) -> pd.Series:
    """Category values as text Vega-Lite can put into a sort order or a title (missing
    values stay missing)."""
    return values.map(lambda v: v if _missing(v) else vega_text(v))


def _tooltip_title(text: str) -> str:
    """A tooltip title from data: vega-tooltip draws the keys "title" and "image" itself
    (a heading; an image URL), so those two get an invisible no-break space."""
    text = vega_text(text)
    return f"{text}\u00a0" if text in ("title", "image") else text


def _dates(values: pd.Series) -> pd.Series:
    """Timestamps without a time zone (wall-clock time), so browsers do not shift days."""
    out = pd.to_datetime(values)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_localize(None)
    return out


def _titled(chart: Any, title: str | None, subtitle: str | None = None) -> Any:
    """``chart`` with a title (and subtitle) if given."""
    if not title:
        return chart
    alt = _alt()
    params = {"text": vega_text(title)}
    if subtitle:
        params["subtitle"] = vega_text(subtitle)
    return chart.properties(title=alt.TitleParams(**params))


def _q(name: str, **kwargs: Any) -> Any:
    """A quantitative Tooltip for a column."""
    return _alt().Tooltip(field=vega_field(name), type="quantitative", **kwargs)


def _t(name: str, time_format: str = "%b %-d, %Y") -> Any:
    """A temporal Tooltip for a column, titled with its label."""
    return _alt().Tooltip(
        field=vega_field(name), type="temporal", title=_label(name), format=time_format
    )


# --------------------------------------------------------------------------- builders


def trend(
    frame: pd.DataFrame,
    metric: str,
    *,
    unit: str,
    by: str | None = None,
    title: str | None = None,
    interactive: bool = True,
    time_col: str = "period",
) -> alt.LayerChart:
    """A metric over time, one line per value of an optional dimension.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``metrics.query`` output: ``period``, the dimensions, the metrics.
    metric : str
        The column to plot.
    unit : str
        Its unit (axis and tooltip formats).
    by : str, optional
        A dimension column: one coloured line per value.
    title : str, optional
        Chart title; default the metric's label from the catalog.
    interactive : bool
        Add an x-interval brush selection named ``"brush"`` (dashboards filter other
        charts with it) and a hover rule that snaps to the nearest period, named
        ``"hover"``, whose tooltip lists every line's value.
    time_col : str
        The time column (``"day"`` for ``modelhub.daily_trend``).

    Returns
    -------
    altair.LayerChart
        Layers: the lines, the points of the hovered period, the hover rule.
    """
    alt = _alt()
    _check_unit(unit)
    _require(frame, [time_col, metric, *([by] if by else [])], "trend")
    data = frame[[time_col, *([by] if by else []), metric]].copy()
    data[time_col] = _dates(data[time_col])
    if by:
        data[by] = _category(data[by])
    label = _label(metric)
    date_tip = _t(time_col)
    value_tip = _q(metric, title=label, format=_tip_format(data[metric], unit))
    x = alt.X(field=vega_field(time_col), type="temporal", title=None)
    y = alt.Y(
        field=vega_field(metric),
        type="quantitative",
        title=_title(label, unit),
        axis=alt.Axis(format=_axis_format(data[metric], unit)),
    )
    encodings: dict[str, Any] = {"x": x, "y": y}
    tips = [date_tip, value_tip]
    if by:
        encodings["color"] = alt.Color(field=vega_field(by), type="nominal", title=_label(by))
        tips = [
            date_tip,
            alt.Tooltip(field=vega_field(by), type="nominal", title=_label(by)),
            value_tip,
        ]
    base = alt.Chart(data).encode(**encodings)
    line = base.mark_line()
    if not interactive:
        points = base.mark_point(size=60, opacity=0).encode(tooltip=tips)
        return _titled(alt.layer(line, points), title or label)
    brush = alt.selection_interval(name="brush", encodings=["x"])
    hover = alt.selection_point(
        name="hover",
        nearest=True,
        on="pointerover",
        clear="pointerout",
        fields=[time_col],
        empty=False,
    )
    line = line.add_params(brush)
    points = base.mark_point(size=50).encode(
        opacity=alt.when(hover).then(alt.value(1)).otherwise(alt.value(0))
    )
    rule_base = alt.Chart(data)
    rule_tips = tips
    series = [] if not by else [str(v) for v in pd.unique(data[by].dropna())]
    if by and len(series) <= _MAX_SERIES_IN_TOOLTIP:
        rule_base = rule_base.transform_pivot(
            vega_field(by), value=vega_field(metric), groupby=[vega_field(time_col)]
        )
        fmt = _tip_format(data[metric], unit)
        rule_tips = [date_tip, *[_q(s, title=_tooltip_title(s), format=fmt) for s in series]]
    rule = (
        rule_base.mark_rule(style="auterity-rule", strokeDash=[], strokeWidth=8)
        .encode(
            x=x,
            opacity=alt.when(hover).then(alt.value(0.35)).otherwise(alt.value(0)),
            tooltip=rule_tips,
        )
        .add_params(hover)
    )
    return _titled(alt.layer(line, points, rule), title or label)


def kpi_sparkline(
    frame: pd.DataFrame,
    metric: str,
    *,
    unit: str,
    time_col: str = "period",
    width: int = 120,
    height: int = 32,
) -> alt.LayerChart:
    """A tiny line-and-area chart for a KPI tile: no axes, the last point marked.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``metrics.query`` output with ``period`` and the metric.
    metric : str
        The column to plot.
    unit : str
        Its unit (tooltip format).
    time_col : str
        The time column.
    width, height : int
        Size in pixels of the plot area.

    Returns
    -------
    altair.LayerChart
        Area, line, last point and invisible tooltip targets.
    """
    alt = _alt()
    _check_unit(unit)
    _require(frame, [time_col, metric], "kpi_sparkline")
    data = frame[[time_col, metric]].copy()
    data[time_col] = _dates(data[time_col])
    data = data.sort_values(time_col)
    values = _numeric(data[metric])
    low = float(values.min()) if values.notna().any() else 0.0
    x = alt.X(field=vega_field(time_col), type="temporal", axis=None)
    y = alt.Y(field=vega_field(metric), type="quantitative", axis=None, scale=alt.Scale(zero=False))
    base = alt.Chart(data).encode(x=x, y=y)
    area = base.mark_area(style="auterity-spark-area").encode(y2=alt.Y2(datum=low))
    line = base.mark_line(style="auterity-spark", strokeWidth=1.5)
    last = data.dropna(subset=[metric]).tail(1)
    end = alt.Chart(last).mark_point(style="auterity-spark", size=20).encode(x=x, y=y)
    date_tip = _t(time_col)
    tips = base.mark_point(size=40, opacity=0).encode(
        tooltip=[date_tip, _q(metric, title=_label(metric), format=_tip_format(values, unit))]
    )
    return alt.layer(area, line, end, tips).properties(
        width=width, height=height, view=alt.ViewBackground(stroke=None)
    )


def cohort_heatmap(retention: pd.DataFrame, *, title: str | None = None) -> alt.LayerChart:
    """Retention by signup cohort: cohorts down, months since signup across.

    Parameters
    ----------
    retention : pandas.DataFrame
        ``business.cohort_retention`` output: index ``cohort`` (month start), column
        ``size``, columns ``0..N`` with the retained shares (NaN: not reached yet).
    title : str, optional
        Chart title.

    Returns
    -------
    altair.LayerChart
        A rect heatmap (colour = share) with percentage labels; months a cohort has not
        reached yet are blank.
    """
    alt = _alt()
    _require(retention, ["size"], "cohort_heatmap")
    months = [c for c in retention.columns if c != "size"]
    frame = retention.copy()
    frame.index = pd.to_datetime(frame.index)
    frame.index.name = "cohort"
    frame.columns = ["size", *[str(c) for c in months]]
    long = frame.reset_index().melt(
        id_vars=["cohort", "size"], var_name="month", value_name="share"
    )
    long = long.dropna(subset=["share"])
    long["month"] = long["month"].astype(int)
    long["size"] = long["size"].astype(int)
    long["cohort_label"] = (
        long["cohort"].dt.strftime("%b %Y") + " (n=" + long["size"].map("{:,}".format) + ")"
    )
    order = list(dict.fromkeys(long.sort_values("cohort")["cohort_label"]))
    top = float(long["share"].max()) if len(long) else 1.0
    data = long[["cohort_label", "month", "share", "size"]]
    base = alt.Chart(data).encode(
        x=alt.X("month:O", title="Months since signup", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("cohort_label:O", sort=order, title="Signup cohort"),
    )
    tips = [
        alt.Tooltip("cohort_label:N", title="Cohort"),
        alt.Tooltip("month:O", title="Months since signup"),
        alt.Tooltip("share:Q", title="Retained", format=".1%"),
    ]
    cells = base.mark_rect().encode(
        color=alt.Color(
            "share:Q",
            title="Retained",
            scale=alt.Scale(domain=[0, max(top, 1e-9)]),
            legend=alt.Legend(format=".0%", orient="right"),
        ),
        tooltip=tips,
    )
    strong = f"datum.share >= {top * 0.6!r}"
    on_strong = base.transform_filter(strong).mark_text(style="auterity-on-strong")
    on_weak = base.transform_filter(f"!({strong})").mark_text(style="auterity-on-weak")
    text = alt.Text("share:Q", format=".0%")
    layered = alt.layer(cells, on_strong.encode(text=text), on_weak.encode(text=text)).properties(
        width=alt.Step(46), height=alt.Step(26)
    )
    return _titled(
        layered,
        title or "Retention by signup cohort",
        "Share of each month's signups who placed an order N months later",
    )


def funnel_chart(funnel: pd.DataFrame, *, title: str | None = None) -> alt.LayerChart:
    """The funnel as horizontal bars, each labelled with its count and conversion.

    Parameters
    ----------
    funnel : pandas.DataFrame
        ``business.funnel`` output: ``step, count, conversion_from_previous,
        conversion_from_start, drop_off``, in funnel order.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.LayerChart
        Bars in funnel order and text labels such as ``"241 · 6.2 % of previous"``.
    """
    alt = _alt()
    columns = ["step", "count", "conversion_from_previous", "conversion_from_start", "drop_off"]
    _require(funnel, columns, "funnel_chart")
    data = funnel[columns].copy()
    data["step"] = data["step"].astype(str)
    labels = []
    for i, row in enumerate(data.itertuples(index=False)):
        text = format_value(row.count, "count")
        if i:
            text += f" · {format_value(row.conversion_from_previous, 'percent')} of previous"
        labels.append(text)
    data["label"] = labels
    order = list(data["step"])
    base = alt.Chart(data).encode(
        y=alt.Y("step:N", sort=order, title=None),
        x=alt.X(
            "count:Q",
            title="Count",
            axis=alt.Axis(format=_axis_format(data["count"], "count")),
            scale=alt.Scale(domainMin=0),
        ),
    )
    tips = [
        alt.Tooltip("step:N", title="Step"),
        alt.Tooltip("count:Q", title="Count", format=",.0f"),
        alt.Tooltip("conversion_from_previous:Q", title="From previous step", format=".1%"),
        alt.Tooltip("conversion_from_start:Q", title="From first step", format=".1%"),
        alt.Tooltip("drop_off:Q", title="Drop-off", format=".1%"),
    ]
    bars = base.mark_bar().encode(tooltip=tips)
    text = base.mark_text(align="left", dx=4, style="auterity-label").encode(text="label:N")
    return _titled(alt.layer(bars, text), title or "Funnel")


def breakdown_bars(
    frame: pd.DataFrame,
    metric: str,
    by: str,
    *,
    unit: str,
    title: str | None = None,
    top: int | None = None,
) -> alt.LayerChart:
    """A metric per value of a dimension as bars, largest first, clickable.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``business.breakdown`` output (``<by>, <metric>, share``) or ``metrics.query``
        output with ``grain=None``.
    metric, by : str
        The value column and the category column.
    unit : str
        The metric's unit.
    title : str, optional
        Chart title; default "<metric label> by <dimension label>".
    top : int, optional
        Only the ``top`` largest values.

    Returns
    -------
    altair.LayerChart
        Bars with a click selection named ``"pick"`` on ``by`` (other values fade;
        dashboards filter other charts with it) and value labels.
    """
    alt = _alt()
    _check_unit(unit)
    _require(frame, [by, metric], "breakdown_bars")
    keep = [by, metric, *(["share"] if "share" in frame.columns else [])]
    data = frame[keep].sort_values(metric, ascending=False, na_position="last")
    if top is not None:
        data = data.head(top)
    data = data.copy()
    data[by] = _category(data[by].astype(str))
    data["label"] = [format_value(v, unit) for v in data[metric]]
    pick = alt.selection_point(name="pick", fields=[by], on="click", clear="dblclick")
    base = alt.Chart(data).encode(
        y=alt.Y(field=vega_field(by), type="nominal", sort=list(data[by]), title=_label(by)),
        x=alt.X(
            field=vega_field(metric),
            type="quantitative",
            title=_title(_label(metric), unit),
            axis=alt.Axis(format=_axis_format(data[metric], unit)),
        ),
    )
    tips = [
        alt.Tooltip(field=vega_field(by), type="nominal", title=_label(by)),
        _q(metric, title=_label(metric), format=_tip_format(data[metric], unit)),
    ]
    if "share" in data.columns and data["share"].notna().any():
        tips.append(alt.Tooltip("share:Q", title="Share of total", format=".1%"))
    bars = (
        base.mark_bar(cursor="pointer")
        .encode(
            opacity=alt.when(pick).then(alt.value(1.0)).otherwise(alt.value(0.35)),
            tooltip=tips,
        )
        .add_params(pick)
    )
    text = base.mark_text(align="left", dx=4, style="auterity-label").encode(text="label:N")
    return _titled(alt.layer(bars, text), title or f"{_label(metric)} by {_label(by).lower()}")


def movers_chart(
    movers: pd.DataFrame,
    by: str,
    *,
    unit: str = "number",
    good: str = "up",
    top: int | None = 15,
    title: str | None = None,
) -> alt.LayerChart:
    """Which values drove a metric's change: diverging bars of their contributions.

    Parameters
    ----------
    movers : pandas.DataFrame
        ``business.top_movers`` output: ``<by>, previous, current, delta, contribution,
        share_of_change`` (largest absolute contribution first).
    by : str
        The dimension column.
    unit : str
        The metric's unit (labels, axis).
    good : {"up", "down", "neutral"}
        The metric's good direction: contributions in that direction are coloured
        "good", the others "bad" (the theme's tones).
    top : int, optional
        Only the ``top`` largest absolute contributions (default 15).
    title : str, optional
        Chart title.

    Returns
    -------
    altair.LayerChart
        Bars from zero (largest increase on top), a zero rule, signed labels.
    """
    alt = _alt()
    _check_unit(unit)
    _check_good(good)
    _require(movers, [by, "previous", "current", "delta", "contribution"], "movers_chart")
    keep = [by, "previous", "current", "delta", "contribution"]
    keep += [c for c in ("share_of_change",) if c in movers.columns]
    data = movers[keep].copy()
    data = data.reindex(data["contribution"].abs().sort_values(ascending=False).index)
    if top is not None:
        data = data.head(top)
    data = data.sort_values("contribution", ascending=False)
    data[by] = _category(data[by].astype(str))
    data["tone"] = [
        "neutral" if good == "neutral" or not c else "good" if (c > 0) == (good == "up") else "bad"
        for c in data["contribution"].fillna(0)
    ]
    data["label"] = [("+" if v > 0 else "") + format_value(v, unit) for v in data["contribution"]]
    values = pd.concat([data["previous"], data["current"], data["contribution"]])
    fmt = _tip_format(values, unit)
    # Room beyond the longest bars for their labels (which sit outside the bars).
    contribution = [0.0, *_numeric(data["contribution"]).dropna()]
    low, high = min(contribution), max(contribution)
    pad = 0.22 * (high - low)
    domain = [low - pad if low < 0 else 0.0, high + pad if high > 0 else 0.0]
    base = alt.Chart(data).encode(
        y=alt.Y(field=vega_field(by), type="nominal", sort=list(data[by]), title=_label(by)),
        x=alt.X(
            "contribution:Q",
            title=_title("Contribution to the change", unit),
            axis=alt.Axis(format=_axis_format(data["contribution"], unit)),
            scale=alt.Scale(domain=domain) if high > low else alt.Undefined,
        ),
    )
    tips = [
        alt.Tooltip(field=vega_field(by), type="nominal", title=_label(by)),
        alt.Tooltip("previous:Q", title="Previous", format=fmt),
        alt.Tooltip("current:Q", title="Current", format=fmt),
        alt.Tooltip("contribution:Q", title="Contribution", format=fmt),
    ]
    if "share_of_change" in data.columns:
        tips.append(alt.Tooltip("share_of_change:Q", title="Share of change", format=".1%"))
    bars = base.mark_bar().encode(
        color=alt.Color(
            "tone:N",
            scale=alt.Scale(domain=["bad", "neutral", "good"], range="diverging"),
            legend=None,
        ),
        tooltip=tips,
    )
    text = base.mark_text(
        style="auterity-label",
        align=alt.expr("datum.contribution < 0 ? 'right' : 'left'"),
        dx=alt.expr("datum.contribution < 0 ? -4 : 4"),
    ).encode(text="label:N")
    zero = alt.Chart(data).mark_rule(style="auterity-zero").encode(x=alt.datum(0))
    return _titled(alt.layer(bars, zero, text), title or f"What moved, by {_label(by).lower()}")


def _model_names(frame: pd.DataFrame) -> pd.Series:
    """A display name per row: ``name`` when present and unique per model, else the id."""
    if "name" in frame.columns and "model_id" in frame.columns:
        names = frame["name"].fillna(frame["model_id"]).astype(str)
        if names.groupby(frame["model_id"].astype(str)).nunique().max() <= 1 and (
            names.nunique() == frame["model_id"].nunique()
        ):
            return _category(names)
    return _category(frame["model_id"].astype(str))


def leaderboard_chart(
    leaderboard: pd.DataFrame,
    measure: str = "p95_latency_ms",
    *,
    title: str | None = None,
) -> alt.LayerChart:
    """One bar per model for a leaderboard measure, best first, coloured by provider.

    Parameters
    ----------
    leaderboard : pandas.DataFrame
        ``modelhub.leaderboard`` output.
    measure : str
        One of its numeric columns: requests, share_of_traffic, error_rate,
        timeout_rate, p50/p95/p99_latency_ms, input/output_tokens, cost,
        cost_per_1k_ok, quality_mean (with its 95 % interval drawn).
    title : str, optional
        Chart title; default the measure's label.

    Returns
    -------
    altair.LayerChart
        Bars (lower is first for latencies, rates and costs), value labels, and for
        ``quality_mean`` error bars.

    Raises
    ------
    ConfigError
        Unknown measure or missing columns.
    """
    alt = _alt()
    if measure not in _MEASURES:
        raise ConfigError(
            f"unknown leaderboard measure {measure!r} (use one of: {', '.join(_MEASURES)})"
        )
    unit, good = _MEASURES[measure]
    _require(leaderboard, ["model_id", measure], "leaderboard_chart")
    data = leaderboard.copy()
    data["model"] = _model_names(data)
    if "provider" not in data.columns:
        data["provider"] = "unknown"
    keep = ["model", "model_id", "provider", measure]
    keep += [c for c in ("requests",) if c in data.columns and c != measure]
    with_ci = measure == "quality_mean" and {"quality_ci_low", "quality_ci_high"} <= set(
        data.columns
    )
    keep += ["quality_ci_low", "quality_ci_high"] if with_ci else []
    data = data[keep].sort_values(measure, ascending=good == "down", na_position="last")
    data["label"] = [format_value(v, unit) for v in data[measure]]
    label = _label(measure)
    base = alt.Chart(data).encode(
        y=alt.Y("model:N", sort=list(data["model"]), title=None),
        x=alt.X(
            field=measure,
            type="quantitative",
            title=_title(label, unit),
            axis=alt.Axis(format=_axis_format(data[measure], unit)),
        ),
    )
    tips = [
        alt.Tooltip("model:N", title="Model"),
        alt.Tooltip("model_id:N", title="Model id"),
        alt.Tooltip("provider:N", title="Provider"),
        _q(measure, title=label, format=_tip_format(data[measure], unit)),
    ]
    if "requests" in keep:
        tips.append(alt.Tooltip("requests:Q", title="Requests", format=",.0f"))
    bars = base.mark_bar().encode(color=alt.Color("provider:N", title="Provider"), tooltip=tips)
    layers = [bars]
    if with_ci:
        tips += [
            alt.Tooltip("quality_ci_low:Q", title="95 % interval from", format=".3f"),
            alt.Tooltip("quality_ci_high:Q", title="95 % interval to", format=".3f"),
        ]
        bars = bars.encode(tooltip=tips)
        ci = base.mark_errorbar(ticks=True).encode(
            x=alt.X("quality_ci_low:Q", title=_title(label, unit)),
            x2="quality_ci_high:Q",
        )
        layers = [bars, ci]
    text = base.mark_text(align="left", dx=4, style="auterity-label").encode(text="label:N")
    if with_ci:
        text = text.encode(x="quality_ci_high:Q")
    subtitle = "Best first" if good != "neutral" else None
    return _titled(alt.layer(*layers, text), title or label, subtitle)


def latency_percentiles_chart(
    daily: pd.DataFrame, *, title: str | None = None, columns: int = 3
) -> alt.FacetChart:
    """p50 and p95 latency per model and day, one small chart per model.

    Parameters
    ----------
    daily : pandas.DataFrame
        ``modelhub.daily_trend`` output: ``day, model_id, p50_latency_ms,
        p95_latency_ms`` (and ``name`` if present).
    title : str, optional
        Chart title.
    columns : int
        Small multiples per row.

    Returns
    -------
    altair.FacetChart
        Faceted by model (independent y scales: fast and slow models both stay
        readable), colour and dash by percentile; days without traffic are gaps.
    """
    alt = _alt()
    _require(daily, ["day", "model_id", "p50_latency_ms", "p95_latency_ms"], "latency chart")
    frame = daily.copy()
    frame["model"] = _model_names(frame)
    frame["day"] = _dates(frame["day"])
    long = frame.melt(
        id_vars=["day", "model"],
        value_vars=["p50_latency_ms", "p95_latency_ms"],
        var_name="percentile",
        value_name="latency_ms",
    )
    long["percentile"] = long["percentile"].str.replace("_latency_ms", "", regex=False)
    data = long[["day", "model", "percentile", "latency_ms"]]
    fmt = _axis_format(data["latency_ms"], "ms")
    base = alt.Chart().encode(
        x=alt.X("day:T", title=None, axis=alt.Axis(format="%b %-d", labelAngle=0)),
        y=alt.Y("latency_ms:Q", title="Latency (ms)", axis=alt.Axis(format=fmt)),
        color=alt.Color(
            "percentile:N",
            title="Percentile",
            scale=alt.Scale(domain=["p50", "p95"]),
            legend=alt.Legend(symbolType="stroke"),
        ),
    )
    day_tip = alt.Tooltip("day:T", title="Day", format="%b %-d, %Y")
    tips = [
        day_tip,
        alt.Tooltip("model:N", title="Model"),
        alt.Tooltip("percentile:N", title="Percentile"),
        alt.Tooltip("latency_ms:Q", title="Latency (ms)", format=",.0f"),
    ]
    lines = base.mark_line(strokeWidth=1.5).encode(
        strokeDash=alt.StrokeDash(
            "percentile:N",
            title="Percentile",
            scale=alt.Scale(domain=["p50", "p95"], range=[[1, 0], [5, 3]]),
        )
    )
    points = base.mark_point(size=30, opacity=0).encode(tooltip=tips)
    chart = (
        alt.layer(lines, points, data=data)
        .properties(width=220, height=120)
        .facet(facet=alt.Facet("model:N", title=None), columns=columns)
        .resolve_scale(y="independent")
    )
    return _titled(chart, title or "Latency percentiles per model", "Successful requests only")


def quality_cost_scatter(
    leaderboard: pd.DataFrame,
    *,
    log_x: bool | None = None,
    title: str | None = None,
) -> alt.LayerChart:
    """The quality/cost trade-off: cost per 1k successful requests against quality.

    Parameters
    ----------
    leaderboard : pandas.DataFrame
        ``modelhub.leaderboard`` output: ``model_id, cost_per_1k_ok, quality_mean,
        quality_ci_low, quality_ci_high`` (plus ``name``, ``provider``, ``requests``).
    log_x : bool, optional
        Log cost axis; default when the costs span more than 50x.
    title : str, optional
        Chart title.

    Returns
    -------
    altair.LayerChart
        Error bars (95 % interval of the mean quality), points sized by requests and
        coloured by provider, model labels. Models without cost or quality are left out.
    """
    alt = _alt()
    cols = ["model_id", "cost_per_1k_ok", "quality_mean", "quality_ci_low", "quality_ci_high"]
    _require(leaderboard, cols, "quality_cost_scatter")
    data = leaderboard.copy()
    data["model"] = _model_names(data)
    if "provider" not in data.columns:
        data["provider"] = "unknown"
    if "requests" not in data.columns:
        data["requests"] = 1
    data = data[["model", "provider", "requests", *cols]]
    data = data.dropna(subset=["cost_per_1k_ok", "quality_mean"])
    cost = data["cost_per_1k_ok"]
    if log_x is None:
        positive = cost[cost > 0]
        log_x = bool(
            len(positive) == len(cost) and len(cost) > 1 and positive.max() > 50 * positive.min()
        )
    x = alt.X(
        "cost_per_1k_ok:Q",
        title=_title(_LABELS["cost_per_1k_ok"], "currency"),
        scale=alt.Scale(type="log") if log_x else alt.Scale(zero=False),
        axis=alt.Axis(format="$,.2~f"),
    )
    y_scale = alt.Scale(zero=False, padding=12)
    tips = [
        alt.Tooltip("model:N", title="Model"),
        alt.Tooltip("provider:N", title="Provider"),
        alt.Tooltip("cost_per_1k_ok:Q", title="Cost per 1k successful", format="$,.2f"),
        alt.Tooltip("quality_mean:Q", title="Quality", format=".3f"),
        alt.Tooltip("quality_ci_low:Q", title="95 % interval from", format=".3f"),
        alt.Tooltip("quality_ci_high:Q", title="95 % interval to", format=".3f"),
        alt.Tooltip("requests:Q", title="Requests", format=",.0f"),
    ]
    base = alt.Chart(data).encode(x=x)
    bars = base.mark_errorbar(ticks=True).encode(
        y=alt.Y("quality_ci_low:Q", title="Quality (mean score)", scale=y_scale),
        y2="quality_ci_high:Q",
        color=alt.Color("provider:N", title="Provider"),
    )
    points = base.mark_point(filled=True, opacity=0.9).encode(
        y=alt.Y("quality_mean:Q", title="Quality (mean score)", scale=y_scale),
        color=alt.Color("provider:N", title="Provider"),
        size=alt.Size("requests:Q", title="Requests", scale=alt.Scale(range=[40, 400])),
        tooltip=tips,
    )
    labels = base.mark_text(align="left", dx=9, dy=-7, style="auterity-label").encode(
        y="quality_mean:Q", text="model:N"
    )
    return _titled(
        alt.layer(bars, points, labels),
        title or "Quality vs cost",
        "Up and to the left is better. Bars: 95 % interval of the mean quality.",
    )


def anomaly_chart(
    series: pd.DataFrame,
    anomalies: pd.DataFrame,
    *,
    value_col: str,
    time_col: str,
    unit: str,
    title: str | None = None,
) -> alt.LayerChart:
    """A time series with its anomalous windows shaded and their points marked.

    Parameters
    ----------
    series : pandas.DataFrame
        The series: ``time_col`` and ``value_col``.
    anomalies : pandas.DataFrame
        One row per window: ``start``, ``end`` (inclusive; equal for a single point),
        optionally ``score``, ``severity``, ``direction`` or ``label`` (shown in tooltips).
    value_col, time_col : str
        Column names in ``series``.
    unit : str
        Unit of the values.
    title : str, optional
        Chart title; default the value's label.

    Returns
    -------
    altair.LayerChart
        Shaded windows (style ``auterity-highlight``), a rule for single-point windows,
        the line, points inside windows (style ``auterity-alert``), tooltip targets.
    """
    alt = _alt()
    _check_unit(unit)
    _require(series, [time_col, value_col], "anomaly_chart")
    _require(anomalies, ["start", "end"], "anomaly_chart (anomalies)")
    data = series[[time_col, value_col]].copy()
    data[time_col] = _dates(data[time_col])
    data = data.sort_values(time_col)
    extra = [c for c in ("score", "severity", "direction", "label") if c in anomalies.columns]
    windows = anomalies[["start", "end", *extra]].copy()
    windows["start"], windows["end"] = _dates(windows["start"]), _dates(windows["end"])
    inside = np.zeros(len(data), dtype=bool)
    times = data[time_col].to_numpy()
    for start, end in zip(windows["start"], windows["end"], strict=True):
        inside |= (times >= np.datetime64(start)) & (times <= np.datetime64(end))
    data["anomalous"] = inside
    windows["single"] = windows["start"] == windows["end"]
    label = _label(value_col)
    fmt = _tip_format(data[value_col], unit)
    x = alt.X(field=vega_field(time_col), type="temporal", title=None)
    y = alt.Y(
        field=vega_field(value_col),
        type="quantitative",
        title=_title(label, unit),
        axis=alt.Axis(format=_axis_format(data[value_col], unit)),
    )
    window_tips = [
        alt.Tooltip("start:T", title="From", format="%b %-d, %Y %H:%M"),
        alt.Tooltip("end:T", title="To", format="%b %-d, %Y %H:%M"),
        *[alt.Tooltip(field=vega_field(c), title=_label(c)) for c in extra],
    ]
    shaded = (
        alt.Chart(windows)
        .mark_rect(style="auterity-highlight")
        .encode(x=alt.X("start:T", title=None), x2="end:T", tooltip=window_tips)
    )
    single = (
        alt.Chart(windows)
        .transform_filter("datum.single")
        .mark_rule(style="auterity-highlight", opacity=0.6, strokeWidth=2)
        .encode(x=alt.X("start:T", title=None), tooltip=window_tips)
    )
    base = alt.Chart(data).encode(x=x, y=y)
    line = base.mark_line()
    flagged = base.transform_filter("datum.anomalous").mark_point(style="auterity-alert", size=45)
    time_tip = _t(time_col, "%b %-d, %Y %H:%M")
    tips = base.mark_point(size=60, opacity=0).encode(
        tooltip=[
            time_tip,
            _q(value_col, title=label, format=fmt),
            alt.Tooltip("anomalous:N", title="In an anomalous window"),
        ]
    )
    return _titled(alt.layer(shaded, single, line, flagged, tips), title or label)


def forecast_chart(
    history: pd.DataFrame,
    forecast: pd.DataFrame,
    *,
    unit: str = "number",
    label: str = "Value",
    title: str | None = None,
) -> alt.LayerChart:
    """Actuals, the forecast and its uncertainty band.

    Parameters
    ----------
    history : pandas.DataFrame
        Actuals: ``ds`` (time), ``y``.
    forecast : pandas.DataFrame
        ``ds, yhat, yhat_lower, yhat_upper`` (Prophet's column names); may overlap the
        history (in-sample fit).
    unit : str
        Unit of the values.
    label : str
        Name of the value (axis title).
    title : str, optional
        Chart title; default ``"<label> forecast"``.

    Returns
    -------
    altair.LayerChart
        Band (style ``auterity-band``), dashed forecast line, actual line (colours from
        the theme's palette, with a legend), a rule where the actuals end.
    """
    alt = _alt()
    _check_unit(unit)
    _require(history, ["ds", "y"], "forecast_chart (history)")
    _require(forecast, ["ds", "yhat", "yhat_lower", "yhat_upper"], "forecast_chart (forecast)")
    actual = history[["ds", "y"]].copy()
    actual["ds"] = _dates(actual["ds"])
    actual = actual.sort_values("ds")
    actual["series"] = "Actual"
    predicted = forecast[["ds", "yhat", "yhat_lower", "yhat_upper"]].copy()
    predicted["ds"] = _dates(predicted["ds"])
    predicted = predicted.sort_values("ds")
    predicted["series"] = "Forecast"
    values = pd.concat([actual["y"], predicted["yhat_lower"], predicted["yhat_upper"]])
    fmt, tip = _axis_format(values, unit), _tip_format(values, unit)
    x = alt.X("ds:T", title=None)
    y_title = _title(label, unit)
    color = alt.Color(
        "series:N",
        title=None,
        scale=alt.Scale(domain=["Actual", "Forecast"]),
        legend=alt.Legend(orient="top-left", direction="horizontal", symbolType="stroke"),
    )
    day_tip = alt.Tooltip("ds:T", title="Date", format="%b %-d, %Y")
    band = (
        alt.Chart(predicted)
        .mark_area(style="auterity-band")
        .encode(
            x=x,
            y=alt.Y("yhat_lower:Q", title=y_title, axis=alt.Axis(format=fmt)),
            y2="yhat_upper:Q",
        )
    )
    predicted_line = (
        alt.Chart(predicted)
        .mark_line(strokeDash=[6, 4])
        .encode(x=x, y=alt.Y("yhat:Q", title=y_title), color=color)
    )
    predicted_tips = (
        alt.Chart(predicted)
        .mark_point(size=60, opacity=0)
        .encode(
            x=x,
            y="yhat:Q",
            tooltip=[
                day_tip,
                alt.Tooltip("yhat:Q", title="Forecast", format=tip),
                alt.Tooltip("yhat_lower:Q", title="Lower bound", format=tip),
                alt.Tooltip("yhat_upper:Q", title="Upper bound", format=tip),
            ],
        )
    )
    actual_line = (
        alt.Chart(actual).mark_line().encode(x=x, y=alt.Y("y:Q", title=y_title), color=color)
    )
    actual_tips = (
        alt.Chart(actual)
        .mark_point(size=60, opacity=0)
        .encode(x=x, y="y:Q", tooltip=[day_tip, alt.Tooltip("y:Q", title="Actual", format=tip)])
    )
    layers = [band, predicted_line, actual_line, predicted_tips, actual_tips]
    if len(actual):
        cutoff = pd.DataFrame({"ds": [actual["ds"].max()]})
        layers.insert(1, alt.Chart(cutoff).mark_rule(style="auterity-rule").encode(x=x))
    return _titled(alt.layer(*layers), title or f"{label} forecast")


# --------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=1)
def _vl_version() -> str | None:
    """The Vega-Lite version Altair writes, as vl_convert names it (None: its default)."""
    import altair as alt
    import vl_convert as vlc

    version = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return version if version in vlc.get_vegalite_versions() else None


def to_dict(chart: Any, *, theme: str | None = None) -> dict[str, Any]:
    """The chart's Vega-Lite spec with a project theme's config merged in.

    Parameters
    ----------
    chart : altair chart
        Any Altair chart (unit, layer, concat, facet).
    theme : {"light", "dark"}, optional
        Default: the enabled Auterity theme (:func:`use_theme`), else light.

    Returns
    -------
    dict
        The validated spec, data inlined; ``config`` is the theme's config updated with
        the chart's own (``configure_*``) settings. Altair's global theme is neither used
        nor changed, so threads may render concurrently.
    """
    alt = _alt()
    config = theme_config(_theme_name(theme))
    spec = chart.to_dict()
    own = getattr(chart, "config", alt.Undefined)
    if own is not alt.Undefined:
        _merge(config, own.to_dict())
    spec["config"] = config
    return spec


def from_spec(spec: Mapping[str, Any]) -> Any:
    """An Altair chart from a Vega-Lite spec (e.g. an insight card's ``chart``).

    Parameters
    ----------
    spec : mapping
        A top-level Vega-Lite spec: unit, layer, concat, facet or repeat.

    Returns
    -------
    altair chart
        The chart, validated; displaying it uses the notebook's renderer (offline, themed).

    Raises
    ------
    ConfigError
        The spec is not a Vega-Lite chart Altair accepts.
    """
    alt = _alt()
    kinds = (
        ("layer", alt.LayerChart),
        ("vconcat", alt.VConcatChart),
        ("hconcat", alt.HConcatChart),
        ("concat", alt.ConcatChart),
        ("facet", alt.FacetChart),
        ("repeat", alt.RepeatChart),
    )
    cls = next((c for key, c in kinds if key in spec), alt.Chart)
    try:
        return cls.from_dict(dict(spec))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"not a Vega-Lite chart Altair accepts: {first}") from exc


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Update ``base`` in place with ``update``, recursing into nested dicts."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def to_png(chart: Any, *, scale: float = 2.0, theme: str | None = None) -> bytes:
    """Render a chart to PNG (for emails and PDFs), without a browser or network.

    Parameters
    ----------
    chart : altair chart
        The chart.
    scale : float
        Pixel density: the image is ``scale`` times the chart's size in CSS pixels.
    theme : {"light", "dark"}, optional
        Default: the enabled Auterity theme, else light.

    Returns
    -------
    bytes
        The PNG file.
    """
    import vl_convert as vlc

    return vlc.vegalite_to_png(to_dict(chart, theme=theme), vl_version=_vl_version(), scale=scale)


def to_svg(chart: Any, *, theme: str | None = None) -> str:
    """Render a chart to an SVG document (text is kept as text).

    Parameters
    ----------
    chart : altair chart
        The chart.
    theme : {"light", "dark"}, optional
        Default: the enabled Auterity theme, else light.

    Returns
    -------
    str
        The SVG markup.
    """
    import vl_convert as vlc

    return vlc.vegalite_to_svg(to_dict(chart, theme=theme), vl_version=_vl_version())


def _bundle_cache_file(vlc: Any) -> Path:
    """Where the JavaScript bundle of this vl-convert and Vega-Lite version is cached."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "auterity"
    return root / f"vega-bundle-{vlc.__version__}-{_vl_version() or 'latest'}.js"


def _cached_bundle(vlc: Any) -> str:
    """``vl_convert.javascript_bundle()``, cached on disk: building it takes seconds and
    every report kernel needs it."""
    cache = _bundle_cache_file(vlc)
    try:
        return cache.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle = vlc.javascript_bundle(vl_version=_vl_version())
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        partial.write_text(bundle, encoding="utf-8")
        os.replace(partial, cache)  # atomic: parallel kernels never read half a file
    except OSError:  # a read-only home still gets its charts, just slower
        pass
    return bundle


@functools.lru_cache(maxsize=1)
def offline_html_head() -> str:
    """A ``<script>`` with Vega, Vega-Lite and Vega-Embed inlined, for pages with no network.

    Include it once per page, before or after the charts (:func:`chart_html` waits for
    it). The bundle comes from ``vl_convert.javascript_bundle()`` for the Vega-Lite
    version Altair writes; it is wrapped in a function (its top-level names stay out of
    the page) that runs only if ``window.vegaEmbed`` is not defined yet, so including it
    twice is harmless. Built once per process (about 2 s).

    Returns
    -------
    str
        ``<script type="text/javascript">...</script>`` (about 0.9 MB).
    """
    import vl_convert as vlc

    bundle = _cached_bundle(vlc)
    # A literal "</script" would end the script element early; "<\/" is the same in JS.
    bundle = bundle.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")
    versions = (
        f"vega {vlc.get_vega_version()}, vega-lite {_vl_version() or 'latest'}, "
        f"vega-embed {vlc.get_vega_embed_version()}"
    )
    return (
        '<script type="text/javascript" data-auterity="vega-bundle">\n'
        f"/* {versions}: inlined by auterity.charts for offline use */\n"
        "if (typeof window.vegaEmbed !== 'function') { (function () {\n"
        '"use strict";\n'
        f"{bundle}\n"
        "})(); }\n"
        "</script>\n"
    )


def _script_json(value: Any) -> str:
    """JSON safe to put inside a ``<script>`` element (no ``</script>``, ``<!--``)."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _embed_html(spec: Mapping[str, Any], div_id: str | None, theme: str) -> str:
    """The ``<div>`` and script that draw one spec with ``window.vegaEmbed``."""
    div_id = div_id or f"auterity-chart-{uuid.uuid4().hex[:12]}"
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-:.]*", div_id):
        raise ConfigError(f"div_id {div_id!r} must start with a letter and have no spaces")
    options = {
        "mode": "vega-lite",
        "renderer": "svg",
        "actions": _EMBED_ACTIONS,
        "tooltip": {"theme": theme},
    }
    return (
        f'<div id="{div_id}" class="auterity-chart"></div>\n'
        '<script type="text/javascript">\n'
        "(function () {\n"
        f"  var id = {_script_json(div_id)};\n"
        f"  var spec = {_script_json(dict(spec))};\n"
        f"  var options = {_script_json(options)};\n"
        "  var waited = 0;\n"
        "  function draw() {\n"
        "    var el = document.getElementById(id);\n"
        "    if (el && typeof window.vegaEmbed === 'function') {\n"
        "      window.vegaEmbed(el, spec, options).catch(function (err) {\n"
        "        el.textContent = 'Chart error: ' + err;\n"
        "      });\n"
        "    } else if (waited < 15000) {\n"
        "      waited += 50;\n"
        "      setTimeout(draw, 50);\n"
        "    } else if (el) {\n"
        f"      el.textContent = {_script_json(_MISSING_BUNDLE)};\n"
        "    }\n"
        "  }\n"
        "  draw();\n"
        "})();\n"
        "</script>\n"
    )


def chart_html(chart: Any, *, div_id: str | None = None, theme: str | None = None) -> str:
    """The HTML that draws one chart, for pages that include :func:`offline_html_head`.

    Parameters
    ----------
    chart : altair chart
        The chart; its spec (data included) is inlined as JSON.
    div_id : str, optional
        Id of the chart's ``<div>``; default a random ``auterity-chart-...``.
    theme : {"light", "dark"}, optional
        Default: the enabled Auterity theme, else light.

    Returns
    -------
    str
        A ``<div>`` and a ``<script>`` calling ``vegaEmbed`` (SVG renderer, export
        actions only: no link to the online editor). No network access is needed.
    """
    name = _theme_name(theme)
    return _embed_html(to_dict(chart, theme=name), div_id, name)


def standalone_html(
    charts: Sequence[Any] | Any, title: str = "Auterity charts", *, theme: str | None = None
) -> str:
    """A complete HTML page drawing charts with no network access (previews, tests).

    Parameters
    ----------
    charts : chart or sequence of charts
        The charts, drawn one below the other.
    title : str
        Page title and heading (escaped).
    theme : {"light", "dark"}, optional
        Default: the enabled Auterity theme, else light.

    Returns
    -------
    str
        ``<!DOCTYPE html>`` page with the inlined libraries and every chart.
    """
    name = _theme_name(theme)
    items = list(charts) if isinstance(charts, list | tuple) else [charts]
    p = _PALETTES[name]
    heading = html.escape(title)
    body = "".join(chart_html(c, theme=name) for c in items)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{heading}</title>\n"
        f"<style>body {{ margin: 24px; background: {p['background']}; color: {p['text']}; "
        f"font-family: {FONT}; }} .auterity-chart {{ margin: 0 0 32px; }}</style>\n"
        f"{offline_html_head()}</head>\n<body>\n<h1>{heading}</h1>\n{body}</body>\n</html>\n"
    )


def _offline_renderer(spec: dict[str, Any], **options: Any) -> dict[str, Any]:
    """Altair renderer: the bundle with the session's first chart, then charts only."""
    theme = options.get("theme", "light")
    parts = []
    if not _renderer_state["bundle_sent"]:
        parts.append(offline_html_head())
        _renderer_state["bundle_sent"] = True
    parts.append(_embed_html(spec, None, theme))
    bundle: dict[str, Any] = {
        "text/html": "".join(parts),
        "text/plain": "<Auterity chart: shown where outputs can run JavaScript>",
    }
    if options.get("png_fallback"):
        import vl_convert as vlc

        bundle["image/png"] = vlc.vegalite_to_png(spec, vl_version=_vl_version(), scale=2.0)
    return bundle


def enable_offline_notebook_rendering(theme: str = "light", *, png_fallback: bool = False) -> None:
    """Display charts in Jupyter, Voila and nbconvert outputs without any CDN.

    Enables the project theme and the ``"auterity-offline"`` Altair renderer (see the
    module docstring for why not Altair's own): the next chart displayed carries the
    inlined libraries (about 0.9 MB, once), later charts only their spec. Call it once
    at the top of a notebook; calling it again re-sends the libraries with the next chart.

    Parameters
    ----------
    theme : {"light", "dark"}
        The project theme for every chart.
    png_fallback : bool
        Also put an ``image/png`` in each output, for nbconvert's LaTeX/PDF export
        (costs about 0.1 s per chart).

    Raises
    ------
    ConfigError
        Unknown theme name.
    """
    alt = _alt()
    use_theme(theme)
    alt.renderers.register(RENDERER, _offline_renderer)
    alt.renderers.enable(RENDERER, theme=theme, png_fallback=png_fallback)
    _renderer_state["bundle_sent"] = False
