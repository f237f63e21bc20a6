"""The warehouse: engines, errors, schema migrations, writes, concurrency (DuckDB + PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from auterity import warehouse
from auterity.errors import ConfigError, DatabaseUnavailable
from auterity.warehouse import schema

# --------------------------------------------------------------------------- configuration errors


def test_default_url_is_duckdb_under_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTERITY_DB_URL")
    url = warehouse.database_url()
    assert url.get_backend_name() == "duckdb"
    assert Path(url.database).parent.name == "data"


def test_not_a_url_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="is not a database URL"):
        warehouse.database_url("just some words")


def test_unknown_dialect_names_the_driver() -> None:
    with pytest.raises(ConfigError, match="unknown database driver 'nosuchdb'"):
        warehouse.get_engine("nosuchdb://user:pw@host/db")


def test_missing_driver_is_reported() -> None:
    with pytest.raises(ConfigError, match="driver for 'mysql\\+mysqldb' is not installed"):
        warehouse.get_engine("mysql+mysqldb://user:pw@localhost/db")


def test_unreachable_server_masks_password() -> None:
    url = "postgresql+psycopg://postgres:verysecret@127.0.0.1:9/test"
    with pytest.raises(DatabaseUnavailable) as err, warehouse.connect(url):
        pass
    message = str(err.value)
    assert "verysecret" not in message
    assert "postgres:***@127.0.0.1:9/test" in message
    assert "cannot connect" in message


def test_unwritable_duckdb_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot create the warehouse file"):
        warehouse.ensure_schema(f"duckdb:///{blocker / 'sub' / 'w.duckdb'}")


def test_read_of_missing_duckdb_file_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist yet.*auterity demo-data"):
        warehouse.table_summary(f"duckdb:///{tmp_path / 'nothing.duckdb'}")


# --------------------------------------------------------------------------- schema


def _columns(conn: sa.Connection, table: str) -> list[str]:
    """Column names of a table via information_schema (portable across our databases)."""
    rows = conn.execute(
        sa.text(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = :t ORDER BY ordinal_position"
        ),
        {"t": table},
    )
    return [r[0] for r in rows]


def _assert_schema_matches_metadata(url: str) -> None:
    with warehouse.connect(url) as conn:
        for table in schema.metadata.sorted_tables:
            assert _columns(conn, table.name) == [c.name for c in table.c], table.name
        assert warehouse.current_revision(conn) == warehouse.head_revision()


def test_contract_column_names_are_exact() -> None:
    contract = {
        "customers": "customer_id signup_ts country segment plan email name",
        "orders": "order_id customer_id ts amount currency channel status",
        "product_events": "event_id customer_id session_id ts event_type",
        "models": "model_id name provider version input_price_per_1k output_price_per_1k",
        "inference_events": "request_id ts model_id customer_id feature latency_ms "
        "input_tokens output_tokens cost status quality",
    }
    for table, names in contract.items():
        columns = [c.name for c in schema.metadata.tables[table].c]
        assert set(names.split()) <= set(columns), table
    assert {"report_runs", "audit_log"} <= set(schema.metadata.tables)


def test_schema_on_duckdb_is_idempotent(_isolated_warehouse: str) -> None:
    first = warehouse.ensure_schema()
    second = warehouse.ensure_schema()
    assert first == second == warehouse.head_revision()
    _assert_schema_matches_metadata(_isolated_warehouse)


def test_duckdb_enforces_status_check(_isolated_warehouse: str) -> None:
    warehouse.ensure_schema()
    bad = pd.DataFrame(
        {
            "request_id": ["r1"],
            "ts": [pd.Timestamp("2026-01-01")],
            "model_id": ["m"],
            "latency_ms": [1.0],
            "input_tokens": [1],
            "output_tokens": [1],
            "status": ["exploded"],
        }
    )
    with pytest.raises(sa.exc.DBAPIError, match=r"(?i)check"):
        warehouse.append_data("inference_events", bad)


@pytest.mark.postgres
def test_schema_on_postgres_matches_metadata_exactly(pg_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    warehouse.ensure_schema(pg_url)
    warehouse.ensure_schema(pg_url)
    _assert_schema_matches_metadata(pg_url)
    with warehouse.connect(pg_url) as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
        indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("inference_events")}
    assert diff == [], diff
    assert indexes == {"ix_inference_events_ts", "ix_inference_events_model_ts"}


def test_any_sqlalchemy_url_works_through_the_generic_path(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    warehouse.ensure_schema(url)
    frame = pd.DataFrame(
        {"model_id": ["m1"], "name": ["M1"], "provider": ["p"], "input_price_per_1k": [0.1]}
    )
    assert warehouse.append_data("models", frame, url=url) == 1
    with warehouse.connect(url) as conn:
        row = conn.execute(sa.select(schema.models)).one()
    assert row.model_id == "m1" and row.pricing_kind == "per_token" and row.hosting == "api"


# --------------------------------------------------------------------------- writes


def _models(n: int, prefix: str = "m") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_id": [f"{prefix}{i}" for i in range(n)],
            "name": [f"Model {i}" for i in range(n)],
            "provider": "acme",
        }
    )


def test_write_frame_rejects_unknown_columns(_isolated_warehouse: str) -> None:
    warehouse.ensure_schema()
    with pytest.raises(ConfigError, match="no column\\(s\\) colour"):
        warehouse.append_data("models", _models(1).assign(colour="red"))
    with pytest.raises(ConfigError, match="unknown warehouse table 'nope'"):
        warehouse.append_data("nope", _models(1))


def test_append_bumps_data_version_and_audits(_isolated_warehouse: str) -> None:
    warehouse.ensure_schema()
    assert warehouse.data_version() is None
    assert warehouse.append_data("models", _models(3)) == 3
    v1 = warehouse.data_version()
    assert warehouse.append_data("models", _models(0)) == 0
    v2 = warehouse.data_version()
    assert v1 and v2 and v1 != v2
    with warehouse.connect() as conn:
        actions = conn.execute(
            sa.select(schema.audit_log.c.action, schema.audit_log.c.details)
        ).all()
    assert [a for a, _ in actions] == ["data.append", "data.append"]
    assert json.loads(actions[0][1]) == {"rows": 3}


def test_failed_write_rolls_back(_isolated_warehouse: str) -> None:
    warehouse.ensure_schema()
    warehouse.append_data("models", _models(2))
    with pytest.raises(sa.exc.DBAPIError):
        warehouse.append_data("models", _models(3))  # m0, m1 already exist: whole batch fails
    assert warehouse.table_summary()["models"]["rows"] == 2


def _add_run(url: str, run_id: str) -> None:
    with warehouse.connect(url, write=True) as conn:
        conn.execute(
            sa.insert(schema.report_runs).values(
                run_id=run_id,
                notebook="nb",
                trigger="manual",
                acting_user="tester",
                status="ok",
                started_at=pd.Timestamp("2026-01-01").to_pydatetime(),
            )
        )


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_replace_data_keeps_history(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    url = url or os.environ["AUTERITY_DB_URL"]
    warehouse.ensure_schema(url)
    warehouse.append_data("models", _models(5), url=url)
    _add_run(url, "run-1")
    with warehouse.connect(url, write=True) as conn:
        conn.execute(
            sa.insert(schema.schedule_slots).values(
                job_name="weekly",
                scheduled_for=pd.Timestamp("2026-01-05 07:00").to_pydatetime(),
                status="error",
                run_id="run-1",
                claimed_at=pd.Timestamp("2026-01-05 07:00").to_pydatetime(),
            )
        )
    result = warehouse.replace_data(
        iter([("models", _models(2, "new")), ("models", _models(1, "more"))]),
        url=url,
        meta={"note": "hello"},
    )
    assert result.rows == {"models": 3}
    with warehouse.connect(url) as conn:
        ids = sorted(conn.execute(sa.select(schema.models.c.model_id)).scalars())
        runs = conn.execute(sa.select(schema.report_runs.c.run_id)).scalars().all()
        slots = conn.execute(sa.select(schema.schedule_slots.c.status)).scalars().all()
        actions = conn.execute(sa.select(schema.audit_log.c.action)).scalars().all()
    assert ids == ["more0", "new0", "new1"]
    assert runs == ["run-1"]
    assert slots == ["error"]  # the scheduler's claims survive a rebuild
    assert sorted(actions) == ["data.append", "data.replace"]
    assert warehouse.get_meta("note", url) == "hello"
    assert warehouse.data_version(url) == result.data_version


def test_data_freshness_is_the_newest_time_of_the_summary(tmp_path: Path) -> None:
    from auterity.demo import generate as demo_data

    empty = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    warehouse.ensure_schema(empty)
    assert warehouse.data_freshness(empty) is None  # empty tables
    url = f"duckdb:///{tmp_path / 'built.duckdb'}"
    world = demo_data.DemoConfig(
        seed=3, events=1000, months=2, end=date(2026, 11, 1), effects=False
    )
    demo_data.build(world, url=url)
    lasts = [t["last"] for t in warehouse.table_summary(url).values() if t["last"] is not None]
    assert warehouse.data_freshness(url) == max(lasts)


def test_replace_data_creates_a_new_duckdb_file(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'fresh' / 'w.duckdb'}"
    result = warehouse.replace_data(iter([("models", _models(4))]), url=url)
    assert result.rows == {"models": 4}
    assert warehouse.table_summary(url)["models"]["rows"] == 4
    assert not list((tmp_path / "fresh").glob("*.building*"))


# --------------------------------------------------------------------------- concurrency

_READER = textwrap.dedent(
    """
    import json, sys, time
    import sqlalchemy as sa
    from auterity import warehouse
    url, seconds = sys.argv[1], float(sys.argv[2])
    counts, errors = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with warehouse.connect(url) as conn:
                counts.append(conn.execute(sa.text("SELECT count(*) FROM models")).scalar())
        except Exception as exc:  # report, keep reading
            errors.append(repr(exc))
    print(json.dumps({"counts": counts, "errors": errors}))
    """
)


def test_duckdb_readers_keep_reading_while_a_writer_writes(tmp_path: Path) -> None:
    """Two reader processes query in a loop while this process appends and rebuilds."""
    url = f"duckdb:///{tmp_path / 'busy.duckdb'}"
    warehouse.ensure_schema(url)
    warehouse.append_data("models", _models(1, "seed"), url=url)
    warehouse.dispose_engines()
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", _READER, url, "6"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    time.sleep(1.5)  # readers are up and reading
    for batch in range(10):
        warehouse.append_data("models", _models(5, f"b{batch}-"), url=url)
    warehouse.replace_data(iter([("models", _models(100, "rebuilt"))]), url=url)
    for batch in range(5):
        warehouse.append_data("models", _models(5, f"c{batch}-"), url=url)
    results = [json.loads(r.communicate(timeout=60)[0]) for r in readers]
    for result in results:
        assert result["errors"] == []
        assert len(result["counts"]) > 10
        # Readers only ever saw whole writes: the seed row, 5-row appends, or the rebuild.
        assert set(result["counts"]) <= {1 + 5 * k for k in range(11)} | {
            100 + 5 * k for k in range(6)
        }
    assert warehouse.table_summary(url)["models"]["rows"] == 125


def test_lock_held_too_long_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "held.duckdb"
    warehouse.ensure_schema(f"duckdb:///{path}")
    warehouse.dispose_engines()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True);"
            " time.sleep(20)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("AUTERITY_DB_LOCK_TIMEOUT", "0.5")
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="stayed locked by another process"):
            warehouse.table_summary(f"duckdb:///{path}")
        assert time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()


def test_pooled_reader_lets_go_of_the_file_for_another_process(tmp_path: Path) -> None:
    """A read leaves a pooled connection open; a writer in another process still gets in."""
    url = f"duckdb:///{tmp_path / 'pooled.duckdb'}"
    warehouse.ensure_schema(url)
    warehouse.append_data("models", _models(1), url=url)
    assert warehouse.table_summary(url)["models"]["rows"] == 1  # pooled read connection now
    writer = (
        "import pandas as pd, time; from auterity import warehouse; t = time.monotonic(); "
        f"warehouse.append_data('models', pd.DataFrame({{'model_id': ['w'], 'name': ['W'], "
        f"'provider': ['p']}}), url={url!r}); print(round(time.monotonic() - t, 2))"
    )
    result = subprocess.run(
        [sys.executable, "-c", writer],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AUTERITY_DB_LOCK_TIMEOUT": "10"},
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 5
    assert warehouse.table_summary(url)["models"]["rows"] == 2


def test_stale_write_intent_of_a_dead_process_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "stale.duckdb"
    url = f"duckdb:///{path}"
    warehouse.ensure_schema(url)
    intent = path.with_name(path.name + ".write-intent")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    intent.write_text(f"{dead.stdout.strip()} token")
    started = time.monotonic()
    assert warehouse.table_summary(url)["models"]["rows"] == 0
    assert time.monotonic() - started < 2
    assert not intent.exists()


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_upgrade_from_an_older_revision_keeps_rows(
    backend: str, request: pytest.FixtureRequest
) -> None:
    from alembic import command

    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    url = url or os.environ["AUTERITY_DB_URL"]
    with warehouse.connect(url, write=True) as conn:
        command.upgrade(warehouse.engine.alembic_config(conn), "0001")
    with warehouse.connect(url, write=True) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO report_runs (run_id, notebook, trigger, acting_user, status,"
                " started_at, pruned) VALUES ('old', 'nb', 'manual', 'me', 'ok', '2026-01-01',"
                " false)"
            )
        )
    assert warehouse.ensure_schema(url) == warehouse.head_revision() != "0001"
    _assert_schema_matches_metadata(url)
    with warehouse.connect(url) as conn:
        row = conn.execute(sa.select(schema.report_runs)).one()
    assert row.run_id == "old" and row.worker_pid is None


def test_threads_of_one_process_read_and_write_in_turn(tmp_path: Path) -> None:
    """DuckDB refuses mixed read-only/read-write handles in one process: threads take turns."""
    from concurrent.futures import ThreadPoolExecutor

    url = f"duckdb:///{tmp_path / 'threads.duckdb'}"
    warehouse.ensure_schema(url)

    def write(k: int) -> int:
        for i in range(5):
            warehouse.append_data("models", _models(2, f"t{k}-{i}-"), url=url)
        return 0

    def read(_: int) -> int:
        seen = 0
        for _ in range(30):
            seen = max(seen, warehouse.table_summary(url)["models"]["rows"])
        return seen

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda f: f[0](f[1]), [(write, 0), (read, 0), (write, 1), (read, 1)])
        )
    assert results[1] <= 20 and results[3] <= 20
    assert warehouse.table_summary(url)["models"]["rows"] == 20
    with (
        warehouse.connect(url),
        pytest.raises(RuntimeError, match="holds a read"),
        warehouse.connect(url, write=True),
    ):
        pass


# --------------------------------------------------------------------------- rebuilds


def test_rebuild_of_a_path_with_a_quote_and_a_space(tmp_path: Path) -> None:
    """The swap attaches the new file by a bound path: a quote or a space is just a name."""
    path = tmp_path / "it's a dir" / "ware house'.duckdb"
    url = f"duckdb:///{path}"
    warehouse.replace_data(iter([("models", _models(2, "a"))]), url=url, meta={"o'k": "1"})
    _add_run(url, "run-1")
    warehouse.replace_data(iter([("models", _models(3, "b"))]), url=url, meta={"o'k": "2"})
    with warehouse.connect(url) as conn:
        ids = sorted(conn.execute(sa.select(schema.models.c.model_id)).scalars())
        runs = conn.execute(sa.select(schema.report_runs.c.run_id)).scalars().all()
    assert ids == ["b0", "b1", "b2"] and runs == ["run-1"]
    assert warehouse.get_meta("o'k", url) == "2"
    assert not list(path.parent.glob("*.building*"))


_POLLER = textwrap.dedent(
    """
    import json, sys, time
    import sqlalchemy as sa
    from auterity import warehouse
    from auterity.warehouse import schema
    url, stop = sys.argv[1], sys.argv[2]
    seen, errors, polls = set(), [], 0
    import os
    while not os.path.exists(stop):
        try:
            with warehouse.connect(url) as conn:
                counts = tuple(
                    conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                    for t in schema.metadata.sorted_tables
                )
            seen.add(counts)
            polls += 1
        except Exception as exc:  # report, keep polling
            errors.append(repr(exc))
    names = [t.name for t in schema.metadata.sorted_tables]
    print(json.dumps({"names": names, "seen": sorted(seen), "errors": errors, "polls": polls}))
    """
)
"""Reads every table of the warehouse (read-only) in a loop until ``stop`` exists."""


def _data_counts(url: str) -> dict[str, int]:
    """Rows of each data table."""
    return {name: info["rows"] for name, info in warehouse.table_summary(url).items()}


def test_concurrent_rebuilds_are_exclusive_and_readers_see_whole_worlds(tmp_path: Path) -> None:
    """Two `auterity demo-data` on one warehouse: the second gets one line and changes nothing.

    A reader process polls every table the whole time: each poll must find all tables and
    the row counts of one complete world (the one before, or the winner's).
    """
    from auterity.demo import generate as demo_data

    path = tmp_path / "raced.duckdb"
    url = f"duckdb:///{path}"
    world = demo_data.DemoConfig(seed=1, events=3_000, months=4, end=date(2026, 11, 1))
    before = demo_data.build(world, url=url)
    warehouse.dispose_engines()
    exe = Path(sys.executable).with_name("auterity")
    env = {**os.environ, "AUTERITY_DB_URL": url, "AUTERITY_DB_LOCK_TIMEOUT": "30"}
    stop = tmp_path / "stop"
    poller = subprocess.Popen(
        [sys.executable, "-c", _POLLER, url, str(stop)], stdout=subprocess.PIPE, text=True, env=env
    )

    def rebuild(seed: int, events: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(exe), "demo-data", "--quiet", "--seed", str(seed), "--events", str(events),
             "--months", "4", "--end", "2026-11-01", "--format", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip

    winner = rebuild(2, 400_000)  # long enough to outlast the loser's start-up
    building = path.with_name(path.name + ".building")
    deadline = time.monotonic() + 120
    while not building.exists():  # the first rebuild is writing its new file
        assert winner.poll() is None, winner.communicate()
        assert time.monotonic() < deadline, "the first rebuild never started writing"
        time.sleep(0.05)
    loser = rebuild(3, 2_000)  # small: it reaches the lock while the first one still writes
    loser_out, loser_err = loser.communicate(timeout=120)
    winner_out, winner_err = winner.communicate(timeout=300)
    stop.touch()
    polled = json.loads(poller.communicate(timeout=60)[0])

    assert winner.returncode == 0, winner_err
    assert loser.returncode == 2 and loser_out == ""
    assert "Traceback" not in loser_err
    (line,) = loser_err.strip().splitlines()
    assert line.startswith(
        f"auterity: error: another rebuild of {path} is running (pid {winner.pid}"
    )
    assert "this one stopped before changing anything" in line
    after = json.loads(winner_out)["manifest"]["rows"]
    assert _data_counts(url) == after != before["rows"]
    assert polled["errors"] == [] and polled["polls"] > 5
    data = [polled["names"].index(t) for t in schema.DATA_TABLES]
    worlds = {tuple(w[t] for t in schema.DATA_TABLES) for w in (before["rows"], after)}
    assert {tuple(seen[i] for i in data) for seen in polled["seen"]} <= worlds
    with warehouse.connect(url) as conn:
        rebuilds = conn.execute(
            sa.select(schema.audit_log.c.details).where(
                schema.audit_log.c.action == "demo_data.build"
            )
        ).scalars()
        seeds = sorted(json.loads(d)["seed"] for d in rebuilds)
    assert seeds == [1, 2]  # the loser left no trace
    assert not list(tmp_path.glob("*.building*"))
    # The lock died with its holder: the next rebuild just runs.
    warehouse.replace_data(iter([("models", _models(1, "next"))]), url=url)


def test_concurrent_rebuilds_on_postgres_are_exclusive(pg_url: str) -> None:
    """A rebuild's transaction holds an advisory lock: a second rebuild is refused at once."""
    import threading

    warehouse.ensure_schema(pg_url)
    warehouse.append_data("models", _models(2, "old"), url=pg_url)
    writing, finish = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def slow_chunks():
        yield "models", _models(3, "first")
        writing.set()
        finish.wait(60)
        yield "models", _models(1, "late")

    def run(name: str, chunks) -> None:
        try:
            outcome[name] = warehouse.replace_data(chunks, url=pg_url)
        except Exception as exc:
            outcome[name] = exc

    first = threading.Thread(target=run, args=("first", slow_chunks()))
    first.start()
    assert writing.wait(60)
    second = threading.Thread(target=run, args=("second", iter([("models", _models(9, "x"))])))
    second.start()
    second.join(timeout=20)
    finished_while_first_held = not second.is_alive()
    finish.set()
    first.join(timeout=60)
    second.join(timeout=60)
    assert finished_while_first_held, "the second rebuild waited on the first's rows"
    refused = outcome["second"]
    assert isinstance(refused, DatabaseUnavailable), refused
    assert str(refused).startswith("another rebuild of postgresql+psycopg://postgres@")
    assert "\n" not in str(refused)
    assert outcome["first"].rows == {"models": 4}
    with warehouse.connect(pg_url) as conn:
        ids = sorted(conn.execute(sa.select(schema.models.c.model_id)).scalars())
    assert ids == ["first0", "first1", "first2", "late0"]


def test_a_read_that_outlives_its_pool_lets_go_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read still running when its pool is let go of (the idle reaper, or a writer that
    announced itself) closes its connection when it ends: returned to the disposed pool it
    kept the DuckDB file open until garbage collection, so a writer here failed with "a
    different configuration" and writers in other processes timed out on the lock."""
    import gc

    url = f"duckdb:///{tmp_path / 'pool.duckdb'}"
    warehouse.ensure_schema(url)
    warehouse.dispose_engines()
    monkeypatch.setenv("AUTERITY_DB_LOCK_TIMEOUT", "3")
    inside, finish = threading.Event(), threading.Event()

    def reader() -> None:
        with warehouse.connect(url) as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
            inside.set()
            finish.wait(30)

    gc.disable()  # what the collector might clean up by chance must not hide the leak
    try:
        thread = threading.Thread(target=reader)
        thread.start()
        assert inside.wait(30)
        warehouse.engine.release_readers(warehouse.duckdb_path(sa.make_url(url)))
        finish.set()
        thread.join(30)
        started = time.monotonic()
        with warehouse.connect(url, write=True) as conn:
            warehouse.set_meta(conn, "after", "the read")
        assert time.monotonic() - started < 2
    finally:
        gc.enable()
    assert warehouse.get_meta("after", url) == "the read"


_LATE_WRITER = textwrap.dedent(
    """
    import sys, time
    from auterity import warehouse
    url = sys.argv[1]
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    with warehouse.connect(url, write=True) as conn:
        warehouse.set_meta(conn, "late", "in")
    print(round(time.monotonic() - started, 2), flush=True)
    """
)


def test_a_busy_writer_does_not_starve_a_writer_of_another_process(tmp_path: Path) -> None:
    """The OTLP receiver writes several times a second; a writer in another process still
    gets its turn within a few seconds (a guard: with readers about too, a waiting writer
    used to be starved, see test_ingest_concurrency and the test below)."""
    url = f"duckdb:///{tmp_path / 'busy-writer.duckdb'}"
    warehouse.ensure_schema(url)
    warehouse.dispose_engines()
    late = subprocess.Popen(
        [sys.executable, "-c", _LATE_WRITER, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "AUTERITY_DB_LOCK_TIMEOUT": "30"},
    )
    assert late.stdin is not None and late.stdout is not None
    assert late.stdout.readline().strip() == "ready"
    stop = time.monotonic() + 8
    writes = 0
    late.stdin.write("go\n")
    late.stdin.flush()
    while time.monotonic() < stop:
        with warehouse.connect(url, write=True) as conn:
            warehouse.set_meta(conn, "busy", str(writes))
        writes += 1
    waited = float(late.stdout.readline())
    assert late.wait(timeout=60) == 0
    assert writes > 20
    assert waited < 4, f"the other process waited {waited} s for its turn"
    assert warehouse.get_meta("late", url) == "in"


def test_writers_take_turns_in_the_order_they_announced_themselves(tmp_path: Path) -> None:
    """A writer announced earlier (here: one that keeps its turn for 2 s) goes first; a
    later writer's note neither replaces nor removes the earlier one's. Writers used to
    share one ``.write-intent`` file: a later writer overwrote a waiting one's note and
    removed it when done, so readers took the file back and the waiting writer (an ingest
    behind the receiver's flushes) was starved up to the lock timeout."""
    path = tmp_path / "turns.duckdb"
    url = f"duckdb:///{path}"
    warehouse.ensure_schema(url)
    warehouse.dispose_engines()
    first = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from auterity import warehouse\n"
            "with warehouse.announce_write(Path(sys.argv[1])):\n"
            "    print('announced', flush=True); time.sleep(2)\n"
            "print(time.time(), flush=True)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert first.stdout is not None
    assert first.stdout.readline().strip() == "announced"
    assert warehouse.engine._writer_waiting(path)
    with warehouse.connect(url, write=True) as conn:
        began = time.time()
        warehouse.set_meta(conn, "second", "writer")
    first_done = float(first.stdout.readline())
    assert first.wait(timeout=30) == 0
    assert began >= first_done - 0.05
    assert not warehouse.engine._writer_waiting(path)
    assert not list(tmp_path.glob("*.write-intent*"))
