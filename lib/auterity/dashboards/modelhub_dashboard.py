"""The ModelHub dashboard: leaderboard, latency, errors, cost, quality, SLO, drift, savings.

Filters: date range, models (multi-select) and the leaderboard's sort column and
direction. The cost chart is linked (:func:`linked_cost_chart`).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd

from auterity import charts, present
from auterity import modelhub as modelhub_data
from auterity.dashboards.preheat import launch
from auterity.dashboards.widgets import Dashboard, View, initial_period, load_ipywidgets, log
from auterity.errors import ConfigError


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
    # label, unit and which direction is good news: the one column table's
    meta = {c.name: (c.label, c.unit, c.good) for c in map(charts.columns.column, now)}
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
    if end <= start:
        raise ConfigError(f"the end date ({end}) must be after the start date ({start})")
    if sort_by not in LEADERBOARD_COLUMNS:
        raise ConfigError(f"cannot sort by {sort_by!r}")
    chosen = list(models) if models else None
    board = modelhub_data.leaderboard(start, end, tz=tz, models=chosen, url=url)
    span = end - start
    before = modelhub_data.leaderboard(start - span, start, tz=tz, models=chosen, url=url)
    tiles = modelhub_tiles(board, before)
    board = board.sort_values(sort_by, ascending=ascending, na_position="last")
    daily = modelhub_data.daily_trend(start, end, models=chosen, tz=tz, url=url)
    slo = modelhub_data.slo_report(start, end, tz=tz, url=url)
    if chosen:
        slo = slo[slo["model_id"].isin(chosen)]
    reference = (start - timedelta(days=28), start)
    one = chosen[0] if chosen and len(chosen) == 1 else None
    drift = modelhub_data.drift(reference, (start, end), model=one, tz=tz, url=url)
    savings = modelhub_data.savings(start, end, tz=tz, url=url)
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
            # units and headers from the one column table (charts.columns)
            "leaderboard": present.table_html(shown),
            "slo": present.table_html(slo),
            "drift": present.table_html(_small_numbers(drift, ["ks_pvalue"])),
            "savings": present.table_html(
                _small_numbers(
                    savings,
                    ["current_cost_per_request", "candidate_cost_per_request"],
                    charts.currency_prefix(),
                )
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
    import altair as alt  # heavy: only when a chart is built

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
        w = load_ipywidgets()
        self.tz = tz
        models = self._model_ids(start, end)
        self.start = self._add_control(w.DatePicker(description="From", value=start), "au-f-start")
        self.end = self._add_control(w.DatePicker(description="To (excl.)", value=end), "au-f-end")
        self.models = self._add_control(
            w.SelectMultiple(description="Models", options=models, value=(), rows=4),
            "au-f-models",
        )
        self.sort_by = self._add_control(
            w.Dropdown(
                description="Sort by",
                options=list(
                    zip(
                        charts.columns.labels(LEADERBOARD_COLUMNS).values(),
                        LEADERBOARD_COLUMNS,
                        strict=True,
                    )
                ),
                value="requests",
            ),
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
        try:
            board = modelhub_data.leaderboard(start, end, tz=self.tz, url=self.url)
            return sorted(board["model_id"])
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


def modelhub(
    period: str = "last_28_days",
    start: str = "",
    end: str = "",
    *,
    timezone: str = "",
    theme: str = "light",
    url: str = "",
) -> ModelHubDashboard | None:
    """Build and show the ModelHub dashboard (for the notebook).

    Parameters
    ----------
    period, start, end : str
        Initial period (see :func:`auterity.present.resolve_period`).
    timezone, theme, url : str
        Business time zone, chart theme and warehouse; empty means the defaults.

    Returns
    -------
    ModelHubDashboard or None
        The dashboard, or None if it could not start (a short message is shown).
    """
    return launch(
        lambda: ModelHubDashboard(
            *initial_period(period, start, end, timezone, url),
            tz=timezone or None,
            theme=theme,
            url=url or None,
        )
    )
