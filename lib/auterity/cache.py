"""Run analytic statements, answering repeated questions from a result cache.

:func:`fetch` is the one way the analytics modules read the warehouse. The cache key is
the compiled SQL, its parameters, the database, and the warehouse's *data version*, which
every write bumps (:func:`auterity.warehouse.mark_data_changed`): new data means a new
key, so a cached answer is never served for data that changed. Entries also expire after
``AUTERITY_CACHE_TTL`` seconds.

The cache is in-process by default; with ``AUTERITY_CACHE_URL=redis://...`` it is shared
through Redis by every process (dashboards, report kernels, the API). A Redis outage
degrades to no caching, with one warning, never to an error.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import threading
import time
from collections import OrderedDict
from typing import Protocol

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL

from auterity import dialect, schema, warehouse
from auterity.config import get_settings
from auterity.errors import ConfigError
from auterity.redact import mask_url

log = logging.getLogger("auterity.cache")

KEY_PREFIX = "auterity:q:"
REDIS_RETRY_AFTER_S = 30.0


class ResultCache(Protocol):
    """Where cached results live."""

    def get(self, key: str) -> bytes | None:
        """The stored bytes, or None."""

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store bytes for ``ttl_s`` seconds."""

    def clear(self) -> None:
        """Forget every entry."""


class MemoryCache:
    """A small in-process LRU cache with expiry (thread-safe)."""

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        """The stored bytes if present and not expired."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            expires, value = item
            if expires < time.monotonic():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value``; the least recently used entries go when full."""
        with self._lock:
            self._items[key] = (time.monotonic() + ttl_s, value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._items.clear()


class RedisCache:
    """A cache shared through Redis; any Redis failure means 'no cache' for a while."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self._redis = redis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, retry_on_timeout=False
        )
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._down_until = 0.0

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        if self._available():
            log.warning(
                "result cache at %s unavailable (%s); running without cache for %.0f s",
                mask_url(self.url),
                exc,
                REDIS_RETRY_AFTER_S,
            )
        self._down_until = time.monotonic() + REDIS_RETRY_AFTER_S

    def get(self, key: str) -> bytes | None:
        """The stored bytes, or None (also when Redis is down)."""
        if not self._available():
            return None
        try:
            return self._redis.get(KEY_PREFIX + key)
        except self._errors as exc:
            self._failed(exc)
            return None

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value`` with an expiry; silently skipped while Redis is down."""
        if not self._available():
            return
        try:
            self._redis.set(KEY_PREFIX + key, value, px=max(1, int(ttl_s * 1000)))
        except self._errors as exc:
            self._failed(exc)

    def clear(self) -> None:
        """Delete our keys (only ours: the Redis database may be shared)."""
        if not self._available():
            return
        try:
            for key in self._redis.scan_iter(match=KEY_PREFIX + "*", count=500):
                self._redis.delete(key)
        except self._errors as exc:
            self._failed(exc)


_caches: dict[str | None, ResultCache] = {}
_caches_lock = threading.Lock()
stats = {"hits": 0, "misses": 0}
"""Counters of this process, for tests and benchmarks."""


def get_cache() -> ResultCache:
    """The cache selected by ``AUTERITY_CACHE_URL`` (one instance per URL)."""
    url = get_settings().cache_url
    with _caches_lock:
        cache = _caches.get(url)
        if cache is None:
            if url is None:
                cache = MemoryCache()
            elif url.startswith(("redis://", "rediss://", "unix://")):
                cache = RedisCache(url)
            else:
                raise ConfigError(
                    f"AUTERITY_CACHE_URL={mask_url(url)} is not a Redis URL (redis://host:6379/0)"
                )
            _caches[url] = cache
        return cache


def clear() -> None:
    """Empty the current cache."""
    get_cache().clear()


def _data_version(conn: sa.Connection) -> str:
    """The data version, read on the connection that will run the query."""
    meta = schema.warehouse_meta
    try:
        version = conn.execute(
            sa.select(meta.c.value).where(meta.c.key == warehouse.DATA_VERSION_KEY)
        ).scalar()
    except sa.exc.DBAPIError:
        raise ConfigError(
            "the warehouse has no Auterity schema yet; build it with `auterity demo-data` "
            "or `auterity db upgrade` and load data"
        ) from None
    return version or "empty"


def _key(statement: sa.Executable, conn: sa.Connection, url: URL, version: str) -> str:
    """A stable hash of everything that determines the answer."""
    compiled = statement.compile(dialect=conn.dialect)
    params = sorted((k, repr(v)) for k, v in compiled.params.items())
    material = "\x1f".join(
        [url.render_as_string(hide_password=True), version, str(compiled), repr(params)]
    )
    return hashlib.sha256(material.encode()).hexdigest()


def fetch(statement: sa.Executable, *, url: str | URL | None = None) -> pd.DataFrame:
    """Run an analytic statement and return its rows, from the cache when possible.

    Parameters
    ----------
    statement : Executable
        A SQLAlchemy Core statement returning aggregates.
    url : str or URL, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        The rows; a copy, so callers may modify it.
    """
    parsed = url if isinstance(url, URL) else warehouse.database_url(url)
    ttl = get_settings().cache_ttl_s
    with warehouse.connect(parsed) as conn:
        dialect.check_supported(conn)
        if ttl <= 0:
            return dialect.read_frame(conn, statement)
        key = _key(statement, conn, parsed, _data_version(conn))
        cache = get_cache()
        cached = cache.get(key)
        if cached is not None:
            stats["hits"] += 1
            return pickle.loads(cached)
        stats["misses"] += 1
        frame = dialect.read_frame(conn, statement)
    cache.set(key, pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL), ttl)
    return frame


def fetch_many(
    statements: dict[str, sa.Executable], *, url: str | URL | None = None
) -> dict[str, pd.DataFrame]:
    """Run several statements (each cached on its own) and return their frames by name."""
    return {name: fetch(stmt, url=url) for name, stmt in statements.items()}


__all__ = ["MemoryCache", "RedisCache", "clear", "fetch", "fetch_many", "get_cache", "stats"]
