"""Interactive Voila dashboards: business, ModelHub and real-time model traffic.

The dashboard notebooks in ``notebooks/dashboards/`` are thin: a ``parameters`` cell and one
call into this module, which builds the ipywidgets, fetches aggregates through the
analytics library (SQL push-down, pandas only sees aggregates), wires the filters, renders
the Altair charts offline, offers CSV / JSON / PNG exports of the current view and, for the
real-time dashboard, refreshes on a background timer that never blocks cell execution.

No traceback ever reaches a viewer: every data fetch goes through :meth:`Dashboard.refresh`,
which shows a one-line message and logs the details (logger ``auterity.dashboards``,
written to the Voila server's log).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from auterity.errors import AuterityError, ConfigError, DatabaseUnavailable
from auterity.escape import csv_safe, html_attr, html_text

log = logging.getLogger("auterity.dashboards")

ALL = "(all)"
"""Dropdown value meaning "no filter"."""

STYLE = """
<style>
.au-dash { font-family: system-ui, Segoe UI, Arial, sans-serif; max-width: 100%; }
.au-dash .au-filters { flex-wrap: wrap; gap: 4px 12px; }
.au-dash .auterity-chart, .au-dash .au-chart { max-width: 100%; overflow-x: auto; }
.au-dash .au-status { font-size: 13px; color: #5b6470; }
.au-dash .au-error { color: #b42318; font-weight: 600; }
.au-dash .au-stale { color: #8a5a00; font-weight: 600; }
.au-dash .au-exports a, .au-dash .au-exports button {
  display: inline-block; margin: 2px 6px 2px 0; padding: 4px 10px; border-radius: 4px;
  border: 1px solid #9aa4b1; color: #1f2933; text-decoration: none; font-size: 13px;
  background: #f5f7fa; }
.au-dash table { max-width: 100%; }
.au-dash .au-table { overflow-x: auto; max-width: 100%; }
@media (max-width: 640px) {
  .au-dash table.au-kpis, .au-dash table.au-kpis tbody, .au-dash table.au-kpis tr {
    display: flex; flex-wrap: wrap; width: 100%; }
  .au-dash table.au-kpis td.au-kpi { flex: 1 1 140px; min-width: 0 !important; }
  .au-dash .widget-dropdown, .au-dash .widget-datepicker, .au-dash .widget-select-multiple {
    width: 100% !important; }
  .au-dash .vega-embed, .au-dash svg.marks { max-width: 100%; height: auto; }
}
</style>
"""


XSRF_SCRIPT = """<script>
(function () {
  /* Voila's page shuts its kernel down when the viewer leaves, with a POST that needs the
     _xsrf cookie; only server-rendered pages set it, so a dashboard opened straight from
     a bookmark fetches the landing page once to get it. */
  if (document.cookie.indexOf("_xsrf=") >= 0) { return; }
  var base = (document.body && document.body.getAttribute("data-base-url")) || "/voila/";
  fetch(base + "tree", {credentials: "same-origin"}).catch(function () {});
})();
</script>"""
"""Makes sure the page can free its kernel when closed (see :meth:`Dashboard.show`)."""


FIRST_PAINT_MIME = "application/vnd.auterity.first-paint+html"
"""MIME type of a dashboard's first paint (:meth:`Dashboard.first_paint_html`): header,
status, KPI tiles, tables and, in a pre-heated kernel, the charts, as plain HTML.

The dashboards' Voila template (``notebooks/dashboards/_share/voila/templates/auterity``)
writes it straight into the page so the numbers show before Voila's JavaScript and the
widgets have loaded, and removes it once the widgets are drawn; JupyterLab and nbconvert
do not know the type and show the empty ``text/plain`` beside it.
"""


def _widgets() -> Any:
    """ipywidgets, imported lazily (the library works without a notebook)."""
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
        handler = logging.StreamHandler(sys.__stderr__)
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
    from auterity.warehouse import mask_secrets

    if isinstance(exc, DatabaseUnavailable):
        return "The database is unavailable right now; showing the last data we had."
    if isinstance(exc, AuterityError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return mask_secrets(first)[:300]
    return "Something went wrong while loading this view; the details are in the server log."


# --------------------------------------------------------------------------- exports


def _jsonable(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Records with ISO dates and ``None`` for missing values."""
    out = frame.reset_index() if not isinstance(frame.index, pd.RangeIndex) else frame.copy()
    out.columns = [str(c) for c in out.columns]
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return out.astype(object).where(out.notna(), None).to_dict(orient="records")


def view_json(frames: Mapping[str, pd.DataFrame], filters: Mapping[str, Any]) -> str:
    """The current view as JSON: the filters and every dataset as a list of records.

    Parameters
    ----------
    frames : mapping of str to DataFrame
        The view's datasets.
    filters : mapping
        The filter values that produced them.

    Returns
    -------
    str
        ``{"filters": {...}, "data": {name: [records]}}``.
    """
    payload = {
        "filters": dict(filters),
        "data": {name: _jsonable(frame) for name, frame in frames.items()},
    }
    return json.dumps(payload, default=str, indent=1)


def _data_uri(content: bytes, mime: str) -> str:
    """A base64 ``data:`` URI."""
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


def export_links_html(
    name: str,
    csv_frame: pd.DataFrame,
    frames: Mapping[str, pd.DataFrame],
    filters: Mapping[str, Any],
    pngs: Mapping[str, bytes] | None = None,
) -> str:
    """Download links (styled as buttons) for the current view.

    Parameters
    ----------
    name : str
        File name stem, e.g. ``business``.
    csv_frame : DataFrame
        The view's headline table, exported as CSV.
    frames : mapping
        Every dataset of the view, exported together as JSON.
    filters : mapping
        The filters of the view (in the JSON).
    pngs : mapping of str to bytes, optional
        Chart images to offer as PNG downloads.

    Returns
    -------
    str
        HTML with ``<a download>`` links carrying ``data-export`` attributes. The CSV's
        text cells cannot run as spreadsheet formulas (:func:`auterity.escape.csv_safe`).
    """
    csv_bytes = csv_safe(csv_frame).to_csv(index=False).encode("utf-8")
    json_bytes = view_json(frames, filters).encode("utf-8")
    stem = html_attr(name)
    links = [
        f'<a class="au-export-csv" data-export="csv" download="{stem}.csv" '
        f'href="{_data_uri(csv_bytes, "text/csv")}">⬇ CSV</a>',
        f'<a class="au-export-json" data-export="json" download="{stem}.json" '
        f'href="{_data_uri(json_bytes, "application/json")}">⬇ JSON</a>',
    ]
    for chart_name, png in (pngs or {}).items():
        safe = html_attr(chart_name)
        links.append(
            f'<a class="au-export-png" data-export="png" data-chart="{safe}" '
            f'download="{stem}-{safe}.png" href="{_data_uri(png, "image/png")}">'
            f"⬇ {html_text(chart_name)}.png</a>"
        )
    return f'<div class="au-exports">{"".join(links)}</div>'


# --------------------------------------------------------------------------- views


@dataclass
class View:
    """What one refresh produced: tiles, datasets, charts and extra HTML sections."""

    kpis: pd.DataFrame
    frames: dict[str, pd.DataFrame]
    charts: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)
    tiles_html: str = ""
    freshness: datetime | None = None


def _where(region: str, segment: str, channel: str = "") -> dict[str, str]:
    """Dropdown values -> a metrics ``where`` mapping."""
    chosen = {"region": region, "segment": segment, "channel": channel}
    return {k: v for k, v in chosen.items() if v and v != ALL}


def business_view(
    start: date,
    end: date,
    *,
    grain: str = "day",
    region: str = "",
    segment: str = "",
    channel: str = "",
    tz: str | None = None,
    url: str | None = None,
) -> View:
    """The business dashboard's data and charts for one set of filters.

    Parameters
    ----------
    start, end : date
        Local dates, ``end`` exclusive.
    grain : {"day", "week", "month"}
        Trend grain.
    region, segment, channel : str
        Filters; empty or ``(all)`` means no filter. KPIs that cannot be filtered that way
        show no value (e.g. active customers by sales channel); the funnel and the
        cohorts are never filtered (visits are anonymous) and say so.
    tz, url : optional
        Business time zone and warehouse.

    Returns
    -------
    View
        KPIs (``business.kpi_summary``) with sparklines (``business.kpi_daily``), trend,
        funnel, cohorts, top movers.
    """
    from auterity import business, charts, metrics, present

    if end <= start:
        raise ConfigError(f"the end date ({end}) must be after the start date ({start})")
    where = _where(region, segment, channel)
    kpis = business.kpi_summary(start, end, where=where, tz=tz, url=url)
    daily = business.kpi_daily(start, end, where=where, tz=tz, url=url)
    trend = metrics.query(
        ["revenue", "orders"], start=start, end=end, grain=grain, where=where, tz=tz, url=url
    )
    funnel = business.funnel(start, end, tz=tz, url=url)
    retention = business.cohort_retention(
        end - timedelta(days=365), end, max_age=11, tz=tz, url=url
    )
    by = next(d for d in ("segment", "region", "channel", "country") if d not in where)
    movers = business.top_movers("revenue", by, (start, end), where=where, tz=tz, url=url)
    kpi_table = kpis[["metric", "label", "unit", "current", "previous", "previous_delta_pct"]]
    return View(
        kpis=kpi_table,
        frames={
            "kpis": kpi_table,
            "revenue_trend": trend,
            "funnel": funnel,
            "cohort_retention": retention,
            "top_movers": movers,
        },
        charts={
            "revenue_trend": charts.trend(trend, "revenue", unit="currency", title="Revenue"),
            "funnel": charts.funnel_chart(
                funnel, title="Funnel (all regions, segments and channels)"
            ),
            "cohort_retention": charts.cohort_heatmap(retention, title="Cohort retention"),
            "top_movers": charts.movers_chart(
                movers, by, unit="currency", title=f"What moved revenue, by {by}"
            ),
        },
        tiles_html=present.kpi_tiles_html(kpis, sparklines=daily),
    )


def _weighted(frame: pd.DataFrame, column: str, weight: str) -> float:
    """The ``weight``-weighted mean of ``column`` (NaN if no weight)."""
    valid = frame.dropna(subset=[column])
    total = float(valid[weight].sum()) if not valid.empty else 0.0
    return float((valid[column] * valid[weight]).sum() / total) if total else float("nan")


def modelhub_tiles(current: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """Headline tiles from two leaderboards: requests, error rate, cost, quality.

    Parameters
    ----------
    current, previous : DataFrame
        ``modelhub.leaderboard`` of the period and of the period before.

    Returns
    -------
    DataFrame
        ``metric, label, unit, good, current, previous, previous_delta_pct``.
    """

    def totals(lb: pd.DataFrame) -> dict[str, float]:
        return {
            "requests": float(lb["requests"].sum()),
            "error_rate": _weighted(lb, "error_rate", "requests"),
            "cost": float(lb["cost"].sum()),
            "quality_mean": _weighted(lb, "quality_mean", "quality_n"),
        }

    now, before = totals(current), totals(previous)
    meta = {
        "requests": ("Requests", "count", "up"),
        "error_rate": ("Error rate", "percent", "down"),
        "cost": ("Cost", "currency", "down"),
        "quality_mean": ("Mean quality", "number", "up"),
    }
    rows = []
    for metric, (label, unit, good) in meta.items():
        cur, prev = now[metric], before[metric]
        delta = (cur - prev) / prev if prev and prev == prev else float("nan")
        rows.append(
            {
                "metric": metric,
                "label": label,
                "unit": unit,
                "good": good,
                "current": cur,
                "previous": prev,
                "previous_delta_pct": delta,
            }
        )
    return pd.DataFrame(rows)


LEADERBOARD_COLUMNS = [
    "model_id",
    "requests",
    "error_rate",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "cost",
    "cost_per_1k_ok",
    "quality_mean",
]
_LEADERBOARD_UNITS = {
    "requests": "count",
    "error_rate": "percent",
    "p50_latency_ms": "ms",
    "p95_latency_ms": "ms",
    "p99_latency_ms": "ms",
    "cost": "currency",
    "cost_per_1k_ok": "currency",
    "quality_mean": "number",
}
_SLO_UNITS = {
    "latency_target_ms": "ms",
    "latency_ms": "ms",
    "error_rate_target": "percent",
    "error_rate": "percent",
    "compliance": "percent",
}
_DRIFT_UNITS = {
    "psi": "number",
    "ks_statistic": "number",
    "n_reference": "count",
    "n_current": "count",
}
_SAVINGS_UNITS = {
    "current_quality": "number",
    "candidate_quality": "number",
    "quality_gap": "number",
    "current_requests": "count",
    "est_monthly_savings": "currency",
}


def _small_numbers(frame: pd.DataFrame, columns: list[str], prefix: str = "") -> pd.DataFrame:
    """A copy with ``columns`` as two significant digits (p-values, fractions of a cent)."""
    out = frame.copy()
    for column in columns:
        if column in out:
            out[column] = [f"{prefix}{v:.2g}" if pd.notna(v) else "—" for v in out[column]]
    return out


def modelhub_view(
    start: date,
    end: date,
    *,
    models: list[str] | None = None,
    sort_by: str = "requests",
    ascending: bool = False,
    tz: str | None = None,
    url: str | None = None,
) -> View:
    """The ModelHub dashboard's data and charts for one set of filters.

    Parameters
    ----------
    start, end : date
        Local dates, ``end`` exclusive.
    models : list of str, optional
        Only these models; default every model with traffic.
    sort_by : str
        Leaderboard column to sort by.
    ascending : bool
        Sort direction.
    tz, url : optional
        Business time zone and warehouse.

    Returns
    -------
    View
        Tiles, sorted leaderboard, daily trend, SLO, drift and savings tables and charts.
    """
    from auterity import charts, modelhub, present

    if end <= start:
        raise ConfigError(f"the end date ({end}) must be after the start date ({start})")
    if sort_by not in LEADERBOARD_COLUMNS:
        raise ConfigError(f"cannot sort by {sort_by!r}")
    chosen = list(models) if models else None
    board = modelhub.leaderboard(start, end, tz=tz, models=chosen, url=url)
    span = end - start
    before = modelhub.leaderboard(start - span, start, tz=tz, models=chosen, url=url)
    tiles = modelhub_tiles(board, before)
    board = board.sort_values(sort_by, ascending=ascending, na_position="last")
    daily = modelhub.daily_trend(start, end, models=chosen, tz=tz, url=url)
    slo = modelhub.slo_report(start, end, tz=tz, url=url)
    if chosen:
        slo = slo[slo["model_id"].isin(chosen)]
    reference = (start - timedelta(days=28), start)
    one = chosen[0] if chosen and len(chosen) == 1 else None
    drift = modelhub.drift(reference, (start, end), model=one, tz=tz, url=url)
    savings = modelhub.savings(start, end, tz=tz, url=url)
    if chosen and not savings.empty:
        savings = savings[savings["current_model"].isin(chosen)]
    shown = board[[c for c in LEADERBOARD_COLUMNS if c in board.columns]]
    chart_map: dict[str, Any] = {}
    if not board.empty:
        chart_map["leaderboard"] = charts.leaderboard_chart(
            board, sort_by if sort_by != "model_id" else "requests"
        )
        chart_map["quality_vs_cost"] = charts.quality_cost_scatter(board)
    if not daily.empty:
        chart_map["latency_percentiles"] = charts.latency_percentiles_chart(daily)
        for metric, unit, title in (
            ("error_rate", "percent", "Error rate"),
            ("quality_mean", "number", "Mean quality"),
        ):
            chart_map[metric] = charts.trend(
                daily, metric, unit=unit, by="model_id", time_col="day", title=title
            )
        chart_map["cost"] = linked_cost_chart(daily)
    return View(
        kpis=tiles,
        frames={
            "kpis": tiles,
            "leaderboard": shown,
            "daily_trend": daily,
            "slo": slo,
            "drift": drift,
            "savings": savings,
        },
        charts=chart_map,
        sections={
            "leaderboard": present.table_html(shown, _LEADERBOARD_UNITS),
            "slo": present.table_html(slo, _SLO_UNITS),
            "drift": present.table_html(_small_numbers(drift, ["ks_pvalue"]), _DRIFT_UNITS),
            "savings": present.table_html(
                _small_numbers(
                    savings,
                    ["current_cost_per_request", "candidate_cost_per_request"],
                    charts.currency_prefix(),
                ),
                _SAVINGS_UNITS,
            )
            if not savings.empty
            else "<p>No cheaper model serves a feature within the quality tolerance.</p>",
        },
        tiles_html=present.kpi_tiles_html(tiles),
    )


DAYS_SELECTION = "days"
"""Name of the x-interval brush on the cost-over-time chart."""
MODEL_SELECTION = "model"
"""Name of the click selection of a model (bars and legend)."""


def linked_cost_chart(daily: pd.DataFrame) -> Any:
    """Cost per model and day, with a day brush that filters a cost-per-model bar chart.

    Drag across days in the upper chart: the bars below add up only those days. Click a
    bar, or a model in the legend, to highlight that model in both charts (shift-click
    adds more; a click on empty space clears). Every mark has a tooltip.

    Parameters
    ----------
    daily : DataFrame
        :func:`auterity.modelhub.daily_trend` (``day, model_id, requests, cost, ...``).

    Returns
    -------
    altair.VConcatChart
        The two linked views, with selection params named :data:`DAYS_SELECTION` and
        :data:`MODEL_SELECTION`.
    """
    from auterity import charts

    alt = charts.load_altair()
    data = daily[["day", "model_id", "requests", "cost"]].copy()
    data["day"] = pd.to_datetime(data["day"])
    money = charts.d3_format("currency")
    days = alt.selection_interval(name=DAYS_SELECTION, encodings=["x"])
    model = alt.selection_point(
        name=MODEL_SELECTION, fields=["model_id"], on="click", bind="legend"
    )
    color = alt.Color("model_id:N", title="Model")
    focus = alt.when(model).then(alt.value(1.0)).otherwise(alt.value(0.2))
    tips = [
        alt.Tooltip("model_id:N", title="Model"),
        alt.Tooltip("cost:Q", title="Cost", format=money),
        alt.Tooltip("requests:Q", title="Requests", format=","),
    ]
    lines = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("day:T", title=None),
            y=alt.Y("cost:Q", title="Cost per day", axis=alt.Axis(format=money)),
            color=color,
            opacity=focus,
            tooltip=[alt.Tooltip("day:T", title="Day", format="%b %-d, %Y"), *tips],
        )
        .add_params(days)
        .properties(height=200, title="Cost over time: drag across days to filter the bars")
    )
    bars = (
        alt.Chart(data)
        .transform_filter(days)
        .transform_aggregate(cost="sum(cost)", requests="sum(requests)", groupby=["model_id"])
        .mark_bar()
        .encode(
            y=alt.Y("model_id:N", sort="-x", title=None),
            x=alt.X("cost:Q", title="Cost in the selected days", axis=alt.Axis(format=money)),
            color=color,
            opacity=focus,
            tooltip=tips,
        )
        .add_params(model)
        .properties(title="Cost by model (click a bar to highlight a model)")
    )
    return alt.vconcat(lines, bars)


def _utcnow() -> datetime:
    """Now in UTC, naive (the warehouse stores naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def realtime_snapshot(
    minutes: int = 15, *, now: datetime | None = None, url: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, datetime | None]:
    """Requests/s, p95 latency and error rate per model over the last ``minutes``.

    Two grouped SQL statements (per model, and per model and minute); pandas only sees
    the aggregates.

    Parameters
    ----------
    minutes : int
        Window length, ending at ``now``.
    now : datetime, optional
        Naive UTC end of the window; default the current time.
    url : str, optional
        Warehouse.

    Returns
    -------
    tuple
        ``(per_model, per_minute, newest_event)``: per model ``model_id, requests,
        requests_per_s, p95_latency_ms, error_rate`` (plus an ``all`` row first);
        per minute ``minute, model_id, requests_per_s``; the newest event time (UTC).
    """
    import sqlalchemy as sa

    from auterity import warehouse
    from auterity.warehouse import dialect, schema

    if minutes <= 0:
        raise ConfigError("minutes must be positive")
    end = now or _utcnow()
    since = end - timedelta(minutes=minutes)
    ev = schema.inference_events
    window = sa.and_(ev.c.ts >= since, ev.c.ts <= end)
    seconds = minutes * 60.0

    def stats(*group: Any) -> sa.Select:
        return (
            sa.select(
                *group,
                sa.func.count().label("requests"),
                dialect.percentile(ev.c.latency_ms, 0.95).label("p95_latency_ms"),
                dialect.to_float(sa.func.sum(sa.case((ev.c.status == "error", 1), else_=0))).label(
                    "errors"
                ),
            )
            .where(window)
            .group_by(*group)
        )

    minute = sa.func.date_trunc("minute", ev.c.ts).label("minute")
    per_minute_stmt = (
        sa.select(minute, ev.c.model_id, sa.func.count().label("requests"))
        .where(window)
        .group_by(minute, ev.c.model_id)
        .order_by(minute)
    )
    with warehouse.connect(url) as conn:
        per_model = dialect.read_frame(conn, stats(ev.c.model_id).order_by(ev.c.model_id))
        overall = dialect.read_frame(conn, stats())
        per_minute = dialect.read_frame(conn, per_minute_stmt)
        newest = conn.execute(sa.select(sa.func.max(ev.c.ts)).where(ev.c.ts <= end)).scalar()
    overall.insert(0, "model_id", "all")
    frame = pd.concat([overall, per_model], ignore_index=True)
    frame["requests"] = frame["requests"].fillna(0).astype(int)
    frame["requests_per_s"] = frame["requests"] / seconds
    frame["error_rate"] = [
        e / r if r else float("nan")
        for e, r in zip(frame["errors"], frame["requests"], strict=True)
    ]
    frame["p95_latency_ms"] = pd.to_numeric(frame["p95_latency_ms"], errors="coerce")
    frame = frame[["model_id", "requests", "requests_per_s", "p95_latency_ms", "error_rate"]]
    per_minute["requests_per_s"] = per_minute["requests"] / 60.0
    if newest is not None and not isinstance(newest, datetime):
        newest = pd.Timestamp(newest).to_pydatetime()
    return frame, per_minute, newest


def realtime_tiles(snapshot: pd.DataFrame) -> pd.DataFrame:
    """KPI tiles (the ``all`` row) of a :func:`realtime_snapshot` table."""
    row = snapshot[snapshot["model_id"] == "all"].iloc[0]
    meta = [
        ("requests_per_s", "Requests / s", "number", "up"),
        ("p95_latency_ms", "p95 latency", "ms", "down"),
        ("error_rate", "Error rate", "percent", "down"),
        ("requests", "Requests in window", "count", "up"),
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
    """Per-model table with ``data-model``/``data-metric`` attributes on the cells."""
    from auterity import charts

    units = {"requests": "count", "requests_per_s": "number", "p95_latency_ms": "ms"}
    units["error_rate"] = "percent"
    head = "".join(
        f'<th style="text-align:left;padding:4px 10px;">{html_text(c)}</th>'
        for c in ["model", "requests/s", "p95 latency", "error rate", "requests"]
    )
    rows = []
    for rec in snapshot.itertuples(index=False):
        cells = [f'<td style="padding:4px 10px;">{html_text(rec.model_id)}</td>']
        for metric in ("requests_per_s", "p95_latency_ms", "error_rate", "requests"):
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
    from auterity import charts, present

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


# --------------------------------------------------------------------------- widgets


class Dashboard:
    """A dashboard: filters, status line, KPI tiles, exports, sections and charts.

    Subclasses define :meth:`filters` (current filter values) and :meth:`compute`.
    """

    name = "dashboard"
    title = "Dashboard"

    def __init__(self, *, theme: str = "light", url: str | None = None) -> None:
        from auterity import charts

        w = _widgets()
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
        self.header = w.HTML(f'{STYLE}<h2 style="margin:4px 0;">{html_text(self.title)}</h2>')
        self.status = w.HTML(layout=w.Layout(width="100%"))
        self.status.add_class("au-status")
        self.tiles = w.HTML(layout=w.Layout(width="100%"))
        self.tiles.add_class("au-tiles")
        self.exports = w.HTML()
        self.png_button = w.Button(description="Prepare PNGs", tooltip="Render charts as PNG")
        self.png_button.add_class("au-png-button")
        self.png_button.on_click(lambda _b: self.prepare_pngs())
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
                w.HBox([self.exports, self.png_button], layout=w.Layout(flex_flow="row wrap")),
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
        w = _widgets()
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
            age = max((_utcnow() - fresh).total_seconds(), 0.0)
            parts.append(
                f'<span class="au-freshness" data-age-s="{age:.0f}">newest data '
                f"{fresh:%Y-%m-%d %H:%M:%S} UTC ({_age_text(age)} old)</span>"
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
        from auterity import charts

        if with_charts is None:
            with_charts = in_preheated_kernel()
        view = self.view
        parts = [
            self.header.value,
            f'<div class="au-status">{self._status_text()}</div>',
            '<p class="au-loading-note">Loading filters…</p>',
            f'<div class="au-tiles">{view.tiles_html if view is not None else ""}</div>',
        ]
        for key, title, chart in self.layout if view is not None else ():
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
                        self.stale_since = _utcnow()
                    return False
                self.view = view
                self.error = None
                self.stale_since = None
                self.last_updated = _utcnow()
                self.pngs = {}
                return True
            finally:
                self.busy = False
                self.generation += 1
                self.status.value = self.status_html()

    def _draw(self, view: View) -> None:
        from IPython.display import HTML, display

        from auterity import charts

        self.tiles.value = view.tiles_html
        self.exports.value = export_links_html(self.name, view.kpis, view.frames, self.filters())
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

    def prepare_pngs(self) -> dict[str, bytes]:
        """Render the current charts as PNG and add download links for them."""
        from auterity import charts

        with self._lock:
            if self.view is None:
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
            self.exports.value = export_links_html(
                self.name, self.view.kpis, self.view.frames, self.filters(), self.pngs
            )
            return self.pngs

    def start_auto_refresh(self, seconds: float) -> bool:
        """Refresh every ``seconds`` on a daemon thread (returns at once).

        Returns
        -------
        bool
            True if a timer was started (``seconds`` > 0 and none running).
        """
        if seconds <= 0 or (self._thread is not None and self._thread.is_alive()):
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
        """Display the dashboard (with the offline chart library, once per page)."""
        from IPython.display import HTML, display

        from auterity import charts

        display({FIRST_PAINT_MIME: self.first_paint_html(), "text/plain": ""}, raw=True)
        try:
            display(HTML(charts.offline_html_head()))
        except Exception:
            log.error("the offline chart library could not be loaded", exc_info=True)
            display(HTML('<div class="au-error">Charts are unavailable right now.</div>'))
        display(HTML(XSRF_SCRIPT))
        display(self.widget)


def _age_text(seconds: float) -> str:
    """``42 s`` / ``5 min`` / ``3 h`` / ``2 d``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def _options(values: list[str]) -> list[str]:
    return [ALL, *sorted(str(v) for v in values if v is not None)]


class BusinessDashboard(Dashboard):
    """Date range, grain, region, segment and channel filters; KPI tiles with sparklines,
    trend, funnel, cohorts, movers."""

    name = "business"
    title = "Business overview"

    def __init__(
        self,
        start: date,
        end: date,
        *,
        grain: str = "day",
        tz: str | None = None,
        theme: str = "light",
        url: str | None = None,
    ) -> None:
        super().__init__(theme=theme, url=url)
        w = _widgets()
        self.tz = tz
        regions, segments, channels = self._dimension_values()
        self.start = self._add_control(w.DatePicker(description="From", value=start), "au-f-start")
        self.end = self._add_control(w.DatePicker(description="To (excl.)", value=end), "au-f-end")
        self.grain = self._add_control(
            w.Dropdown(description="Grain", options=["day", "week", "month"], value=grain),
            "au-f-grain",
        )
        self.region = self._add_control(
            w.Dropdown(description="Region", options=_options(regions), value=ALL), "au-f-region"
        )
        self.segment = self._add_control(
            w.Dropdown(description="Segment", options=_options(segments), value=ALL),
            "au-f-segment",
        )
        self.channel = self._add_control(
            w.Dropdown(description="Channel", options=_options(channels), value=ALL),
            "au-f-channel",
        )
        for key, title in (
            ("revenue_trend", "Revenue trend"),
            ("funnel", "Funnel"),
            ("cohort_retention", "Cohort retention"),
            ("top_movers", "Top movers"),
        ):
            self._section(key, title, chart=True)
        self.refresh()

    def _dimension_values(self) -> tuple[list[str], list[str], list[str]]:
        """Regions, segments and sales channels for the drop-downs (empty on failure)."""
        from auterity import metrics

        try:
            found = [
                metrics.dimension_values(d, url=self.url) for d in ("region", "segment", "channel")
            ]
        except Exception:
            log.warning("could not list regions, segments and channels", exc_info=True)
            return [], [], []
        return found[0], found[1], found[2]

    def filters(self) -> dict[str, Any]:
        """Current filter values."""
        return {
            "start": str(self.start.value),
            "end": str(self.end.value),
            "grain": self.grain.value,
            "region": "" if self.region.value == ALL else self.region.value,
            "segment": "" if self.segment.value == ALL else self.segment.value,
            "channel": "" if self.channel.value == ALL else self.channel.value,
        }

    def compute(self) -> View:
        """Business data for the current filters."""
        if self.start.value is None or self.end.value is None:
            raise ConfigError("choose both a start and an end date")
        f = self.filters()
        return business_view(
            self.start.value,
            self.end.value,
            grain=f["grain"],
            region=f["region"],
            segment=f["segment"],
            channel=f["channel"],
            tz=self.tz,
            url=self.url,
        )


class ModelHubDashboard(Dashboard):
    """Model multi-select, sortable leaderboard, latency/error/cost/quality, SLO, drift, savings."""

    name = "modelhub"
    title = "ModelHub"

    def __init__(
        self,
        start: date,
        end: date,
        *,
        tz: str | None = None,
        theme: str = "light",
        url: str | None = None,
    ) -> None:
        super().__init__(theme=theme, url=url)
        w = _widgets()
        self.tz = tz
        models = self._model_ids(start, end)
        self.start = self._add_control(w.DatePicker(description="From", value=start), "au-f-start")
        self.end = self._add_control(w.DatePicker(description="To (excl.)", value=end), "au-f-end")
        self.models = self._add_control(
            w.SelectMultiple(description="Models", options=models, value=(), rows=4),
            "au-f-models",
        )
        self.sort_by = self._add_control(
            w.Dropdown(description="Sort by", options=LEADERBOARD_COLUMNS, value="requests"),
            "au-f-sort",
        )
        self.ascending = self._add_control(
            w.ToggleButtons(options=["desc", "asc"], value="desc"), "au-f-direction"
        )
        self._section("leaderboard", "Leaderboard", chart=False)
        for key, title in (
            ("leaderboard", "By model: the column sorted by"),
            ("latency_percentiles", "Latency percentiles"),
            ("error_rate", "Error rate over time"),
            ("cost", "Cost over time"),
            ("quality_mean", "Quality over time"),
            ("quality_vs_cost", "Quality vs cost"),
        ):
            self._section(key, title, chart=True)
        self._section("slo", "SLO status", chart=False)
        self._section("drift", "Drift status (vs the 28 days before)", chart=False)
        self._section("savings", "Savings recommendations", chart=False)
        self.refresh()

    def _model_ids(self, start: date, end: date) -> list[str]:
        from auterity import modelhub

        try:
            return sorted(modelhub.leaderboard(start, end, tz=self.tz, url=self.url)["model_id"])
        except Exception:
            log.warning("could not list models", exc_info=True)
            return []

    def filters(self) -> dict[str, Any]:
        """Current filter values."""
        return {
            "start": str(self.start.value),
            "end": str(self.end.value),
            "models": list(self.models.value),
            "sort_by": self.sort_by.value,
            "ascending": self.ascending.value == "asc",
        }

    def compute(self) -> View:
        """ModelHub data for the current filters."""
        if self.start.value is None or self.end.value is None:
            raise ConfigError("choose both a start and an end date")
        f = self.filters()
        return modelhub_view(
            self.start.value,
            self.end.value,
            models=f["models"] or None,
            sort_by=f["sort_by"],
            ascending=f["ascending"],
            tz=self.tz,
            url=self.url,
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
        w = _widgets()
        self.refresh_seconds = refresh_seconds
        self.clock = clock or _utcnow
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


def _url(url: str) -> str | None:
    return url or None


def business(
    period: str = "last_28_days",
    start: str = "",
    end: str = "",
    *,
    grain: str = "day",
    timezone: str = "",
    theme: str = "light",
    url: str = "",
) -> BusinessDashboard | None:
    """Build and show the business dashboard (for the notebook).

    Parameters
    ----------
    period, start, end : str
        Initial period (see :func:`auterity.present.resolve_period`).
    grain : str
        Initial trend grain.
    timezone, theme, url : str
        Business time zone, chart theme and warehouse; empty means the defaults.

    Returns
    -------
    BusinessDashboard or None
        The dashboard, or None if it could not start (a short message is shown).
    """
    return _build(
        lambda: BusinessDashboard(
            *_period(period, start, end, timezone, url),
            grain=grain,
            tz=timezone or None,
            theme=theme,
            url=_url(url),
        )
    )


def modelhub(
    period: str = "last_28_days",
    start: str = "",
    end: str = "",
    *,
    timezone: str = "",
    theme: str = "light",
    url: str = "",
) -> ModelHubDashboard | None:
    """Build and show the ModelHub dashboard (for the notebook); see :func:`business`."""
    return _build(
        lambda: ModelHubDashboard(
            *_period(period, start, end, timezone, url),
            tz=timezone or None,
            theme=theme,
            url=_url(url),
        )
    )


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
    dash = _build(
        lambda: RealtimeDashboard(
            minutes=minutes, refresh_seconds=refresh_seconds, theme=theme, url=_url(url)
        )
    )
    if dash is not None and (in_voila() if auto_refresh is None else auto_refresh):
        dash.start_auto_refresh(refresh_seconds)
    return dash


def _period(period: str, start: str, end: str, tz: str, url: str) -> tuple[date, date]:
    from auterity import present

    return present.resolve_period(period, start, end, tz=tz or None, url=_url(url))


FRESH_ON_VIEW_S = 300.0
"""A pre-heated dashboard whose data is older than this refreshes when a viewer arrives
(``AUTERITY_DASHBOARD_FRESH_S`` overrides it)."""
ENV_FRESH = "AUTERITY_DASHBOARD_FRESH_S"


def _wait_for_viewer() -> None:
    """Block until Voila hands this pre-heated kernel to a viewer (an authenticated socket)."""
    from auterity.serve import wait_for_viewer

    wait_for_viewer()


def refresh_when_viewed(
    dash: Dashboard,
    max_age_s: float | None = None,
    *,
    wait: Callable[[], None] | None = None,
) -> threading.Thread | None:
    """In a pre-heated kernel, refresh stale data as soon as a viewer gets the kernel.

    A pooled kernel runs the notebook long before anyone looks at it; the page it serves
    is instant but its data can be hours old. This waits (on a daemon thread) for the
    request and refreshes if the data is older than ``max_age_s``; the viewer sees the
    page at once, then "Updating…" and current numbers.

    Parameters
    ----------
    dash : Dashboard
        The dashboard shown.
    max_age_s : float, optional
        Data younger than this is kept; default ``AUTERITY_DASHBOARD_FRESH_S`` or
        :data:`FRESH_ON_VIEW_S`.
    wait : callable, optional
        Blocks until the viewer arrives; default :func:`auterity.serve.wait_for_viewer`
        (only in a pre-heated kernel: elsewhere nothing is started).

    Returns
    -------
    threading.Thread or None
        The waiting thread, or None outside a pre-heated kernel.
    """
    if wait is None:
        if not in_preheated_kernel():
            return None
        wait = _wait_for_viewer
    if max_age_s is None:
        try:
            max_age_s = float(os.environ.get(ENV_FRESH) or FRESH_ON_VIEW_S)
        except ValueError:
            log.warning("%s is not a number; using %g s", ENV_FRESH, FRESH_ON_VIEW_S)
            max_age_s = FRESH_ON_VIEW_S

    def run() -> None:
        try:
            wait()
        except Exception:
            log.warning("could not wait for the viewer of a pre-heated kernel", exc_info=True)
            return
        updated = dash.last_updated
        if updated is None or (_utcnow() - updated).total_seconds() > max_age_s:
            dash.refresh()

    thread = threading.Thread(target=run, name=f"auterity-{dash.name}-viewed", daemon=True)
    thread.start()
    return thread


def _build(factory: Callable[[], Dashboard]) -> Any:
    """Build a dashboard and show it, or show a short message (details to the log)."""
    from IPython.display import HTML, display

    configure_logging()
    try:
        dash = factory()
    except Exception as exc:
        log.error("dashboard could not start", exc_info=True)
        display(
            HTML(
                f'<div class="au-error" style="color:#b42318;">'
                f"{html_text(viewer_message(exc))}</div>"
            )
        )
        return None
    dash.show()
    refresh_when_viewed(dash)
    return dash
