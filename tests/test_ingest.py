"""Batches checked against the data contract: valid rows typed, every other row with reasons."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from auterity import ingest, warehouse
from auterity.demo import generate as demo_data
from auterity.errors import ConfigError

NOW = datetime(2026, 11, 2)


def _events() -> pd.DataFrame:
    """A batch of model requests with one of each kind of mistake, as a file brings them."""
    return pd.DataFrame(
        {
            "request_id": ["a", "b", "c", "a", "d", "b", "e"],
            "ts": [
                "2026-11-01 10:00:00",
                "2026-11-01T10:00:00+02:00",
                "yesterday",
                "2026-11-01 11:00",
                "2027-01-01",
                "2026-11-01 12:00",
                "2026-11-01 12:30",
            ],
            "model_id": ["m", "m", "m", "m", "m", "m", None],
            "latency_ms": [100, "12.5", 5, -1, 3, 4, 7],
            "input_tokens": [10, 11, 1.5, 3, 4, 5, 6],
            "output_tokens": [1, 2, 3, 4, 5, 6, 7],
            "status": ["ok", "error", "ok", "nope", "ok", "ok", "ok"],
            "quality": [0.5, None, 2.0, None, None, 1.0, None],
        }
    )


def test_every_row_is_valid_or_rejected_with_all_its_reasons() -> None:
    batch = _events()
    checked = ingest.check("inference_events", batch, now=NOW)
    assert len(checked.valid) + len(checked.rejected) == len(batch)
    reasons = dict(zip(checked.rejected["row"], checked.rejected["reason"], strict=True))
    assert reasons == {
        1: "request_id: repeated later in this batch (the later row wins)",
        2: "ts: not a timestamp ('yesterday'); input_tokens: not a whole number (1.5); "
        "quality: outside (0.0, 1.0)",
        3: "latency_ms: negative; status: not one of ok, error, timeout",
        4: "ts: in the future",
        6: "model_id: missing",
    }
    # "a" at row 3 is rejected, so the earlier valid "a" is the one that counts
    assert checked.valid["request_id"].tolist() == ["a", "b"]
    raw = checked.rejected.set_index("row")["raw"]
    assert raw[2] == {
        "request_id": "c",
        "ts": "yesterday",
        "model_id": "m",
        "latency_ms": 5,
        "input_tokens": 1.5,
        "output_tokens": 3,
        "status": "ok",
        "quality": 2.0,
    }


def test_valid_rows_have_the_contracts_types_and_load_as_they_are(tmp_path) -> None:
    checked = ingest.check("inference_events", _events(), now=NOW)
    valid = checked.valid
    assert list(valid.columns) == [c.name for c in warehouse.schema.inference_events.columns]
    assert valid["ts"].tolist() == [
        pd.Timestamp("2026-11-01 10:00:00"),
        pd.Timestamp("2026-11-01 12:00:00"),
    ]
    assert str(valid["input_tokens"].dtype) == "Int64"
    assert valid["latency_ms"].tolist() == [100.0, 4.0]
    # a zone offset is converted to UTC
    one = pd.DataFrame({**_events().iloc[[1]].to_dict("list"), "request_id": ["z"]})
    assert ingest.check("inference_events", one, now=NOW).valid["ts"].tolist() == [
        pd.Timestamp("2026-11-01 08:00:00")
    ]
    url = f"duckdb:///{tmp_path / 'in.duckdb'}"
    warehouse.ensure_schema(url)
    warehouse.append_data("inference_events", valid, url=url)
    assert warehouse.table_summary(url)["inference_events"]["rows"] == 2
    warehouse.dispose_engines()


def test_a_batch_whose_columns_do_not_fit_is_refused_in_one_line() -> None:
    batch = _events().drop(columns=["status"]).assign(speed=1)
    with pytest.raises(ConfigError) as err:
        ingest.check("inference_events", batch)
    message = str(err.value)
    assert "\n" not in message
    assert "missing required column(s) status" in message
    assert "unknown column(s) speed" in message
    with pytest.raises(ConfigError, match="'report_runs' is not a data table"):
        ingest.check("report_runs", batch)
    assert ingest.required_columns("orders") == [
        "order_id",
        "customer_id",
        "ts",
        "amount",
        "currency",
        "status",
    ]


def test_models_pricing_must_be_a_known_kind_with_json_config() -> None:
    models = pd.DataFrame(
        {
            "model_id": ["ok", "bad-kind", "bad-json"],
            "name": ["A", "B", "C"],
            "provider": ["p", "p", "p"],
            "pricing_kind": ["flat", "free", "tiered"],
            "pricing_config": ['{"monthly_cost": 10}', None, "{tiers: oops"],
            "input_price_per_1k": [0.0, -0.5, 0.1],
        }
    )
    checked = ingest.check("models", models, now=NOW)
    assert checked.valid["model_id"].tolist() == ["ok"]
    reasons = checked.rejected.set_index("row")["reason"].to_dict()
    assert reasons == {
        1: "input_price_per_1k: negative; pricing_kind: not one of per_token, tiered, flat",
        2: "pricing_config: not valid JSON",
    }


def test_realistic_data_of_every_table_passes_untouched() -> None:
    """The demo world, as it is written today, is all valid: no false rejections."""
    world = demo_data.generate(
        demo_data.DemoConfig(seed=4, events=5_000, months=2, end=date(2026, 11, 1))
    )
    counted: dict[str, int] = {}
    for table, frame in world.chunks():
        checked = ingest.check(table, frame, now=datetime(2026, 11, 1))
        assert checked.rejected.empty, (table, checked.rejected.head(3).to_dict("records"))
        assert len(checked.valid) == len(frame)
        counted[table] = counted.get(table, 0) + len(frame)
    assert set(counted) == {"customers", "orders", "product_events", "models", "inference_events"}


def test_declared_tables_check_dates_and_big_whole_numbers_exactly(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = tmp_path / "sources.yml"
    sources.write_text(
        "tables:\n  counters:\n    primary_key: id\n    columns:\n"
        "      id: {type: string, required: true}\n      day: date\n      total: integer\n"
    )
    monkeypatch.setenv("AUTERITY_SOURCES_FILE", str(sources))
    batch = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "day": ["2026-11-01", "first of May", None],
            "total": ["9007199254740993", "1", "12.5"],
        }
    )
    checked = ingest.check("counters", batch, now=NOW)
    assert checked.valid["total"].tolist() == [9007199254740993]
    assert checked.valid["day"].tolist() == [date(2026, 11, 1)]
    assert checked.rejected.set_index("row")["reason"].to_dict() == {
        1: "day: not a date ('first of May')",
        2: "total: not a whole number (12.5)",
    }
