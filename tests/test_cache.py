"""The result cache: hits for repeated questions, misses after new data or TTL, Redis shared
across processes, and a Redis outage that degrades to no cache instead of failing."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from auterity import cache, schema, warehouse
from auterity.errors import ConfigError
from conftest import need_service

REDIS_URL = "redis://127.0.0.1:6379/15"


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


@pytest.fixture
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        need_service("Redis at 127.0.0.1:6379", str(exc))
    client.flushdb()
    return REDIS_URL


def test_repeated_question_is_a_hit_until_data_changes(_isolated_warehouse: str) -> None:
    warehouse.ensure_schema()
    _add_models(_isolated_warehouse, "a", "b")
    first = cache.fetch(_statement())
    second = cache.fetch(_statement())
    assert cache.stats == {"hits": 1, "misses": 1}
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
    assert cache.stats == {"hits": 1, "misses": 2}
    monkeypatch.setenv("AUTERITY_CACHE_TTL", "0")
    cache.fetch(_statement())
    cache.fetch(_statement())
    assert cache.stats == {"hits": 1, "misses": 2}  # not consulted at all


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


def test_redis_cache_is_shared_between_processes(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, _isolated_warehouse: str
) -> None:
    monkeypatch.setenv("AUTERITY_CACHE_URL", redis_url)
    warehouse.ensure_schema()
    _add_models(_isolated_warehouse, "a")
    cache.fetch(_statement())
    assert cache.stats == {"hits": 0, "misses": 1}
    import redis

    keys = list(redis.Redis.from_url(redis_url).scan_iter(match=cache.KEY_PREFIX + "*"))
    assert len(keys) == 1
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlalchemy as sa; from auterity import cache, schema; "
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
    warehouse.ensure_schema()
    _add_models(_isolated_warehouse, "a")
    with caplog.at_level(logging.WARNING, logger="auterity.cache"):
        started = time.monotonic()
        for _ in range(5):
            assert cache.fetch(_statement()).loc[0, "n"] == 1
        assert time.monotonic() - started < 5
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1  # one warning, then quiet until the retry interval passes
    assert "s3cretpw" not in caplog.text
    cache.clear()  # also a no-op while down


def test_metrics_use_the_cache(_isolated_warehouse: str) -> None:
    from auterity import demo_data, metrics

    cfg = demo_data.DemoConfig(seed=2, events=3_000, months=3, end=date(2026, 5, 1))
    demo_data.build(cfg, url=_isolated_warehouse)
    args = {"start": date(2026, 3, 1), "end": date(2026, 4, 1), "grain": "week"}
    first = metrics.query(["orders", "p95_latency_ms"], **args)
    second = metrics.query(["orders", "p95_latency_ms"], **args)
    pd.testing.assert_frame_equal(first, second)
    assert cache.stats == {"hits": 1, "misses": 1}
