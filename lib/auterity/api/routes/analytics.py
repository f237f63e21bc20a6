"""``/api/analytics``: the business numbers of the business dashboard and reports."""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from auterity import business, metrics
from auterity.api.auth import Caller
from auterity.api.common import (
    API_PREFIX,
    ERRORS,
    Answer,
    BadParameter,
    Dates,
    Paged,
    answer_async,
    granted,
    state,
)

router = APIRouter(prefix=f"{API_PREFIX}/analytics", tags=["analytics"], responses=ERRORS)
Business = Annotated[Caller, granted("business")]


@router.get("/kpis", response_model=Answer)
async def kpis(
    request: Request,
    who: Business,
    dates: Dates,
    region: str | None = None,
    segment: str | None = None,
    channel: str | None = None,
) -> Response:
    """The KPI summary of a period with deltas against the previous period and last year."""
    url = state(request).url
    where = {k: v for k, v in {"region": region, "segment": segment, "channel": channel}.items()}
    filters = {k: v for k, v in where.items() if v}
    return await answer_async(
        request,
        who,
        lambda: business.kpi_summary(dates.start, dates.end, where=filters or None, url=url),
    )


@router.get("/metrics", response_model=Answer)
async def metric_list(request: Request, who: Business, paged: Paged) -> Response:
    """Every metric of the catalogue: unit, good direction, allowed dimensions."""
    return await answer_async(request, who, metrics.describe, paged=paged)


@router.get("/metrics/{name}", response_model=Answer)
async def metric(
    request: Request,
    who: Business,
    name: str,
    dates: Dates,
    paged: Paged,
    grain: Annotated[str, Query(pattern="^(day|week|month|total)$")] = "day",
    by: Annotated[list[str] | None, Query(description="Dimensions to break down by.")] = None,
    where: Annotated[list[str] | None, Query(description="Filters DIM=VALUE.")] = None,
) -> Response:
    """One metric as a time series (or a total), broken down and filtered."""
    catalog = metrics.load_catalog()
    if name not in catalog.metrics:
        raise BadParameter(
            "name", f"unknown metric {name!r} (GET {API_PREFIX}/analytics/metrics lists them)"
        )
    filters: dict[str, list[str]] = {}
    for item in where or []:
        dim, sep, value = item.partition("=")
        if not sep or not dim.strip() or not value.strip():
            raise BadParameter("where", f"where {item!r}: expected DIM=VALUE")
        filters.setdefault(dim.strip(), []).append(value.strip())
    allowed = set(catalog.allowed_dimensions(name))
    for dim in [*(by or []), *filters]:
        if dim not in allowed:
            parameter = "by" if dim in (by or []) else "where"
            raise BadParameter(
                parameter,
                f"metric {name!r} has no dimension {dim!r} "
                f"(it has: {', '.join(sorted(allowed)) or 'none'})",
            )
    url = state(request).url
    return await answer_async(
        request,
        who,
        lambda: metrics.query(
            [name],
            start=dates.start,
            end=dates.end,
            grain=None if grain == "total" else grain,
            by=list(by or []),
            where=filters or None,
            url=url,
        ),
        paged=paged,
    )


@router.get("/cohorts", response_model=Answer)
async def cohorts(
    request: Request,
    who: Business,
    dates: Dates,
    paged: Paged,
    max_age: Annotated[int, Query(ge=1, le=36, description="Months of age to follow.")] = 12,
) -> Response:
    """Monthly signup cohorts: ``cohort`` (month start), ``size`` and the share still
    active at each month of age ``"0"`` .. ``max_age`` (null for months not yet reached)."""
    url = state(request).url
    return await answer_async(
        request,
        who,
        lambda: business.cohort_retention(
            dates.start, dates.end, max_age=max_age, url=url
        ).reset_index(),
        paged=paged,
    )


@router.get("/funnel", response_model=Answer)
async def funnel(request: Request, who: Business, dates: Dates) -> Response:
    """The conversion funnel of a period: visitors at each step and step conversion."""
    url = state(request).url
    return await answer_async(
        request, who, lambda: business.funnel(dates.start, dates.end, url=url)
    )
