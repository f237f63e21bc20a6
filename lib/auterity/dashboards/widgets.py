"""The dashboards' common ground: the :class:`Dashboard` base class and what it needs.

A dashboard is a column of ipywidgets: header, filters, status line, KPI tiles, export
links and titled sections (tables as HTML, charts in outputs). Subclasses say which
filters they have and how a :class:`View` is computed from them; the base class refreshes,
draws, keeps the last data when a refresh fails and shows the page's first paint.

No traceback ever reaches a viewer: every data fetch goes through :meth:`Dashboard.refresh`,
which shows a one-line message (:func:`viewer_message`) and logs the details (logger
``auterity.dashboards``, written to the Voila server's log).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd

from auterity import access, charts, present
from auterity._time import utcnow
from auterity.dashboards.export import export_links_html
from auterity.errors import AuterityError, DatabaseUnavailable
from auterity.escape import html_attr, html_text
from auterity.redact import mask_secrets

log = logging.getLogger("auterity.dashboards")

ALL = "(all)"
"""Dropdown value meaning "no filter"."""

FIRST_PAINT_MIME = "application/vnd.auterity.first-paint+html"
"""MIME type of a dashboard's first paint (:meth:`Dashboard.first_paint_html`): header,
status, KPI tiles, tables and, in a pre-heated kernel, the charts, as plain HTML.

The dashboards' Voila template (``notebooks/dashboards/_share/voila/templates/auterity``)
writes it straight into the page so the numbers show before Voila's JavaScript and the
widgets have loaded, and removes it once the widgets are drawn; JupyterLab and nbconvert
do not know the type and show the empty ``text/plain`` beside it.
"""


def load_ipywidgets() -> Any:
    """ipywidgets, imported on first use (the library works without a notebook).

    Returns
    -------
    module
        The ``ipywidgets`` module.
    """
    import ipywidgets

    return ipywidgets


def in_voila() -> bool:
    """Whether this kernel serves a Voila page (a frontend is present to refresh).

    Returns
    -------
    bool
        True in a kernel started by Voila (pre-heated or not), False under nbval,
        papermill or plain Python.
    """
    return bool(
        os.environ.get("VOILA_BASE_URL")
        or os.environ.get("VOILA_PREHEAT")
        or os.environ.get("SERVER_SOFTWARE", "").startswith("voila")
    )


def in_preheated_kernel() -> bool:
    """Whether this kernel belongs to a Voila pool: it runs the notebook before a viewer
    asks for the page (Voila sets ``VOILA_PREHEAT``)."""
    return os.environ.get("VOILA_PREHEAT") == "True"


def configure_logging() -> None:
    """Send ``auterity.dashboards`` log records to stderr (the Voila server's log), once."""
    if not any(getattr(h, "_auterity", False) for h in log.handlers):
        handler: logging.Handler = logging.StreamHandler(sys.__stderr__)
        handler.setFormatter(logging.Formatter("[%(levelname)s %(name)s] %(message)s"))
        handler._auterity = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def viewer_message(exc: BaseException) -> str:
    """A short, safe message for a viewer (no traceback, secrets masked).

    Parameters
    ----------
    exc : BaseException
        What went wrong.

    Returns
    -------
    str
        One line: the message of a configuration problem (it says how to fix it), or a
        generic line for anything else; details belong in the log.
    """
    if isinstance(exc, DatabaseUnavailable):
        return "The database is unavailable right now; showing the last data we had."
    if isinstance(exc, AuterityError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return mask_secrets(first)[:300]
    return "Something went wrong while loading this view; the details are in the server log."


def age_text(seconds: float) -> str:
    """How old something is, in the largest unit that reads well.

    Parameters
    ----------
    seconds : float
        The age.

    Returns
    -------
    str
        ``42 s`` below two minutes, then ``5 min``, ``3 h`` and ``2 d``.
    """
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def initial_period(period: str, start: str, end: str, tz: str, url: str) -> tuple[date, date]:
    """A dashboard's first period from its notebook's parameters (empty means default).

    Parameters
    ----------
    period, start, end : str
        See :func:`auterity.present.resolve_period`.
    tz, url : str
        Business time zone and warehouse; empty strings mean the defaults.

    Returns
    -------
    tuple of date
        ``(start, end)``, ``end`` exclusive.
    """
    return present.resolve_period(period, start, end, tz=tz or None, url=url or None)


@dataclass
class View:
    """What one refresh produced: tiles, datasets, charts and extra HTML sections."""

    kpis: pd.DataFrame
    frames: dict[str, pd.DataFrame]
    charts: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)
    tiles_html: str = ""
    freshness: datetime | None = None


class Dashboard:
    """A dashboard: filters, status line, KPI tiles, exports, sections and charts.

    Subclasses define :meth:`filters` (current filter values) and :meth:`compute`.
    """

    name = "dashboard"
    title = "Dashboard"

    def __init__(self, *, theme: str = "light", url: str | None = None) -> None:
        w = load_ipywidgets()
        configure_logging()
        charts.use_theme(theme)
        self.theme = theme
        self.url = url
        self.view: View | None = None
        self.last_updated: datetime | None = None
        self.stale_since: datetime | None = None
        self.error: str | None = None
        self.generation = 0
        self.busy = False
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.controls: list[Any] = []
        self.header = w.HTML(f'<h2 style="margin:4px 0;">{html_text(self.title)}</h2>')
        self.status = w.HTML(layout=w.Layout(width="100%"))
        self.status.add_class("au-status")
        self.tiles = w.HTML(layout=w.Layout(width="100%"))
        self.tiles.add_class("au-tiles")
        self.exports = w.HTML()
        self.export_button = w.Button(
            description="Prepare downloads", tooltip="CSV and JSON of this view"
        )
        self.export_button.add_class("au-export-button")
        self.export_button.on_click(lambda _b: self.prepare_exports())
        self.png_button = w.Button(description="Prepare PNGs", tooltip="Render charts as PNG")
        self.png_button.add_class("au-png-button")
        self.png_button.on_click(lambda _b: self.prepare_pngs())
        self._exported: dict[str, Any] | None = None  # filters of the links handed out
        self.sections: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}
        self.layout: list[tuple[str, str, bool]] = []  # (key, title, chart?) in page order
        self.pngs: dict[str, bytes] = {}
        self.filter_box = w.HBox(layout=w.Layout(flex_flow="row wrap", width="100%"))
        self.filter_box.add_class("au-filters")
        self.body = w.VBox(layout=w.Layout(width="100%"))
        self.widget = w.VBox(
            [
                self.header,
                self.filter_box,
                self.status,
                self.tiles,
                w.HBox(
                    [self.exports, self.export_button, self.png_button],
                    layout=w.Layout(flex_flow="row wrap"),
                ),
                self.body,
            ],
            layout=w.Layout(width="100%"),
        )
        self.widget.add_class("au-dash")
        self.widget.add_class(f"au-dash-{self.name}")

    # -- to override
    def filters(self) -> dict[str, Any]:
        """The current filter values."""
        return {}

    def compute(self) -> View:  # pragma: no cover - abstract
        """Fetch the data for the current filters."""
        raise NotImplementedError

    # -- layout helpers
    def _add_control(self, control: Any, css: str) -> Any:
        control.add_class(css)
        control.observe(lambda _change: self.refresh(), names="value")
        self.controls.append(control)
        self.filter_box.children = (*self.filter_box.children, control)
        return control

    def _section(self, key: str, title: str, *, chart: bool) -> None:
        w = load_ipywidgets()
        head = w.HTML(f'<h3 style="margin:14px 0 4px;">{html_text(title)}</h3>')
        part = w.Output(layout=w.Layout(width="100%")) if chart else w.HTML()
        part.add_class(f"au-section-{key}")
        part.add_class("au-chart" if chart else "au-table")
        (self.outputs if chart else self.sections)[key] = part
        self.layout.append((key, title, chart))
        self.body.children = (*self.body.children, head, part)

    # -- behaviour
    def status_html(self) -> str:
        """The status line: last update, data freshness, stale-data or error message.

        It is redrawn last in every refresh and carries ``data-generation`` (refreshes
        finished, successful or not) and ``data-busy`` so a page, or a browser test, can
        tell that everything of a refresh has been drawn.
        """
        state = (
            f'<span class="au-state" data-generation="{self.generation}" '
            f'data-busy="{int(self.busy)}"></span>'
        )
        if self.busy:
            return f'{state}<span class="au-busy">Updating…</span>'
        return state + self._status_text()

    def _status_text(self) -> str:
        """Last update, data freshness, stale-data and error parts of the status line."""
        parts = []
        if self.last_updated is not None:
            parts.append(
                f'<span class="au-updated">Last updated {self.last_updated:%H:%M:%S} UTC</span>'
            )
        fresh = self.view.freshness if self.view else None
        if fresh is not None:
            age = max((utcnow() - fresh).total_seconds(), 0.0)
            parts.append(
                f'<span class="au-freshness" data-age-s="{age:.0f}">newest data '
                f"{fresh:%Y-%m-%d %H:%M:%S} UTC ({age_text(age)} old)</span>"
            )
        if self.stale_since is not None:
            parts.append(
                f'<span class="au-stale">⚠ Stale data: updates failing since '
                f"{self.stale_since:%H:%M:%S} UTC; retrying automatically.</span>"
            )
        if self.error:
            parts.append(f'<span class="au-error">{html_text(self.error)}</span>')
        return " · ".join(parts) or "Loading…"

    def first_paint_html(self, *, with_charts: bool | None = None) -> str:
        """The dashboard as it first looks, as one plain HTML fragment (no widgets, no script).

        Header, status line, KPI tiles, tables and, in a pre-heated kernel, the charts as
        static SVG (rendered here by ``vl_convert``). The dashboard page shows it before
        Voila's JavaScript and the widgets have loaded (see :data:`FIRST_PAINT_MIME`), then
        the widgets replace it. The status line says the controls are still loading and
        carries no refresh state, so nothing waiting for a refresh mistakes it for the live
        dashboard. A chart that cannot be drawn is left out (logged): the page must come.

        Parameters
        ----------
        with_charts : bool, optional
            Draw the charts too. Default: only in a pre-heated kernel, which does this
            work before any viewer arrives; a cold kernel's viewer is waiting (0.3-0.9 s
            for the charts of one dashboard here), so its first paint has tiles and tables.
        """
        if with_charts is None:
            with_charts = in_preheated_kernel()
        view = self.view
        parts = [
            self.header.value,
            f'<div class="au-status">{self._status_text()}</div>',
            '<p class="au-loading-note">Loading filters…</p>',
            f'<div class="au-tiles">{view.tiles_html if view is not None else ""}</div>',
        ]
        for key, title, chart in self.layout:
            if view is None:
                break
            body = ""
            if not chart:
                body = view.sections.get(key, "")
            elif view.charts.get(key) is None:
                body = "<p>No data for this view.</p>"
            elif not with_charts:
                body = '<p class="au-loading-note">Loading the chart…</p>'
            else:
                try:
                    body = charts.to_svg(view.charts[key], theme=self.theme)
                except Exception:
                    log.warning("first paint of chart %s failed", key, exc_info=True)
            parts.append(
                f'<h3 style="margin:14px 0 4px;">{html_text(title)}</h3>'
                f'<div class="au-fp-section au-table" data-section="{html_attr(key)}">{body}</div>'
            )
        return "".join(parts)

    def refresh(self, *, show_busy: bool = True) -> bool:
        """Fetch the data for the current filters and redraw; never raises.

        Parameters
        ----------
        show_busy : bool
            Show "Updating…" while fetching (filter changes); the refresh timer does not,
            so the real-time page does not flicker.

        Returns
        -------
        bool
            True if the data was refreshed; False if it failed (the last data stays
            on screen with a stale-data warning, details go to the log).
        """
        with self._lock:
            if show_busy and self.view is not None:
                self.busy = True
                self.status.value = self.status_html()
            try:
                try:
                    view = self.compute()
                    self._draw(view)
                except Exception as exc:
                    log.warning("%s dashboard refresh failed", self.name, exc_info=True)
                    self.error = viewer_message(exc)
                    if self.view is not None and self.stale_since is None:
                        self.stale_since = utcnow()
                    return False
                self.view = view
                self.error = None
                self.stale_since = None
                self.last_updated = utcnow()
                self.pngs = {}
                return True
            finally:
                self.busy = False
                self.generation += 1
                self.status.value = self.status_html()

    def _draw(self, view: View) -> None:
        from IPython.display import HTML, display

        self.tiles.value = view.tiles_html
        if self._exported is not None and self._exported == self.filters():
            # the same view refreshed (new data, same filters): the links handed out
            # (and audited) follow it; other filters need another "Prepare downloads"
            self.exports.value = export_links_html(
                self.name, view.kpis, view.frames, self._exported
            )
        else:
            self._exported = None
            self.exports.value = ""
        for key, part in self.sections.items():
            part.value = view.sections.get(key, "")
        for key, out in self.outputs.items():
            chart = view.charts.get(key)
            out.clear_output(wait=True)
            with out:
                if chart is None:
                    display(HTML("<p>No data for this view.</p>"))
                else:
                    display(HTML(charts.chart_html(chart, theme=self.theme)))

    def _may_export(self, formats: list[str]) -> bool:
        """Whether the viewer may export the current view: ``export`` audit row written
        (the role must hold ``export``); a refusal is shown in the status line."""
        try:
            access.note_export(
                "dashboard", self.name, formats, details={"filters": self.filters()}, url=self.url
            )
        except Exception as exc:
            log.warning("%s export refused or not recorded: %s", self.name, exc)
            self.error = viewer_message(exc)
            self.status.value = self.status_html()
            return False
        return True

    def prepare_exports(self) -> bool:
        """Hand out CSV and JSON download links for the current view.

        The export is recorded in the audit trail first (who, which dashboard, which
        filters) and refused for a role without ``export``. The links stay while the
        filters do (refreshes update them); changing a filter takes them away.

        Returns
        -------
        bool
            Whether the links are shown.
        """
        with self._lock:
            if self.view is None or not self._may_export(["csv", "json"]):
                return False
            self._exported = self.filters()
            self.exports.value = export_links_html(
                self.name, self.view.kpis, self.view.frames, self._exported, self.pngs
            )
            return True

    def prepare_pngs(self) -> dict[str, bytes]:
        """Render the current charts as PNG and add download links for them (with the
        CSV and JSON ones; recorded and checked like :meth:`prepare_exports`)."""
        with self._lock:
            if self.view is None or not self._may_export(["csv", "json", "png"]):
                return {}
            try:
                self.pngs = {
                    k: charts.to_png(c, theme=self.theme) for k, c in self.view.charts.items()
                }
            except Exception as exc:
                log.warning("PNG export failed", exc_info=True)
                self.error = viewer_message(exc)
                self.status.value = self.status_html()
                return {}
            self._exported = self.filters()
            self.exports.value = export_links_html(
                self.name, self.view.kpis, self.view.frames, self._exported, self.pngs
            )
            return self.pngs

    @property
    def auto_refreshing(self) -> bool:
        """Whether the refresh timer is running."""
        return self._thread is not None and self._thread.is_alive()

    def start_auto_refresh(self, seconds: float) -> bool:
        """Refresh every ``seconds`` on a daemon thread (returns at once).

        Returns
        -------
        bool
            True if a timer was started (``seconds`` > 0 and none running).
        """
        if seconds <= 0 or self.auto_refreshing:
            return False
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(seconds):
                self.refresh(show_busy=False)

        self._thread = threading.Thread(target=loop, name=f"auterity-{self.name}", daemon=True)
        self._thread.start()
        return True

    def stop_auto_refresh(self) -> None:
        """Stop the refresh timer, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def show(self) -> None:
        """Display the dashboard: its first paint, the offline chart library, the widgets.

        Its look (``static/dashboard.css``) and the script that lets the page free its
        kernel when closed come with the dashboards' Voila template
        (``notebooks/dashboards/_share/voila/templates/auterity``).
        """
        from IPython.display import HTML, display

        display({FIRST_PAINT_MIME: self.first_paint_html(), "text/plain": ""}, raw=True)
        try:
            display(HTML(charts.offline_html_head()))
        except Exception:
            log.error("the offline chart library could not be loaded", exc_info=True)
            display(HTML('<div class="au-error">Charts are unavailable right now.</div>'))
        display(self.widget)
