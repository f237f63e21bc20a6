"""Prometheus metrics of the JSON API, served at ``/metrics``.

``auterity api`` runs several worker processes; each writes its series to files in one
directory (prometheus_client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``, which
:func:`auterity.api.server.serve` sets up), and ``/metrics`` on any worker adds them up.
A single process (tests, ``create_app`` in another server) uses its own registry.

Series
------
auterity_api_requests_total{route, method, status}   calls by route template and status
auterity_api_request_duration_seconds{route}          histogram: time to the response's
                                                      first byte
auterity_api_cache_reads_total{outcome}               result-cache hits and misses of
                                                      API answers
auterity_api_rate_limited_total{role}                 calls refused with 429
auterity_api_abandoned_total                          answers not computed: the caller hung up
auterity_api_stream_subscribers                       live-stream subscribers connected
auterity_api_data_freshness_seconds                   age of the newest event (as of the
                                                      last answer; for "data stale" alerts)
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ApiMetrics:
    """The API's series (one set per process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry
        kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.requests = Counter(
            "auterity_api_requests",
            "API calls by route template, method and status.",
            ["route", "method", "status"],
            **kw,
        )
        self.duration = Histogram(
            "auterity_api_request_duration_seconds",
            "Time from a call to its response's first byte, by route template.",
            ["route"],
            buckets=BUCKETS,
            **kw,
        )
        self.cache = Counter(
            "auterity_api_cache_reads",
            "Result-cache reads of API answers by outcome (hit, miss).",
            ["outcome"],
            **kw,
        )
        self.rate_limited = Counter(
            "auterity_api_rate_limited",
            "Calls refused with 429 by the caller's role.",
            ["role"],
            **kw,
        )
        self.abandoned = Counter(
            "auterity_api_abandoned",
            "Answers not computed because the caller hung up while waiting their turn.",
            **kw,
        )
        self.subscribers = Gauge(
            "auterity_api_stream_subscribers",
            "Live-stream subscribers connected.",
            multiprocess_mode="livesum",
            **kw,
        )
        self.freshness = Gauge(
            "auterity_api_data_freshness_seconds",
            "Age of the newest event in the warehouse, as of the last answer.",
            multiprocess_mode="max",
            **kw,
        )

    def exposition(self) -> tuple[bytes, str]:
        """The text Prometheus scrapes (all workers' series in multiprocess mode)."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry or _default_registry()), CONTENT_TYPE_LATEST


def _default_registry() -> CollectorRegistry:
    from prometheus_client import REGISTRY

    return REGISTRY


def new_metrics() -> ApiMetrics:
    """The series of a new application: the shared files in multiprocess mode, else a
    registry of its own (so several apps in one process do not collide)."""
    if os.environ.get(MULTIPROC_ENV):
        return _process_metrics()
    return ApiMetrics(CollectorRegistry())


_PROCESS: ApiMetrics | None = None


def _process_metrics() -> ApiMetrics:
    global _PROCESS
    if _PROCESS is None:
        _PROCESS = ApiMetrics()  # the default registry: values go to the shared files
    return _PROCESS


class MetricsMiddleware:
    """Counts every call by route template and status, timing it to the first byte."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                route = _route(scope)
                self.metrics.duration.labels(route).observe(time.perf_counter() - started)
                self.metrics.requests.labels(route, scope["method"], str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, timed_send)


def _route(scope: Scope) -> str:
    """The matched route's template (never the raw path: no ids or names in labels)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
