"""Files in: CSV, Parquet, JSON Lines through the CLI and the library; bad files; SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import read_table

from auterity import ingest, warehouse
from auterity.cli import main
from auterity.errors import ConfigError
from auterity.ingest import files

HEADER = "rid,ts,model_id,latency_ms,input_tokens,output_tokens,status\n"


def _csv(path: Path, lines: list[str], header: str = HEADER, encoding: str = "utf-8") -> Path:
    path.write_bytes((header + "".join(line + "\n" for line in lines)).encode(encoding))
    return path


def _parquet(path: Path, rows: int, start: int = 0, bad_every: int = 0) -> Path:
    """``rows`` model requests written by DuckDB; every ``bad_every``-th has negative tokens."""
    bad = f"CASE WHEN {bad_every} > 0 AND i % {bad_every} = 0 THEN -1 ELSE 7 END"
    duckdb.sql(
        f"COPY (SELECT 'r' || i AS request_id, TIMESTAMP '2026-10-01' + to_seconds(i) AS ts, "
        f"'m' || (i % 3) AS model_id, 'c' || (i % 50) AS customer_id, i % 500 * 1.0 AS latency_ms,"
        f" {bad} AS input_tokens, 3 AS output_tokens, 'ok' AS status "
        f"FROM range({start}, {start + rows}) t(i)) TO '{path}' (FORMAT parquet)"
    )
    return path


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_csv_through_the_cli_prints_exactly_the_accounting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _csv(
        tmp_path / "events.csv",
        [
            "r1,2026-11-01 10:00,m,5,1,1,ok",
            "r2,2026-11-01 10:00,m,-5,1,1,ok",  # negative latency
            "r3,2026-11-01,m,1,1,1,ok,extra",  # one value too many: unreadable line
            "r4,2026-11-01T12:00:00+01:00,m,1,1,1,error",
        ],
    )
    args = ["ingest", str(path), "--table", "inference_events", "--map", "rid=request_id"]
    code, out, _ = _cli(capsys, *args, "--format", "json")
    assert code == 0
    assert json.loads(out) == {
        "read": 4,
        "inserted": 2,
        "updated": 0,
        "unchanged": 0,
        "quarantined": 2,
    }
    code, out, err = _cli(capsys, *args)
    assert code == 0 and "unchanged" in out and "[1/1]" in err
    assert json.loads(_cli(capsys, *args, "--format", "json", "--quiet")[1])["unchanged"] == 2
    stored = read_table(os.environ["AUTERITY_DB_URL"], "inference_events")
    assert sorted(stored["request_id"]) == ["r1", "r4"]
    assert stored.set_index("request_id")["ts"]["r4"].hour == 11, "offset converted to UTC"
    code, out, _ = _cli(capsys, "db", "quarantine", "--format", "json")
    reasons = sorted(r["reason"] for r in json.loads(out))
    assert reasons == [
        "latency_ms: negative",
        "line 4: TOO MANY COLUMNS: Expected Number of Columns: 7 Found: 8",
    ]
    assert len(json.loads(out)) == 2, "the second and third loads quarantined nothing new"


def test_parquet_and_json_lines_and_globs(tmp_path: Path) -> None:
    url = os.environ["AUTERITY_DB_URL"]
    _parquet(tmp_path / "part-1.parquet", 300, bad_every=100)
    _parquet(tmp_path / "part-2.parquet", 200, start=300)
    results = files.load_files("inference_events", [str(tmp_path / "part-*.parquet")])
    assert [r.counts()["inserted"] for r in results] == [297, 200]
    assert [r.quarantined for r in results] == [3, 0]
    lines = tmp_path / "events.jsonl"
    lines.write_text(
        '{"request_id": "j1", "ts": "2026-11-01", "model_id": "m", "latency_ms": 1,'
        ' "input_tokens": 2, "output_tokens": 3, "status": "ok", "quality": 0.5}\n'
        "not json\n"
        "\n"
        "[1, 2]\n"
        '{"request_id": "j2", "ts": "2026-11-01", "model_id": "m", "latency_ms": 1,'
        ' "input_tokens": 2.5, "output_tokens": 3, "status": "ok"}\n'
    )
    (result,) = files.load_files("inference_events", [str(lines)])
    assert result.counts() == {
        "read": 4,
        "inserted": 1,
        "updated": 0,
        "unchanged": 0,
        "quarantined": 3,
    }
    quarantine = ingest.quarantined(source=str(lines.resolve()))
    assert sorted(quarantine["reason"]) == [
        "input_tokens: not a whole number (2.5)",
        "line 2: not a JSON object",
        "line 4: not a JSON object",
    ]
    assert len(read_table(url, "inference_events")) == 498


def test_postgres_warehouse_takes_files_too(tmp_path: Path, pg_url: str) -> None:
    _parquet(tmp_path / "e.parquet", 1000, bad_every=250)
    (result,) = files.load_files("inference_events", [str(tmp_path / "e.parquet")], url=pg_url)
    assert (result.inserted, result.quarantined) == (996, 4)
    (again,) = files.load_files("inference_events", [str(tmp_path / "e.parquet")], url=pg_url)
    assert (again.unchanged, again.inserted, again.updated) == (996, 0, 0)
    assert len(read_table(pg_url, "quarantine")) == 4


def test_bad_files_get_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "garbage.parquet").write_bytes(b"PAR1 this is not parquet")
    (tmp_path / "notes.xyz").write_text("a,b\n")
    _csv(tmp_path / "few.csv", ["r1,2026-11-01"], header="request_id,ts\n")
    cases = {
        str(tmp_path / "missing.csv"): "no such file(s)",
        str(tmp_path / "nothing-*.csv"): "no such file(s)",
        str(tmp_path / "empty.csv"): "the file is empty",
        str(tmp_path / "garbage.parquet"): "not a readable file of this format",
        str(tmp_path / "notes.xyz"): "cannot tell the format",
        str(tmp_path / "few.csv"): "missing required column(s) model_id, latency_ms",
    }
    for path, expected in cases.items():
        code, out, err = _cli(capsys, "ingest", path, "--table", "inference_events", "--quiet")
        assert code == 2, (path, out, err)
        assert expected in err and "Traceback" not in err, (path, err)
        assert err.count("\n") <= 2
    code, _, err = _cli(capsys, "ingest", str(tmp_path / "few.csv"), "-t", "orders", "--map", "x")
    assert code == 2 and "expected FILE_COLUMN=TABLE_COLUMN" in err
    code, _, err = _cli(capsys, "ingest", str(tmp_path / "few.csv"), "-t", "report_runs")
    assert code == 2 and "is not a data table" in err
    code, out, _ = _cli(capsys, "ingest", "--help")
    assert code == 0 and "--map" in out and "quarantine" in out


def test_a_file_in_another_encoding_is_quarantined_line_by_line_or_read_as_told(
    tmp_path: Path,
) -> None:
    path = _csv(
        tmp_path / "latin.csv",
        ["r1,2026-11-01,modèle,5,1,1,ok", "r2,2026-11-01,m,5,1,1,ok"],
        encoding="latin-1",
    )
    (result,) = files.load_files("inference_events", [str(path)], column_map={"rid": "request_id"})
    assert (result.read, result.inserted, result.quarantined) == (2, 1, 1)
    assert "INVALID ENCODING" in ingest.quarantined()["reason"][0]
    (result,) = files.load_files(
        "inference_events", [str(path)], column_map={"rid": "request_id"}, encoding="latin-1"
    )
    assert (result.inserted, result.unchanged) == (1, 1)
    stored = read_table(os.environ["AUTERITY_DB_URL"], "inference_events")
    assert sorted(stored["model_id"]) == ["m", "modèle"]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=400), suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]))
def test_any_bytes_give_an_accounted_load_or_one_clear_error(
    body: bytes, suffix: str, tmp_path: Path
) -> None:
    path = tmp_path / f"fuzz{suffix}"
    header = HEADER.replace("rid", "request_id").encode()
    path.write_bytes(header + body if suffix == ".csv" else body)
    try:
        (result,) = files.load_files("inference_events", [str(path)], encoding="latin-1")
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    counts = result.counts()
    assert counts["read"] == sum(
        counts[k] for k in ("inserted", "updated", "unchanged", "quarantined")
    )


KILLER = """
import sys
from auterity.ingest import files
files.load_files("inference_events", [sys.argv[1]])
print("done", flush=True)
"""


def test_a_load_killed_mid_batch_leaves_nothing_and_a_rerun_completes(tmp_path: Path) -> None:
    url = os.environ["AUTERITY_DB_URL"]
    warehouse.ensure_schema(url)
    _parquet(tmp_path / "small.parquet", 10)
    files.load_files("inference_events", [str(tmp_path / "small.parquet")])
    big = _parquet(tmp_path / "big.parquet", 3_000_000, start=10)
    warehouse.dispose_engines()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = False
    for delay in (1.5, 0.8, 3.0):
        proc = subprocess.Popen([sys.executable, "-c", KILLER, str(big)], env=env)
        time.sleep(delay)
        if proc.poll() is None:  # still inside its one transaction
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = True
            break
        proc.wait()
    assert killed, "the load finished before it could be killed; make the file bigger"
    stored = read_table(url, "inference_events")
    assert len(stored) == 10, "no row of the killed batch is visible"
    (result,) = files.load_files("inference_events", [str(big)])
    assert result.inserted == 3_000_000
    with warehouse.connect(url) as conn:
        total, distinct = conn.exec_driver_sql(
            "SELECT count(*), count(DISTINCT request_id) FROM inference_events"
        ).one()
    assert total == distinct == 3_000_010


def test_sources_yml_maps_columns_of_every_file_of_a_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = tmp_path / "sources.yml"
    sources.write_text(
        "files:\n  inference_events:\n    columns: {rid: request_id, Missing: feature}\n"
    )
    monkeypatch.setenv("AUTERITY_SOURCES_FILE", str(sources))
    path = _csv(tmp_path / "e.csv", ["r1,2026-11-01 10:00,m,5,1,1,ok"])
    code, out, err = _cli(capsys, "ingest", str(path), "-t", "inference_events", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["inserted"] == 1, "the declared map applies where a file fits it"
    code, _, err = _cli(capsys, "ingest", str(path), "-t", "inference_events", "--map", "Nope=x")
    assert code == 2 and "--map names column(s) Nope" in err, "a given --map must fit"


def test_parquet_types_are_checked_by_the_contract_too(tmp_path: Path) -> None:
    path = tmp_path / "typed.parquet"
    duckdb.sql(
        "COPY (SELECT 'r' || i AS request_id, TIMESTAMP '2026-10-01' AS ts, 'm' AS model_id, "
        "CASE WHEN i = 1 THEN 'inf'::DOUBLE ELSE 5.0 END AS latency_ms, "
        "CASE WHEN i = 2 THEN 3000000000 ELSE 7 END::BIGINT AS input_tokens, "
        "1::SMALLINT AS output_tokens, 'ok' AS status, "
        f"CASE WHEN i = 3 THEN 5 END::BIGINT AS feedback FROM range(4) t(i)) TO '{path}' "
        "(FORMAT parquet)"
    )
    (result,) = files.load_files("inference_events", [str(path)])
    assert (result.inserted, result.quarantined) == (1, 3)
    assert sorted(ingest.quarantined()["reason"]) == [
        "feedback: not one of -1, 1",
        "input_tokens: not a whole number in range (3000000000)",
        "latency_ms: not a number (inf)",
    ]


def test_a_file_can_mark_rows_deleted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header = "rid,ts,model_id,latency_ms,input_tokens,output_tokens,status,gone\n"
    first = _csv(
        tmp_path / "a.csv", ["r1,2026-11-01,m,5,1,1,ok,false", "r2,2026-11-01,m,5,1,1,ok,"], header
    )
    second = _csv(tmp_path / "b.csv", ["r1,2026-11-01,m,5,1,1,ok,true"], header)
    common = ["-t", "inference_events", "--map", "rid=request_id", "--deleted-column", "gone"]
    code, out, err = _cli(capsys, "ingest", str(first), *common, "--format", "json", "--quiet")
    assert code == 0, err
    assert json.loads(out)["inserted"] == 2
    code, out, err = _cli(capsys, "ingest", str(second), *common, "--format", "json", "--quiet")
    assert json.loads(out) == {
        "read": 1,
        "inserted": 0,
        "updated": 1,
        "unchanged": 0,
        "quarantined": 0,
    }
    assert read_table(os.environ["AUTERITY_DB_URL"], "inference_events")["request_id"].tolist() == [
        "r2"
    ]
    code, _, err = _cli(
        capsys, "ingest", str(first), "-t", "inference_events", "--deleted-column", "x"
    )
    assert code == 2 and "deleted-marker column 'x'" in err
