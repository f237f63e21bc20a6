"""Presentation helpers shared by notebooks, reports, emails and dashboards.

Notebooks stay thin: they resolve their period, call the analytics, and hand the frames to
these helpers for KPI tiles, formatted tables and the few sentences of narrative. The HTML
here uses inline styles and tables only, so the same tiles render in a report, a Voila
dashboard and a mail client. Every value in it, and in the Markdown sentences, goes
through :mod:`auterity.escape` for the format it lands in: data shows as text, never as
markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import pandas as pd

from auterity import charts
from auterity.config import get_settings
from auterity.errors import ConfigError
from auterity.escape import html_attr, html_text, md_code, md_text
from auterity.warehouse import data_freshness

PERIODS = (
    "last_7_days",
    "last_28_days",
    "last_30_days",
    "last_90_days",
    "last_week",
    "last_month",
    "month_to_date",
    "custom",
)
_TONE_COLOURS = {"good": "#137333", "bad": "#b42318", "neutral": "#5b6470"}


def _parse(text: str, name: str) -> date:
    """A YYYY-MM-DD parameter value."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"parameter {name}={text!r} is not a date (YYYY-MM-DD)") from None


def data_end(url: str | None = None, tz: str | None = None) -> date:
    """The day after the newest data (local), or tomorrow if the warehouse is empty."""
    from zoneinfo import ZoneInfo

    newest = data_freshness(url)
    zone = ZoneInfo(tz or get_settings().timezone)
    if newest is None:
        return date.today() + timedelta(days=1)
    local = pd.Timestamp(newest).tz_localize("UTC").tz_convert(zone)
    return local.date() + timedelta(days=1)


def resolve_period(
    period: str = "last_28_days",
    start: str = "",
    end: str = "",
    *,
    tz: str | None = None,
    url: str | None = None,
) -> tuple[date, date]:
    """Turn a notebook's period parameters into ``(start, end)`` local dates, end exclusive.

    Parameters
    ----------
    period : str
        One of :data:`PERIODS`. Relative periods end at ``end`` if given, else at the
        warehouse's newest data, so a report always shows data.
    start, end : str
        ``YYYY-MM-DD``; ``start`` is required for ``custom``.
    tz, url : optional
        Business time zone and warehouse.

    Returns
    -------
    tuple of date
        Inclusive start and exclusive end.
    """
    if period not in PERIODS:
        raise ConfigError(f"parameter period={period!r} is not one of {', '.join(PERIODS)}")
    anchor = _parse(end, "end") if end else data_end(url, tz)
    if period == "custom" or start:
        if not start:
            raise ConfigError("period 'custom' needs start (YYYY-MM-DD)")
        begin = _parse(start, "start")
        if anchor <= begin:
            raise ConfigError(f"end ({anchor}) must be after start ({begin})")
        return begin, anchor
    if period.startswith("last_") and period.endswith("_days"):
        return anchor - timedelta(days=int(period.split("_")[1])), anchor
    if period == "last_week":
        this_monday = anchor - timedelta(days=anchor.weekday())
        return this_monday - timedelta(days=7), this_monday
    first_of_month = anchor.replace(day=1)
    if period == "last_month":
        return (first_of_month - timedelta(days=1)).replace(day=1), first_of_month
    # month_to_date
    if anchor == first_of_month:  # the month has not started yet: show the previous one
        return (first_of_month - timedelta(days=1)).replace(day=1), first_of_month
    return first_of_month, anchor


def setup(theme: str = "light") -> None:
    """Prepare a notebook: project chart theme, offline chart rendering, tidy tables."""
    charts.use_theme(theme)
    charts.enable_offline_notebook_rendering(theme)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 160)


def describe_period(start: date, end: date) -> str:
    """``1 Sep 2026 – 30 Sep 2026 (30 days)`` for an end-exclusive range."""
    last = end - timedelta(days=1)
    days = (end - start).days
    return f"{start:%-d %b %Y} – {last:%-d %b %Y} ({days} day{'s' if days != 1 else ''})"


def period_markdown(start: date, end: date, details: Mapping[str, Any] | None = None) -> str:
    """The period line a report opens with, as Markdown: ``**Period:** … · **name:** value``.

    Parameters
    ----------
    start, end : date
        The period, ``end`` exclusive.
    details : mapping, optional
        More ``label: value`` parts (parameters such as the method or the filters);
        empty values are left out. Values are shown as text, whatever they hold.

    Returns
    -------
    str
        One line of Markdown.
    """
    parts = [f"**Period:** {md_text(describe_period(start, end))}"]
    for label, value in (details or {}).items():
        if value is None or (isinstance(value, Mapping | Sequence) and not value):
            continue
        if isinstance(value, Mapping):
            shown = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, Sequence) and not isinstance(value, str):
            shown = ", ".join(str(v) for v in value)
        else:
            shown = str(value)
        parts.append(f"**{md_text(label)}:** {md_text(shown)}")
    return " · ".join(parts)


def sparkline_svg(values: Sequence[float], *, width: int = 120, height: int = 28) -> str:
    """A small inline SVG line of a series (gaps where values are missing).

    Parameters
    ----------
    values : sequence of float
        The series, oldest first; NaN breaks the line.
    width, height : int
        Size in CSS pixels.

    Returns
    -------
    str
        An ``<svg class="au-spark">`` element, or "" with fewer than two values (a
        single point is no trend). Not for email: many mail clients drop inline SVG.
    """
    points = [float(v) for v in values]
    finite = [v for v in points if math.isfinite(v)]
    if len(points) < 2 or len(finite) < 2:
        return ""
    lo, hi = min(finite), max(finite)
    span = hi - lo or 1.0
    pad = 2.0
    step = (width - 2 * pad) / (len(points) - 1)
    runs: list[list[str]] = [[]]
    for i, v in enumerate(points):
        if not math.isfinite(v):
            runs.append([])
            continue
        x = pad + i * step
        y = pad + (height - 2 * pad) * (1 - (v - lo) / span)
        runs[-1].append(f"{x:.1f},{y:.1f}")
    lines = "".join(
        f'<polyline fill="none" stroke="#1d4ed8" stroke-width="1.5" points="{" ".join(r)}"/>'
        for r in runs
        if len(r) >= 2
    )
    return (
        f'<svg class="au-spark" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="daily trend">{lines}</svg>'
    )


def kpi_tiles_html(
    kpis: pd.DataFrame,
    *,
    compare: str = "previous",
    columns: int = 4,
    sparklines: pd.DataFrame | None = None,
) -> str:
    """KPI tiles (value, delta, arrow coloured by whether the change is good news).

    Parameters
    ----------
    kpis : DataFrame
        :func:`auterity.business.kpi_summary` output (or any frame with ``label, unit,
        good, current`` and ``<compare>_delta_pct``).
    compare : {"previous", "last_year"}
        Which delta to show.
    columns : int
        Tiles per row (they wrap on narrow screens).
    sparklines : DataFrame, optional
        Daily values, one column per KPI ``metric`` (e.g.
        :func:`auterity.business.kpi_daily`); tiles with a column get a sparkline.
        Leave out for email (inline SVG is not mail-client-safe).

    Returns
    -------
    str
        An HTML fragment with inline styles only (safe for reports, dashboards and email
        when there are no sparklines).
    """
    cells = []
    for _, row in kpis.iterrows():
        value = charts.format_value(row["current"], row["unit"])
        delta_text, tone = charts.format_delta(row.get(f"{compare}_delta_pct"), row["good"])
        label = "vs previous period" if compare == "previous" else "vs last year"
        cells.append(
            '<td class="au-kpi" style="padding:12px 14px;border:1px solid #d8dde3;'
            'border-radius:6px;vertical-align:top;min-width:150px;">'
            f'<div style="font-size:12px;color:#5b6470;">{html_text(row["label"])}</div>'
            f'<div class="au-kpi-value" data-metric="{html_attr(row["metric"])}" '
            f'style="font-size:24px;font-weight:600;margin:4px 0;">{html_text(value)}</div>'
            f'<div style="font-size:12px;color:{_TONE_COLOURS[tone]};">'
            f'{html_text(delta_text)} <span style="color:#5b6470;">{label}</span></div>'
            f"{_spark(sparklines, str(row['metric']), row['current'])}</td>"
        )
    rows = [cells[i : i + columns] for i in range(0, len(cells), columns)]
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return (
        '<table class="au-kpis" role="presentation" style="border-collapse:separate;'
        f'border-spacing:8px;font-family:system-ui,Segoe UI,Arial,sans-serif;">{body}</table>'
    )


def _spark(frame: pd.DataFrame | None, metric: str, current: Any) -> str:
    """The sparkline of one tile, if there is a daily series and a value to go with it."""
    if frame is None or metric not in frame.columns or pd.isna(current):
        return ""
    line = sparkline_svg(frame[metric].tolist())
    return f'<div style="margin-top:4px;line-height:0;">{line}</div>' if line else ""


def format_table(frame: pd.DataFrame, units: Mapping[str, str]) -> pd.DataFrame:
    """A copy with the listed columns turned into display strings (``{column: unit}``).

    A value that is already text (e.g. a p-value written to two significant digits) is
    shown as it is.
    """
    out = frame.copy()
    for column, unit in units.items():
        if column in out:
            out[column] = [
                v if isinstance(v, str) else charts.format_value(v, unit) for v in out[column]
            ]
    return out


KIND_LABELS = {
    "correlation": "Goes together",
    "anomaly": "Unusual",
    "level_shift": "New level",
    "forecast_risk": "Forecast risk",
    "drift": "Drift",
    "savings": "Savings",
    "mover": "Moved",
}
"""How each kind of insight card is named in reports."""


def skipped_table(skipped: Mapping[str, str]) -> pd.DataFrame:
    """What an insights report could not test, one row per kind, for :func:`table_html`.

    Parameters
    ----------
    skipped : mapping of str to str
        ``InsightReport.skipped``: card kind -> why it was not (fully) tested.

    Returns
    -------
    pandas.DataFrame
        Columns ``kind`` (in words, as :data:`KIND_LABELS`) and ``why``.
    """
    return pd.DataFrame(
        [(KIND_LABELS.get(kind, kind), why) for kind, why in skipped.items()],
        columns=["kind", "why"],
    )


def insight_table(cards: Sequence[Any]) -> pd.DataFrame:
    """One row per insight card, in the given (ranked) order, for :func:`table_html`.

    Parameters
    ----------
    cards : sequence of auterity.insights.InsightCard
        The cards (anything with ``kind``, ``title``, ``sentence``, ``importance``).

    Returns
    -------
    pandas.DataFrame
        Columns ``rank, kind, finding, importance`` (kind in words, the finding is the
        card's title).
    """
    return pd.DataFrame(
        [
            {
                "rank": rank,
                "kind": KIND_LABELS.get(card.kind, card.kind),
                "finding": card.title,
                "importance": round(float(card.importance), 2),
            }
            for rank, card in enumerate(cards, start=1)
        ],
        columns=["rank", "kind", "finding", "importance"],
    )


def table_html(
    frame: pd.DataFrame,
    units: Mapping[str, str] | None = None,
    *,
    labels: Mapping[str, str] | None = None,
) -> str:
    """A compact, inline-styled HTML table of a small frame.

    Parameters
    ----------
    frame : DataFrame
        The rows to show; every value is shown as text.
    units : mapping, optional
        ``{column: unit}`` of the columns to format (:func:`auterity.charts.format_value`);
        default the units the column table declares for the frame's columns
        (:func:`auterity.charts.columns.units`).
    labels : mapping, optional
        ``{column: header}``; default the labels the column table declares
        (:func:`auterity.charts.columns.labels`); ``{}`` keeps the column names.

    Returns
    -------
    str
        A ``<table>`` with inline styles only (safe for reports, dashboards and email).
    """
    if units is None:
        units = charts.columns.units(frame)
    if labels is None:
        labels = charts.columns.labels(frame)
    shown = format_table(frame, units).rename(columns=dict(labels))
    head = "".join(
        f'<th style="text-align:left;padding:4px 10px;border-bottom:2px solid #d8dde3;">'
        f"{html_text(c)}</th>"
        for c in shown.columns
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td style="padding:4px 10px;border-bottom:1px solid #eef0f3;">{html_text(v)}</td>'
            for v in row
        )
        + "</tr>"
        for row in shown.itertuples(index=False)
    )
    return (
        f'<table style="border-collapse:collapse;font-size:13px;'
        f'font-family:system-ui,Segoe UI,Arial,sans-serif;"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _best(frame: pd.DataFrame, column: str, *, lowest: bool) -> Any:
    """The row with the lowest/highest value of ``column`` (ignoring NaN)."""
    values = frame.dropna(subset=[column])
    if values.empty:
        return None
    return values.loc[values[column].idxmin() if lowest else values[column].idxmax()]


def modelhub_narrative(
    leaderboard: pd.DataFrame,
    slo: pd.DataFrame | None = None,
    savings: pd.DataFrame | None = None,
) -> str:
    """A few sentences (Markdown) on the models' latency / cost / quality trade-offs.

    Every number in the text comes from the frames given, so the prose and the tables
    can never disagree. Model ids are shown as code and feature names in bold, both
    through :mod:`auterity.escape`: a backtick, ``*``, ``$`` or HTML in a name is text.
    """
    if leaderboard.empty:
        return "No model traffic in this period."
    busiest = leaderboard.iloc[0]
    fastest = _best(leaderboard, "p95_latency_ms", lowest=True)
    slowest = _best(leaderboard, "p95_latency_ms", lowest=False)
    cheapest = _best(leaderboard, "cost_per_1k_ok", lowest=True)
    priciest = _best(leaderboard, "cost_per_1k_ok", lowest=False)
    best = _best(leaderboard, "quality_mean", lowest=False)
    total_cost = leaderboard["cost"].sum()

    def fmt(value: Any, unit: str) -> str:
        return md_text(charts.format_value(value, unit))

    def num(value: Any) -> str:
        return md_text(f"{value:.3f}")

    lines = [
        f"**{len(leaderboard)} models** served **{fmt(leaderboard['requests'].sum(), 'count')}** "
        f"requests for **{fmt(total_cost, 'currency')}**. "
        f"{md_code(busiest['model_id'])} carried the most traffic "
        f"({fmt(busiest['share_of_traffic'], 'percent')}).",
    ]
    if fastest is not None and slowest is not None:
        lines.append(
            f"Latency spans a wide range: {md_code(fastest['model_id'])} answers 95 % of "
            f"requests within {fmt(fastest['p95_latency_ms'], 'ms')}, while "
            f"{md_code(slowest['model_id'])} needs {fmt(slowest['p95_latency_ms'], 'ms')}."
        )
    if cheapest is not None and priciest is not None:
        lines.append(
            f"Per 1,000 successful requests, {md_code(cheapest['model_id'])} costs "
            f"{fmt(cheapest['cost_per_1k_ok'], 'currency')} and "
            f"{md_code(priciest['model_id'])} {fmt(priciest['cost_per_1k_ok'], 'currency')}."
        )
    if best is not None:
        lines.append(
            f"The highest mean quality is {md_code(best['model_id'])}'s "
            f"{num(best['quality_mean'])} (95 % CI {num(best['quality_ci_low'])}–"
            f"{num(best['quality_ci_high'])})."
        )
    if slo is not None and not slo.empty:
        breached = slo[slo["status"] != "met"]
        if breached.empty:
            lines.append("Every model met its SLOs over the period.")
        else:
            names = ", ".join(md_code(m) for m in breached["model_id"])
            lines.append(f"SLO breached by {names}.")
    if savings is not None and not savings.empty:
        top = savings.iloc[0]
        lines.append(
            f"Biggest saving: move **{md_text(top['feature'])}** from "
            f"{md_code(top['current_model'])} to {md_code(top['candidate_model'])} (quality "
            f"{num(top['candidate_quality'])} vs {num(top['current_quality'])}), about "
            f"**{fmt(top['est_monthly_savings'], 'currency')} a month**."
        )
    return "\n\n".join(lines)


def insight_markdown(rank: int, card: Any) -> str:
    """An insight card as Markdown: a numbered heading (its title) and its sentence.

    Parameters
    ----------
    rank : int
        The card's place in the ranking (1 is the most important).
    card : auterity.insights.InsightCard
        The card (anything with ``title`` and ``sentence``).

    Returns
    -------
    str
        ``### <rank>. <title>`` and the sentence as a paragraph; the card's text
        (which holds segment, region, channel, model and feature names) is shown as
        text.
    """
    return f"### {int(rank)}. {md_text(card.title)}\n\n{md_text(card.sentence)}"
