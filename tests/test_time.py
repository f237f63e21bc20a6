"""The shared time toolkit: UTC now, dates from text, the business time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from auterity import _time
from auterity.errors import ConfigError


def test_parse_date() -> None:
    assert _time.parse_date("2026-02-03") == date(2026, 2, 3)
    with pytest.raises(ConfigError, match="expected YYYY-MM-DD"):
        _time.parse_date("03/02/2026")


def test_as_date_accepts_dates_datetimes_and_iso_text_and_names_the_value() -> None:
    assert _time.as_date(date(2026, 1, 31), "x") == date(2026, 1, 31)
    assert _time.as_date(datetime(2026, 1, 31, 23, 59), "x") == date(2026, 1, 31)
    assert _time.as_date("2026-01-31", "x") == date(2026, 1, 31)
    with pytest.raises(ConfigError, match=r"the start of the period must be a date .*'31/01'"):
        _time.as_date("31/01", "the start of the period")


def test_utcnow_is_naive_utc_and_today_is_utc() -> None:
    now = _time.utcnow()
    assert now.tzinfo is None
    assert abs(now - datetime.now(UTC).replace(tzinfo=None)) < timedelta(seconds=5)
    assert _time.today_utc() in {now.date(), (now + timedelta(seconds=5)).date()}


def test_business_tz_validates_a_given_zone_and_defaults_to_the_setting(monkeypatch) -> None:
    from auterity import config

    monkeypatch.setenv("AUTERITY_TIMEZONE", "Europe/Berlin")
    assert _time.business_tz("America/New_York") == "America/New_York"
    assert _time.business_tz(None) == config.get_settings().timezone
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        _time.business_tz("Mars/Olympus")
