"""The command line: help everywhere, one-line errors, demo-data and db commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from auterity import warehouse
from auterity.cli import cli, main

COMMANDS = [
    [],
    ["demo-data"],
    ["db"],
    ["db", "upgrade"],
    ["db", "info"],
    ["db", "purge"],
    ["db", "quarantine"],
    ["metrics"],
    ["metrics", "list"],
    ["metrics", "query"],
    ["modelhub"],
    *[["modelhub", c] for c in ("leaderboard", "slo", "costs", "savings", "drift")],
    ["forecast"],
    ["anomalies"],
    ["insights"],
    ["serve"],
    ["lab"],
    ["api"],
    ["schedule"],
    *[["schedule", c] for c in ("list", "run", "run-due", "trigger")],
    ["users"],
    ["audit"],
    ["gdpr"],
    ["gdpr", "export"],
    ["gdpr", "erase"],
    *[["users", c] for c in ("add", "passwd", "set-role", "disable", "enable", "list", "roles")],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "auterity")
def test_help_everywhere(args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and "--help" in result.output


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "auterity, version 0.1.0" in capsys.readouterr().out


def test_demo_data_builds_and_summarises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.json"
    code = main(
        [
            "demo-data",
            "--events",
            "5000",
            "--months",
            "3",
            "--end",
            "2026-06-01",
            "--seed",
            "3",
            "--manifest",
            str(manifest),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "inference_events" in out.out and "5,000" in out.out
    assert "Planted effects (10)" in out.out and "savings_opportunity" in out.out
    assert "inference_events:" in out.err  # progress lines (stderr is not a terminal here)
    written = json.loads(manifest.read_text())
    assert written["rows"]["inference_events"] == 5000 and written["seed"] == 3
    assert written["end"] == "2026-06-01"


def test_demo_data_json_and_no_effects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "demo-data",
            "--events",
            "2000",
            "--months",
            "2",
            "--end",
            "2026-03-01",
            "--no-effects",
            "--quiet",
            "--format",
            "json",
            "--manifest",
            str(tmp_path / "m.json"),
        ]
    )
    out = capsys.readouterr()
    assert code == 0 and out.err == ""
    data = json.loads(out.out)
    assert data["manifest"]["effects"] == [] and data["inference_events"]["rows"] == 2000


def test_demo_data_table_output_without_effects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "demo-data",
                "--events",
                "1000",
                "--months",
                "2",
                "--no-effects",
                "--quiet",
                "--manifest",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    assert "(none: generated with --no-effects)" in capsys.readouterr().out


def test_db_upgrade_and_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "info"]) == 2
    assert "does not exist yet" in capsys.readouterr().err
    head = warehouse.head_revision()
    assert head == "0009"  # the newest file in lib/auterity/migrations/versions
    assert main(["db", "upgrade"]) == 0
    assert f"schema revision {head}" in capsys.readouterr().out
    assert main(["db", "info", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["revision"] == head and info["tables"]["orders"]["rows"] == 0
    assert main(["db", "info"]) == 0
    assert f"Schema revision {head}" in capsys.readouterr().out


def test_db_info_on_database_without_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import duckdb

    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    monkeypatch.setenv("AUTERITY_DB_URL", f"duckdb:///{path}")
    assert main(["db", "info"]) == 2
    assert "has no Auterity schema yet" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo-data", "--events", "10"], "--events must be at least 1000"),
        (["demo-data", "--end", "yesterday"], "'yesterday' is not a date"),
        (["demo-data", "--months", "2"], "2 months are too short to plant every effect"),
    ],
)
def test_bad_arguments_are_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"auterity: error: {err.split('error: ', 1)[1].strip()}"
    assert message in err and "Traceback" not in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-data", "--events", "many"]) == 2
    assert "is not a valid integer" in capsys.readouterr().err


def _run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script in a fresh process."""
    exe = Path(sys.executable).with_name("auterity")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql+psycopg://analyst:Pa55w0rd@127.0.0.1:9/warehouse",
            "cannot connect to the database at postgresql+psycopg://analyst:***@127.0.0.1:9/warehouse",
        ),
        ("oracle+nosuch://scott:tiger99@db/x", "unknown database driver 'oracle+nosuch'"),
        ("duckdb:////etc/hostname/sub/w.duckdb", "cannot create the warehouse file"),
    ],
    ids=["unreachable", "unknown-driver", "unwritable"],
)
def test_real_process_config_errors(url: str, expected: str) -> None:
    result = _run_cli("db", "upgrade", AUTERITY_DB_URL=url)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Pa55w0rd" not in result.stderr and "tiger99" not in result.stderr


def test_real_process_demo_data_on_postgres(pg_url: str) -> None:
    result = _run_cli(
        "demo-data",
        "--events",
        "3000",
        "--months",
        "3",
        "--quiet",
        "--end",
        "2026-05-01",
        "--manifest",
        os.devnull,
        AUTERITY_DB_URL=pg_url,
    )
    assert result.returncode == 0, result.stderr
    assert warehouse.table_summary(pg_url)["inference_events"]["rows"] == 3000


@pytest.fixture(scope="module")
def small_warehouse(tmp_path_factory: pytest.TempPathFactory) -> str:
    from datetime import date

    from auterity.demo import generate as demo_data

    url = f"duckdb:///{tmp_path_factory.mktemp('cli') / 'w.duckdb'}"
    demo_data.build(
        demo_data.DemoConfig(seed=4, events=8_000, months=3, end=date(2026, 6, 1)), url=url
    )
    warehouse.dispose_engines()
    return url


def test_metrics_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics", "list", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert {"revenue", "conversion_rate", "p95_latency_ms"} <= names
    assert main(["metrics", "list"]) == 0
    assert "average_order_value" in capsys.readouterr().out


def test_metrics_query_json_equals_library(
    small_warehouse: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import date

    from auterity import metrics

    monkeypatch.setenv("AUTERITY_DB_URL", small_warehouse)
    args = [
        "metrics",
        "query",
        "revenue",
        "orders",
        "--grain",
        "week",
        "--start",
        "2026-04-01",
        "--end",
        "2026-05-01",
        "--by",
        "region",
        "--where",
        "segment=smb,enterprise",
    ]
    assert main([*args, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = metrics.query(
        ["revenue", "orders"],
        start=date(2026, 4, 1),
        end=date(2026, 5, 1),
        grain="week",
        by=["region"],
        where={"segment": ["smb", "enterprise"]},
    )
    assert len(rows) == len(expected)
    assert set(rows[0]) == {"period", "region", "revenue", "orders"}
    for row, (_, exp) in zip(rows, expected.iterrows(), strict=True):
        assert row["period"] == exp["period"].strftime("%Y-%m-%d")
        assert row["region"] == exp["region"]
        assert row["revenue"] == pytest.approx(exp["revenue"])
        assert row["orders"] == exp["orders"]
    assert main([*args, "--format", "csv"]) == 0
    import io

    import pandas as pd

    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(csv.columns) == ["period", "region", "revenue", "orders"]
    assert len(csv) == len(expected)


def test_metrics_query_compare_and_totals(
    small_warehouse: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTERITY_DB_URL", small_warehouse)
    assert (
        main(
            [
                "metrics",
                "query",
                "orders",
                "quality",
                "--compare",
                "--start",
                "2026-05-01",
                "--end",
                "2026-06-01",
                "--format",
                "json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["metric"] for r in rows] == ["orders", "quality"]
    assert rows[0]["previous_delta"] == rows[0]["current"] - rows[0]["previous"]
    assert (
        main(
            [
                "metrics",
                "query",
                "requests",
                "--grain",
                "total",
                "--by",
                "model",
                "--start",
                "2026-05-01",
                "--end",
                "2026-06-01",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "gpt-4o" in out and "requests" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["metrics", "query", "revenue", "--where", "region"], "expected DIM=VALUE"),
        (["metrics", "query", "revnue"], "unknown metric 'revnue'"),
        (
            ["metrics", "query", "revenue", "--start", "2026-05-01", "--end", "2026-04-01"],
            "must be after --start",
        ),
    ],
)
def test_metrics_query_errors(
    args: list[str],
    message: str,
    small_warehouse: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AUTERITY_DB_URL", small_warehouse)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_modelhub_leaderboard_json(
    small_warehouse: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import date

    from auterity import modelhub

    monkeypatch.setenv("AUTERITY_DB_URL", small_warehouse)
    assert (
        main(
            [
                "modelhub",
                "leaderboard",
                "--start",
                "2026-05-01",
                "--end",
                "2026-06-01",
                "--format",
                "json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    expected = modelhub.leaderboard(date(2026, 5, 1), date(2026, 6, 1)).set_index("model_id")
    assert {r["model_id"] for r in rows} == set(expected.index)
    for row in rows:
        for key in (
            "requests",
            "error_rate",
            "p50_latency_ms",
            "p95_latency_ms",
            "p99_latency_ms",
            "cost",
        ):
            assert row[key] == pytest.approx(expected.loc[row["model_id"], key])
    assert rows[0]["requests"] >= rows[-1]["requests"]


@pytest.mark.parametrize(
    "args",
    [
        ["modelhub", "slo"],
        ["modelhub", "costs", "--by", "customer"],
        ["modelhub", "savings"],
        ["modelhub", "drift", "--reference-days", "14"],
        ["modelhub", "leaderboard", "--model", "gpt-4o"],
    ],
    ids=lambda a: " ".join(a[1:]),
)
def test_modelhub_commands(
    args: list[str],
    small_warehouse: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AUTERITY_DB_URL", small_warehouse)
    assert main([*args, "--start", "2026-05-01", "--end", "2026-06-01", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") >= 1 and "," in out.splitlines()[0]


def test_tables_show_values_in_their_units_and_no_nan(
    small_warehouse: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Table output is for people: percentages as %, money with its symbol, no NaN/None."""
    from datetime import date

    from auterity import charts, metrics, modelhub

    monkeypatch.setenv("AUTERITY_DB_URL", small_warehouse)
    period = ["--start", "2026-05-01", "--end", "2026-06-01"]
    assert main(["metrics", "query", "conversion_rate", "revenue", "--grain", "week", *period]) == 0
    out = capsys.readouterr().out
    weekly = metrics.query(
        ["conversion_rate", "revenue"], start=date(2026, 5, 1), end=date(2026, 6, 1), grain="week"
    )
    for _, row in weekly.iterrows():
        line = next(li for li in out.splitlines() if li.startswith(f"{row['period']:%Y-%m-%d}"))
        assert charts.format_value(row["conversion_rate"], "percent") in line
        assert charts.format_value(row["revenue"], "currency") in line
    assert "%" in out and "NaN" not in out and "None" not in out

    assert main(["modelhub", "leaderboard", *period]) == 0
    out = capsys.readouterr().out
    board = modelhub.leaderboard(date(2026, 5, 1), date(2026, 6, 1))
    top = board.iloc[0]
    line = next(li for li in out.splitlines() if li.split()[0] == top["model_id"])
    assert charts.format_value(top["error_rate"], "percent") in line
    assert charts.format_value(top["p95_latency_ms"], "ms") in line
    assert "NaN" not in out and "None" not in out

    assert main(["metrics", "query", "conversion_rate", "--compare", *period]) == 0
    out = capsys.readouterr().out
    assert "%" in out and "NaN" not in out and "None" not in out


# --------------------------------------------------------------------------- date defaults

PERIOD_DEFAULTS = [
    (["metrics", "query", "revenue"], "PERIOD_DAYS", "auterity.metrics.query"),
    (["modelhub", "leaderboard"], "PERIOD_DAYS", "auterity.modelhub.leaderboard"),
    (["modelhub", "slo"], "PERIOD_DAYS", "auterity.modelhub.slo_report"),
    (["modelhub", "costs"], "PERIOD_DAYS", "auterity.modelhub.cost_by_feature"),
    (["modelhub", "savings"], "SAVINGS_DAYS", "auterity.modelhub.savings"),
    (["modelhub", "drift"], "DRIFT_DAYS", "auterity.modelhub.drift"),
    (["insights"], "INSIGHTS_DAYS", "auterity.insights.run"),
    (["forecast", "revenue", "--horizon", "7"], "FORECAST_HISTORY_DAYS", None),
    (["anomalies", "revenue"], "ANOMALY_DAYS", None),
]
"""Every command with a default period: its constant in auterity.cli, and the library
function that receives the period (forecast and anomalies: timeseries.metric_series)."""


@pytest.mark.parametrize(
    ("args", "constant", "target"),
    PERIOD_DEFAULTS,
    ids=[" ".join(a[:2]) for a, *_ in PERIOD_DEFAULTS],
)
def test_default_periods_in_help_are_the_ones_used(
    args: list[str], constant: str, target: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`modelhub savings --help` used to say 28 days while the code used 90 (drift: 7)."""
    from datetime import date, timedelta

    import auterity.cli
    from auterity.errors import ConfigError

    days = getattr(auterity.cli, constant)
    help_text = " ".join(CliRunner().invoke(cli, [*args, "--help"]).output.split())
    assert f"Default: {days} days before --end." in help_text
    seen: list[date] = []

    def capture(*positional: object, **named: object) -> None:
        values = [*positional, *named.values()]
        if "drift" in args:  # (reference, current) windows: the current one is the period
            values = list(positional[1])  # type: ignore[call-overload]
        seen.extend(v for v in values if isinstance(v, date))
        raise ConfigError("captured")

    monkeypatch.setattr(target or "auterity.timeseries.metric_series", capture)
    assert main([*args, "--end", "2026-11-01"]) == 2
    end = date(2026, 11, 1)
    assert seen[:2] == [end - timedelta(days=days), end], (constant, seen)
    assert {"SAVINGS_DAYS": 90, "DRIFT_DAYS": 7}.get(constant, days) == days


def test_tables_keep_warehouse_text_from_driving_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value with an escape sequence or a line break prints as one harmless line."""
    import pandas as pd

    from auterity.cli.output import emit

    hostile = "\x1b]0;owned\x07\x1b[2Jmodel\nsecond line"
    emit(pd.DataFrame({"model_id": [hostile], "requests": [3]}), "table")
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert len(out.strip().splitlines()) == 2  # header and one row
    emit(pd.DataFrame({"feature": ["=HYPERLINK(1)"], "requests": [3]}), "csv")
    assert capsys.readouterr().out.splitlines()[1] == "'=HYPERLINK(1),3"
