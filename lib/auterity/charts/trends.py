"""Charts over time: metric trends, KPI sparklines, anomalies and forecasts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from auterity.charts.encoding import (
    axis_title,
    category_text,
    field_label,
    quantity_tooltip,
    require_columns,
    time_tooltip,
    titled,
    tooltip_title,
    wall_clock,
)
from auterity.charts.formats import axis_format, check_unit, numeric, tooltip_format
from auterity.charts.theme import load_altair
from auterity.escape import vega_field

if TYPE_CHECKING:  # pragma: no cover
    import altair as alt

_MAX_SERIES_IN_TOOLTIP = 12


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
    alt = load_altair()
    check_unit(unit)
    require_columns(frame, [time_col, metric, *([by] if by else [])], "trend")
    data = frame[[time_col, *([by] if by else []), metric]].copy()
    data[time_col] = wall_clock(data[time_col])
    if by:
        data[by] = category_text(data[by])
    label = field_label(metric)
    date_tip = time_tooltip(time_col)
    value_tip = quantity_tooltip(metric, title=label, format=tooltip_format(data[metric], unit))
    x = alt.X(field=vega_field(time_col), type="temporal", title=None)
    y = alt.Y(
        field=vega_field(metric),
        type="quantitative",
        title=axis_title(label, unit),
        axis=alt.Axis(format=axis_format(data[metric], unit)),
    )
    encodings: dict[str, Any] = {"x": x, "y": y}
    tips = [date_tip, value_tip]
    if by:
        encodings["color"] = alt.Color(field=vega_field(by), type="nominal", title=field_label(by))
        tips = [
            date_tip,
            alt.Tooltip(field=vega_field(by), type="nominal", title=field_label(by)),
            value_tip,
        ]
    base = alt.Chart(data).encode(**encodings)
    line = base.mark_line()
    if not interactive:
        points = base.mark_point(size=60, opacity=0).encode(tooltip=tips)
        return titled(alt.layer(line, points), title or label)
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
        fmt = tooltip_format(data[metric], unit)
        rule_tips = [
            date_tip,
            *[quantity_tooltip(s, title=tooltip_title(s), format=fmt) for s in series],
        ]
    rule = (
        rule_base.mark_rule(style="auterity-rule", strokeDash=[], strokeWidth=8)
        .encode(
            x=x,
            opacity=alt.when(hover).then(alt.value(0.35)).otherwise(alt.value(0)),
            tooltip=rule_tips,
        )
        .add_params(hover)
    )
    return titled(alt.layer(line, points, rule), title or label)


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
    alt = load_altair()
    check_unit(unit)
    require_columns(frame, [time_col, metric], "kpi_sparkline")
    data = frame[[time_col, metric]].copy()
    data[time_col] = wall_clock(data[time_col])
    data = data.sort_values(time_col)
    values = numeric(data[metric])
    low = float(values.min()) if values.notna().any() else 0.0
    x = alt.X(field=vega_field(time_col), type="temporal", axis=None)
    y = alt.Y(field=vega_field(metric), type="quantitative", axis=None, scale=alt.Scale(zero=False))
    base = alt.Chart(data).encode(x=x, y=y)
    area = base.mark_area(style="auterity-spark-area").encode(y2=alt.Y2(datum=low))
    line = base.mark_line(style="auterity-spark", strokeWidth=1.5)
    last = data.dropna(subset=[metric]).tail(1)
    end = alt.Chart(last).mark_point(style="auterity-spark", size=20).encode(x=x, y=y)
    date_tip = time_tooltip(time_col)
    tips = base.mark_point(size=40, opacity=0).encode(
        tooltip=[
            date_tip,
            quantity_tooltip(
                metric, title=field_label(metric), format=tooltip_format(values, unit)
            ),
        ]
    )
    return alt.layer(area, line, end, tips).properties(
        width=width, height=height, view=alt.ViewBackground(stroke=None)
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
    alt = load_altair()
    check_unit(unit)
    require_columns(series, [time_col, value_col], "anomaly_chart")
    require_columns(anomalies, ["start", "end"], "anomaly_chart (anomalies)")
    data = series[[time_col, value_col]].copy()
    data[time_col] = wall_clock(data[time_col])
    data = data.sort_values(time_col)
    extra = [c for c in ("score", "severity", "direction", "label") if c in anomalies.columns]
    windows = anomalies[["start", "end", *extra]].copy()
    windows["start"], windows["end"] = wall_clock(windows["start"]), wall_clock(windows["end"])
    inside = np.zeros(len(data), dtype=bool)
    times = data[time_col].to_numpy()
    for start, end in zip(windows["start"], windows["end"], strict=True):
        inside |= (times >= np.datetime64(start)) & (times <= np.datetime64(end))
    data["anomalous"] = inside
    windows["single"] = windows["start"] == windows["end"]
    label = field_label(value_col)
    fmt = tooltip_format(data[value_col], unit)
    x = alt.X(field=vega_field(time_col), type="temporal", title=None)
    y = alt.Y(
        field=vega_field(value_col),
        type="quantitative",
        title=axis_title(label, unit),
        axis=alt.Axis(format=axis_format(data[value_col], unit)),
    )
    window_tips = [
        alt.Tooltip("start:T", title="From", format="%b %-d, %Y %H:%M"),
        alt.Tooltip("end:T", title="To", format="%b %-d, %Y %H:%M"),
        *[alt.Tooltip(field=vega_field(c), title=field_label(c)) for c in extra],
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
    time_tip = time_tooltip(time_col, "%b %-d, %Y %H:%M")
    tips = base.mark_point(size=60, opacity=0).encode(
        tooltip=[
            time_tip,
            quantity_tooltip(value_col, title=label, format=fmt),
            alt.Tooltip("anomalous:N", title="In an anomalous window"),
        ]
    )
    return titled(alt.layer(shaded, single, line, flagged, tips), title or label)


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
    alt = load_altair()
    check_unit(unit)
    require_columns(history, ["ds", "y"], "forecast_chart (history)")
    require_columns(
        forecast, ["ds", "yhat", "yhat_lower", "yhat_upper"], "forecast_chart (forecast)"
    )
    actual = history[["ds", "y"]].copy()
    actual["ds"] = wall_clock(actual["ds"])
    actual = actual.sort_values("ds")
    actual["series"] = "Actual"
    predicted = forecast[["ds", "yhat", "yhat_lower", "yhat_upper"]].copy()
    predicted["ds"] = wall_clock(predicted["ds"])
    predicted = predicted.sort_values("ds")
    predicted["series"] = "Forecast"
    values = pd.concat([actual["y"], predicted["yhat_lower"], predicted["yhat_upper"]])
    fmt, tip = axis_format(values, unit), tooltip_format(values, unit)
    x = alt.X("ds:T", title=None)
    y_title = axis_title(label, unit)
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
    return titled(alt.layer(*layers), title or f"{label} forecast")
