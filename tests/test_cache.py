"""The result cache: hits for repeated questions, misses after new data or TTL, Redis shared
across processes, and a Redis outage that degrades to no cache instead of failing.

Entries are signed data, never pickles: forged entries written straight into Redis are
rejected, real frames of both databases come back with exactly their dtypes, and Redis
with a password (also an ACL user) and with TLS work against real servers."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from auterity import warehouse
from auterity.errors import ConfigError
from auterity.warehouse import cache, dialect, schema
from conftest import free_port, need_service

REDIS_URL = "redis://127.0.0.1:6379/15"
CACHE_KEY = "test-cache-key-0123456789-abcdefghijklmnop"


def _statement() -> sa.Select:
    models = schema.models
    return (
        sa.select(models.c.provider, sa.func.count().label("n"))
        .group_by(models.c.provider)
        .order_by(models.c.provider)
    )


def _add_models(url: str, *ids: str) -> None:
    frame = pd.DataFrame({"model_id": list(ids), "name": list(ids), "provider": "acme"})
    warehouse.append_data("models", frame, url=url)


@pytest.fixture(autouse=True)
def _fresh_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "_caches", {})
    monkeypatch.setitem(cache.stats, "hits", 0)
    monkeypatch.setitem(cache.stats, "misses", 0)
    monkeypatch.setitem(cache.stats, "rejected", 0)
    monkeypatch.setattr(cache, "_rejection_warned", False, raising=False)


@pytest.fixture
def redis_url(monkeypatch: pytest.MonkeyPatch) -> str:
    """The suite's Redis (db 15, emptied) as the cache, with a signing key."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        need_service("Redis at 127.0.0.1:6379", str(exc))
    client.flushdb()
    monkeypatch.setenv("AUTERITY_CACHE_URL", REDIS_URL)
    monkeypatch.setenv("AUTERITY_CACHE_KEY", CACHE_KEY)
    return REDIS_URL


def test_repeated_question_is_a_hit_until_data_changes(_isolated_warehouse: str) -> None:
    warehouse.ensure_schema()
    _add_models(_isolated_warehouse, "a", "b")
    first = cache.fetch(_statement())
    second = cache.fetch(_statement())
    assert cache.stats == {"hits": 1, "misses": 1, "rejected": 0}
    pd.testing.assert_frame_equal(first, second)
    second.loc[0, "n"] = 99  # callers get copies
    assert cache.fetch(_statement()).loc[0, "n"] == 2
    _add_models(_isolated_warehouse, "c")  # new data version
    assert cache.fetch(_statement()).loc[0, "n"] == 3
    assert cache.stats["misses"] == 2


def test_ttl_expiry_and_ttl_zero(monkeypatch: pytest.MonkeyPatch, _isolated_warehouse: str) -> None:
    warehouse.ensure_schema()
    monkeypatch.setenv("AUTERITY_CACHE_TTL", "0.2")
    cache.fetch(_statement())
    cache.fetch(_statement())
    time.sleep(0.3)
    cache.fetch(_statement())
    assert cache.stats == {"hits": 1, "misses": 2, "rejected": 0}
    monkeypatch.setenv("AUTERITY_CACHE_TTL", "0")
    cache.fetch(_statement())
    cache.fetch(_statement())
    assert cache.stats == {"hits": 1, "misses": 2, "rejected": 0}  # not consulted at all


def test_finished_answers_are_kept_signed_and_off_with_ttl_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache.remember("v1|answer", b"12\n[1,2]")
    assert cache.recall("v1|answer") == b"12\n[1,2]"
    assert cache.recall("v2|answer") is None  # another key (e.g. a newer data version)
    store = cache.get_cache()
    entry = store.get("answer:v1|answer")
    assert entry is not None
    store.set("answer:v1|answer", entry[:-1] + b"9", 60)  # tampered in the store
    assert cache.recall("v1|answer") is None and cache.stats["rejected"] == 1
    monkeypatch.setenv("AUTERITY_CACHE_TTL", "0")
    cache.remember("v3|answer", b"x")
    assert cache.recall("v3|answer") is None
    monkeypatch.setenv("AUTERITY_CACHE_TTL", "300")
    assert cache.recall("v3|answer") is None  # nothing was kept while caching was off


def test_answers_read_from_redis_are_kept_in_the_process(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer's key names its data version, so the bytes never change: once read from
    (or written to) Redis, this process answers it without a round trip."""
    import redis

    monkeypatch.setattr(cache, "_recent_answers", cache.MemoryCache(8))
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    assert cache.recall_near("v1|a") is None
    cache.remember("v1|a", b"3\n[1,2,3]")
    client.flushdb()  # gone from Redis: the process still has it
    assert cache.recall_near("v1|a") == b"3\n[1,2,3]" == cache.recall("v1|a")
    cache.clear()  # (a GDPR erasure clears the cache): gone from the process too
    assert cache.recall_near("v1|a") is None and cache.recall("v1|a") is None
    # written by another process: the first recall reads Redis, later ones need not
    other = cache.MemoryCache(8)
    monkeypatch.setattr(cache, "_recent_answers", other)
    cache.remember("v2|b", b"x")
    monkeypatch.setattr(cache, "_recent_answers", cache.MemoryCache(8))
    assert cache.recall_near("v2|b") is None
    assert cache.recall("v2|b") == b"x"
    client.flushdb()
    assert cache.recall_near("v2|b") == b"x"
    monkeypatch.setenv("AUTERITY_CACHE_TTL", "0")  # caching off: nothing, even nearby
    assert cache.recall_near("v2|b") is None


def test_memory_cache_is_bounded() -> None:
    small = cache.MemoryCache(max_entries=2)
    for key in "abc":
        small.set(key, key.encode(), 60)
    assert small.get("a") is None and small.get("c") == b"c"
    small.clear()
    assert small.get("c") is None


def test_schema_missing_is_a_clear_error(tmp_path) -> None:
    import duckdb

    path = tmp_path / "bare.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(ConfigError, match="no Auterity schema yet"):
        cache.fetch(_statement(), url=f"duckdb:///{path}")


def test_bad_cache_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTERITY_CACHE_URL", "memcached://u:pw12345@host")
    with pytest.raises(ConfigError, match="is not a Redis URL") as err:
        cache.get_cache()
    assert "pw12345" not in str(err.value)


def test_redis_cache_is_shared_between_processes(redis_url: str, _isolated_warehouse: str) -> None:
    warehouse.ensure_schema()
    _add_models(_isolated_warehouse, "a")
    cache.fetch(_statement())
    assert cache.stats == {"hits": 0, "misses": 1, "rejected": 0}
    import redis

    keys = list(redis.Redis.from_url(redis_url).scan_iter(match=cache.KEY_PREFIX + "*"))
    assert len(keys) == 1
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlalchemy as sa; from auterity.warehouse import cache, schema; "
            "m = schema.models; "
            "cache.fetch(sa.select(m.c.provider, sa.func.count().label('n'))"
            ".group_by(m.c.provider).order_by(m.c.provider)); print(cache.stats)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 0, other.stderr
    assert "'hits': 1" in other.stdout
    cache.clear()
    assert not list(redis.Redis.from_url(redis_url).scan_iter(match=cache.KEY_PREFIX + "*"))


def test_redis_outage_degrades_to_no_cache(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, _isolated_warehouse: str
) -> None:
    monkeypatch.setenv("AUTERITY_CACHE_URL", "redis://:s3cretpw@127.0.0.1:1/0")
    monkeypatch.setenv("AUTERITY_CACHE_KEY", CACHE_KEY)
    warehouse.ensure_schema()
    _add_models(_isolated_warehouse, "a")
    with caplog.at_level(logging.WARNING, logger="auterity.warehouse.cache"):
        started = time.monotonic()
        for _ in range(5):
            assert cache.fetch(_statement()).loc[0, "n"] == 1
        assert time.monotonic() - started < 5
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1  # one warning, then quiet until the retry interval passes
    assert "s3cretpw" not in caplog.text
    cache.clear()  # also a no-op while down


def test_metrics_use_the_cache(_isolated_warehouse: str) -> None:
    from auterity import metrics
    from auterity.demo import generate as demo_data

    cfg = demo_data.DemoConfig(seed=2, events=3_000, months=3, end=date(2026, 5, 1))
    demo_data.build(cfg, url=_isolated_warehouse)
    args = {"start": date(2026, 3, 1), "end": date(2026, 4, 1), "grain": "week"}
    first = metrics.query(["orders", "p95_latency_ms"], **args)
    second = metrics.query(["orders", "p95_latency_ms"], **args)
    pd.testing.assert_frame_equal(first, second)
    assert cache.stats == {"hits": 1, "misses": 1, "rejected": 0}


# --------------------------------------------------------------------------- entries are data


class _MakesAFile:
    """Unpickling this runs ``touch <path>``: what a forged pickle entry could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _signed(redis_key: bytes, body: bytes) -> bytes:
    """An entry signed with the suite's key the way the cache signs (format: see cache.py)."""
    key = redis_key.decode()[len(cache.KEY_PREFIX) :]
    message = cache.ENTRY_MAGIC + key.encode() + b"\x00" + body
    return cache.ENTRY_MAGIC + hmac.new(CACHE_KEY.encode(), message, hashlib.sha256).digest() + body


def _only_key(client: Any) -> bytes:
    keys = list(client.scan_iter(match=cache.KEY_PREFIX + "*"))
    assert len(keys) == 1, keys
    return keys[0]


def test_forged_redis_entries_are_rejected_and_never_unpickled(
    redis_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    _isolated_warehouse: str,
) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    warehouse.ensure_schema()
    _add_models(_isolated_warehouse, "a", "b")
    truth = cache.fetch(_statement())
    key = _only_key(client)
    genuine = client.get(key)
    marker = tmp_path / "pwned"
    evil = pickle.dumps(
        pd.DataFrame({"provider": ["forged"], "n": [_MakesAFile(marker)]}), protocol=5
    )
    assert b"system" in evil  # the payload really calls os.system when unpickled
    client.set(key, evil)
    answer = cache.fetch(_statement())
    assert not marker.exists(), "reading the cache ran code from a forged entry"
    pd.testing.assert_frame_equal(answer, truth)
    assert cache.stats["hits"] == 0
    assert genuine.startswith(cache.ENTRY_MAGIC) and b"acme" not in genuine  # compressed data
    # A genuine entry of another question, replayed under this key.
    cache.fetch(sa.select(sa.literal("forged").label("provider"), sa.literal(7).label("n")))
    other = next(k for k in client.scan_iter(match=cache.KEY_PREFIX + "*") if k != key)
    replayed = client.get(other)
    assert cache.stats["rejected"] == 1
    body = genuine[len(cache.ENTRY_MAGIC) + 32 :]
    forgeries = {
        "a pickle": evil,
        "a pickle behind our magic bytes": cache.ENTRY_MAGIC + bytes(32) + evil,
        "a payload signed with another secret": cache.encode_entry(
            b"not-the-key", key.decode()[len(cache.KEY_PREFIX) :], ["provider", "n"], [("x", 9)]
        ),
        "a genuine payload with a flipped byte": genuine[:-1] + bytes([genuine[-1] ^ 1]),
        "the signature of another payload": genuine[: len(cache.ENTRY_MAGIC) + 32] + body[:-3],
        "another question's genuine entry": replayed,
        "too short": cache.ENTRY_MAGIC + b"x",
        "a signed body that is not our format": _signed(key, b"not zlib at all"),
        "a signed body with an unknown tag": _signed(
            key, zlib.compress(b'[["provider","n"],1,[{"$pickle":"x"},[1]]]')
        ),
    }
    with caplog.at_level(logging.WARNING, logger="auterity.warehouse.cache"):
        for rejected, (what, forged) in enumerate(forgeries.items(), start=2):
            client.set(key, forged)
            before = dict(cache.stats)
            pd.testing.assert_frame_equal(cache.fetch(_statement()), truth, obj=what)
            assert cache.stats["rejected"] == rejected, what
            assert cache.stats["misses"] == before["misses"] + 1, what
            assert cache.stats["hits"] == before["hits"], what
            assert client.get(key) == genuine, what  # the miss wrote a good entry back
    assert not marker.exists()
    warnings = [r for r in caplog.records if "integrity check" in r.getMessage()]
    assert len(warnings) == 1  # once per process, then counted silently
    assert CACHE_KEY not in caplog.text
    pd.testing.assert_frame_equal(cache.fetch(_statement()), truth)  # a hit again
    assert cache.stats["hits"] == 1 and cache.stats["rejected"] == len(forgeries) + 1


def test_entry_format_round_trips_every_type_exactly() -> None:
    from datetime import time as dt_time
    from datetime import timedelta, timezone
    from zoneinfo import ZoneInfo

    row = (
        1,
        2**80,
        -0.0,
        float("nan"),
        float("-inf"),
        Decimal("1.10"),
        Decimal("1E+3"),
        "s",
        "",
        None,
        True,
        datetime(2026, 1, 1, 10, 0, 0, 123456),
        datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Berlin"), fold=1),
        datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1), "CET")),
        datetime(2026, 1, 1, tzinfo=UTC),
        date(2026, 1, 1),
        dt_time(1, 2, 3, 4),
        timedelta(days=-1, microseconds=3),
        [1.0, None, [2]],
        (1, "a"),
        {"a": [1], 2: None},
        b"\x00\xff",
        uuid.UUID(int=7),
    )
    rows = [row, tuple(None for _ in row)]
    columns = [f"c{i}" for i in range(len(row))]
    entry = cache.encode_entry(b"secret", "k", columns, rows)
    got_columns, got_rows = cache.decode_entry(b"secret", "k", entry)
    assert got_columns == columns
    for want, got in zip(rows[0], got_rows[0], strict=True):
        assert type(got) is type(want) and repr(got) == repr(want)
        if isinstance(want, datetime) and want.tzinfo:
            assert (got.fold, got.utcoffset(), got.tzname()) == (
                want.fold,
                want.utcoffset(),
                want.tzname(),
            )
    assert got_rows[1] == rows[1]
    assert cache.decode_entry(b"secret", "k2", entry) is None  # bound to its key
    assert cache.decode_entry(b"other", "k", entry) is None
    assert cache.decode_entry(b"secret", "k", b"") is None
    empty = cache.encode_entry(b"s", "k", ["a", "b"], [])
    assert cache.decode_entry(b"s", "k", empty) == (["a", "b"], [])
    for odd in (dt_time(1, tzinfo=UTC), object(), np.float64(1.0)):
        with pytest.raises(cache.Uncacheable):
            cache.encode_entry(b"s", "k", ["a"], [(odd,)])


def _assert_same_frame(got: pd.DataFrame, want: pd.DataFrame, what: object = "") -> None:
    """Equal values, dtypes (zones included), index, and Python types in object columns."""
    assert list(got.columns) == list(want.columns), what
    assert got.dtypes.to_dict() == want.dtypes.to_dict(), what
    assert type(got.index) is type(want.index) and got.index.equals(want.index), what
    pd.testing.assert_frame_equal(got, want, check_exact=True, obj=f"frame {what}")
    for column in [c for c in want.columns if want[c].dtype.kind == "O"]:  # object and str
        assert [(type(v), repr(v)) for v in got[column]] == [
            (type(v), repr(v)) for v in want[column]
        ], (what, column)


def _typed_statement(dialect_name: str) -> sa.TextClause:
    """One row per kind of value the drivers return, and a row of NULLs."""
    interval = "INTERVAL '1 day 2 hours'"
    return sa.text(
        "SELECT * FROM (VALUES "
        "(1, 1.5::double precision, CAST(1.10 AS NUMERIC(10,2)), 'x', TRUE, "
        " TIMESTAMP '2026-01-01 10:00:00.123456', TIMESTAMPTZ '2026-03-29 01:30:00+02', "
        f" DATE '2026-01-01', {interval}, "
        " CAST('NaN' AS double precision)), "
        "(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        ") AS t(i, f, d, s, b, ts, tstz, day, span, nan)"
    )


def test_real_typed_frames_round_trip_through_redis(
    redis_url: str, analytics_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTERITY_TIMEZONE", "Europe/Berlin")
    ie = schema.inference_events
    statements = [
        _typed_statement(sa.make_url(analytics_url).get_backend_name()),
        sa.select(ie.c.model_id, sa.func.count().label("n"))
        .where(ie.c.ts < datetime(2000, 1, 1))
        .group_by(ie.c.model_id),  # an empty frame
        sa.select(
            dialect.period_start(ie.c.ts, "week", "Europe/Berlin").label("week"),
            ie.c.model_id,
            sa.func.sum(ie.c.cost).label("cost"),  # NUMERIC on PostgreSQL: Decimal
            dialect.percentiles(ie.c.latency_ms, [0.5, 0.95]).label("q"),
            sa.func.max(ie.c.quality).label("best"),
        )
        .group_by(sa.literal_column("1"), ie.c.model_id)
        .order_by(sa.literal_column("1"), ie.c.model_id),
    ]
    for number, statement in enumerate(statements):
        with warehouse.connect(analytics_url) as conn:
            fresh = dialect.read_frame(conn, statement)
        stored = cache.fetch(statement, url=analytics_url)  # a miss
        assert stored.dtypes.to_dict() == fresh.dtypes.to_dict()
        pd.testing.assert_frame_equal(stored, fresh, check_exact=False, rtol=1e-12)  # float sums
        hits = cache.stats["hits"]
        _assert_same_frame(cache.fetch(statement, url=analytics_url), stored, number)
        assert cache.stats["hits"] == hits + 1
    assert cache.stats["rejected"] == 0


def test_every_frame_of_the_analytics_round_trips(
    redis_url: str, analytics_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each statement the metric layer and analytics run: its cached frame equals a fresh one."""
    from auterity import business, metrics, modelhub

    seen: list[sa.Executable] = []
    read_rows = dialect.read_rows

    def recording(conn: sa.Connection, statement: sa.Executable) -> Any:
        seen.append(statement)
        return read_rows(conn, statement)

    monkeypatch.setattr(dialect, "read_rows", recording)
    end = date(2026, 11, 1)
    week, month = (end - timedelta(days=7), end), (end - timedelta(days=28), end)

    def analytics() -> list[object]:
        return [
            metrics.query(["orders", "revenue", "p95_latency_ms"], start=month[0], end=end),
            metrics.query(["orders"], start=month[0], end=end, grain="week", by=["region"]),
            business.kpi_summary(*month, url=analytics_url),
            business.cohort_retention(date(2026, 6, 1), end, url=analytics_url),
            business.funnel(*month, url=analytics_url),
            business.top_movers("revenue", "segment", week, url=analytics_url),
            modelhub.leaderboard(*month, url=analytics_url),
            modelhub.daily_trend(*month, url=analytics_url),
            modelhub.cost_by_feature(*month, url=analytics_url),
            modelhub.slo_report(*week, url=analytics_url),
            modelhub.drift((month[0], week[0]), week, url=analytics_url),
        ]

    monkeypatch.setenv("AUTERITY_DB_URL", analytics_url)
    monkeypatch.setenv("AUTERITY_CACHE_TTL", "0")
    uncached = analytics()
    statements = list(seen)
    assert len(statements) >= 15
    monkeypatch.setenv("AUTERITY_CACHE_TTL", "300")
    filled = analytics()  # misses: frames built from the database's rows, entries stored
    misses = cache.stats["misses"]
    cached = analytics()  # hits: frames built from the entries
    assert cache.stats["misses"] == misses and cache.stats["hits"] >= len(statements)
    for got, stored, fresh in zip(cached, filled, uncached, strict=True):
        if isinstance(fresh, pd.DataFrame):
            _assert_same_frame(got, stored)
            # DuckDB's parallel float sums may differ in the last bit from run to run.
            pd.testing.assert_frame_equal(got, fresh, check_exact=False, rtol=1e-12)
        else:
            assert repr(got) == repr(stored)
    monkeypatch.setattr(dialect, "read_rows", read_rows)
    cache.clear()
    for number, statement in enumerate(statements):
        stored = cache.fetch(statement, url=analytics_url)
        _assert_same_frame(cache.fetch(statement, url=analytics_url), stored, number)
    assert cache.stats["rejected"] == 0


def test_a_value_the_format_cannot_hold_is_answered_not_cached(
    monkeypatch: pytest.MonkeyPatch, _isolated_warehouse: str
) -> None:
    warehouse.ensure_schema()
    statement = sa.select(sa.text("TIMETZ '12:00:00+02' AS t"))
    first = cache.fetch(statement)
    second = cache.fetch(statement)
    assert first.loc[0, "t"].utcoffset().total_seconds() == 7200
    pd.testing.assert_frame_equal(first, second)
    assert cache.stats == {"hits": 0, "misses": 2, "rejected": 0}


# --------------------------------------------------------------------------- configuration


def test_redis_needs_a_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTERITY_CACHE_URL", "redis://:hunter2pw@127.0.0.1:6379/15")
    monkeypatch.delenv("AUTERITY_CACHE_KEY", raising=False)
    with pytest.raises(ConfigError, match="needs AUTERITY_CACHE_KEY") as err:
        cache.get_cache()
    assert "hunter2pw" not in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv("AUTERITY_CACHE_KEY", "short-secret-42")
    with pytest.raises(ConfigError, match="15 characters long") as err:
        cache.get_cache()
    assert "short-secret-42" not in str(err.value)
    monkeypatch.setenv("AUTERITY_CACHE_KEY", CACHE_KEY)
    assert cache.get_cache().secret == CACHE_KEY.encode()
    monkeypatch.setenv("AUTERITY_CACHE_CA_FILE", "/nonexistent/ca.pem")
    with pytest.raises(ConfigError, match="does not use TLS") as err:
        cache.get_cache()
    assert "hunter2pw" not in str(err.value)
    monkeypatch.setenv("AUTERITY_CACHE_URL", "rediss://:hunter2pw@127.0.0.1:6379/15")
    with pytest.raises(ConfigError, match="no such file"):
        cache.get_cache()


def test_in_process_cache_signs_with_a_random_key_per_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AUTERITY_CACHE_URL", raising=False)
    monkeypatch.delenv("AUTERITY_CACHE_KEY", raising=False)
    secret = cache.get_cache().secret
    assert len(secret) == 32 and cache.get_cache().secret == secret
    assert cache.MemoryCache().secret != secret


# --------------------------------------------------------------------------- AUTH and TLS


def _redis_server(tmp: Path, *args: str) -> Iterator[int]:
    """A throw-away redis-server on a free port (``args`` add AUTH/TLS); yields the port."""
    binary = shutil.which("redis-server")
    if binary is None:
        need_service("redis-server binary", "not installed")
    port = free_port()
    tls = "--tls-port" in args
    command = [binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--dir", str(tmp), "--port", "0" if tls else str(port), *args]
    command = [c.replace("{port}", str(port)) for c in command]
    log_path = tmp / "redis.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.05)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture
def auth_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server that requires a password (and knows a least-privilege ACL user)."""
    yield from _redis_server(tmp_path, "--requirepass", "s3cret-pass-word")


def test_redis_with_a_password_and_an_acl_user(
    auth_redis: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    _isolated_warehouse: str,
) -> None:
    import redis

    admin = redis.Redis(host="127.0.0.1", port=auth_redis, password="s3cret-pass-word")
    admin.acl_setuser(
        "analytics",
        enabled=True,
        passwords=["+an@lyst pw/1"],
        keys=[cache.KEY_PREFIX + "*"],
        commands=["+get", "+set", "+del", "+scan", "+ping"],
    )
    monkeypatch.setenv("AUTERITY_CACHE_KEY", CACHE_KEY)
    warehouse.ensure_schema()
    _add_models(_isolated_warehouse, "a")
    base = f"127.0.0.1:{auth_redis}/0"
    for url in (
        f"redis://:s3cret-pass-word@{base}",
        f"redis://analytics:an%40lyst%20pw%2F1@{base}",
    ):
        monkeypatch.setenv("AUTERITY_CACHE_URL", url)
        cache.clear()
        cache.fetch(_statement())
        assert cache.fetch(_statement()).loc[0, "n"] == 1
    assert cache.stats == {"hits": 2, "misses": 2, "rejected": 0}
    assert len(list(admin.scan_iter(match=cache.KEY_PREFIX + "*"))) == 1
    bad = {
        f"redis://:wrong-pass-word@{base}": "refused the credentials",
        f"redis://analytics:wrong-pass-word@{base}": "refused the credentials",
        f"redis://{base}": "refused the credentials",  # no password at all
    }
    for url, message in bad.items():
        monkeypatch.setenv("AUTERITY_CACHE_URL", url)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="auterity.warehouse.cache"):
            assert cache.fetch(_statement()).loc[0, "n"] == 1  # answered without the cache
        (warning,) = [r.getMessage() for r in caplog.records]
        assert message in warning and "AUTERITY_CACHE_URL" in warning, warning
        assert f"127.0.0.1:{auth_redis}" in warning
    assert "wrong-pass-word" not in caplog.text and "s3cret-pass-word" not in caplog.text
    assert cache.stats["hits"] == 2


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server that speaks only TLS (certificate from a throw-away CA) and needs AUTH."""
    openssl = shutil.which("openssl")
    if openssl is None:
        need_service("openssl", "not installed (needed to make test certificates)")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=tmp_path, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=auterity-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    (tmp_path / "ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.crt", "-days", "2", "-extfile", "ext")  # fmt: skip
    for port in _redis_server(
        tmp_path,
        "--tls-port", "{port}", "--tls-cert-file", str(tmp_path / "srv.crt"),
        "--tls-key-file", str(tmp_path / "srv.key"), "--tls-ca-cert-file",
        str(tmp_path / "ca.crt"), "--tls-auth-clients", "no", "--requirepass", "tls-pass-word",
    ):  # fmt: skip
        yield port, tmp_path / "ca.crt"


def test_redis_over_tls(
    tls_redis: tuple[int, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    _isolated_warehouse: str,
) -> None:
    port, ca_file = tls_redis
    monkeypatch.setenv("AUTERITY_CACHE_KEY", CACHE_KEY)
    warehouse.ensure_schema()
    _add_models(_isolated_warehouse, "a")
    url = f"rediss://:tls-pass-word@127.0.0.1:{port}/0"
    monkeypatch.setenv("AUTERITY_CACHE_URL", url)
    monkeypatch.setenv("AUTERITY_CACHE_CA_FILE", str(ca_file))
    cache.fetch(_statement())
    cache.fetch(_statement())
    assert cache.stats == {"hits": 1, "misses": 1, "rejected": 0}
    monkeypatch.delenv("AUTERITY_CACHE_CA_FILE")
    monkeypatch.setenv("AUTERITY_CACHE_URL", f"{url}?ssl_ca_certs={ca_file}")
    cache.fetch(_statement())
    assert cache.stats["hits"] == 2  # the same server and entries, CA named in the URL
    monkeypatch.setenv("AUTERITY_CACHE_URL", url)  # the system store does not know our CA
    with caplog.at_level(logging.WARNING, logger="auterity.warehouse.cache"):
        assert cache.fetch(_statement()).loc[0, "n"] == 1
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "unavailable" in warning and "certificate verify failed" in warning, warning
    monkeypatch.setenv("AUTERITY_CACHE_URL", f"redis://:tls-pass-word@127.0.0.1:{port}/0")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="auterity.warehouse.cache"):
        assert cache.fetch(_statement()).loc[0, "n"] == 1  # plain text to a TLS port
    assert len(caplog.records) == 1
    assert "tls-pass-word" not in caplog.text
    assert cache.stats["hits"] == 2
