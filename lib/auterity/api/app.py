"""The API application: routes, sign-in, errors, caching headers.

Every data route answers ``{"data": ..., "meta": {...}}`` where ``meta`` says who it was
read as, the data's freshness (newest event time in the warehouse), the data version,
whether every read came from the result cache, and for lists the page. The same facts go
in headers: ``ETag`` (a hash of the data version, the caller and the request, so a
polling client sending ``If-None-Match`` gets ``304 Not Modified`` until new data
lands), ``X-Data-Freshness`` and ``X-Cache: hit|miss``.

Errors are JSON ``{"error": message, "parameter": name}``: 400 for a bad parameter (an
unknown metric or dimension, a bad date, an end before the start), 401 without or with
wrong credentials (``WWW-Authenticate``; locked users also get ``Retry-After``), 503
when the database is unreachable, 500 with no detail for anything else (details in
the log). Never a traceback.
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations, some of
# which name aliases local to create_app
import hashlib
import logging
import threading
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from auterity import __version__, _json, access, business, config, metrics, modelhub, present
from auterity.api.auth import Authenticator, Caller, Unauthorized
from auterity.errors import AuterityError, ConfigError, DatabaseUnavailable
from auterity.redact import mask_secrets
from auterity.warehouse import cache, connect, writes

log = logging.getLogger("auterity.api")

API_PREFIX = "/api"
MAX_LIMIT = 1000
"""The largest page a list returns."""
DEFAULT_LIMIT = 100


class Meta(BaseModel):
    """What every data answer says about itself."""

    as_user: str | None = Field(description="Whose role shaped the answer (None: unrestricted).")
    freshness: datetime | None = Field(description="Newest event time in the warehouse (UTC).")
    data_version: str | None = Field(description="Changes whenever data lands.")
    cached: bool = Field(description="Every read came from the result cache.")
    total: int | None = Field(None, description="Rows in the whole list (lists only).")
    limit: int | None = None
    offset: int | None = None


class Answer(BaseModel):
    """A data answer: rows (or an object) and what it is."""

    data: Any
    meta: Meta


class Problem(BaseModel):
    """An error."""

    error: str
    parameter: str | None = None


class Health(BaseModel):
    """Whether the API can answer."""

    status: str
    database: str
    newest_data: datetime | None
    version: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "A bad parameter (named in `parameter`)."},
    401: {"model": Problem, "description": "No or wrong credentials."},
    503: {"model": Problem, "description": "The database is unreachable."},
}


class BadParameter(AuterityError):
    """A request parameter the API refuses (HTTP 400 naming it)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def _freshness_for(version: str | None, url: str | None, known: dict[str, Any]) -> Any:
    """The newest event time for a data version (computed once per version)."""
    key = version or ""
    if key not in known:
        known.clear()  # only the current version matters
        known[key] = writes.data_freshness(url)
    return known[key]


def create_app(
    *, mode: str | None = None, token: str | None = None, url: str | None = None
) -> FastAPI:
    """The API as an ASGI application.

    Parameters
    ----------
    mode : {"users", "token"}, optional
        How callers sign in (default: ``users`` once the warehouse has users, the same
        rule as the dashboard server, :func:`auterity.access.sign_in_mode`).
    token : str, optional
        The token of ``token`` mode (default ``AUTERITY_DASHBOARD_TOKEN``, else random).
    url : str, optional
        Warehouse URL (default ``AUTERITY_DB_URL``).
    """
    mode = mode or access.sign_in_mode()
    token = token or config.value(config.ENV_DASHBOARD_TOKEN) or None
    authenticator = Authenticator(mode, token, url)
    app = FastAPI(
        title="Auterity Analytics API",
        version=__version__,
        description="Business and ModelHub analytics as JSON, read as the signed-in user.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.authenticator = authenticator
    app.state.url = url
    freshness_known: dict[str, Any] = {}
    freshness_lock = threading.Lock()

    # -- errors ---------------------------------------------------------------------
    @app.exception_handler(Unauthorized)
    async def _unauthorized(_request: Request, exc: Unauthorized) -> JSONResponse:
        headers = {"WWW-Authenticate": authenticator.scheme_hint().split(" ")[0]}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(int(exc.retry_after) + 1)
        return JSONResponse({"error": str(exc)}, status_code=401, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")]
        parameter = where[-1] if where else None
        message = f"{parameter}: {first.get('msg', 'invalid')}" if parameter else "bad request"
        return JSONResponse({"error": message, "parameter": parameter}, status_code=400)

    @app.exception_handler(DatabaseUnavailable)
    async def _database(_request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("database unavailable: %s", mask_secrets(str(exc)))
        return JSONResponse({"error": "the database is unavailable right now"}, status_code=503)

    @app.exception_handler(ConfigError)
    async def _misconfigured(_request: Request, exc: ConfigError) -> JSONResponse:
        log.error("server configuration: %s", mask_secrets(str(exc)))
        body = {"error": "the server is misconfigured; the details are in the server log"}
        return JSONResponse(body, status_code=500)

    @app.exception_handler(AuterityError)
    async def _bad(_request: Request, exc: AuterityError) -> JSONResponse:
        message = mask_secrets(
            str(exc).strip().splitlines()[0] if str(exc).strip() else "bad request"
        )
        return JSONResponse(
            {"error": message, "parameter": getattr(exc, "parameter", None)}, status_code=400
        )

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("API request failed")
        return JSONResponse({"error": "internal error; the details are in the server log"}, 500)

    # -- sign-in and answers ----------------------------------------------------------
    def caller(request: Request) -> Caller:
        client = request.client.host if request.client else None
        return authenticator.caller(request.headers.get("authorization"), client)

    Signed = Annotated[Caller, Depends(caller)]

    def answer(
        request: Request,
        who: Caller,
        compute: Callable[[], Any],
        *,
        page: tuple[int, int] | None = None,
    ) -> Response:
        """Compute as ``who`` unless the client already has this version (304)."""
        version = writes.data_version(url)
        query = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.multi_items()))
        digest = hashlib.sha256(
            f"{version}|{who.name}|{who.role}|{request.url.path}?{query}".encode()
        )
        etag = f'"{digest.hexdigest()[:32]}"'
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers={"ETag": etag})
        with cache.tally() as counts, metrics.acting_as(who.acting, url=url):
            data = compute()
        total = None
        if page is not None and isinstance(data, pd.DataFrame):
            total = len(data)
            limit, offset = page
            data = data.iloc[offset : offset + limit]
        with freshness_lock:
            fresh = _freshness_for(version, url, freshness_known)
        hit = counts["misses"] == 0 and counts["hits"] > 0
        meta = {
            "as_user": who.acting,
            "freshness": fresh,
            "data_version": version,
            "cached": hit,
            "total": total,
            "limit": page[0] if page else None,
            "offset": page[1] if page else None,
        }
        rows = _json.records(data) if isinstance(data, pd.DataFrame) else _json.json_value(data)
        body = _json.dumps({"data": rows, "meta": _json.json_value(meta)})
        headers = {
            "ETag": etag,
            "X-Cache": "hit" if hit else "miss",
            "Cache-Control": "private, no-cache",
        }
        if fresh is not None:
            headers["X-Data-Freshness"] = _json.json_value(fresh)
        return Response(body, media_type="application/json", headers=headers)

    # -- routes -------------------------------------------------------------------------
    @app.get(f"{API_PREFIX}/health", response_model=Health, tags=["health"])
    def health() -> Response:
        """Whether the database answers, the newest data time and the version (no sign-in)."""
        try:
            with connect(url) as conn:
                conn.exec_driver_sql("SELECT 1")
            newest = writes.data_freshness(url)
        except (DatabaseUnavailable, AuterityError) as exc:
            log.warning("health: %s", mask_secrets(str(exc)))
            body: dict[str, Any] = {
                "status": "unavailable",
                "database": "unreachable",
                "newest_data": None,
                "version": __version__,
            }
            return JSONResponse(body, status_code=503)
        body = {
            "status": "ok",
            "database": "reachable",
            "newest_data": newest,
            "version": __version__,
        }
        return Response(_json.dumps(_json.json_value(body)), media_type="application/json")

    Start = Annotated[date | None, Query(description="First local date (default: 28 days ago).")]
    End = Annotated[
        date | None, Query(description="Local date after the last one (default: tomorrow).")
    ]
    Limit = Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Rows per page (at most {MAX_LIMIT}).")
    ]
    Offset = Annotated[int, Query(ge=0, description="Rows to skip.")]

    def period(start: date | None, end: date | None) -> tuple[date, date]:
        default_start, default_end = present.resolve_period("last_28_days", url=url)
        start, end = start or default_start, end or default_end
        if end <= start:
            raise BadParameter("end", f"end ({end}) must be after start ({start})")
        return start, end

    @app.get(
        f"{API_PREFIX}/analytics/kpis", response_model=Answer, responses=ERRORS, tags=["analytics"]
    )
    def kpis(
        request: Request,
        who: Signed,
        start: Start = None,
        end: End = None,
        region: str | None = None,
        segment: str | None = None,
        channel: str | None = None,
    ) -> Response:
        """The KPI summary of a period with deltas against the previous period and last year."""
        lo, hi = period(start, end)
        where = {
            k: v for k, v in {"region": region, "segment": segment, "channel": channel}.items() if v
        }
        return answer(
            request, who, lambda: business.kpi_summary(lo, hi, where=where or None, url=url)
        )

    @app.get(
        f"{API_PREFIX}/analytics/metrics",
        response_model=Answer,
        responses=ERRORS,
        tags=["analytics"],
    )
    def metric_list(
        request: Request, who: Signed, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> Response:
        """Every metric of the catalogue: unit, good direction, allowed dimensions."""
        return answer(request, who, metrics.describe, page=(limit, offset))

    @app.get(
        f"{API_PREFIX}/analytics/metrics/{{name}}",
        response_model=Answer,
        responses=ERRORS,
        tags=["analytics"],
    )
    def metric(
        request: Request,
        who: Signed,
        name: str,
        grain: Annotated[str, Query(pattern="^(day|week|month|total)$")] = "day",
        start: Start = None,
        end: End = None,
        by: Annotated[list[str] | None, Query(description="Dimensions to break down by.")] = None,
        where: Annotated[list[str] | None, Query(description="Filters DIM=VALUE.")] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Response:
        """One metric as a time series (or a total), broken down and filtered."""
        catalog = metrics.load_catalog()
        if name not in catalog.metrics:
            raise BadParameter(
                "name", f"unknown metric {name!r} (GET {API_PREFIX}/analytics/metrics lists them)"
            )
        lo, hi = period(start, end)
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
        return answer(
            request,
            who,
            lambda: metrics.query(
                [name],
                start=lo,
                end=hi,
                grain=None if grain == "total" else grain,
                by=list(by or []),
                where=filters or None,
                url=url,
            ),
            page=(limit, offset),
        )

    @app.get(
        f"{API_PREFIX}/modelhub/leaderboard",
        response_model=Answer,
        responses=ERRORS,
        tags=["modelhub"],
    )
    def leaderboard(
        request: Request,
        who: Signed,
        start: Start = None,
        end: End = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> Response:
        """One row per model: volume, reliability, latency percentiles, cost, quality."""
        lo, hi = period(start, end)
        return answer(
            request, who, lambda: modelhub.leaderboard(lo, hi, url=url), page=(limit, offset)
        )

    return app
