"""Dialect helpers: time zones, period boundaries, percentiles on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from auterity.errors import ConfigError
from auterity.warehouse import cache, dialect, schema
from conftest import read_table


def test_utc_bounds_follow_daylight_saving() -> None:
    # Europe/Berlin: UTC+2 in summer, UTC+1 in winter; the clocks went back on 2026-10-25.
    lo, hi = dialect.utc_bounds(date(2026, 10, 25), date(2026, 10, 26), "Europe/Berlin")
    assert lo == datetime(2026, 10, 24, 22) and hi == datetime(2026, 10, 25, 23)
    assert dialect.utc_bounds(date(2026, 1, 1), date(2026, 1, 2), "UTC")[0] == datetime(2026, 1, 1)
    with pytest.raises(ConfigError, match="must be after --start"):
        dialect.utc_bounds(date(2026, 1, 2), date(2026, 1, 2), "UTC")


def test_period_index() -> None:
    weeks = dialect.period_index(date(2026, 3, 4), date(2026, 3, 20), "week")
    assert list(weeks) == [
        pd.Timestamp("2026-03-02"),
        pd.Timestamp("2026-03-09"),
        pd.Timestamp("2026-03-16"),
    ]
    months = dialect.period_index(date(2026, 1, 15), date(2026, 3, 1), "month")
    assert list(months) == [pd.Timestamp("2026-01-01"), pd.Timestamp("2026-02-01")]
    assert len(dialect.period_index(date(2026, 1, 1), date(2026, 1, 8), "day")) == 7
    with pytest.raises(ConfigError, match="unknown grain 'year'"):
        dialect.period_index(date(2026, 1, 1), date(2027, 1, 1), "year")


def test_bad_percentiles() -> None:
    column = schema.inference_events.c.latency_ms
    with pytest.raises(ConfigError, match="between 0 and 1"):
        dialect.percentile(column, 95)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        dialect.percentiles(column, [0.5, 1.5])


def test_percentile_list_not_on_other_databases() -> None:
    from sqlalchemy.dialects import sqlite

    stmt = sa.select(dialect.percentiles(schema.inference_events.c.latency_ms, [0.5]))
    with pytest.raises(ConfigError, match="not supported on 'sqlite'"):
        stmt.compile(dialect=sqlite.dialect())


def test_percentiles_and_local_days_match_numpy(analytics_url: str) -> None:
    ie = schema.inference_events
    ok_latency = sa.case((ie.c.status == "ok", ie.c.latency_ms))
    day = dialect.period_start(ie.c.ts, "day", "America/Los_Angeles")
    stmt = (
        sa.select(
            day.label("day"),
            ie.c.model_id,
            dialect.percentiles(ok_latency, [0.5, 0.9, 0.99]).label("q"),
            dialect.percentile(ok_latency, 0.9).label("p90"),
        )
        .where(ie.c.ts >= datetime(2026, 10, 1), ie.c.ts < datetime(2026, 10, 8))
        .group_by(sa.literal_column("1"), sa.literal_column("2"))
    )
    got = cache.fetch(stmt, url=analytics_url)
    raw = read_table(analytics_url, "inference_events")
    raw = raw[(raw["ts"] >= "2026-10-01") & (raw["ts"] < "2026-10-08") & (raw["status"] == "ok")]
    local = raw["ts"].dt.tz_localize("UTC").dt.tz_convert("America/Los_Angeles")
    raw = raw.assign(day=local.dt.tz_localize(None).dt.normalize())
    assert len(got) > 20
    for _, row in got.iterrows():
        values = raw[(raw["day"] == row["day"]) & (raw["model_id"] == row["model_id"])]
        values = values["latency_ms"].astype(float)
        assert list(row["q"]) == pytest.approx(list(np.percentile(values, [50, 90, 99])))
        assert row["p90"] == pytest.approx(row["q"][1])
