"""The one JSON serialiser: one rule for times, null for missing values, plain Python types."""

from __future__ import annotations

import json
from datetime import date, datetime

import numpy as np
import pandas as pd

from auterity import _json


def test_a_column_of_midnights_is_dates_and_any_time_of_day_makes_instants() -> None:
    frame = pd.DataFrame(
        {
            "day": pd.to_datetime(["2026-01-01", "2026-01-02"]),
            "at": pd.to_datetime(
                ["2026-01-01 00:00:00", "2026-01-01 09:30:15.5"], format="ISO8601"
            ),
            "zoned": pd.to_datetime(["2026-01-01 10:00", None]).tz_localize("Europe/Berlin"),
        }
    )
    assert _json.records(frame) == [
        {"day": "2026-01-01", "at": "2026-01-01T00:00:00", "zoned": "2026-01-01T10:00:00+01:00"},
        {"day": "2026-01-02", "at": "2026-01-01T09:30:15", "zoned": None},
    ]


def test_values_become_plain_json_and_missing_values_null() -> None:
    value = {
        1: np.int64(3),
        "f": np.float64(np.nan),
        "inf": float("inf"),
        "ok": np.bool_(False),
        "when": pd.Timestamp("2026-03-04 05:06:07"),
        "day": date(2026, 3, 4),
        "midnight": datetime(2026, 3, 4),
        "list": (np.float32(1.5), pd.NaT, None),
        "arr": np.array([1, 2]),
    }
    assert _json.json_value(value) == {
        "1": 3,
        "f": None,
        "inf": None,
        "ok": False,
        "when": "2026-03-04T05:06:07",
        "day": "2026-03-04",
        "midnight": "2026-03-04",
        "list": [1.5, None, None],
        "arr": [1, 2],
    }


def test_dumps_takes_frames_and_never_writes_nan() -> None:
    frame = pd.DataFrame({"v": [1.0, np.nan]}, index=pd.Index(["a", "b"], name="k"))
    text = _json.dumps(frame)
    assert "NaN" not in text
    assert json.loads(text) == [{"k": "a", "v": 1.0}, {"k": "b", "v": None}]
    assert json.loads(_json.dumps({"x": float("nan")}, indent=2)) == {"x": None}
