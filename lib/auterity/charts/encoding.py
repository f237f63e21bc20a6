"""What every chart builder shares: column checks, titles, labels, tooltips, dates.

Category values, titles and tooltip titles come from the warehouse (segments, model ids,
features). Vega draws them as text and its tooltip escapes HTML, but Vega-Lite compiles
titles and custom sort orders into Vega expressions, so every such text passes
:func:`auterity.escape.vega_text` and every column name :func:`auterity.escape.vega_field`
(see :mod:`auterity.escape`); no expression is built from a data value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from auterity import config
from auterity.charts import columns
from auterity.charts.formats import is_missing
from auterity.charts.theme import load_altair
from auterity.errors import ConfigError
from auterity.escape import vega_field, vega_text


def require_columns(frame: pd.DataFrame, names: Iterable[str], what: str) -> None:
    """Check that a frame has the columns a chart needs.

    Parameters
    ----------
    frame : pandas.DataFrame
        The chart's data.
    names : iterable of str
        The columns it needs.
    what : str
        The chart, for the message.

    Raises
    ------
    ConfigError
        Naming the missing columns and the ones the frame has.
    """
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"{what}: the frame has no column(s) {', '.join(map(repr, missing))} "
            f"(it has: {', '.join(map(str, frame.columns))})"
        )


def field_label(name: str) -> str:
    """A column's label (:func:`auterity.charts.columns.label`), safe for Vega-Lite titles.

    Parameters
    ----------
    name : str
        A column name.

    Returns
    -------
    str
        The label through :func:`auterity.escape.vega_text`.
    """
    return vega_text(columns.label(name))


def axis_title(label: str, unit: str) -> str:
    """An axis title with its unit.

    Parameters
    ----------
    label : str
        The value's label.
    unit : str
        Its unit: milliseconds and currency are named (``p95 latency (ms)``,
        ``Revenue (USD)``, the code of ``AUTERITY_CURRENCY``); others are not.

    Returns
    -------
    str
        The title, safe for Vega-Lite.
    """
    label = vega_text(label)
    if unit == "ms":
        return f"{label} (ms)"
    if unit == "currency":
        return f"{label} ({config.get_settings().currency})"
    return label


def category_text(values: pd.Series) -> pd.Series:
    """Category values as text Vega-Lite can put into a sort order or a title.

    Parameters
    ----------
    values : pandas.Series
        Category values from the data.

    Returns
    -------
    pandas.Series
        Each value through :func:`auterity.escape.vega_text`; missing values stay missing.
    """
    return values.map(lambda v: v if is_missing(v) else vega_text(v))


def tooltip_title(text: str) -> str:
    """A tooltip title taken from data.

    Parameters
    ----------
    text : str
        The title (a series name).

    Returns
    -------
    str
        The text, safe for Vega-Lite; vega-tooltip draws the keys "title" and "image"
        itself (a heading; an image URL), so those two get an invisible no-break space.
    """
    text = vega_text(text)
    return f"{text}\u00a0" if text in ("title", "image") else text


def wall_clock(values: pd.Series) -> pd.Series:
    """Timestamps without a time zone (wall-clock time), so browsers do not shift days.

    Parameters
    ----------
    values : pandas.Series
        Dates or timestamps, with or without a time zone.

    Returns
    -------
    pandas.Series
        Naive timestamps showing the same local time.
    """
    out = pd.to_datetime(values)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_localize(None)
    return out


def titled(chart: Any, title: str | None, subtitle: str | None = None) -> Any:
    """A chart with a title (and subtitle) if given.

    Parameters
    ----------
    chart : altair chart
        The chart.
    title, subtitle : str, optional
        The texts (made safe for Vega-Lite); no title leaves the chart as it is.

    Returns
    -------
    altair chart
        The titled chart.
    """
    if not title:
        return chart
    alt = load_altair()
    params = {"text": vega_text(title)}
    if subtitle:
        params["subtitle"] = vega_text(subtitle)
    return chart.properties(title=alt.TitleParams(**params))


def quantity_tooltip(name: str, **kwargs: Any) -> Any:
    """A quantitative tooltip for a column.

    Parameters
    ----------
    name : str
        The column.
    **kwargs
        More ``altair.Tooltip`` settings (``title``, ``format``).

    Returns
    -------
    altair.Tooltip
    """
    return load_altair().Tooltip(field=vega_field(name), type="quantitative", **kwargs)


def time_tooltip(name: str, time_format: str = "%b %-d, %Y") -> Any:
    """A temporal tooltip for a column, titled with its label.

    Parameters
    ----------
    name : str
        The time column.
    time_format : str
        d3 time format of the value.

    Returns
    -------
    altair.Tooltip
    """
    return load_altair().Tooltip(
        field=vega_field(name), type="temporal", title=field_label(name), format=time_format
    )
