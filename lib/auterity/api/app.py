"""The API application: sign-in, errors, and the routers of :mod:`auterity.api.routes`.

Every data route answers ``{"data": ..., "meta": {...}}`` (:func:`auterity.api.common.answer`).
Errors are JSON ``{"error": message, "parameter": name}``: 400 for a bad parameter (an
unknown metric or dimension, a bad date, an end before the start, a horizon out of
range), 401 without or with wrong credentials (``WWW-Authenticate``; locked users also get
``Retry-After``), 403 outside the caller's role (audited), 404 for an unknown report run,
503 when the database is unreachable, 500 with no detail for anything else (details in
the log). Never a traceback.
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from auterity import __version__, _json, access, config
from auterity.api import docs, monitoring
from auterity.api.auth import Authenticator, Unauthorized
from auterity.api.common import API_PREFIX, ApiState, Forbidden, TooMany, utc_instant
from auterity.api.ratelimit import RateLimiter
from auterity.api.routes import analytics, modelhub, realtime, reports, unified
from auterity.errors import AuterityError, DatabaseUnavailable
from auterity.redact import mask_secrets
from auterity.warehouse import connect, notify, writes

log = logging.getLogger("auterity.api")


class Health(BaseModel):
    """Whether the API can answer."""

    status: str
    database: str
    newest_data: datetime | None
    version: str


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
    api = ApiState(authenticator, url, monitoring.new_metrics(), RateLimiter())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        notify.subscribe(api.landed, api.listening)  # None without Redis: the TTL bounds it
        yield
        api.listening.set()
        if api.broadcaster is not None:
            await api.broadcaster.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="Auterity Analytics API",
        version=__version__,
        description="Business and ModelHub analytics as JSON, read as the signed-in user.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.api = api

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

    @app.exception_handler(Forbidden)
    async def _forbidden(_request: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=403)

    @app.exception_handler(TooMany)
    async def _too_many(_request: Request, exc: TooMany) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse({"error": str(exc)}, status_code=429, headers=headers)

    @app.exception_handler(access.AccessDenied)
    async def _denied(_request: Request, exc: access.AccessDenied) -> JSONResponse:
        return JSONResponse({"error": mask_secrets(str(exc))}, status_code=403)

    @app.exception_handler(reports.NotFound)
    async def _missing(_request: Request, exc: reports.NotFound) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(DatabaseUnavailable)
    async def _database(_request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("database unavailable: %s", mask_secrets(str(exc)))
        return JSONResponse({"error": "the database is unavailable right now"}, status_code=503)

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
            "newest_data": utc_instant(newest),
            "version": __version__,
        }
        return Response(_json.dumps(_json.json_value(body)), media_type="application/json")

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    def reference() -> HTMLResponse:
        """The API's reference as one page that works offline (no scripts, no CDN)."""
        policy = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
        return HTMLResponse(docs.render(app.openapi()), headers={"Content-Security-Policy": policy})

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        """Prometheus metrics of every worker (no sign-in: counts by route, no data)."""
        body, content_type = api.metrics.exposition()
        return Response(body, media_type=content_type)

    app.add_middleware(monitoring.MetricsMiddleware, metrics=api.metrics)
    for router in (
        analytics.router,
        modelhub.router,
        unified.router,
        reports.router,
        realtime.router,
    ):
        app.include_router(router)
    _without_422(app)
    return app


def _without_422(app: FastAPI) -> None:
    """The document FastAPI makes lists 422 for invalid parameters; this API answers those
    with 400 naming the parameter (as documented), so 422 is taken out."""
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = make()
            for path in document.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = document.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
