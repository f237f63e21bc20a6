"""ModelHub charts: the leaderboard, latency percentiles per model, quality against cost."""

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
    wall_clock,
)
from auterity.charts.formats import axis_format, format_value, tooltip_format
from auterity.charts.theme import load_altair
from auterity.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import altair as alt

LEADERBOARD_MEASURES = (
    "requests",
    "ok_requests",
    "share_of_traffic",
    "error_rate",
    "timeout_rate",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "input_tokens",
    "output_tokens",
    "cost",
    "cost_per_1k_ok",
    "quality_mean",
)
"""The :func:`leaderboard_chart` measures (their units and directions are in
:mod:`auterity.charts.columns`)."""


def _model_names(frame: pd.DataFrame) -> pd.Series:
    """A display name per row: ``name`` when present and unique per model, else the id."""
    if "name" in frame.columns and "model_id" in frame.columns:
        names = frame["name"].fillna(frame["model_id"]).astype(str)
        if names.groupby(frame["model_id"].astype(str)).nunique().max() <= 1 and (
            names.nunique() == frame["model_id"].nunique()
        ):
            return category_text(names)
    return category_text(frame["model_id"].astype(str))


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
    alt = load_altair()
    if measure not in LEADERBOARD_MEASURES:
        raise ConfigError(
            f"unknown leaderboard measure {measure!r} "
            f"(use one of: {', '.join(LEADERBOARD_MEASURES)})"
        )
    measured = column(measure)
    unit, good = measured.unit or "number", measured.good
    require_columns(leaderboard, ["model_id", measure], "leaderboard_chart")
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
    label = field_label(measure)
    base = alt.Chart(data).encode(
        y=alt.Y("model:N", sort=list(data["model"]), title=None),
        x=alt.X(
            field=measure,
            type="quantitative",
            title=axis_title(label, unit),
            axis=alt.Axis(format=axis_format(data[measure], unit)),
        ),
    )
    tips = [
        alt.Tooltip("model:N", title="Model"),
        alt.Tooltip("model_id:N", title="Model id"),
        alt.Tooltip("provider:N", title=column("provider").label),
        quantity_tooltip(measure, title=label, format=tooltip_format(data[measure], unit)),
    ]
    if "requests" in keep:
        tips.append(alt.Tooltip("requests:Q", title=column("requests").label, format=",.0f"))
    bars = base.mark_bar().encode(
        color=alt.Color("provider:N", title=column("provider").label), tooltip=tips
    )
    layers = [bars]
    if with_ci:
        tips += [
            alt.Tooltip("quality_ci_low:Q", title="95 % interval from", format=".3f"),
            alt.Tooltip("quality_ci_high:Q", title="95 % interval to", format=".3f"),
        ]
        bars = bars.encode(tooltip=tips)
        ci = base.mark_errorbar(ticks=True).encode(
            x=alt.X("quality_ci_low:Q", title=axis_title(label, unit)),
            x2="quality_ci_high:Q",
        )
        layers = [bars, ci]
    text = base.mark_text(align="left", dx=4, style="auterity-label").encode(text="label:N")
    if with_ci:
        text = text.encode(x="quality_ci_high:Q")
    subtitle = "Best first" if good != "neutral" else None
    return titled(alt.layer(*layers, text), title or label, subtitle)


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
    alt = load_altair()
    require_columns(daily, ["day", "model_id", "p50_latency_ms", "p95_latency_ms"], "latency chart")
    frame = daily.copy()
    frame["model"] = _model_names(frame)
    frame["day"] = wall_clock(frame["day"])
    long = frame.melt(
        id_vars=["day", "model"],
        value_vars=["p50_latency_ms", "p95_latency_ms"],
        var_name="percentile",
        value_name="latency_ms",
    )
    long["percentile"] = long["percentile"].str.replace("_latency_ms", "", regex=False)
    data = long[["day", "model", "percentile", "latency_ms"]]
    fmt = axis_format(data["latency_ms"], "ms")
    base = alt.Chart().encode(
        x=alt.X("day:T", title=None, axis=alt.Axis(format="%b %-d", labelAngle=0)),
        y=alt.Y(
            "latency_ms:Q",
            title=axis_title(column("latency_ms").label, "ms"),
            axis=alt.Axis(format=fmt),
        ),
        color=alt.Color(
            "percentile:N",
            title="Percentile",
            scale=alt.Scale(domain=["p50", "p95"]),
            legend=alt.Legend(symbolType="stroke"),
        ),
    )
    day_tip = alt.Tooltip("day:T", title=column("day").label, format="%b %-d, %Y")
    tips = [
        day_tip,
        alt.Tooltip("model:N", title="Model"),
        alt.Tooltip("percentile:N", title="Percentile"),
        alt.Tooltip(
            "latency_ms:Q", title=axis_title(column("latency_ms").label, "ms"), format=",.0f"
        ),
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
    return titled(chart, title or "Latency percentiles per model", "Successful requests only")


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
    alt = load_altair()
    cols = ["model_id", "cost_per_1k_ok", "quality_mean", "quality_ci_low", "quality_ci_high"]
    require_columns(leaderboard, cols, "quality_cost_scatter")
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
        title=axis_title(column("cost_per_1k_ok").label, "currency"),
        scale=alt.Scale(type="log") if log_x else alt.Scale(zero=False),
        axis=alt.Axis(format="$,.2~f"),
    )
    y_scale = alt.Scale(zero=False, padding=12)
    tips = [
        alt.Tooltip("model:N", title="Model"),
        alt.Tooltip("provider:N", title=column("provider").label),
        alt.Tooltip("cost_per_1k_ok:Q", title="Cost per 1k successful", format="$,.2f"),
        alt.Tooltip("quality_mean:Q", title="Quality", format=".3f"),
        alt.Tooltip("quality_ci_low:Q", title="95 % interval from", format=".3f"),
        alt.Tooltip("quality_ci_high:Q", title="95 % interval to", format=".3f"),
        alt.Tooltip("requests:Q", title=column("requests").label, format=",.0f"),
    ]
    base = alt.Chart(data).encode(x=x)
    bars = base.mark_errorbar(ticks=True).encode(
        y=alt.Y("quality_ci_low:Q", title=column("quality_mean").label, scale=y_scale),
        y2="quality_ci_high:Q",
        color=alt.Color("provider:N", title=column("provider").label),
    )
    points = base.mark_point(filled=True, opacity=0.9).encode(
        y=alt.Y("quality_mean:Q", title=column("quality_mean").label, scale=y_scale),
        color=alt.Color("provider:N", title=column("provider").label),
        size=alt.Size(
            "requests:Q", title=column("requests").label, scale=alt.Scale(range=[40, 400])
        ),
        tooltip=tips,
    )
    labels = base.mark_text(align="left", dx=9, dy=-7, style="auterity-label").encode(
        y="quality_mean:Q", text="model:N"
    )
    return titled(
        alt.layer(bars, points, labels),
        title or "Quality vs cost",
        "Up and to the left is better. Bars: 95 % interval of the mean quality.",
    )
