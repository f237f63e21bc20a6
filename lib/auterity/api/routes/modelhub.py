"""``/api/modelhub``: the AI/ML model numbers of the ModelHub dashboard and reports."""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from auterity import modelhub
from auterity.api.auth import Caller
from auterity.api.common import (
    API_PREFIX,
    ERRORS,
    Answer,
    BadParameter,
    Dates,
    Paged,
    answer_async,
    check_dates,
    granted,
    state,
)

router = APIRouter(prefix=f"{API_PREFIX}/modelhub", tags=["modelhub"], responses=ERRORS)
ModelHub = Annotated[Caller, granted("modelhub")]
Models = Annotated[list[str] | None, Query(description="Only these model ids (repeatable).")]


@router.get("/leaderboard", response_model=Answer)
async def leaderboard(
    request: Request, who: ModelHub, dates: Dates, paged: Paged, model: Models = None
) -> Response:
    """One row per model: volume, reliability, latency percentiles, cost, quality."""
    url = state(request).url
    return await answer_async(
        request,
        who,
        lambda: modelhub.leaderboard(dates.start, dates.end, models=model or None, url=url),
        paged=paged,
    )


@router.get("/slo", response_model=Answer)
async def slo(request: Request, who: ModelHub, dates: Dates, paged: Paged) -> Response:
    """SLO compliance per model (targets from parameters/slos.yml), worst first."""
    url = state(request).url
    return await answer_async(
        request, who, lambda: modelhub.slo_report(dates.start, dates.end, url=url), paged=paged
    )


@router.get("/drift", response_model=Answer)
async def drift(
    request: Request,
    who: ModelHub,
    dates: Dates,
    paged: Paged,
    reference_start: Annotated[
        date | None, Query(description="First date of the reference (default: the period before).")
    ] = None,
    reference_end: Annotated[
        date | None, Query(description="Date after the reference's last (default: start).")
    ] = None,
    model: Annotated[str | None, Query(description="Only this model.")] = None,
) -> Response:
    """Distribution drift (PSI, KS) of tokens, latency and quality per model: the period
    against a reference period (default: the same length just before)."""
    check_dates(reference_start=reference_start, reference_end=reference_end)
    length = dates.end - dates.start
    ref_end = reference_end or dates.start
    ref_start = reference_start or ref_end - length
    if ref_end <= ref_start:
        raise BadParameter(
            "reference_end",
            f"reference_end ({ref_end}) must be after reference_start ({ref_start})",
        )
    url = state(request).url
    return await answer_async(
        request,
        who,
        lambda: modelhub.drift(
            (ref_start, ref_end), (dates.start, dates.end), model=model, url=url
        ),
        paged=paged,
    )


@router.get("/savings", response_model=Answer)
async def savings(request: Request, who: ModelHub, dates: Dates, paged: Paged) -> Response:
    """What moving each feature to a cheaper model of no worse quality would have saved."""
    url = state(request).url
    return await answer_async(
        request, who, lambda: modelhub.savings(dates.start, dates.end, url=url), paged=paged
    )


@router.get("/costs", response_model=Answer)
async def costs(
    request: Request,
    who: ModelHub,
    dates: Dates,
    paged: Paged,
    by: Annotated[Literal["feature", "customer"], Query(description="Break down by.")] = "feature",
    model: Models = None,
) -> Response:
    """Model cost by product feature, or by customer (the top customers by cost; names and
    emails as pseudonyms for roles without PII)."""
    url = state(request).url
    if by == "feature":
        return await answer_async(
            request,
            who,
            lambda: modelhub.cost_by_feature(dates.start, dates.end, models=model or None, url=url),
            paged=paged,
        )
    return await answer_async(
        request,
        who,
        lambda: modelhub.cost_by_customer(
            dates.start, dates.end, limit=1000, models=model or None, url=url
        ),
        paged=paged,
    )
