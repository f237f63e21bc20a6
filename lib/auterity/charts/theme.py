"""The project's chart themes, light and dark, and Altair loaded with them registered.

:func:`theme_config` returns the Vega-Lite ``config`` of the ``"light"`` or ``"dark"``
theme: font stack, sizes, the Okabe-Ito colour-blind-safe palette (ordered so the first
colours have the most contrast on the background), axis/grid/legend styling, the
background, and the number locale (the currency symbol of ``AUTERITY_CURRENCY``). Marks
that need a semantic colour use named styles (``auterity-band``, ``auterity-highlight``...)
or the theme's ``diverging`` range (bad, neutral, good), so a chart built once renders in
either theme. :func:`use_theme` registers the themes with Altair (``auterity-light``,
``auterity-dark``) and enables one. The render functions of :mod:`auterity.charts.render`
apply the enabled Auterity theme, else the light one, whatever Altair theme is active
(:func:`resolve_theme`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auterity.charts.formats import currency_prefix
from auterity.errors import ConfigError

THEMES = ("light", "dark")
"""Names accepted by :func:`theme_config` and :func:`use_theme`."""

FONT = "Inter, 'Segoe UI', 'Helvetica Neue', Helvetica, Arial, 'DejaVu Sans', sans-serif"
"""The font stack of every chart (and of :func:`auterity.charts.standalone_html` pages)."""

PALETTES: Mapping[str, Mapping[str, Any]] = {
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
"""The colours of each theme: background, text, muted text, grid, axis domain, the
categorical palette, the good/bad/neutral tones, the heatmap scheme and the text colours
on strong and weak heatmap cells."""

_themes_registered = False


def check_theme(name: str) -> str:
    """Check that a theme name is one of :data:`THEMES`.

    Parameters
    ----------
    name : str
        The theme name.

    Returns
    -------
    str
        ``name``, unchanged.

    Raises
    ------
    ConfigError
        Unknown theme name.
    """
    if name not in THEMES:
        raise ConfigError(f"unknown chart theme {name!r} (use one of: {', '.join(THEMES)})")
    return name


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
    p = PALETTES[check_theme(name)]
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


def load_altair() -> Any:
    """Altair, imported on first use, with the project themes registered (not enabled).

    Returns
    -------
    module
        The ``altair`` module; its themes include ``auterity-light`` and ``auterity-dark``.
    """
    global _themes_registered
    import altair as alt  # heavy: loaded with the first chart, not with auterity.charts

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
    check_theme(name)
    load_altair().theme.enable(f"auterity-{name}")


def resolve_theme(theme: str | None) -> str:
    """The theme to render with.

    Parameters
    ----------
    theme : {"light", "dark"}, optional
        A theme asked for by name.

    Returns
    -------
    str
        ``theme`` if given, else the Auterity theme enabled in Altair, else ``"light"``.

    Raises
    ------
    ConfigError
        Unknown theme name.
    """
    if theme is not None:
        return check_theme(theme)
    active = str(load_altair().theme.active)
    return active.removeprefix("auterity-") if active.startswith("auterity-") else "light"
