"""Run analytic statements, answering repeated questions from a result cache.

:func:`fetch` is the one way the analytics modules read the warehouse. The cache key is
the compiled SQL, its parameters, the database, and the warehouse's *data version*, which
every write bumps (:func:`auterity.warehouse.mark_data_changed`): new data means a new
key, so a cached answer is never served for data that changed. Entries also expire after
``AUTERITY_CACHE_TTL`` seconds.

The cache is in-process by default; with ``AUTERITY_CACHE_URL=redis://...`` (``rediss://``
for TLS, passwords in the URL) it is shared through Redis by every process (dashboards,
report kernels, the API). A Redis outage degrades to no caching, with one warning, never
to an error.

Entries are data, never code
----------------------------
Whoever can write to the cache's Redis must not be able to run code in the processes that
read it (they hold the database and SMTP secrets). So an entry holds the statement's
column names and rows as JSON (values JSON cannot say exactly -- decimals, dates and times
with their zone, intervals, bytes, UUIDs, tuples, mappings -- are tagged), and it is
signed with HMAC-SHA256 over the cache key and the payload with ``AUTERITY_CACHE_KEY``.
The signature is checked before anything is decoded; an entry that fails it (forged,
corrupted, copied from another key, or signed with another secret) counts as a miss and
in ``stats["rejected"]``, with one warning per process. On a hit the frame is rebuilt by
:func:`auterity.dialect.frame_from_rows`, the function that builds fresh frames, so a
cached answer has exactly the dtypes of a fresh one. A result holding a value outside
those types is simply not cached.

The Redis cache needs ``AUTERITY_CACHE_KEY`` (a ConfigError says so): the secret must be
the same in every process sharing the cache, possibly on several hosts, so it is
deployment configuration like the database password, not something each process could
invent. The in-process cache signs with a random secret of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import secrets
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, timedelta, timezone
from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL

from auterity.config import ENV_CACHE_CA_FILE, ENV_CACHE_KEY, ENV_CACHE_URL, get_settings
from auterity.errors import ConfigError, DatabaseUnavailable
from auterity.redact import first_line, mask_secrets, mask_url, register_secret
from auterity.warehouse import dialect, engine, schema, scope
from auterity.warehouse.writes import DATA_VERSION_KEY

log = logging.getLogger("auterity.warehouse.cache")

KEY_PREFIX = "auterity:q:"
REDIS_RETRY_AFTER_S = 30.0
ENTRY_MAGIC = b"AUC1"
"""First bytes of every entry: the format and its version."""

_MAC_BYTES = 32


class ResultCache(Protocol):
    """Where cached results live (signed entries, as bytes)."""

    secret: bytes
    """The HMAC secret entries of this cache are signed with."""

    def get(self, key: str) -> bytes | None:
        """The stored bytes, or None."""

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store bytes for ``ttl_s`` seconds."""

    def clear(self) -> None:
        """Forget every entry."""


class MemoryCache:
    """A small in-process LRU cache with expiry (thread-safe)."""

    def __init__(self, max_entries: int = 512, *, secret: bytes | None = None) -> None:
        self.max_entries = max_entries
        self.secret = secret or secrets.token_bytes(32)
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
    """A cache shared through Redis; any Redis failure means 'no cache' for a while.

    Parameters
    ----------
    url : str
        ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS; a CA bundle
        may be named with ``?ssl_ca_certs=/path``) or ``unix://...``.
    secret : bytes
        HMAC secret of the entries (``AUTERITY_CACHE_KEY``).
    ca_file : str, optional
        CA bundle the server's certificate must chain to (``AUTERITY_CACHE_CA_FILE``).
    """

    def __init__(self, url: str, *, secret: bytes, ca_file: str | None = None) -> None:
        import redis

        self.url = url
        self.secret = secret
        password = urlsplit(url).password
        if password:
            register_secret(password)
            register_secret(unquote(password))
        options: dict[str, Any] = {
            "socket_timeout": 0.5,
            "socket_connect_timeout": 0.5,
            "retry_on_timeout": False,
        }
        if ca_file:
            if not url.startswith("rediss://"):
                raise ConfigError(
                    f"{ENV_CACHE_CA_FILE} is set but {ENV_CACHE_URL}={mask_url(url)} does not "
                    "use TLS; write rediss:// to connect with TLS"
                )
            if not Path(ca_file).expanduser().is_file():
                raise ConfigError(f"{ENV_CACHE_CA_FILE}={ca_file}: no such file")
            options["ssl_ca_certs"] = str(Path(ca_file).expanduser())
        try:
            self._redis = redis.Redis.from_url(url, **options)
        except ValueError as exc:
            raise ConfigError(
                f"{ENV_CACHE_URL}={mask_url(url)} is not a usable Redis URL: "
                f"{mask_secrets(str(exc))}"
            ) from None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._auth_errors: tuple[type[BaseException], ...] = (redis.AuthenticationError,)
        self._down_until = 0.0

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        if self._available():
            if isinstance(exc, self._auth_errors) or "NOAUTH" in str(exc):
                what = f"refused the credentials in {ENV_CACHE_URL}"
            else:
                what = "unavailable"
            log.warning(
                "result cache at %s %s (%s); running without cache for %.0f s",
                mask_url(self.url),
                what,
                mask_secrets(str(exc)) or type(exc).__name__,
                REDIS_RETRY_AFTER_S,
            )
        self._down_until = time.monotonic() + REDIS_RETRY_AFTER_S

    def get(self, key: str) -> bytes | None:
        """The stored bytes, or None (also when Redis is down)."""
        if not self._available():
            return None
        try:
            # The client is made without decode_responses, so values come back as bytes.
            return cast("bytes | None", self._redis.get(KEY_PREFIX + key))
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


# --------------------------------------------------------------------------- entries


class Uncacheable(TypeError):
    """A result holds a value the entry format cannot store exactly (it is not cached)."""


def _encode_datetime(value: datetime) -> Any:
    """A datetime with its zone: naive, an IANA zone, or a fixed offset (and its own name)."""
    tz = value.tzinfo
    if tz is None:
        return {"$datetime": value.isoformat()}
    if type(tz) is ZoneInfo and tz.key:
        return {"$zoned": [value.isoformat(), tz.key]}
    if type(tz) is timezone:
        name = tz.tzname(None)
        plain = timezone(tz.utcoffset(None)).tzname(None)
        return {"$offset": [value.isoformat(), None if name == plain else name]}
    raise Uncacheable(f"a datetime with the time zone class {type(tz).__name__}")


def _encode_time(value: dt_time) -> Any:
    """A time of day (without a zone: an aware time has no well-defined offset)."""
    if value.tzinfo is not None:
        raise Uncacheable("a time of day with a time zone")
    return {"$time": value.isoformat()}


_ENCODERS: dict[type, Any] = {
    float: lambda v: v if math.isfinite(v) else {"$float": repr(v)},
    list: lambda v: [_encode_value(x) for x in v],
    tuple: lambda v: {"$tuple": [_encode_value(x) for x in v]},
    dict: lambda v: {"$map": [[_encode_value(k), _encode_value(x)] for k, x in v.items()]},
    Decimal: lambda v: {"$decimal": str(v)},
    datetime: _encode_datetime,
    date: lambda v: {"$date": v.isoformat()},
    dt_time: _encode_time,
    timedelta: lambda v: {"$timedelta": [v.days, v.seconds, v.microseconds]},
    bytes: lambda v: {"$bytes": base64.b64encode(v).decode("ascii")},
    uuid.UUID: lambda v: {"$uuid": str(v)},
}
"""Values JSON cannot say exactly, by their exact type (bool is not int, datetime not date)."""
_PLAIN_KINDS = frozenset({str, int, bool, type(None)})


def _encode_value(value: Any) -> Any:
    """One cell as JSON: plain values as they are, the others as a one-key tag object."""
    kind = type(value)
    if kind in _PLAIN_KINDS:
        return value
    encode = _ENCODERS.get(kind)
    if encode is None:
        raise Uncacheable(f"a value of type {kind.__name__}")
    return encode(value)


_COLUMN_TAGS: dict[type, tuple[str, Any]] = {
    datetime: ("$datetimes", datetime.isoformat),
    date: ("$dates", date.isoformat),
    Decimal: ("$decimals", str),
}
"""Columns of one of these types only (no NULLs) are tagged once, not cell by cell."""


def _encode_column(values: Sequence[Any]) -> Any:
    """One column as JSON: as it is if plain, one tag if uniform, else cell by cell."""
    kinds = set(map(type, values))
    if kinds <= _PLAIN_KINDS or (
        kinds <= _PLAIN_KINDS | {float}
        and all(math.isfinite(v) for v in values if type(v) is float)
    ):
        return list(values)
    if len(kinds) == 1:
        (kind,) = kinds
        tag = _COLUMN_TAGS.get(kind)
        if tag is not None and not (kind is datetime and any(v.tzinfo for v in values)):
            return {tag[0]: [tag[1](v) for v in values]}
    return [_encode_value(v) for v in values]


def _decode_offset(value: list[Any]) -> datetime:
    """A datetime with a fixed offset, under the offset's own name if it had one."""
    parsed = datetime.fromisoformat(value[0])
    if value[1] is None:
        return parsed
    return parsed.replace(tzinfo=timezone(parsed.utcoffset(), value[1]))  # type: ignore[arg-type]


_DECODERS: dict[str, Any] = {
    "$float": float,
    "$tuple": tuple,
    "$map": lambda v: {k: x for k, x in v},
    "$decimal": Decimal,
    "$datetime": datetime.fromisoformat,
    "$zoned": lambda v: datetime.fromisoformat(v[0]).astimezone(ZoneInfo(v[1])),
    "$offset": _decode_offset,
    "$date": date.fromisoformat,
    "$time": dt_time.fromisoformat,
    "$timedelta": lambda v: timedelta(*v),
    "$bytes": lambda v: base64.b64decode(v, validate=True),
    "$uuid": uuid.UUID,
    "$datetimes": lambda v: list(map(datetime.fromisoformat, v)),
    "$dates": lambda v: list(map(date.fromisoformat, v)),
    "$decimals": lambda v: list(map(Decimal, v)),
}


def _decode_tag(tag: dict[str, Any]) -> Any:
    """Turn a tag object back into its value (every JSON object in an entry is a tag)."""
    ((name, value),) = tag.items()
    return _DECODERS[name](value)


def _mac(secret: bytes, key: str, body: bytes) -> bytes:
    """The entry's signature: binds the payload to its cache key and format."""
    message = ENTRY_MAGIC + key.encode() + b"\x00" + body
    return hmac.new(secret, message, hashlib.sha256).digest()


def encode_entry(
    secret: bytes, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> bytes:
    """Serialise a statement's result as a signed cache entry.

    Parameters
    ----------
    secret : bytes
        HMAC secret.
    key : str
        The cache key the entry is stored under (part of what is signed).
    columns, rows
        Column names and rows as from :func:`auterity.dialect.read_rows`.

    Returns
    -------
    bytes
        ``ENTRY_MAGIC``, the HMAC-SHA256 signature, then the compressed JSON payload.

    Raises
    ------
    Uncacheable
        If a value has a type the format does not hold exactly.
    """
    by_column = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    payload = [list(columns), len(rows), [_encode_column(values) for values in by_column]]
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    body = zlib.compress(text.encode("utf-8"), 1)
    return ENTRY_MAGIC + _mac(secret, key, body) + body


def decode_entry(
    secret: bytes, key: str, entry: bytes
) -> tuple[list[str], list[tuple[Any, ...]]] | None:
    """Check an entry's signature and return its columns and rows, or None if it fails.

    Nothing of the entry is decoded before the signature matches, and decoding only
    builds plain data (JSON, then the tagged types), so a forged entry cannot run code.
    """
    head = len(ENTRY_MAGIC)
    if not entry.startswith(ENTRY_MAGIC) or len(entry) < head + _MAC_BYTES:
        return None
    signature, body = entry[head : head + _MAC_BYTES], entry[head + _MAC_BYTES :]
    if not hmac.compare_digest(signature, _mac(secret, key, body)):
        return None
    columns, count, values = json.loads(
        zlib.decompress(body).decode("utf-8"), object_hook=_decode_tag
    )
    if len(values) != len(columns) or any(len(v) != count for v in values):
        raise ValueError("cache entry with columns of unequal length")
    return [str(c) for c in columns], list(zip(*values, strict=True)) if values else [
        () for _ in range(count)
    ]


# --------------------------------------------------------------------------- the cache


_caches: dict[tuple[str | None, str | None, str | None], ResultCache] = {}
_caches_lock = threading.Lock()
stats = {"hits": 0, "misses": 0, "rejected": 0}

_TALLY: ContextVar[dict[str, int] | None] = ContextVar("auterity_cache_tally", default=None)


@contextmanager
def tally() -> Iterator[dict[str, int]]:
    """Count the cache hits and misses of the reads inside the block (this context only,
    unlike :data:`stats`, which counts the whole process): ``{"hits": n, "misses": m}``."""
    counts = {"hits": 0, "misses": 0}
    token = _TALLY.set(counts)
    try:
        yield counts
    finally:
        _TALLY.reset(token)


def _count(outcome: str) -> None:
    stats[outcome] += 1
    counts = _TALLY.get()
    if counts is not None:
        counts[outcome] += 1


"""Counters of this process, for tests and benchmarks (a rejected entry is also a miss)."""
_rejection_warned = False


def get_cache() -> ResultCache:
    """The cache selected by ``AUTERITY_CACHE_URL`` (one instance per URL and key).

    Raises
    ------
    ConfigError
        The URL is not a Redis URL, or a Redis URL comes without ``AUTERITY_CACHE_KEY``.
    """
    settings = get_settings()
    url, key = settings.cache_url, settings.cache_key
    ident = (url, key, settings.cache_ca_file)
    with _caches_lock:
        cache = _caches.get(ident)
        if cache is None:
            if url is None:
                cache = MemoryCache(secret=key.encode() if key else None)
            elif url.startswith(("redis://", "rediss://", "unix://")):
                if not key:
                    raise ConfigError(
                        f"{ENV_CACHE_URL}={mask_url(url)} needs {ENV_CACHE_KEY}: a secret of at "
                        "least 32 characters, the same in every process sharing the cache, "
                        "that signs its entries (e.g. `python -c 'import secrets; "
                        "print(secrets.token_urlsafe(32))'`)"
                    )
                register_secret(key)
                cache = RedisCache(url, secret=key.encode(), ca_file=settings.cache_ca_file)
            else:
                raise ConfigError(
                    f"{ENV_CACHE_URL}={mask_url(url)} is not a Redis URL (redis://host:6379/0)"
                )
            _caches[ident] = cache
        return cache


def clear() -> None:
    """Empty the current cache (and this process's copies of answers read from it)."""
    get_cache().clear()
    _recent_answers.clear()


def _data_version(conn: sa.Connection) -> str:
    """The data version, read on the connection that will run the query."""
    meta = schema.warehouse_meta
    try:
        version = conn.execute(
            sa.select(meta.c.value).where(meta.c.key == DATA_VERSION_KEY)
        ).scalar()
    except sa.exc.DBAPIError as exc:
        first = first_line(exc)
        if "does not exist" in first:  # DuckDB and PostgreSQL both say so of a missing table
            raise ConfigError(
                "the warehouse has no Auterity schema yet; build it with `auterity demo-data` "
                "or `auterity db upgrade` and load data"
            ) from None
        raise DatabaseUnavailable(f"reading the warehouse failed: {first}") from exc
    return version or "empty"


def _key(statement: sa.Executable, conn: sa.Connection, url: URL, version: str) -> str:
    """A stable hash of everything that determines the answer."""
    # Every Core statement (select, union, text) is a ClauseElement; the Executable mixin
    # alone does not declare compile().
    compiled = cast(sa.ClauseElement, statement).compile(dialect=conn.dialect)
    params = sorted((k, repr(v)) for k, v in compiled.params.items())
    material = "\x1f".join(
        [url.render_as_string(hide_password=True), version, str(compiled), repr(params)]
    )
    return hashlib.sha256(material.encode()).hexdigest()


def _cached_rows(cache: ResultCache, key: str) -> tuple[list[str], list[tuple[Any, ...]]] | None:
    """The rows cached under ``key`` if present and genuine; a bad entry is rejected."""
    global _rejection_warned
    entry = cache.get(key)
    if entry is None:
        return None
    try:
        result = decode_entry(cache.secret, key, entry)
    except (ValueError, KeyError, TypeError, zlib.error):  # signed, yet not our format
        result = None
    if result is None:
        stats["rejected"] += 1
        if not _rejection_warned:
            _rejection_warned = True
            log.warning(
                "rejected a result-cache entry that failed its integrity check (forged, "
                "corrupted, or signed with another %s); it counts as a miss. Further "
                "rejections are counted in auterity.cache.stats without a warning",
                ENV_CACHE_KEY,
            )
    return result


ANSWER_MAGIC = b"AUA1"


_recent_answers = MemoryCache(256)
"""Answers this process read from or wrote to a shared cache (see :func:`recall`)."""


def remember(key: str, value: bytes) -> None:
    """Keep a finished answer (e.g. an API response body) for the cache's time to live,
    signed like every entry (nothing when caching is off: ``AUTERITY_CACHE_TTL=0``).

    ``key`` must name everything the answer depends on (the data version included)."""
    ttl = get_settings().cache_ttl_s
    if ttl <= 0:
        return
    cache = get_cache()
    full = "answer:" + key
    cache.set(full, ANSWER_MAGIC + _mac(cache.secret, full, value) + value, ttl)
    if not isinstance(cache, MemoryCache):
        _recent_answers.set(full, value, ttl)


def recall_near(key: str) -> bytes | None:
    """An answer kept by :func:`remember` if this process has it without a round trip (the
    in-process store, or its copy of an answer read from Redis), else None."""
    if get_settings().cache_ttl_s <= 0:
        return None
    if isinstance(get_cache(), MemoryCache):
        return recall(key)  # no round trip either
    return _recent_answers.get("answer:" + key)


def recall(key: str) -> bytes | None:
    """An answer kept by :func:`remember` whose signature holds, else None.

    Answers read from a shared (Redis) cache are also kept in this process for the same
    time to live (:data:`_recent_answers`): a key names the data version, so it always
    means the same bytes, and a repeated question costs no round trip.
    """
    ttl = get_settings().cache_ttl_s
    if ttl <= 0:
        return None
    cache = get_cache()
    full = "answer:" + key
    if not isinstance(cache, MemoryCache):
        near = _recent_answers.get(full)
        if near is not None:
            return near
    entry = cache.get(full)
    head = len(ANSWER_MAGIC)
    if entry is None or not entry.startswith(ANSWER_MAGIC) or len(entry) < head + _MAC_BYTES:
        return None
    signature, value = entry[head : head + _MAC_BYTES], entry[head + _MAC_BYTES :]
    if not hmac.compare_digest(signature, _mac(cache.secret, full, value)):
        stats["rejected"] += 1
        return None
    if not isinstance(cache, MemoryCache):
        _recent_answers.set(full, value, ttl)
    return value


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
        The rows; a new frame on every call, so callers may modify it.
    """
    parsed = url if isinstance(url, URL) else engine.database_url(url)
    ttl = get_settings().cache_ttl_s
    # the reader's row scope (row filters, pseudonyms): part of the SQL, so of the key too
    statement = scope.apply(statement)
    with engine.connect(parsed) as conn:
        dialect.check_supported(conn)
        if ttl <= 0:
            return dialect.read_frame(conn, statement)
        key = _key(statement, conn, parsed, _data_version(conn))
        cache = get_cache()
        cached = _cached_rows(cache, key)
        if cached is not None:
            _count("hits")
            return dialect.frame_from_rows(*cached)
        _count("misses")
        columns, rows = dialect.read_rows(conn, statement)
    try:
        entry = encode_entry(cache.secret, key, columns, rows)
    except Uncacheable as exc:
        log.debug("result not cached: it holds %s", exc)
    else:
        cache.set(key, entry, ttl)
    return dialect.frame_from_rows(columns, rows)


def fetch_many(
    statements: dict[str, sa.Executable], *, url: str | URL | None = None
) -> dict[str, pd.DataFrame]:
    """Run several statements (each cached on its own) and return their frames by name."""
    return {name: fetch(stmt, url=url) for name, stmt in statements.items()}


__all__ = [
    "ENTRY_MAGIC",
    "MemoryCache",
    "RedisCache",
    "Uncacheable",
    "clear",
    "decode_entry",
    "encode_entry",
    "fetch",
    "fetch_many",
    "get_cache",
    "stats",
]
