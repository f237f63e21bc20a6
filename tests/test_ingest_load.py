"""The one load path: accounting, quarantine, upserts, deletes, idempotence, atomicity."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import read_table

from auterity import access, ingest, warehouse
from auterity.errors import ConfigError
from auterity.ingest import Batch

NOW = datetime(2026, 11, 2)


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, _isolated_warehouse: str) -> str:
    """An empty warehouse on each database."""
    target = _isolated_warehouse if request.param == "duckdb" else request.getfixturevalue("pg_url")
    warehouse.ensure_schema(target)
    return target


def _events(ids: list[str], latency: list[object] | None = None, **extra: object) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "request_id": ids,
            "ts": ["2026-11-01 10:00:00"] * n,
            "model_id": ["m1"] * n,
            "latency_ms": latency if latency is not None else [100.0] * n,
            "input_tokens": [10] * n,
            "output_tokens": [5] * n,
            "status": ["ok"] * n,
            **{k: [v] * n for k, v in extra.items()},
        }
    )


def _counts(result: ingest.BatchResult) -> tuple[int, int, int, int, int]:
    c = result.counts()
    assert c["read"] == c["inserted"] + c["updated"] + c["unchanged"] + c["quarantined"]
    return c["read"], c["inserted"], c["updated"], c["unchanged"], c["quarantined"]


def test_every_row_is_accounted_and_a_reload_changes_nothing(url: str) -> None:
    batch = _events(["a", "b", "c"], latency=[1, "2.5", -3])
    first = ingest.load("inference_events", batch, source="test", url=url, now=NOW)
    assert _counts(first) == (3, 2, 0, 0, 1)
    version = warehouse.data_version(url)
    again = ingest.load("inference_events", batch, source="test", url=url, now=NOW)
    assert _counts(again) == (3, 0, 0, 2, 1)
    assert warehouse.data_version(url) == version, "an identical reload is not a change"
    rows = read_table(url, "inference_events").sort_values("request_id")
    assert rows["request_id"].tolist() == ["a", "b"]
    assert rows["latency_ms"].tolist() == [1.0, 2.5]
    quarantine = read_table(url, "quarantine")
    assert len(quarantine) == 1, "a row quarantined before is not written twice"
    row = quarantine.iloc[0]
    assert (row["table_name"], row["source"], row["row_number"]) == ("inference_events", "test", 2)
    assert row["reason"] == "latency_ms: negative"
    assert json.loads(row["raw"])["request_id"] == "c"
    audits = read_table(url, "audit_log")
    loads = audits[audits["action"] == "ingest.load"]
    assert len(loads) == 2, "every batch leaves an audit row"
    details = json.loads(loads.sort_values("ts").iloc[-1]["details"])
    assert details["tables"]["inference_events"]["unchanged"] == 2


def test_upsert_replaces_changed_rows_and_keep_leaves_them(url: str) -> None:
    ingest.load("inference_events", _events(["a", "b"]), source="t", url=url, now=NOW)
    changed = _events(["a", "b", "c"], latency=[100.0, 7.0, 1.0])
    assert _counts(ingest.load("inference_events", changed, source="t", url=url, now=NOW)) == (
        3,
        1,
        1,
        1,
        0,
    )
    kept = ingest.load_many(
        [Batch("inference_events", frame=_events(["b"], latency=[99.0]), on_existing="keep")],
        source="t",
        url=url,
        now=NOW,
    )[0]
    assert _counts(kept) == (1, 0, 0, 1, 0)
    rows = read_table(url, "inference_events").set_index("request_id")["latency_ms"]
    assert rows.to_dict() == {"a": 100.0, "b": 7.0, "c": 1.0}


def test_later_rows_win_in_a_batch_and_deletes_propagate(url: str) -> None:
    twice = _events(["a", "a", "b"], latency=[1.0, 2.0, 3.0])
    result = ingest.load("inference_events", twice, source="t", url=url, now=NOW)
    assert _counts(result) == (3, 2, 0, 0, 1)  # the earlier "a" is superseded
    assert read_table(url, "inference_events").set_index("request_id")["latency_ms"]["a"] == 2.0
    gone = _events(["a", "zz"]).assign(deleted=[True, True])
    result = ingest.load(
        "inference_events", gone, source="t", url=url, now=NOW, deleted_column="deleted"
    )
    assert _counts(result) == (2, 0, 1, 1, 0) and result.deleted == 1
    assert read_table(url, "inference_events")["request_id"].tolist() == ["b"]


def test_a_version_column_decides_across_batches(url: str) -> None:
    """customers has no updated_at, so the signup time stands in as the version column."""
    first = pd.DataFrame(
        {"customer_id": ["c1", "c1"], "signup_ts": ["2026-02-01", "2026-01-01"], "plan": ["b", "a"]}
    )
    result = ingest.load_many(
        [Batch("customers", frame=first, version_column="signup_ts")], source="t", url=url, now=NOW
    )[0]
    assert _counts(result) == (2, 1, 0, 0, 1)
    assert read_table(url, "customers")["plan"].tolist() == ["b"], "the newer row won"
    older = pd.DataFrame({"customer_id": ["c1"], "signup_ts": ["2025-12-01"], "plan": ["old"]})
    result = ingest.load_many(
        [Batch("customers", frame=older, version_column="signup_ts")], source="t", url=url, now=NOW
    )[0]
    assert _counts(result) == (1, 0, 0, 1, 0)
    assert read_table(url, "customers")["plan"].tolist() == ["b"], "an older row never wins"


def test_money_is_rounded_as_stored_so_a_reload_is_unchanged(url: str) -> None:
    orders = pd.DataFrame(
        {
            "order_id": ["o1"],
            "customer_id": ["c1"],
            "ts": ["2026-10-01"],
            "amount": ["19.999"],
            "currency": ["EUR"],
            "status": ["completed"],
        }
    )
    assert _counts(ingest.load("orders", orders, source="t", url=url, now=NOW))[1] == 1
    assert _counts(ingest.load("orders", orders, source="t", url=url, now=NOW))[3] == 1
    assert float(read_table(url, "orders")["amount"][0]) == 20.0


def test_a_batch_that_does_not_fit_writes_nothing(url: str) -> None:
    good = Batch("inference_events", frame=_events(["a"]))
    bad = Batch("orders", frame=pd.DataFrame({"order_id": ["o"], "speed": [1]}))
    with pytest.raises(ConfigError, match="unknown column"):
        ingest.load_many([good, bad], source="t", url=url, now=NOW)
    assert read_table(url, "inference_events").empty, "the whole batch rolled back"
    assert read_table(url, "audit_log").empty
    with pytest.raises(ConfigError, match="on_existing"):
        ingest.load_many(
            [Batch("orders", frame=pd.DataFrame(), on_existing="merge")], source="t", url=url
        )
    with pytest.raises(ConfigError, match="not a column of orders"):
        ingest.load_many(
            [Batch("orders", frame=pd.DataFrame(), version_column="updated_at")],
            source="t",
            url=url,
        )


def test_models_spans_bring_are_added_without_touching_known_pricing(url: str) -> None:
    known = pd.DataFrame(
        {"model_id": ["m1"], "name": ["M1"], "provider": ["p"], "input_price_per_1k": [0.5]}
    )
    ingest.load("models", known, source="t", url=url, now=NOW)
    seen = pd.DataFrame({"model_id": ["m1", "m2"], "name": ["m1", "m2"], "provider": ["p", "q"]})
    result = ingest.load_many(
        [Batch("models", frame=seen, on_existing="keep")], source="otlp", url=url, now=NOW
    )[0]
    assert _counts(result) == (2, 1, 0, 1, 0)
    models = read_table(url, "models").set_index("model_id")
    assert models.loc["m1", "input_price_per_1k"] == 0.5
    assert pd.isna(models.loc["m2", "input_price_per_1k"]), "unknown pricing stays unknown"
    assert models.loc["m2", "pricing_kind"] == "per_token"


def test_quarantine_listing(_isolated_warehouse: str) -> None:
    warehouse.ensure_schema(_isolated_warehouse)
    ingest.load("inference_events", _events(["a"], latency=["slow"]), source="f.csv", now=NOW)
    listed = ingest.quarantined("inference_events")
    assert listed["reason"].tolist() == ["latency_ms: not a number ('slow')"]
    assert ingest.quarantined("orders").empty
    assert len(ingest.quarantined(source="f.csv")) == 1


VALUES = st.one_of(
    st.none(),
    st.integers(-5, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.sampled_from(["ok", "error", "timeout", "2026-10-01", "2026-10-01T10:00:00+05:30", " "]),
    st.booleans(),
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "request_id": st.one_of(st.sampled_from(["a", "b", "c", "d"]), VALUES),
                "ts": st.one_of(st.just("2026-10-01 10:00"), VALUES),
                "model_id": st.one_of(st.just("m"), VALUES),
                "latency_ms": st.one_of(st.floats(0, 1e5), VALUES),
                "input_tokens": st.one_of(st.integers(0, 10**6), VALUES),
                "output_tokens": st.integers(0, 10**6),
                "status": st.one_of(st.just("ok"), VALUES),
                "quality": VALUES,
            }
        ),
        min_size=1,
        max_size=30,
    )
)
def test_any_batch_is_accounted_and_its_valid_rows_arrive(
    rows: list[dict[str, object]], _isolated_warehouse: str
) -> None:
    """Hypothesis throws bad rows at the path: the equation holds, valid rows all arrive."""
    frame = pd.DataFrame(rows)
    checked = ingest.check("inference_events", frame, now=NOW)
    warehouse.ensure_schema(_isolated_warehouse)
    with warehouse.connect(_isolated_warehouse, write=True) as conn:
        for table in ("inference_events", "quarantine"):
            conn.execute(sa.delete(warehouse.schema.metadata.tables[table]))
    result = ingest.load("inference_events", frame, source="prop", now=NOW)
    assert result.read == len(frame)
    assert _counts(result)[4] == len(checked.rejected)
    stored = read_table(_isolated_warehouse, "inference_events")
    assert sorted(stored["request_id"]) == sorted(checked.valid["request_id"])
    again = ingest.load("inference_events", frame, source="prop", now=NOW)
    assert again.inserted == again.updated == 0, "idempotent"


def test_a_demo_rebuild_keeps_the_quarantine_and_declared_tables(
    _isolated_warehouse: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auterity.demo import generate as demo_data

    sources = tmp_path / "sources.yml"
    sources.write_text(
        "tables:\n  tickets:\n    primary_key: id\n    columns:\n"
        "      id: {type: string, required: true}\n      minutes: {type: float, min: 0}\n"
    )
    monkeypatch.setenv("AUTERITY_SOURCES_FILE", str(sources))
    tickets = pd.DataFrame({"id": ["t1", "t2"], "minutes": [5, -1]})
    assert _counts(ingest.load("tickets", tickets, source="helpdesk", now=NOW)) == (2, 1, 0, 0, 1)
    demo_data.build(demo_data.DemoConfig(seed=1, events=2_000, months=2, end=NOW.date()))
    warehouse.dispose_engines()
    assert read_table(_isolated_warehouse, "tickets")["id"].tolist() == ["t1"]
    assert read_table(_isolated_warehouse, "quarantine")["reason"].tolist() == ["minutes: negative"]
    assert len(read_table(_isolated_warehouse, "inference_events")) > 0


def test_unknown_references_are_reported_not_rejected(url: str) -> None:
    models = pd.DataFrame({"model_id": ["m1"], "name": ["M1"], "provider": ["p"]})
    ingest.load("models", models, source="t", url=url, now=NOW)
    events = _events(["a", "b", "c"]).assign(model_id=["m1", "ghost", "ghost"])
    result = ingest.load("inference_events", events, source="t", url=url, now=NOW)
    assert result.inserted == 3
    assert result.unknown_references == {
        "model_id": {"values": 1, "examples": ["ghost"], "table": "models"}
    }
    audits = read_table(url, "audit_log").sort_values("ts")
    details = json.loads(audits.iloc[-1]["details"])
    assert details["tables"]["inference_events"]["unknown_references"]["model_id"]["values"] == 1
    # customer ids never enter the append-only audit log, only their pseudonyms
    strangers = _events(["d"]).assign(model_id=["m1"], customer_id=["cust-secret-1"])
    found = ingest.load("inference_events", strangers, source="t", url=url, now=NOW)
    assert found.unknown_references["customer_id"]["examples"] == ["cust-secret-1"]
    last = read_table(url, "audit_log").sort_values("ts").iloc[-1]["details"]
    assert "cust-secret-1" not in last
    recorded = json.loads(last)["tables"]["inference_events"]["unknown_references"]
    assert recorded["customer_id"]["examples"] == [access.pseudonym("cust-secret-1", "customer")]
