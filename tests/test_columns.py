"""The one column table: labels, units and good directions of output columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from auterity import charts, correlate, metrics
from auterity.charts import columns
from auterity.charts.columns import Column
from auterity.errors import ConfigError


def test_declared_columns_have_known_units_and_directions() -> None:
    assert columns.COLUMNS  # not empty
    for name, col in columns.COLUMNS.items():
        assert col.name == name
        assert col.label and col.label == col.label.strip(), name
        assert col.unit is None or col.unit in charts.UNITS, name
        assert col.good in charts.GOOD, name
    for group in (columns.MODELHUB_COLUMNS, columns.BUSINESS_COLUMNS, columns.FINDING_COLUMNS):
        assert set(group) <= set(columns.COLUMNS)
    with pytest.raises(ConfigError, match="unknown unit 'euros'"):
        Column("price", "Price", "euros")
    with pytest.raises(ConfigError, match="unknown good direction 'sideways'"):
        Column("price", "Price", "currency", "sideways")
    with pytest.raises(TypeError):
        columns.COLUMNS["cost"] = Column("cost", "Money")


def test_phrase_is_the_label_inside_a_sentence() -> None:
    assert Column("error_rate", "Error rate").phrase == "error rate"
    assert Column("psi", "PSI").phrase == "PSI"  # an acronym keeps its capitals
    assert Column("p95", "p95 latency").phrase == "p95 latency"
    assert Column("q", "Quality (mean score)", phrase="quality").phrase == "quality"
    assert columns.phrase("quality_mean") == "quality"
    assert columns.phrase("cost_per_request") == "cost per request"


def test_column_answers_from_the_table_then_the_catalog_then_the_name() -> None:
    p95 = columns.column("p95_latency_ms")
    assert (p95.label, p95.unit, p95.good) == ("p95 latency", "ms", "down")
    revenue = columns.column("revenue")  # a catalog metric
    assert (revenue.label, revenue.unit, revenue.good) == ("Revenue", "currency", "up")
    step = columns.column("event_type")  # a catalog dimension
    assert (step.label, step.unit, step.good) == ("Funnel step", None, "neutral")
    other = columns.column("tokens_per_request")
    assert (other.label, other.unit, other.good) == ("Tokens per request", None, "neutral")
    # A declared name wins over the catalog's metric of the same name.
    assert metrics.load_catalog().metric("requests").label == "Model requests"
    assert columns.label("requests") == "Requests"
    assert columns.unit("cost") == "currency" and columns.unit("status") is None
    assert columns.good("error_rate") == "down" and columns.good("compliance") == "up"
    assert columns.good("share_of_traffic") == "neutral"


def test_a_broken_catalog_leaves_names_as_labels(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("metrics: [this is not a mapping\n")
    monkeypatch.setenv("AUTERITY_METRICS_FILES", str(broken))
    assert columns.column("arpu") == Column("arpu", "Arpu")
    assert columns.label("p95_latency_ms") == "p95 latency"  # the table needs no catalog


def test_the_table_agrees_with_the_catalog_where_both_declare_a_name() -> None:
    catalog = metrics.load_catalog()
    shared = set(columns.COLUMNS) & set(catalog.metrics)
    assert {"requests", "error_rate", "p95_latency_ms", "input_tokens"} <= shared
    for name in shared:
        declared, metric = columns.COLUMNS[name], catalog.metric(name)
        assert (declared.unit, declared.good) == (metric.unit, metric.good), name


def test_every_modelhub_output_column_is_declared() -> None:
    modelhub = pytest.importorskip("auterity.modelhub")
    for table in ("LEADERBOARD", "DAILY", "SLO", "DRIFT", "SAVINGS"):
        names = getattr(modelhub, f"{table}_COLUMNS")
        assert set(names) <= set(columns.COLUMNS), (table, set(names) - set(columns.COLUMNS))


def test_units_and_labels_of_a_frame() -> None:
    frame = pd.DataFrame(
        {"model_id": ["a"], "name": ["A"], "cost": [1234.5], "error_rate": [0.05], "note": ["x"]}
    )
    assert columns.units(frame) == {"cost": "currency", "error_rate": "percent"}
    assert list(columns.units(["error_rate", "cost"])) == ["error_rate", "cost"]
    assert columns.labels(frame) == {
        "model_id": "Model",
        "name": "Model (name)",  # two columns never share a header
        "cost": "Cost",
        "error_rate": "Error rate",
        "note": "Note",
    }
    shown = columns.labelled(frame)
    assert list(shown.columns) == ["Model", "Model (name)", "Cost", "Error rate", "Note"]
    assert shown["Cost"].tolist() == [1234.5]  # values are left as they are
    assert frame.columns[0] == "model_id"  # the frame itself is unchanged


def test_command_line_units_are_the_modelhub_columns_with_a_house_style() -> None:
    assert charts.COLUMN_UNITS is columns.COLUMN_UNITS
    assert charts.COLUMN_UNITS["p95_latency_ms"] == "ms"
    assert charts.COLUMN_UNITS["cost_per_request"] == "currency"
    assert "quality_mean" not in charts.COLUMN_UNITS  # plain numbers keep the CLI's format
    assert "count" not in charts.COLUMN_UNITS  # business columns are not ModelHub's
    for name, unit in charts.COLUMN_UNITS.items():
        assert columns.MODELHUB_COLUMNS[name].unit == unit != "number"


def test_leaderboard_measures_and_ml_metrics_come_from_the_table() -> None:
    for measure in charts.LEADERBOARD_MEASURES:
        assert columns.MODELHUB_COLUMNS[measure].unit in charts.UNITS, measure
    assert correlate.ML_LABELS == {
        "p95_latency_ms": "p95 latency",
        "error_rate": "error rate",
        "cost_per_request": "cost per request",
        "quality_mean": "quality",
    }
    assert correlate.ML_UNITS == {
        "p95_latency_ms": "ms",
        "error_rate": "percent",
        "cost_per_request": "currency",
        "quality_mean": "number",
    }
