"""Retention: raw events past AUTERITY_RETENTION_DAYS are purged (CLI, library, daemon)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from auterity import access, warehouse
from auterity._time import utcnow
from auterity.cli import main
from auterity.errors import ConfigError
from auterity.reports import scheduler as sched
from auterity.reports.schedule import Schedule
from auterity.warehouse import retention


def _counts() -> dict[str, tuple[int, object]]:
    with warehouse.connect() as conn:
        return {
            t: tuple(conn.execute(sa.text(f"SELECT count(*), min(ts) FROM {t}")).one())
            for t in ("orders", "product_events", "inference_events")
        }


@pytest.fixture
def world() -> None:
    assert main(["demo-data", "--events", "3000", "--months", "3", "--no-effects", "--quiet"]) == 0


def test_purge_keeps_the_last_days_of_raw_events_and_every_order(
    world: None, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _counts()
    assert main(["db", "purge", "--older-than", "30", "--yes"]) == 0
    said = capsys.readouterr().out
    assert "inference_events:" in said and "older than 30 days deleted" in said
    after = _counts()
    cutoff = utcnow() - timedelta(days=30)
    for table in retention.RAW_EVENT_TABLES:
        assert 0 < after[table][0] < before[table][0]
        assert after[table][1] >= cutoff - timedelta(minutes=1)
    assert after["orders"] == before["orders"]  # business records stay
    (row,) = access.audit_trail(action="retention.purge").to_dict("records")
    assert row["details"]["days"] == 30
    assert sum(row["details"]["deleted"].values()) == sum(
        before[t][0] - after[t][0] for t in retention.RAW_EVENT_TABLES
    )


def test_the_setting_drives_the_daemon_and_mistakes_are_refused(
    world: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = sched.Scheduler(Schedule(None, {}))
    assert runner.apply_retention() is None  # unset: keep everything
    assert main(["db", "purge", "--yes"]) == 2
    assert "AUTERITY_RETENTION_DAYS" in capsys.readouterr().err
    monkeypatch.setenv("AUTERITY_RETENTION_DAYS", "45")
    deleted = runner.apply_retention()
    assert deleted is not None and deleted["inference_events"] > 0
    assert access.audit_trail(action="retention.purge").iloc[0]["actor"] == "scheduler"
    assert runner.apply_retention() == {"product_events": 0, "inference_events": 0}
    monkeypatch.setenv("AUTERITY_RETENTION_DAYS", "soon")
    with pytest.raises(ConfigError, match="not a whole number of days"):
        retention.retention_days()
    assert runner.apply_retention() is None  # logged, not raised
    with pytest.raises(ConfigError, match="raw events only"):
        retention.purge(5, tables=["orders"])
    with pytest.raises(ConfigError, match="at least 1 day"):
        retention.purge(0)
