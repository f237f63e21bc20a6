"""Source-database sync: pull only what changed since the last sync, in atomic batches.

Each source in the ``databases:`` section of the sources file names the environment
variable holding its SQLAlchemy URL and, per warehouse table, a source table or query and
an incremental **cursor** column (``updated_at``, a sequence...). :func:`sync` reads

    SELECT <mapped columns> FROM <source> WHERE cursor >= :watermark ORDER BY cursor, key

with a server-side cursor (``stream_results``), ``batch_rows`` rows at a time, and loads
each batch through :func:`auterity.ingest.load_many` (validation, quarantine, upsert by
key, soft deletes) **in the same transaction** that moves the watermark. So a sync killed
at any point resumes exactly where the last committed batch ended: nothing lost, nothing
doubled.

Ties: many rows may share a cursor value (a bulk update stamps one ``updated_at``), and a
row with that value may commit in the source after a sync read the others. The watermark
is therefore inclusive (``>=``) and remembers the keys already read at its value, which the
next read skips; past :data:`KEY_CAP` such keys it remembers only the value, and those rows
are re-read and counted ``unchanged``. Rows whose cursor is empty are read by the first
(or a ``full``) sync only.

Watermarks live in ``warehouse_meta`` under ``sync:<source>:<table>`` (JSON: the cursor
value and its type, the keys at that value). Source URLs are never shown unmasked; their
passwords are registered with :mod:`auterity.redact`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Row
from sqlalchemy.pool import NullPool

from auterity import redact
from auterity.errors import ConfigError, DatabaseUnavailable
from auterity.ingest.load import COUNTS, Batch, announce, load_many
from auterity.ingest.sources import Database, TableSource, load_sources
from auterity.warehouse import schema
from auterity.warehouse.custom import ensure_custom_tables
from auterity.warehouse.engine import connect, database_url
from auterity.warehouse.writes import get_meta, set_meta

log = logging.getLogger("auterity.ingest")

DEFAULT_BATCH_ROWS = 50_000
"""Rows per batch (one warehouse transaction each) unless told otherwise."""

KEY_CAP = 10_000
"""Keys remembered at the watermark's cursor value (beyond: the value only)."""

_DELETED = "_sync_deleted"

SyncProgress = Callable[[str, int], None]
"""Called with ``(table, rows read)`` after each committed batch."""


@dataclass
class TableSync:
    """What syncing one table did (summed over its batches).

    Attributes
    ----------
    source, table : str
        The source and the warehouse table.
    read, inserted, updated, unchanged, quarantined : int
        The load path's accounting (``read`` is the sum of the other four).
    deleted : int
        Rows removed because the source marks them deleted (counted in ``updated``).
    batches : int
        Transactions committed.
    watermark : Any
        The cursor value synced up to (None: nothing with a cursor value yet).
    """

    source: str
    table: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    deleted: int = 0
    batches: int = 0
    watermark: Any = None

    def counts(self) -> dict[str, int]:
        """Exactly ``read``, ``inserted``, ``updated``, ``unchanged``, ``quarantined``."""
        return {name: int(getattr(self, name)) for name in COUNTS}


@dataclass
class _State:
    """A watermark: the cursor value read up to and the keys already read at that value."""

    value: Any = None
    keys: set[str] | None = field(default_factory=set)

    def dumps(self) -> str:
        kind, text = _encode(self.value)
        keys = sorted(self.keys) if self.keys is not None else None
        return json.dumps({"cursor": text, "type": kind, "keys": keys})

    @classmethod
    def loads(cls, text: str | None) -> _State | None:
        if not text:
            return None
        data = json.loads(text)
        keys = data.get("keys")
        return cls(_decode(data["type"], data["cursor"]), set(keys) if keys is not None else None)


def _encode(value: Any) -> tuple[str, Any]:
    """A cursor value as (type, JSON-safe value), so it binds back with its own type."""
    if isinstance(value, bool):
        return "int", int(value)
    if isinstance(value, datetime):
        return "timestamp", value.isoformat()
    if isinstance(value, date):
        return "date", value.isoformat()
    if isinstance(value, Decimal):
        return "decimal", str(value)
    if isinstance(value, int):
        return "int", value
    if isinstance(value, float):
        return "float", repr(value)
    return "text", str(value)


def _decode(kind: str, value: Any) -> Any:
    """The inverse of :func:`_encode`."""
    decoders: dict[str, Callable[[Any], Any]] = {
        "timestamp": datetime.fromisoformat,
        "date": date.fromisoformat,
        "decimal": Decimal,
        "int": int,
        "float": float,
        "text": str,
    }
    return decoders[kind](value)


def state_key(source: str, table: str) -> str:
    """The ``warehouse_meta`` key of a table's watermark (hashed past the key's 64 chars)."""
    key = f"sync:{source}:{table}"
    if len(key) <= 64:
        return key
    return "sync:" + hashlib.sha256(f"{source}:{table}".encode()).hexdigest()[:40]


def watermark(source: str, table: str, *, url: str | URL | None = None) -> Any:
    """The cursor value a table was synced up to from a source (None: never synced).

    Parameters
    ----------
    source, table : str
        The source's name and the warehouse table.
    url : str or URL, optional
        The warehouse.

    Returns
    -------
    Any
        The cursor value, typed as the source returned it.
    """
    state = _State.loads(get_meta(state_key(source, table), url))
    return None if state is None else state.value


def _row_key(row: Row[Any], positions: Sequence[int]) -> str:
    """A row's key as one text (what the watermark remembers)."""
    return "\x1f".join(str(row[p]) for p in positions)


def _statement(spec: TableSource, state: _State | None) -> sa.Select[Any]:
    """``SELECT ... WHERE cursor >= :watermark ORDER BY cursor, key`` on the source."""
    columns: list[sa.ColumnClause[Any]] = [sa.column(name) for name in spec.source_columns]
    source: Any
    if spec.query is not None:
        source = sa.text(spec.query).columns(*columns).subquery("src")
    else:
        assert spec.source_table is not None
        owner, _, name = spec.source_table.rpartition(".")
        source = sa.table(name, *columns, schema=owner or None)
    cursor = source.c[spec.cursor]
    statement = sa.select(*(source.c[name] for name in spec.source_columns))
    if state is not None and state.value is not None:
        statement = statement.where(cursor >= sa.literal(state.value))
        first: Any = cursor
    else:
        first = cursor.nulls_first()
    return statement.order_by(first, *(source.c[k] for k in spec.key))


def _source_engine(database: Database) -> tuple[sa.Engine, str]:
    """An engine on the source (no pool) and its masked URL for messages."""
    text = database.url()
    try:
        parsed = sa.make_url(text)
    except sa.exc.ArgumentError:
        raise ConfigError(
            f"source {database.name!r}: {database.url_env} is not a database URL "
            "(expected e.g. postgresql+psycopg://user@host:5432/db)"
        ) from None
    redact.register_secret(parsed.password if isinstance(parsed.password, str) else None)
    try:
        engine = sa.create_engine(parsed, poolclass=NullPool)
    except (sa.exc.ArgumentError, ImportError) as exc:  # unknown dialect, missing driver
        raise ConfigError(
            f"source {database.name!r} ({redact.mask_url(parsed)}): {redact.first_line(exc)}"
        ) from None
    return engine, redact.mask_url(parsed)


def _partitions(
    engine: sa.Engine, statement: sa.Select[Any], rows: int, where: str, shown: str
) -> Iterator[list[Row[Any]]]:
    """The statement's rows in lists of ``rows``, streamed (source errors in one line)."""
    try:
        conn = engine.connect()
    except sa.exc.DBAPIError as exc:
        raise DatabaseUnavailable(
            f"{where}: cannot reach {shown}: {redact.first_line(exc)}"
        ) from None
    try:
        try:
            result = conn.execution_options(yield_per=rows).execute(statement)
        except sa.exc.DBAPIError as exc:
            raise ConfigError(
                f"{where}: the source refused the read: {redact.first_line(exc)}"
            ) from None
        while True:
            try:
                chunk = result.fetchmany(rows)
            except sa.exc.DBAPIError as exc:
                raise DatabaseUnavailable(
                    f"{where}: reading from {shown} failed: {redact.first_line(exc)}"
                ) from None
            if not chunk:
                return
            yield list(chunk)
    finally:
        conn.close()


def _frame(rows: list[Row[Any]], spec: TableSource) -> pd.DataFrame:
    """Source rows as a batch for the warehouse table (mapped names, delete flag)."""
    raw = pd.DataFrame.from_records(
        [tuple(r) for r in rows], columns=spec.source_columns, coerce_float=False
    )
    frame = pd.DataFrame({dst: raw[src] for src, dst in spec.columns.items()})
    if spec.deleted is not None:
        flag = raw[spec.deleted.column]
        frame[_DELETED] = [
            value is not None and not pd.isna(value) and value == spec.deleted.value
            for value in flag
        ]
    return frame


def _advance(
    state: _State | None, rows: list[Row[Any]], cursor: int, key: Sequence[int]
) -> _State | None:
    """The watermark after ``rows`` (ordered by cursor, then key) are committed."""
    last = rows[-1][cursor]
    if last is None:  # only rows without a cursor value so far
        return state
    at_last: set[str] = set()
    for row in reversed(rows):
        if row[cursor] != last:
            break
        at_last.add(_row_key(row, key))
    keys: set[str] | None = at_last
    if state is not None and state.value == last:
        keys = None if state.keys is None else state.keys | at_last
    if keys is not None and len(keys) > KEY_CAP:
        keys = None
    return _State(last, keys)


def sync_table(
    database: Database,
    spec: TableSource,
    *,
    url: str | URL | None = None,
    full: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: SyncProgress | None = None,
) -> TableSync:
    """Sync one warehouse table from one source (see the module docstring).

    Parameters
    ----------
    database : Database
        The source (from :func:`auterity.ingest.sources.load_sources`).
    spec : TableSource
        The table's entry in it.
    url : str or URL, optional
        The warehouse; default from the settings.
    full : bool
        Read every row again, ignoring the watermark (rows already there count
        ``unchanged``); the watermark moves as usual.
    batch_rows : int
        Rows per batch; each batch is one warehouse transaction.
    progress : callable, optional
        ``(table, rows read)`` after each committed batch.

    Returns
    -------
    TableSync
    """
    if batch_rows < 1:
        raise ConfigError(f"batch rows must be at least 1, not {batch_rows}")
    key_name = state_key(database.name, spec.table)
    state = None if full else _State.loads(get_meta(key_name, url))
    engine, shown = _source_engine(database)
    where = f"source {database.name!r}, table {spec.table}"
    cursor = spec.source_columns.index(spec.cursor)
    key = [spec.source_columns.index(k) for k in spec.key]
    version = spec.columns.get(spec.cursor)
    outcome = TableSync(database.name, spec.table, watermark=state.value if state else None)
    # Rows at the watermark's value that an earlier sync read: each appears once per read.
    seen_value = state.value if state is not None else None
    seen_keys = state.keys if state is not None and seen_value is not None else None
    try:
        for rows in _partitions(engine, _statement(spec, state), batch_rows, where, shown):
            fresh = rows
            if seen_keys:
                fresh = [
                    r for r in rows if r[cursor] != seen_value or _row_key(r, key) not in seen_keys
                ]
            after = _advance(state, rows, cursor, key)
            if not fresh:
                continue
            batch = Batch(
                spec.table,
                frame=_frame(fresh, spec),
                deleted_column=_DELETED if spec.deleted is not None else None,
                version_column=version,
            )
            with connect(url, write=True) as conn:
                results = load_many([batch], source=f"sync:{database.name}", conn=conn)
                if after is not None:
                    set_meta(conn, key_name, after.dumps())
            announce(results, f"sync:{database.name}", results[0].batch_id)
            state = after
            result = results[0]
            for name in (*COUNTS, "deleted"):
                setattr(outcome, name, getattr(outcome, name) + getattr(result, name))
            outcome.batches += 1
            outcome.watermark = state.value if state else None
            if progress is not None:
                progress(spec.table, len(fresh))
    finally:
        engine.dispose()
    log.info("synced %s from %s: %s", spec.table, database.name, outcome.counts())
    return outcome


def sync(
    source: str | None = None,
    *,
    tables: Sequence[str] | None = None,
    full: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    url: str | URL | None = None,
    path: Path | None = None,
    progress: SyncProgress | None = None,
) -> list[TableSync]:
    """Pull what changed in the source databases into the warehouse.

    Parameters
    ----------
    source : str, optional
        One source's name; default every source in the file.
    tables : sequence of str, optional
        Only these warehouse tables (each must be fed by the chosen sources).
    full : bool
        Ignore the watermarks and read everything again (see :func:`sync_table`).
    batch_rows : int
        Rows per batch (one transaction each).
    url : str or URL, optional
        The warehouse; default from the settings.
    path : Path, optional
        The sources file; default ``AUTERITY_SOURCES_FILE`` or ``parameters/sources.yml``.
    progress : callable, optional
        ``(table, rows read)`` after each committed batch.

    Returns
    -------
    list of TableSync
        One per synced table, per source, in load order (the contract's tables first,
        customers and models before the rows that refer to them).

    Raises
    ------
    ConfigError
        An unknown source or table, a bad sources file, a source that refuses the read.
    DatabaseUnavailable
        A source or the warehouse cannot be reached.
    """
    declared = load_sources(path)
    if source is not None:
        databases = [declared.database(source)]
    else:
        databases = list(declared.databases.values())
        if not databases:
            raise ConfigError(f"{declared.path}: databases: no source declared to sync")
    wanted = list(tables or ())
    for table in wanted:
        if not any(table in d.tables for d in databases):
            fed = sorted({t for d in databases for t in d.tables})
            raise ConfigError(
                f"no source {'named' if source else 'in ' + str(declared.path)} feeds table "
                f"{table!r} (tables synced: {', '.join(fed)})"
            )
    parsed = database_url(url) if not isinstance(url, URL) else url
    ensure_custom_tables(parsed, path=declared.path)
    order = [*schema.DATA_TABLES, *declared.tables]
    outcomes = []
    for database in databases:
        for table in sorted(database.tables, key=order.index):
            if wanted and table not in wanted:
                continue
            outcomes.append(
                sync_table(
                    database,
                    database.tables[table],
                    url=parsed,
                    full=full,
                    batch_rows=batch_rows,
                    progress=progress,
                )
            )
    return outcomes
