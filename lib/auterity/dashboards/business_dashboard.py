"""The business dashboard: KPI tiles with sparklines, trend, funnel, cohorts, top movers,
top customers.

Filters: date range, trend grain, region, segment and sales channel.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from auterity import business as business_data
from auterity import charts, metrics, present
from auterity.dashboards.preheat import launch
from auterity.dashboards.widgets import (
    ALL,
    Dashboard,
    View,
    initial_period,
    load_ipywidgets,
    log,
)
from auterity.errors import ConfigError

TOP_CUSTOMERS = 10
"""Customers in the "Top customers" table (names and emails only for roles with PII;
pseudonyms for the others, by the row scope)."""
TOP_CUSTOMER_UNITS = {"revenue": "currency", "orders": "count"}
TOP_CUSTOMER_LABELS = {
    "name": "Customer",
    "email": "Email",
    "region": "Region",
    "segment": "Segment",
    "revenue": "Revenue",
    "orders": "Orders",
}


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
        funnel, cohorts, top movers, top customers (``business.top_customers``: names and
        emails as the reader's role may see them).
    """
    if end <= start:
        raise ConfigError(f"the end date ({end}) must be after the start date ({start})")
    where = _where(region, segment, channel)
    kpis = business_data.kpi_summary(start, end, where=where, tz=tz, url=url)
    daily = business_data.kpi_daily(start, end, where=where, tz=tz, url=url)
    trend = metrics.query(
        ["revenue", "orders"], start=start, end=end, grain=grain, where=where, tz=tz, url=url
    )
    funnel = business_data.funnel(start, end, tz=tz, url=url)
    retention = business_data.cohort_retention(
        end - timedelta(days=365), end, max_age=11, tz=tz, url=url
    )
    by = next(d for d in ("segment", "region", "channel", "country") if d not in where)
    movers = business_data.top_movers("revenue", by, (start, end), where=where, tz=tz, url=url)
    top = business_data.top_customers(start, end, n=TOP_CUSTOMERS, where=where, tz=tz, url=url)
    kpi_table = kpis[["metric", "label", "unit", "current", "previous", "previous_delta_pct"]]
    return View(
        kpis=kpi_table,
        frames={
            "kpis": kpi_table,
            "revenue_trend": trend,
            "funnel": funnel,
            "cohort_retention": retention,
            "top_movers": movers,
            "top_customers": top,
        },
        sections={
            "top_customers": present.table_html(
                top.drop(columns=["customer_id"]), TOP_CUSTOMER_UNITS, labels=TOP_CUSTOMER_LABELS
            )
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
        w = load_ipywidgets()
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
        self._section("top_customers", f"Top {TOP_CUSTOMERS} customers by revenue", chart=False)
        self.refresh()

    def _dimension_values(self) -> tuple[list[str], list[str], list[str]]:
        """Regions, segments and sales channels for the drop-downs (empty on failure)."""
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
    return launch(
        lambda: BusinessDashboard(
            *initial_period(period, start, end, timezone, url),
            grain=grain,
            tz=timezone or None,
            theme=theme,
            url=url or None,
        )
    )
