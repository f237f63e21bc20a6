"""The real-time dashboard: requests/s, p95 latency and error rate per model, last minutes.

Refreshed on a background timer that never blocks cell execution, and at once when new
data lands while Redis is configured (the receiver's data-landed notification,
:mod:`auterity.warehouse.notify`); the status line shows when the data was last updated
and how old the newest event is, and a failing refresh keeps the last data on screen with
a stale-data warning. The SQL is :func:`auterity.modelhub.live.realtime_snapshot`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd

from auterity import charts, present
from auterity._time import utcnow
from auterity.dashboards.preheat import launch
from auterity.dashboards.widgets import Dashboard, View, in_voila, load_ipywidgets
from auterity.escape import html_attr, html_text
from auterity.modelhub.live import realtime_snapshot
from auterity.warehouse import notify

REALTIME_METRICS = ("requests_per_s", "p95_latency_ms", "error_rate", "requests")
"""The per-model measures of the real-time view, in the order they are shown."""

NOTIFIED_REFRESH_GAP_S = 1.0
"""Data-landed notifications closer together than this refresh the view once."""


def realtime_tiles(snapshot: pd.DataFrame) -> pd.DataFrame:
    """KPI tiles (the ``all`` row) of a :func:`realtime_snapshot` table.

    Parameters
    ----------
    snapshot : DataFrame
        The per-model table of :func:`realtime_snapshot`.

    Returns
    -------
    DataFrame
        ``metric, label, unit, good, current, previous_delta_pct`` (no previous period).
    """
    row = snapshot[snapshot["model_id"] == "all"].iloc[0]
    # label, unit and direction from the one column table (the window's count is named so)
    meta = [
        (c.name, "Requests in window" if c.name == "requests" else c.label, c.unit, c.good)
        for c in map(charts.columns.column, REALTIME_METRICS)
    ]
    return pd.DataFrame(
        [
            {
                "metric": m,
                "label": label,
                "unit": unit,
                "good": good,
                "current": float(row[m]),
                "previous_delta_pct": float("nan"),
            }
            for m, label, unit, good in meta
        ]
    )


def realtime_table_html(snapshot: pd.DataFrame) -> str:
    """Per-model table with ``data-model``/``data-metric`` attributes on the cells.

    Parameters
    ----------
    snapshot : DataFrame
        The per-model table of :func:`realtime_snapshot`.

    Returns
    -------
    str
        An HTML table in a ``div.au-table``, every value formatted and escaped.
    """
    units = charts.columns.units(list(REALTIME_METRICS))
    head = "".join(
        f'<th style="text-align:left;padding:4px 10px;">{html_text(label)}</th>'
        for label in charts.columns.labels(["model_id", *REALTIME_METRICS]).values()
    )
    rows = []
    for rec in snapshot.itertuples(index=False):
        cells = [f'<td style="padding:4px 10px;">{html_text(rec.model_id)}</td>']
        for metric in REALTIME_METRICS:
            value = charts.format_value(getattr(rec, metric), units[metric])
            cells.append(
                f'<td class="au-rt" data-model="{html_attr(rec.model_id)}" '
                f'data-metric="{metric}" style="padding:4px 10px;">{html_text(value)}</td>'
            )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<div class="au-table"><table style="border-collapse:collapse;font-size:13px;">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def realtime_view(
    minutes: int = 15, *, now: datetime | None = None, url: str | None = None
) -> View:
    """The real-time dashboard's data and charts.

    Parameters
    ----------
    minutes : int
        Window length.
    now : datetime, optional
        Naive UTC end of the window.
    url : str, optional
        Warehouse.

    Returns
    -------
    View
        Tiles, the per-model table and a requests/s chart per minute.
    """
    snapshot, per_minute, newest = realtime_snapshot(minutes, now=now, url=url)
    tiles = realtime_tiles(snapshot)
    chart_map: dict[str, Any] = {}
    if not per_minute.empty:
        chart_map["requests_per_s"] = charts.trend(
            per_minute,
            "requests_per_s",
            unit="number",
            by="model_id",
            time_col="minute",
            title="Requests / s per minute",
        )
    return View(
        kpis=tiles,
        frames={"kpis": tiles, "per_model": snapshot, "per_minute": per_minute},
        charts=chart_map,
        sections={"per_model": realtime_table_html(snapshot)},
        tiles_html=present.kpi_tiles_html(tiles),
        freshness=newest,
    )


class RealtimeDashboard(Dashboard):
    """The last N minutes per model, refreshed on a timer, with freshness and stale warnings."""

    name = "realtime"
    title = "Real-time model traffic"

    def __init__(
        self,
        *,
        minutes: int = 15,
        refresh_seconds: float = 5.0,
        theme: str = "light",
        url: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(theme=theme, url=url)
        w = load_ipywidgets()
        self.refresh_seconds = refresh_seconds
        self.clock = clock or utcnow
        self._landed = threading.Event()  # set by data-landed notifications
        self._listen_stop = threading.Event()
        self.minutes = self._add_control(
            w.Dropdown(
                description="Window",
                options=[("5 min", 5), ("15 min", 15), ("60 min", 60)]
                + ([(f"{minutes} min", minutes)] if minutes not in (5, 15, 60) else []),
                value=minutes,
            ),
            "au-f-minutes",
        )
        self._section("per_model", "Per model", chart=False)
        self._section("requests_per_s", "Requests / s", chart=True)
        self.refresh()

    def filters(self) -> dict[str, Any]:
        """Current filter values."""
        return {"minutes": self.minutes.value}

    def compute(self) -> View:
        """Real-time data for the current window."""
        return realtime_view(self.minutes.value, now=self.clock(), url=self.url)

    def start_auto_refresh(self, seconds: float) -> bool:
        """The refresh timer, plus a refresh as soon as new data lands (Redis configured).

        Returns
        -------
        bool
            True if the timer was started.
        """
        started = super().start_auto_refresh(seconds)
        if started:
            self._listen_stop.clear()
            if notify.subscribe(lambda _message: self._landed.set(), self._listen_stop):
                threading.Thread(
                    target=self._refresh_on_landed, name="auterity-realtime-notified", daemon=True
                ).start()
        return started

    def _refresh_on_landed(self) -> None:
        """Refresh when data landed, at most once per :data:`NOTIFIED_REFRESH_GAP_S`."""
        while not self._listen_stop.is_set():
            if not self._landed.wait(0.5):
                continue
            self._landed.clear()
            self.refresh(show_busy=False)
            time.sleep(NOTIFIED_REFRESH_GAP_S)

    def stop_auto_refresh(self) -> None:
        """Stop the refresh timer and the data-landed listener."""
        self._listen_stop.set()
        super().stop_auto_refresh()


def realtime(
    minutes: int = 15,
    refresh_seconds: float = 5.0,
    *,
    theme: str = "light",
    url: str = "",
    auto_refresh: bool | None = None,
) -> RealtimeDashboard | None:
    """Build and show the real-time dashboard (for the notebook).

    Parameters
    ----------
    minutes : int
        Window length.
    refresh_seconds : float
        Refresh period of the background timer.
    theme, url : str
        Chart theme and warehouse.
    auto_refresh : bool, optional
        Start the timer; default only when a Voila frontend is present, so batch runs
        (nbval, papermill) finish at once.

    Returns
    -------
    RealtimeDashboard or None
        The dashboard, or None if it could not start.
    """
    dash = launch(
        lambda: RealtimeDashboard(
            minutes=minutes, refresh_seconds=refresh_seconds, theme=theme, url=url or None
        )
    )
    if dash is not None and (in_voila() if auto_refresh is None else auto_refresh):
        dash.start_auto_refresh(refresh_seconds)
    return dash
