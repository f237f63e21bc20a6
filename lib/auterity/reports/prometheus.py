"""Prometheus metrics of the report scheduler (prometheus_client, own registry).

``auterity schedule run --metrics-port 9464`` serves them on 127.0.0.1 so an existing
Prometheus can scrape them and alert when a report stops arriving, e.g.::

    time() - auterity_report_last_success_timestamp_seconds{job="weekly-business"} > 8 * 86400

Series
------
auterity_report_runs_total{job, status}             runs by outcome (ok, failed, error)
auterity_report_run_duration_seconds{job}            histogram of run durations
auterity_report_deliveries_total{job, status}        emails by delivery status
auterity_report_last_success_timestamp_seconds{job}  Unix time of the last successful run
auterity_report_runs_in_progress                     runs executing now
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from auterity import warehouse
from auterity._time import utcnow
from auterity.warehouse import schema

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)


class SchedulerMetrics:
    """The scheduler's series, in a registry of their own (tests get fresh ones)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.runs = Counter(
            "auterity_report_runs",
            "Scheduled and triggered report runs by job and outcome.",
            ["job", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "auterity_report_run_duration_seconds",
            "How long report runs took (notebook, rendering and delivery).",
            ["job"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.deliveries = Counter(
            "auterity_report_deliveries",
            "Report emails by delivery status.",
            ["job", "status"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "auterity_report_last_success_timestamp_seconds",
            "Unix time at which the job's last successful run finished.",
            ["job"],
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "auterity_report_runs_in_progress",
            "Report runs executing now.",
            registry=self.registry,
        )
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def observe(
        self,
        job: str,
        status: str,
        duration_s: float | None,
        delivery_status: str | None,
        finished_at: datetime | None = None,
    ) -> None:
        """Count one finished run (and its delivery)."""
        self.runs.labels(job=job, status=status).inc()
        if duration_s is not None:
            self.duration.labels(job=job).observe(duration_s)
        if delivery_status:
            self.deliveries.labels(job=job, status=delivery_status).inc()
        if status == "ok":
            when = (finished_at or utcnow()).replace(tzinfo=UTC)
            self.last_success.labels(job=job).set(when.timestamp())

    def load_last_success(self, url: str | None = None) -> None:
        """Start the last-success gauges from the recorded runs, so a restart keeps them."""
        runs = schema.report_runs
        query = (
            sa.select(runs.c.job_id, sa.func.max(runs.c.finished_at))
            .where(runs.c.job_id.is_not(None), runs.c.status == "ok")
            .group_by(runs.c.job_id)
        )
        with warehouse.connect(url) as conn:
            for job, finished in conn.execute(query):
                if finished is not None:
                    self.last_success.labels(job=job).set(finished.replace(tzinfo=UTC).timestamp())

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` over HTTP in a background thread; returns the bound port."""
        self._server, self._thread = start_http_server(port, addr=addr, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        """Stop the HTTP endpoint, if serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
