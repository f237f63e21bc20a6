"""Business charts: retention cohorts, the funnel, breakdowns and top movers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from auterity.charts.columns import column
from auterity.charts.encoding import (
    axis_title,
    category_text,
    field_label,
    quantity_tooltip,
    require_columns,
    titled,
)
from auterity.charts.formats import (
    axis_format,
    check_good,
    check_unit,
    format_value,
    numeric,
    tooltip_format,
)
from auterity.charts.theme import load_altair
from auterity.escape import vega_field

if TYPE_CHECKING:  # pragma: no cover
    import altair as alt


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
    alt = load_altair()
    require_columns(retention, ["size"], "cohort_heatmap")
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
        y=alt.Y("cohort_label:O", sort=order, title=column("cohort").label),
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
    return titled(
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
    alt = load_altair()
    columns = ["step", "count", "conversion_from_previous", "conversion_from_start", "drop_off"]
    require_columns(funnel, columns, "funnel_chart")
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
            title=column("count").label,
            axis=alt.Axis(format=axis_format(data["count"], "count")),
            scale=alt.Scale(domainMin=0),
        ),
    )
    tips = [
        alt.Tooltip("step:N", title=column("step").label),
        alt.Tooltip("count:Q", title=column("count").label, format=",.0f"),
        alt.Tooltip(
            "conversion_from_previous:Q",
            title=column("conversion_from_previous").label,
            format=".1%",
        ),
        alt.Tooltip(
            "conversion_from_start:Q", title=column("conversion_from_start").label, format=".1%"
        ),
        alt.Tooltip("drop_off:Q", title=column("drop_off").label, format=".1%"),
    ]
    bars = base.mark_bar().encode(tooltip=tips)
    text = base.mark_text(align="left", dx=4, style="auterity-label").encode(text="label:N")
    return titled(alt.layer(bars, text), title or "Funnel")


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
    alt = load_altair()
    check_unit(unit)
    require_columns(frame, [by, metric], "breakdown_bars")
    keep = [by, metric, *(["share"] if "share" in frame.columns else [])]
    data = frame[keep].sort_values(metric, ascending=False, na_position="last")
    if top is not None:
        data = data.head(top)
    data = data.copy()
    data[by] = category_text(data[by].astype(str))
    data["label"] = [format_value(v, unit) for v in data[metric]]
    pick = alt.selection_point(name="pick", fields=[by], on="click", clear="dblclick")
    base = alt.Chart(data).encode(
        y=alt.Y(field=vega_field(by), type="nominal", sort=list(data[by]), title=field_label(by)),
        x=alt.X(
            field=vega_field(metric),
            type="quantitative",
            title=axis_title(field_label(metric), unit),
            axis=alt.Axis(format=axis_format(data[metric], unit)),
        ),
    )
    tips = [
        alt.Tooltip(field=vega_field(by), type="nominal", title=field_label(by)),
        quantity_tooltip(
            metric, title=field_label(metric), format=tooltip_format(data[metric], unit)
        ),
    ]
    if "share" in data.columns and data["share"].notna().any():
        tips.append(alt.Tooltip("share:Q", title=column("share").label, format=".1%"))
    bars = (
        base.mark_bar(cursor="pointer")
        .encode(
            opacity=alt.when(pick).then(alt.value(1.0)).otherwise(alt.value(0.35)),
            tooltip=tips,
        )
        .add_params(pick)
    )
    text = base.mark_text(align="left", dx=4, style="auterity-label").encode(text="label:N")
    return titled(
        alt.layer(bars, text), title or f"{field_label(metric)} by {field_label(by).lower()}"
    )


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
    alt = load_altair()
    check_unit(unit)
    check_good(good)
    require_columns(movers, [by, "previous", "current", "delta", "contribution"], "movers_chart")
    keep = [by, "previous", "current", "delta", "contribution"]
    keep += [c for c in ("share_of_change",) if c in movers.columns]
    data = movers[keep].copy()
    data = data.reindex(data["contribution"].abs().sort_values(ascending=False).index)
    if top is not None:
        data = data.head(top)
    data = data.sort_values("contribution", ascending=False)
    data[by] = category_text(data[by].astype(str))
    data["tone"] = [
        "neutral" if good == "neutral" or not c else "good" if (c > 0) == (good == "up") else "bad"
        for c in data["contribution"].fillna(0)
    ]
    data["label"] = [("+" if v > 0 else "") + format_value(v, unit) for v in data["contribution"]]
    values = pd.concat([data["previous"], data["current"], data["contribution"]])
    fmt = tooltip_format(values, unit)
    # Room beyond the longest bars for their labels (which sit outside the bars).
    contribution = [0.0, *numeric(data["contribution"]).dropna()]
    low, high = min(contribution), max(contribution)
    pad = 0.22 * (high - low)
    domain = [low - pad if low < 0 else 0.0, high + pad if high > 0 else 0.0]
    base = alt.Chart(data).encode(
        y=alt.Y(field=vega_field(by), type="nominal", sort=list(data[by]), title=field_label(by)),
        x=alt.X(
            "contribution:Q",
            title=axis_title("Contribution to the change", unit),
            axis=alt.Axis(format=axis_format(data["contribution"], unit)),
            scale=alt.Scale(domain=domain) if high > low else alt.Undefined,
        ),
    )
    tips = [
        alt.Tooltip(field=vega_field(by), type="nominal", title=field_label(by)),
        alt.Tooltip("previous:Q", title=column("previous").label, format=fmt),
        alt.Tooltip("current:Q", title=column("current").label, format=fmt),
        alt.Tooltip("contribution:Q", title=column("contribution").label, format=fmt),
    ]
    if "share_of_change" in data.columns:
        tips.append(
            alt.Tooltip("share_of_change:Q", title=column("share_of_change").label, format=".1%")
        )
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
    return titled(alt.layer(bars, zero, text), title or f"What moved, by {field_label(by).lower()}")
