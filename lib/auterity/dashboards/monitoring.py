"""Prometheus metrics of the dashboard server (``auterity serve``), served at ``/metrics``.

The server is one process, so its series live in prometheus_client's default registry,
next to what jupyter_server and prometheus_client already put there; ``/metrics`` is
jupyter_server's own handler (``PrometheusMetricsHandler``), which standalone Voila does
not mount and :class:`auterity.dashboards.serve.AuterityVoila` does.

Access
------
``/metrics`` answers without sign-in, as the JSON API's ``/metrics`` does: a scraper has
no browser session, and the series carry no data: counts by dashboard name (only the
dashboards ``voila.json`` chooses; any other name counts as ``other``), route template,
HTTP method and status, kernel type and limit, never a user name, a kernel id or a path
a client typed. It is listed in :data:`auterity.dashboards.serve.PUBLIC_ROUTES`
(jupyter_server's ``authenticate_prometheus`` is off for that reason).

Series
------
auterity_dashboard_kernels{dashboard, state}          kernels alive (pools included):
                                                      state ``open`` (a viewer's page)
                                                      or ``pooled`` (pre-heated, waiting)
auterity_dashboard_opens_total{dashboard, status}     dashboard page requests by status
                                                      (200 rendered, 302 to the login,
                                                      403 not granted, 429/503 refused)
auterity_dashboard_requests_total{route, method, status}  requests by route template
auterity_dashboard_request_duration_seconds{route}    histogram: time to the response's
                                                      end (a dashboard page: its render)
auterity_dashboard_access_denied_total{resource}      signed-in users refused (403): a
                                                      dashboard, kernels, contents...
auterity_dashboard_kernels_refused_total{limit, kind}  kernel starts refused: ``limit``
                                                      ``server`` (max_kernels, 503) or
                                                      ``role`` (dashboard_kernels, 429);
                                                      ``kind`` ``viewer`` or ``pool``

Reused from jupyter_server (same registry): ``kernel_currently_running_total{type}``
(kept by its kernel manager, which the server's is), ``http_request_duration_seconds
{method, handler, status_code}`` (recorded here too, since Voila has no Jupyter log
function; methods outside HTTP's usual ones count as ``other``), ``jupyter_server_info``,
``jupyter_server_started_timestamp_seconds`` and ``jupyter_server_last_activity_timestamp_
seconds`` (here: the last request's end); and prometheus_client's ``process_*``.

Example alert (the kernel cap turns viewers away)::

    sum(increase(auterity_dashboard_kernels_refused_total{kind="viewer"}[10m])) > 0
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"
"""Label value for a dashboard name or method outside the known ones (bounded labels)."""
STATES = ("open", "pooled")

KernelCounts = Callable[[], Mapping[tuple[str, str], int]]
"""Returns kernels alive by (dashboard name, state)."""


def method_label(method: str | None) -> str:
    """The request's method, or ``other`` (a client may send any word)."""
    return method if method in METHODS else OTHER


def dashboard_label(name: str, known: Iterable[str]) -> str:
    """``name`` if it is one of the known dashboards, else ``other``."""
    return name if name in known else OTHER


def route_template(pattern: str) -> str:
    """A route's regular expression as a template: each group becomes ``{name}``
    (``{path}`` if unnamed), so labels never hold a kernel id or a path.

    >>> route_template(r"/api/kernels/(?P<kernel_id>\\w+-\\w+)/channels$")
    '/api/kernels/{kernel_id}/channels'
    >>> route_template(r"/voila/render/(.*)")
    '/voila/render/{path}'
    """
    out: list[str] = []
    depth = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if depth == 0:
                out.append(pattern[i + 1 : i + 2])
            i += 2
            continue
        if char == "(":
            if depth == 0:
                named = re.match(r"\(\?P<(\w+)>", pattern[i:])
                out.append("{" + (named.group(1) if named else "path") + "}")
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and char not in "^$":
            out.append(char)
        i += 1
    return "".join(out) or "/"


class _KernelCollector(Collector):
    """``auterity_dashboard_kernels``, counted from the kernel manager at scrape time."""

    def __init__(self) -> None:
        self.counts: KernelCounts | None = None

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "auterity_dashboard_kernels",
            "Dashboard kernels alive by dashboard and state (open: a viewer's page; "
            "pooled: pre-heated, waiting for a viewer).",
            labels=["dashboard", "state"],
        )
        for (dashboard, state), count in sorted((self.counts or dict)().items()):
            family.add_metric([dashboard, state], count)
        yield family


class DashboardMetrics:
    """The dashboard server's series (one set per process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or REGISTRY
        kw: dict[str, Any] = {"registry": self.registry}
        self._kernels = _KernelCollector()
        self.registry.register(self._kernels)
        self.opens = Counter(
            "auterity_dashboard_opens",
            "Dashboard page requests by dashboard and HTTP status.",
            ["dashboard", "status"],
            **kw,
        )
        self.requests = Counter(
            "auterity_dashboard_requests",
            "Requests by route template, method and status.",
            ["route", "method", "status"],
            **kw,
        )
        self.duration = Histogram(
            "auterity_dashboard_request_duration_seconds",
            "Time from a request to the end of its response, by route template.",
            ["route"],
            buckets=BUCKETS,
            **kw,
        )
        self.denied = Counter(
            "auterity_dashboard_access_denied",
            "Signed-in users refused (403) by what they asked for.",
            ["resource"],
            **kw,
        )
        self.kernels_refused = Counter(
            "auterity_dashboard_kernels_refused",
            "Kernel starts refused by a limit (server: max_kernels; role: the role's "
            "dashboard_kernels), for a viewer's page or a pool refill.",
            ["limit", "kind"],
            **kw,
        )

    def watch_kernels(self, counts: KernelCounts) -> None:
        """Count kernels with ``counts`` at each scrape (the server's kernel manager)."""
        self._kernels.counts = counts

    def request(self, route: str, method: str | None, status: int, seconds: float) -> None:
        """Count one finished request."""
        self.requests.labels(route, method_label(method), str(status)).inc()
        self.duration.labels(route).observe(seconds)


_PROCESS: DashboardMetrics | None = None


def metrics() -> DashboardMetrics:
    """The process's series, in the default registry (made on first use)."""
    global _PROCESS
    if _PROCESS is None:
        _PROCESS = DashboardMetrics()
    return _PROCESS
