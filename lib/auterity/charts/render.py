"""Rendering without network access: specs, PNG/SVG images, offline HTML, notebooks.

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

Every render function applies a project theme (:mod:`auterity.charts.theme`): the one
asked for, else the enabled Auterity theme, else the light one.
"""

from __future__ import annotations

import functools
import html
import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from auterity.charts.theme import (
    FONT,
    PALETTES,
    load_altair,
    resolve_theme,
    theme_config,
    use_theme,
)
from auterity.errors import ConfigError

RENDERER = "auterity-offline"
"""Name of the Altair renderer registered by :func:`enable_offline_notebook_rendering`."""

renderer_state = {"bundle_sent": False}
"""The offline renderer's kernel session: ``bundle_sent`` is True once a displayed chart
carried the inlined libraries (:func:`enable_offline_notebook_rendering` resets it)."""

_EMBED_ACTIONS = {"export": True, "source": False, "compiled": False, "editor": False}
_MISSING_BUNDLE = (
    "Chart library not loaded: run auterity.charts.enable_offline_notebook_rendering() "
    "again (the library is embedded once per kernel session) or include "
    "offline_html_head() in the page."
)


@functools.lru_cache(maxsize=1)
def vl_version() -> str | None:
    """The Vega-Lite version Altair writes, as ``vl_convert`` names it.

    Returns
    -------
    str or None
        For example ``"5.20"``; None when ``vl_convert`` does not know that version
        (it then uses its default).
    """
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
    alt = load_altair()
    config = theme_config(resolve_theme(theme))
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
    alt = load_altair()
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

    return vlc.vegalite_to_png(to_dict(chart, theme=theme), vl_version=vl_version(), scale=scale)


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

    return vlc.vegalite_to_svg(to_dict(chart, theme=theme), vl_version=vl_version())


def _bundle_cache_file(vlc: Any) -> Path:
    """Where the JavaScript bundle of this vl-convert and Vega-Lite version is cached."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "auterity"
    return root / f"vega-bundle-{vlc.__version__}-{vl_version() or 'latest'}.js"


def _cached_bundle(vlc: Any) -> str:
    """``vl_convert.javascript_bundle()``, cached on disk: building it takes seconds and
    every report kernel needs it."""
    cache = _bundle_cache_file(vlc)
    try:
        return cache.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle = vlc.javascript_bundle(vl_version=vl_version())
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
        f"vega {vlc.get_vega_version()}, vega-lite {vl_version() or 'latest'}, "
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
    name = resolve_theme(theme)
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
    name = resolve_theme(theme)
    items = list(charts) if isinstance(charts, list | tuple) else [charts]
    p = PALETTES[name]
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
    if not renderer_state["bundle_sent"]:
        parts.append(offline_html_head())
        renderer_state["bundle_sent"] = True
    parts.append(_embed_html(spec, None, theme))
    bundle: dict[str, Any] = {
        "text/html": "".join(parts),
        "text/plain": "<Auterity chart: shown where outputs can run JavaScript>",
    }
    if options.get("png_fallback"):
        import vl_convert as vlc

        bundle["image/png"] = vlc.vegalite_to_png(spec, vl_version=vl_version(), scale=2.0)
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
    alt = load_altair()
    use_theme(theme)
    alt.renderers.register(RENDERER, _offline_renderer)
    alt.renderers.enable(RENDERER, theme=theme, png_fallback=png_fallback)
    renderer_state["bundle_sent"] = False
