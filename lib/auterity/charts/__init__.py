"""Charts: one project theme, one set of number formats, one column table, offline rendering.

Every chart of the product (notebooks, nbconvert HTML/PDF reports, Voila dashboards,
emails) is an Altair chart built here from the DataFrames the library returns; the
builders never query the warehouse. Importing this package is cheap: Altair loads on the
first chart, ``vl_convert`` on the first render, and ``import auterity`` never imports it.

The modules, one concern each (their names are re-exported here, so
``from auterity import charts; charts.trend(...)`` is all a notebook needs):

* :mod:`~auterity.charts.theme`: the light and dark themes (:func:`theme_config`,
  :func:`use_theme`) and Altair loaded with them (:func:`load_altair`).
* :mod:`~auterity.charts.formats`: number formats for axes (:func:`d3_format`) and text
  (:func:`format_value`, :func:`format_delta`).
* :mod:`~auterity.charts.columns`: the one column table (label, unit and good direction of
  every output column), read by charts, tables, notebooks, emails and dashboards.
* :mod:`~auterity.charts.encoding`: what the builders share (titles, labels, tooltips).
* :mod:`~auterity.charts.trends`: :func:`trend`, :func:`kpi_sparkline`,
  :func:`anomaly_chart`, :func:`forecast_chart`.
* :mod:`~auterity.charts.business`: :func:`cohort_heatmap`, :func:`funnel_chart`,
  :func:`breakdown_bars`, :func:`movers_chart`.
* :mod:`~auterity.charts.models`: :func:`leaderboard_chart`,
  :func:`latency_percentiles_chart`, :func:`quality_cost_scatter`.
* :mod:`~auterity.charts.render`: specs, PNG/SVG, offline HTML and the offline notebook
  renderer (:func:`to_dict`, :func:`to_png`, :func:`chart_html`,
  :func:`enable_offline_notebook_rendering`...).
"""

from auterity.charts import columns
from auterity.charts.business import breakdown_bars, cohort_heatmap, funnel_chart, movers_chart
from auterity.charts.columns import COLUMN_UNITS, Column
from auterity.charts.formats import (
    DASH,
    GOOD,
    MINUS,
    UNITS,
    currency_prefix,
    d3_format,
    format_delta,
    format_value,
)
from auterity.charts.models import (
    LEADERBOARD_MEASURES,
    latency_percentiles_chart,
    leaderboard_chart,
    quality_cost_scatter,
)
from auterity.charts.render import (
    RENDERER,
    chart_html,
    enable_offline_notebook_rendering,
    from_spec,
    offline_html_head,
    renderer_state,
    standalone_html,
    to_dict,
    to_png,
    to_svg,
    vl_version,
)
from auterity.charts.theme import FONT, THEMES, load_altair, theme_config, use_theme
from auterity.charts.trends import anomaly_chart, forecast_chart, kpi_sparkline, trend

__all__ = [
    "COLUMN_UNITS",
    "DASH",
    "FONT",
    "GOOD",
    "LEADERBOARD_MEASURES",
    "MINUS",
    "RENDERER",
    "THEMES",
    "UNITS",
    "Column",
    "anomaly_chart",
    "breakdown_bars",
    "chart_html",
    "cohort_heatmap",
    "columns",
    "currency_prefix",
    "d3_format",
    "enable_offline_notebook_rendering",
    "forecast_chart",
    "format_delta",
    "format_value",
    "from_spec",
    "funnel_chart",
    "kpi_sparkline",
    "latency_percentiles_chart",
    "leaderboard_chart",
    "load_altair",
    "movers_chart",
    "offline_html_head",
    "quality_cost_scatter",
    "renderer_state",
    "standalone_html",
    "theme_config",
    "to_dict",
    "to_png",
    "to_svg",
    "trend",
    "use_theme",
    "vl_version",
]
