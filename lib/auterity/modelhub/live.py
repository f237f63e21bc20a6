"""The real-time view's SQL: requests/s, p95 latency and error rate per model, last minutes.

SQLAlchemy Core over :data:`auterity.warehouse.schema.inference_events`; two grouped statements, so
pandas only sees the aggregates. Nothing here knows about dashboards or widgets.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from auterity import warehouse
from auterity._time import utcnow
from auterity.errors import ConfigError
from auterity.warehouse import dialect, schema


def realtime_snapshot(
    minutes: int = 15, *, now: datetime | None = None, url: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, datetime | None]:
    """Requests/s, p95 latency and error rate per model over the last ``minutes``.

    Two grouped SQL statements (per model, and per model and minute); pandas only sees
    the aggregates.

    Parameters
    ----------
    minutes : int
        Window length, ending at ``now``.
    now : datetime, optional
        Naive UTC end of the window; default the current time.
    url : str, optional
        Warehouse.

    Returns
    -------
    tuple
        ``(per_model, per_minute, newest_event)``: per model ``model_id, requests,
        requests_per_s, p95_latency_ms, error_rate`` (plus an ``all`` row first);
        per minute ``minute, model_id, requests_per_s``; the newest event time (UTC).
    """
    if minutes <= 0:
        raise ConfigError("minutes must be positive")
    end = now or utcnow()
    since = end - timedelta(minutes=minutes)
    ev = schema.inference_events
    window = sa.and_(ev.c.ts >= since, ev.c.ts <= end)
    seconds = minutes * 60.0

    def stats(*group: Any) -> sa.Select:
        return (
            sa.select(
                *group,
                sa.func.count().label("requests"),
                dialect.percentile(ev.c.latency_ms, 0.95).label("p95_latency_ms"),
                dialect.to_float(sa.func.sum(sa.case((ev.c.status == "error", 1), else_=0))).label(
                    "errors"
                ),
            )
            .where(window)
            .group_by(*group)
        )

    minute = sa.func.date_trunc("minute", ev.c.ts).label("minute")
    per_minute_stmt = (
        sa.select(minute, ev.c.model_id, sa.func.count().label("requests"))
        .where(window)
        .group_by(minute, ev.c.model_id)
        .order_by(minute)
    )
    with warehouse.connect(url) as conn:
        per_model = dialect.read_frame(conn, stats(ev.c.model_id).order_by(ev.c.model_id))
        overall = dialect.read_frame(conn, stats())
        per_minute = dialect.read_frame(conn, per_minute_stmt)
        newest = conn.execute(sa.select(sa.func.max(ev.c.ts)).where(ev.c.ts <= end)).scalar()
    overall.insert(0, "model_id", "all")
    frame = pd.concat([overall, per_model], ignore_index=True)
    frame["requests"] = frame["requests"].fillna(0).astype(int)
    frame["requests_per_s"] = frame["requests"] / seconds
    frame["error_rate"] = [
        e / r if r else float("nan")
        for e, r in zip(frame["errors"], frame["requests"], strict=True)
    ]
    frame["p95_latency_ms"] = pd.to_numeric(frame["p95_latency_ms"], errors="coerce")
    frame = frame[["model_id", "requests", "requests_per_s", "p95_latency_ms", "error_rate"]]
    per_minute["requests_per_s"] = per_minute["requests"] / 60.0
    if newest is not None and not isinstance(newest, datetime):
        newest = pd.Timestamp(newest).to_pydatetime()
    return frame, per_minute, newest
