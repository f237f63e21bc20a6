"""``/api/unified``: what links the business and the models - insight cards, forecasts and
anomalies of any metric of the catalogue."""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from auterity import anomaly, insights, metrics, present, timeseries
from auterity import forecast as fc
from auterity.api.auth import Caller
from auterity.api.common import (
    API_PREFIX,
    ERRORS,
    Answer,
    BadParameter,
    Paged,
    answer,
    check_dates,
    granted,
    state,
)
from auterity.errors import AuterityError

router = APIRouter(prefix=f"{API_PREFIX}/unified", tags=["unified"], responses=ERRORS)
Both = Annotated[Caller, granted("business", "modelhub")]

INSIGHT_DAYS = 90
FORECAST_HISTORY_DAYS = 365
ANOMALY_DAYS = 90
MAX_HORIZON = {"day": 366, "week": 104, "month": 36}
"""The longest horizon per grain: a year or so ahead."""

Grain = Annotated[Literal["day", "week", "month"], Query(description="The series' grain.")]
Start = Annotated[date | None, Query(description="First local date of the history.")]
End = Annotated[date | None, Query(description="Local date after the last (default: tomorrow).")]


def _history(
    request: Request, start: date | None, end: date | None, days: int
) -> tuple[date, date]:
    """The history's dates: ``end`` default tomorrow, ``start`` default ``days`` before."""
    check_dates(start=start, end=end)
    end = end or present.resolve_period("last_28_days", url=state(request).url)[1]
    start = start or end - timedelta(days=days)
    if end <= start:
        raise BadParameter("end", f"end ({end}) must be after start ({start})")
    return start, end


def _metric(name: str) -> str:
    if name not in metrics.load_catalog().metrics:
        raise BadParameter(
            "metric", f"unknown metric {name!r} (GET {API_PREFIX}/analytics/metrics lists them)"
        )
    return name


@router.get("/insights", response_model=Answer)
def insight_cards(
    request: Request,
    who: Both,
    paged: Paged,
    start: Start = None,
    end: End = None,
) -> Response:
    """Significant findings of a period (at least 8 weeks; default the last 90 days) as
    ranked insight cards, each a sentence with its evidence and a Vega-Lite chart. The
    cards are paged; ``skipped`` says which kinds could not be checked and why."""
    lo, hi = _history(request, start, end, INSIGHT_DAYS)
    if (hi - lo).days < 56:
        raise BadParameter("start", f"insights need at least 8 weeks ({lo} to {hi} is less)")
    newest = present.data_end(state(request).url)
    if lo >= newest:
        raise BadParameter("start", f"no data from {lo} on (the newest is from before {newest})")
    url = state(request).url
    return answer(
        request,
        who,
        lambda: insights.run(lo, hi, url=url).to_dict(),
        paged=paged,
        paged_key="cards",
    )


@router.get("/forecast/{metric}", response_model=Answer)
def forecast(
    request: Request,
    who: Both,
    metric: str,
    horizon: Annotated[int, Query(ge=1, description="Periods ahead (a year at most).")],
    grain: Grain = "day",
    start: Start = None,
    end: End = None,
    backtest: Annotated[bool, Query(description="Also score the model on the past.")] = True,
) -> Response:
    """A metric's forecast with its 80 % interval and its track record (rolling-origin
    backtest against naive and seasonal naive), from a year of history by default."""
    _metric(metric)
    if horizon > MAX_HORIZON[grain]:
        raise BadParameter(
            "horizon", f"horizon {horizon} is over {MAX_HORIZON[grain]} {grain}s (a year or so)"
        )
    lo, hi = _history(request, start, end, FORECAST_HISTORY_DAYS)
    url = state(request).url

    def compute() -> dict[str, Any]:
        frame = timeseries.metric_series(metric, start=lo, end=hi, grain=grain, url=url)
        predicted = fc.forecast(frame, horizon=horizon, grain=grain)
        track: dict[str, Any] | None = None
        if backtest:
            try:
                track = fc.backtest(frame, horizon=horizon, grain=grain)
            except AuterityError as exc:
                track = {"skipped": str(exc)}
        return {
            "metric": metric,
            "grain": grain,
            "horizon": horizon,
            "forecast": fc.to_records(predicted),
            "backtest": track,
        }

    return answer(request, who, compute)


@router.get("/anomalies/{metric}", response_model=Answer)
def anomalies(
    request: Request,
    who: Both,
    metric: str,
    grain: Grain = "day",
    start: Start = None,
    end: End = None,
    threshold: Annotated[
        float, Query(gt=0, le=50, description="Score (robust deviations) to flag.")
    ] = anomaly.DEFAULT_THRESHOLD,
) -> Response:
    """Anomaly windows of a metric (causal: each point judged only by the points before
    it, as a live alert would), over the last 90 days by default."""
    _metric(metric)
    lo, hi = _history(request, start, end, ANOMALY_DAYS)
    url = state(request).url

    def compute() -> dict[str, Any]:
        frame = timeseries.metric_series(metric, start=lo, end=hi, grain=grain, url=url)
        return {"metric": metric, **anomaly.detect(frame, threshold=threshold).to_dict()}

    return answer(request, who, compute)
