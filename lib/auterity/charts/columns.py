"""The one column table: what each output column means to people.

Every column the ModelHub analytics, the business analytics, the anomaly scan and the
insight tables return is declared here once: its label (axis titles, tooltips, table
headers), its unit (how :func:`auterity.charts.format_value` writes it) and which
direction of change is good news. Charts, notebooks, reports, emails and dashboards read
it instead of keeping their own tables.

Metric and dimension names of the metric catalog (``parameters/metrics.yml``) are not
repeated here: :func:`column` answers for them from the catalog, so a metric column
(``revenue``, ``conversion_rate``) gets the catalog's label, unit and direction. A name
declared here wins over the catalog (``requests`` is "Requests" in a model table, not the
catalog's "Model requests"). Any other name gets its own name, prettified, as label.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pandas as pd

from auterity.charts.formats import check_good, check_unit
from auterity.errors import AuterityError


@dataclass(frozen=True)
class Column:
    """What a column holds, for people.

    Parameters
    ----------
    name : str
        The column name, as the analytics return it.
    label : str
        How people see it: axis titles, tooltips, table headers.
    unit : str, optional
        One of :data:`auterity.charts.UNITS`; None for text, dates and values whose
        unit depends on the row (``current`` of a KPI table).
    good : {"up", "down", "neutral"}
        Which direction of change is good news.
    phrase : str
        The label inside a sentence ("error rate"); default the label with a lower-case
        first letter, unless it starts with an acronym ("PSI").

    Raises
    ------
    ConfigError
        Unknown unit or direction.
    """

    name: str
    label: str
    unit: str | None = None
    good: str = "neutral"
    phrase: str = ""

    def __post_init__(self) -> None:
        if self.unit is not None:
            check_unit(self.unit)
        check_good(self.good)
        if not self.phrase:
            acronym = self.label[1:2].isupper()
            phrase = self.label if acronym else self.label[:1].lower() + self.label[1:]
            object.__setattr__(self, "phrase", phrase)


def _table(*columns: Column) -> dict[str, Column]:
    """Columns by name."""
    return {c.name: c for c in columns}


MODELHUB_COLUMNS: Mapping[str, Column] = MappingProxyType(
    _table(
        # leaderboard and daily trend
        Column("model_id", "Model"),
        Column("name", "Model"),
        Column("provider", "Provider"),
        Column("day", "Day"),
        Column("requests", "Requests", "count"),
        Column("ok_requests", "Successful requests", "count"),
        Column("share_of_traffic", "Share of traffic", "percent"),
        Column("error_rate", "Error rate", "percent", "down"),
        Column("timeout_rate", "Timeout rate", "percent", "down"),
        Column("p50_latency_ms", "p50 latency", "ms", "down"),
        Column("p95_latency_ms", "p95 latency", "ms", "down"),
        Column("p99_latency_ms", "p99 latency", "ms", "down"),
        Column("input_tokens", "Input tokens", "tokens"),
        Column("output_tokens", "Output tokens", "tokens"),
        Column("cost", "Cost", "currency", "down"),
        Column("cost_per_1k_ok", "Cost per 1k successful requests", "currency", "down"),
        Column("quality_mean", "Quality (mean score)", "number", "up", phrase="quality"),
        Column("quality_ci_low", "Quality, 95 % interval from", "number"),
        Column("quality_ci_high", "Quality, 95 % interval to", "number"),
        Column("quality_n", "Scored requests", "count"),
        # costs
        Column("feature", "Feature"),
        Column("cost_per_request", "Cost per request", "currency", "down"),
        Column("share_of_cost", "Share of cost", "percent"),
        # SLOs
        Column("latency_percentile", "Latency percentile"),
        Column("latency_target_ms", "Latency target", "ms"),
        Column("error_rate_target", "Error rate target", "percent"),
        Column("latency_ms", "Latency", "ms", "down"),
        Column("days", "Days", "count"),
        Column("days_met", "Days met", "count", "up"),
        Column("compliance", "Compliance", "percent", "up"),
        Column("status", "Status"),
        # drift
        Column("psi", "PSI", "number", "down"),
        Column("ks_statistic", "KS statistic", "number", "down"),
        Column("ks_pvalue", "KS p-value", "number"),
        Column("n_reference", "Reference sample", "count"),
        Column("n_current", "Current sample", "count"),
        Column("level", "Drift level"),
        # savings
        Column("current_model", "Current model"),
        Column("candidate_model", "Candidate model"),
        Column("current_quality", "Current quality", "number", "up"),
        Column("candidate_quality", "Candidate quality", "number", "up"),
        Column("quality_gap", "Quality gap", "number", "down"),
        Column("current_cost_per_request", "Current cost per request", "currency", "down"),
        Column("candidate_cost_per_request", "Candidate cost per request", "currency", "down"),
        Column("current_requests", "Current requests", "count"),
        Column("est_monthly_savings", "Estimated monthly savings", "currency", "up"),
        Column("evidence", "Evidence"),
        # real time
        Column("requests_per_s", "Requests / s", "number"),
    )
)
"""The columns of :mod:`auterity.modelhub`'s outputs (leaderboard, daily trend, costs,
SLOs, drift, savings) and of the real-time view."""

BUSINESS_COLUMNS: Mapping[str, Column] = MappingProxyType(
    _table(
        # metric tables (metrics.query, business.kpi_summary)
        Column("period", "Period"),
        Column("metric", "Metric"),
        Column("current", "Current"),
        Column("previous", "Previous"),
        # funnel
        Column("step", "Step"),
        Column("count", "Count", "count"),
        Column("conversion_from_previous", "From previous step", "percent", "up"),
        Column("conversion_from_start", "From first step", "percent", "up"),
        Column("drop_off", "Drop-off", "percent", "down"),
        # cohorts
        Column("cohort", "Signup cohort"),
        Column("size", "Cohort size", "count"),
        # breakdowns and movers
        Column("share", "Share of total", "percent"),
        Column("delta", "Change"),
        Column("contribution", "Contribution"),
        Column("share_of_change", "Share of change", "percent"),
    )
)
"""The columns of :mod:`auterity.business`'s and the metric layer's outputs (metric values
themselves are described by the metric catalog)."""

FINDING_COLUMNS: Mapping[str, Column] = MappingProxyType(
    _table(
        # anomaly.windows_table
        Column("start", "Start"),
        Column("end", "End"),
        Column("direction", "Direction"),
        Column("severity", "Severity"),
        Column("score", "Score", "number"),
        Column("peak_value", "Peak value", "number"),
        Column("expected_value", "Expected value", "number"),
        Column("points", "Points"),
        # present.insight_table, present.skipped_table
        Column("rank", "Rank"),
        Column("kind", "Kind"),
        Column("finding", "Finding"),
        Column("importance", "Importance", "number"),
        Column("why", "Why"),
    )
)
"""The columns of anomaly windows and insight tables."""

COLUMNS: Mapping[str, Column] = MappingProxyType(
    {**MODELHUB_COLUMNS, **BUSINESS_COLUMNS, **FINDING_COLUMNS}
)
"""Every declared column, by name: the one column table."""

COLUMN_UNITS: Mapping[str, str] = MappingProxyType(
    {
        name: c.unit
        for name, c in MODELHUB_COLUMNS.items()
        if c.unit is not None and c.unit != "number"
    }
)
"""The unit of each ModelHub column whose values have a house style (amounts, shares,
durations, counts), for tables shown to people on the command line; plain numbers
(quality, PSI) keep the table's own number format."""


def column(name: str) -> Column:
    """What a column holds: from the column table, else the metric catalog, else its name.

    Parameters
    ----------
    name : str
        A column name.

    Returns
    -------
    Column
        The declared column; for a catalog metric its label, unit and good direction;
        for a catalog dimension its label; else a column labelled with the name
        prettified (``event_count`` -> "Event count"), without unit, neutral. A catalog
        that does not load is ignored: labels must never break a chart or a table.
    """
    if name in COLUMNS:
        return COLUMNS[name]
    return _catalog().get(name) or Column(name, str(name).replace("_", " ").capitalize())


def label(name: str) -> str:
    """The label of a column (see :func:`column`).

    Parameters
    ----------
    name : str
        A column name.

    Returns
    -------
    str
        For example ``"p95 latency"`` for ``p95_latency_ms``, ``"Revenue"`` for the
        catalog metric ``revenue``.
    """
    return column(name).label


def unit(name: str) -> str | None:
    """The unit of a column (see :func:`column`).

    Parameters
    ----------
    name : str
        A column name.

    Returns
    -------
    str or None
        One of :data:`auterity.charts.UNITS`, or None for a column without one.
    """
    return column(name).unit


def good(name: str) -> str:
    """Which direction of change is good news for a column (see :func:`column`).

    Parameters
    ----------
    name : str
        A column name.

    Returns
    -------
    str
        ``"up"``, ``"down"`` or ``"neutral"``.
    """
    return column(name).good


def phrase(name: str) -> str:
    """The label of a column as written inside a sentence (see :func:`column`).

    Parameters
    ----------
    name : str
        A column name.

    Returns
    -------
    str
        For example ``"error rate"`` for ``error_rate``, ``"quality"`` for
        ``quality_mean``.
    """
    return column(name).phrase


def units(names: Iterable[str]) -> dict[str, str]:
    """The units of the columns that have one, for :func:`auterity.present.table_html`.

    Parameters
    ----------
    names : iterable of str
        Column names, or a DataFrame (iterating one gives its column names).

    Returns
    -------
    dict
        ``{name: unit}`` of the names whose column has a unit, in the given order.
    """
    found = {str(name): unit(str(name)) for name in names}
    return {name: u for name, u in found.items() if u is not None}


def labels(names: Iterable[str]) -> dict[str, str]:
    """The headers of a table: each column's label, unique within the table.

    Parameters
    ----------
    names : iterable of str
        Column names, or a DataFrame (iterating one gives its column names).

    Returns
    -------
    dict
        ``{name: label}``; when two columns share a label (``model_id`` and ``name``
        are both "Model"), the later one gets its name in brackets: "Model (name)".
    """
    out: dict[str, str] = {}
    for name in map(str, names):
        text = label(name)
        out[name] = f"{text} ({name})" if text in out.values() else text
    return out


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a frame with its columns' labels as column names, for showing it.

    Parameters
    ----------
    frame : pandas.DataFrame
        Any frame; its values are left as they are (format them first, e.g. with
        :func:`auterity.present.format_table` and :func:`units`).

    Returns
    -------
    pandas.DataFrame
        The frame with columns renamed by :func:`labels`.
    """
    return frame.rename(columns=labels(frame.columns))


def _catalog() -> Mapping[str, Column]:
    """The catalog's metrics and dimensions as columns ({} when the catalog does not load)."""
    # Imported here, not on top: the metric layer pulls SQLAlchemy, and importing charts
    # must stay light (a test holds it to that).
    from auterity import metrics

    try:
        files = metrics.default_files()
        key = tuple((str(p), p.stat().st_mtime_ns if p.is_file() else 0) for p in files)
        return _catalog_columns(key)
    except AuterityError:  # a broken catalog must not break charts or tables
        return {}


@functools.lru_cache(maxsize=4)
def _catalog_columns(files: tuple[tuple[str, int], ...]) -> Mapping[str, Column]:
    """Columns of the catalog's metrics and dimensions (cached per file set and mtime)."""
    from auterity import metrics  # see _catalog

    catalog = metrics.load_catalog([Path(path) for path, _ in files])
    found = {name: Column(name, d.label) for name, d in catalog.dimensions.items()}
    found.update(
        {name: Column(name, m.label, m.unit, m.good) for name, m in catalog.metrics.items()}
    )
    return MappingProxyType(found)
