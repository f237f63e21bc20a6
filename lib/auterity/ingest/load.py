"""The one way rows enter the warehouse: checked, quarantined, upserted, one transaction.

Every path that brings data in (files, source-database sync, OpenTelemetry spans) hands
its rows to :func:`load_many` as :class:`Batch` es. For each, in **one transaction** on
the warehouse:

1. the batch is staged in DuckDB (the warehouse itself when it is a DuckDB file, an
   in-memory DuckDB otherwise) and checked against the data contract by
   :func:`auterity.ingest.validate.checked_select`, one SQL statement for every row;
2. rows that fail go to the ``quarantine`` table with every reason, the source, the batch
   id and the raw row (a row quarantined before is not written twice: its id is stable);
3. valid rows are compared with the table by primary key: new keys are inserted, changed
   rows replaced (or kept, ``on_existing="keep"``; or kept when the warehouse row has a
   newer ``version_column``), identical rows left alone, rows the source marks deleted
   removed;
4. the data version is bumped when anything changed (caches go stale) and an
   ``audit_log`` row records the counts.

So ``read == inserted + updated + unchanged + quarantined`` for every batch (a deletion
counts as an update: the row changed by going away), loading the same rows twice
changes nothing, and a process killed mid-batch leaves nothing of it visible.

Writers are serialised per table: DuckDB has one writer at a time, and on PostgreSQL a
transaction-level advisory lock per table keeps two loads of the same keys from racing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import duckdb
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from auterity import access, config
from auterity._time import utcnow
from auterity.errors import ConfigError
from auterity.ingest import validate
from auterity.ingest.validate import DELETED, RAW, REASONS, ROW, quote
from auterity.warehouse import notify, rollups, schema
from auterity.warehouse.custom import ensure_custom_tables
from auterity.warehouse.engine import connect, database_url
from auterity.warehouse.writes import audit, mark_data_changed, write_frame

if TYPE_CHECKING:  # pragma: no cover
    import psycopg

log = logging.getLogger("auterity.ingest")

ON_EXISTING = ("update", "keep")
"""What a valid row does to a different row with its key: replace it, or leave it."""

COUNTS = ("read", "inserted", "updated", "unchanged", "quarantined")
"""The accounting every batch reports: ``read`` is the sum of the other four."""

TOUCHED_KEY = "auterity_touched_events"
"""``Connection.info`` key: the span of ``inference_events`` times written in this load."""

PG_CHUNK_ROWS = 200_000
"""Rows per COPY chunk when a PostgreSQL warehouse takes checked rows from DuckDB."""


Stager = Callable[[duckdb.DuckDBPyConnection, str], "pd.DataFrame | None"]
"""Makes a batch a DuckDB relation: ``stager(duck, name)`` creates the temporary view or
table ``name`` with the batch's columns and ``_row`` (its position in the batch), and
returns rows it could not even split into columns (``row``, ``reason``, ``raw``) or None.
Tables or views it needs besides are named ``name`` + ``_...``; all are dropped after."""


@dataclass(frozen=True)
class Batch:
    """One table's rows of a batch.

    Attributes
    ----------
    table : str
        The target data table.
    frame : pandas.DataFrame, optional
        The rows as they came (any types; text is fine), columns named as the table's
        (optional columns may be left out).
    stager : callable, optional
        Instead of ``frame``: a :data:`Stager` that lets DuckDB read the rows itself
        (files: :mod:`auterity.ingest.files`), in the connection that checks them.
    on_existing : str
        ``"update"`` (upsert: the batch's row wins) or ``"keep"`` (insert new keys only).
    deleted_column : str, optional
        A column of the rows that is true where the source marks the row deleted.
    version_column : str, optional
        Last write wins by this column (e.g. ``updated_at``) instead of batch order: the
        newest row of a key in the batch wins, and it replaces the warehouse row only if
        that is not newer.
    """

    table: str
    frame: pd.DataFrame | None = None
    stager: Stager | None = field(default=None, repr=False)
    on_existing: str = "update"
    deleted_column: str | None = None
    version_column: str | None = None


@dataclass(frozen=True)
class BatchResult:
    """What loading one :class:`Batch` did."""

    table: str
    source: str
    batch_id: str
    read: int
    inserted: int
    updated: int
    unchanged: int
    quarantined: int
    deleted: int = 0
    unknown_references: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Column -> ``{"values": n, "examples": [...], "table": referenced}`` for values of
    the batch's rows with no row in the table they refer to (reported, not rejected)."""

    def counts(self) -> dict[str, int]:
        """Exactly ``read``, ``inserted``, ``updated``, ``unchanged``, ``quarantined``."""
        return {name: int(getattr(self, name)) for name in COUNTS}


def load(
    table: str,
    frame: pd.DataFrame,
    *,
    source: str,
    batch_id: str | None = None,
    url: str | URL | None = None,
    on_existing: str = "update",
    deleted_column: str | None = None,
    version_column: str | None = None,
    now: datetime | None = None,
) -> BatchResult:
    """Check and upsert one frame of rows into ``table`` (see :func:`load_many`).

    Returns
    -------
    BatchResult
    """
    batch = Batch(
        table,
        frame=frame,
        on_existing=on_existing,
        deleted_column=deleted_column,
        version_column=version_column,
    )
    return load_many([batch], source=source, batch_id=batch_id, url=url, now=now)[0]


def load_many(
    batches: Sequence[Batch],
    *,
    source: str,
    batch_id: str | None = None,
    url: str | URL | None = None,
    conn: Connection | None = None,
    now: datetime | None = None,
    on_done: Callable[[BatchResult], None] | None = None,
    on_stage: Callable[[str, str, float], None] | None = None,
) -> list[BatchResult]:
    """Check, quarantine and upsert several tables' rows in one transaction.

    Parameters
    ----------
    batches : sequence of Batch
        In order (e.g. ``models`` before the ``inference_events`` that use them).
    source : str
        Where the rows came from (a file path, ``sync:crm``, ``otlp``): recorded with
        quarantined rows and in the audit log.
    batch_id : str, optional
        Default a new random id.
    url : str or URL, optional
        Warehouse URL; default from the settings. Ignored when ``conn`` is given.
    conn : Connection, optional
        An open write connection (``connect(write=True)``) to join its transaction, e.g.
        to move a sync watermark atomically with the rows.
    now : datetime, optional
        Naive UTC "now" for the future-timestamp check.
    on_done : callable, optional
        Called with each table's result as it is written (progress).
    on_stage : callable, optional
        Called as ``on_stage(table, stage, seconds)`` when a stage of a table's load
        (``check``, ``quarantine``, ``merge``...) is done: progress for long loads.

    Returns
    -------
    list of BatchResult
        One per batch, in order.

    Raises
    ------
    ConfigError
        A table that cannot be loaded, columns that do not fit it, an unknown
        ``on_existing``: nothing is written.
    """
    for batch in batches:
        target = validate.data_table(batch.table)
        if batch.on_existing not in ON_EXISTING:
            raise ConfigError(f"on_existing={batch.on_existing!r}: one of {', '.join(ON_EXISTING)}")
        if (batch.frame is None) == (batch.stager is None):
            raise ConfigError("a batch needs exactly one of frame or stager")
        if batch.version_column and batch.version_column not in target.c:
            raise ConfigError(
                f"version column {batch.version_column!r} is not a column of {batch.table}"
            )
    batch_id = batch_id or uuid.uuid4().hex
    token = _ON_STAGE.set(on_stage)
    try:
        if conn is not None:  # the caller commits, then announces (see announce)
            return _load_all(conn, batches, source, batch_id, now, on_done)
        parsed = url if isinstance(url, URL) else database_url(url)
        _ensure_tables(parsed)
        tables = ",".join(b.table for b in batches)
        with _timed("total", tables), connect(parsed, write=True) as write:
            results = _load_all(write, batches, source, batch_id, now, on_done)
    finally:
        _ON_STAGE.reset(token)
    announce(results, source, batch_id)
    return results


_ON_STAGE: ContextVar[Callable[[str, str, float], None] | None] = ContextVar(
    "auterity_ingest_on_stage", default=None
)
"""The ``on_stage`` progress callback of the running :func:`load_many`."""


_ENSURED: set[tuple[str, str, float]] = set()
"""(warehouse, sources file, its mtime) whose tables this process made sure of."""


def _ensure_tables(url: URL) -> None:
    """The contract's schema and the tables declared in sources.yml, once per process
    (and again when sources.yml changes): a receiver flushing twice a second should not
    open a schema transaction each time."""
    declared = config.sources_file()
    try:
        stamp = declared.stat().st_mtime
    except OSError:
        stamp = -1.0
    key = (url.render_as_string(hide_password=False), str(declared), stamp)
    if key not in _ENSURED:
        ensure_custom_tables(url)
        _ENSURED.add(key)


def announce(results: Sequence[BatchResult], source: str, batch_id: str) -> None:
    """Tell readers that committed rows landed (Redis pub/sub when configured).

    :func:`load_many` calls this after its commit; a caller that passed its own ``conn``
    calls it after committing that.
    """
    written = {r.table: r.inserted + r.updated for r in results if r.inserted or r.updated}
    if written:
        notify.publish(source, written, batch_id=batch_id)


def _load_all(
    conn: Connection,
    batches: Sequence[Batch],
    source: str,
    batch_id: str,
    now: datetime | None,
    on_done: Callable[[BatchResult], None] | None,
) -> list[BatchResult]:
    """Everything of :func:`load_many` inside ``conn``'s transaction."""
    on_duckdb = conn.dialect.name == "duckdb"
    duck = _duckdb_of(conn) if on_duckdb else duckdb.connect()
    duck.execute("SET TimeZone = 'UTC'")
    results = []
    try:
        for batch in batches:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                    {"key": f"auterity_load:{batch.table}"},
                )
            result = _load_one(conn, duck, batch, source, batch_id, now or utcnow())
            results.append(result)
            if on_done is not None:
                on_done(result)
    finally:
        if not on_duckdb:
            duck.close()
    newly_quarantined = conn.info.pop("auterity_quarantined", False)
    changed = newly_quarantined or any(r.inserted or r.updated for r in results)
    touched = conn.info.pop(TOUCHED_KEY, None)
    events = any(
        r.table == schema.inference_events.name and (r.inserted or r.updated) for r in results
    )
    if touched is not None and events:
        with _timed("rollups", schema.inference_events.name):
            rollups.refresh_range(conn, *touched)
    version = mark_data_changed(conn, rollups_unaffected=not events) if changed else None
    audit(
        conn,
        "ingest.load",
        object_type="batch",
        object_id=batch_id,
        details={
            "source": source,
            "data_version": version,
            "tables": {
                r.table: {
                    **r.counts(),
                    "deleted": r.deleted,
                    **(
                        {"unknown_references": _for_the_record(r.unknown_references)}
                        if r.unknown_references
                        else {}
                    ),
                }
                for r in results
            },
        },
    )
    return results


def _for_the_record(unknown: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Unknown references as the append-only audit log keeps them: example customer ids
    as keyed pseudonyms (a GDPR erasure must leave no customer id behind)."""
    kept = {}
    for column, found in unknown.items():
        if found.get("table") == "customers":
            found = {
                **found,
                "examples": [access.pseudonym(str(v), "customer") for v in found["examples"]],
            }
        kept[column] = found
    return kept


def _duckdb_of(conn: Connection) -> duckdb.DuckDBPyConnection:
    """The DuckDB connection under a SQLAlchemy one."""
    wrapper: Any = conn.connection.dbapi_connection
    return cast(duckdb.DuckDBPyConnection, wrapper._ConnectionWrapper__c)


@contextmanager
def _timed(stage: str, table: str) -> Iterator[None]:
    """Log how long a stage of a load took (DEBUG) and tell the ``on_stage`` callback."""
    started = time.perf_counter()
    yield
    seconds = time.perf_counter() - started
    log.debug("%s %s: %.2f s", table, stage, seconds)
    callback = _ON_STAGE.get()
    if callback is not None:
        callback(table, stage, seconds)


def _stage(
    duck: duckdb.DuckDBPyConnection, batch: Batch, name: str
) -> tuple[dict[str, str], pd.DataFrame | None]:
    """Make the batch the DuckDB view ``name`` (with ``_row``); its column types and the
    rows its reader could not split."""
    rejected = None
    if batch.frame is not None:
        duck.register(f"{name}_src", validate.as_staged(batch.frame))
    else:
        assert batch.stager is not None
        rejected = batch.stager(duck, f"{name}_src")
    renamed = ""
    if batch.deleted_column:
        if batch.deleted_column not in validate.staged_types(duck, f"{name}_src"):
            raise ConfigError(
                f"the deleted-marker column {batch.deleted_column!r} is not in the batch"
            )
        renamed = f" RENAME ({quote(batch.deleted_column)} AS {DELETED})"
    duck.execute(f"CREATE TEMP VIEW {name} AS SELECT *{renamed} FROM {name}_src")
    return validate.staged_types(duck, name), rejected


def _unstage(duck: duckdb.DuckDBPyConnection, batch: Batch, name: str) -> None:
    """Drop what :func:`_stage` made."""
    duck.execute(f"DROP VIEW IF EXISTS {name}")
    if batch.frame is not None:
        duck.unregister(f"{name}_src")
        return
    # the stager's view or table, then whatever it made under names starting with it
    made = duck.execute(
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_name = ? OR starts_with(table_name, ?) ORDER BY table_type = 'VIEW' DESC",
        [f"{name}_src", f"{name}_src_"],
    ).fetchall()
    for table, kind in made:
        duck.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} IF EXISTS {quote(table)}")


def _load_one(
    conn: Connection,
    duck: duckdb.DuckDBPyConnection,
    batch: Batch,
    source: str,
    batch_id: str,
    now: datetime,
) -> BatchResult:
    """Stage, check, quarantine and merge one batch (inside the open transaction)."""
    target = validate.data_table(batch.table)
    tag = uuid.uuid4().hex[:12]
    staged, checked, rejected = f"_in_{tag}", f"_checked_{tag}", f"_rejected_{tag}"
    try:
        with _timed("stage", batch.table):
            types, prerejected = _stage(duck, batch, staged)
        validate.check_columns(target, types)
        sql = validate.checked_select(target, staged, types, now=now)
        # The checks stay a view: the rejected rows are collected in one pass, and the
        # valid ones are converted again as they are written rather than copied first.
        duck.execute(f"CREATE TEMP VIEW {checked} AS {sql}")
        with _timed("check", batch.table):
            validate.reject(duck, checked, rejected, target, version_column=batch.version_column)
        with _timed("quarantine", batch.table):
            quarantined = _quarantine(
                conn, duck, batch.table, rejected, prerejected, source, batch_id, now
            )
        valid = validate.valid_select(checked, rejected, [c.name for c in target.columns])
        with _timed("merge", batch.table):
            states, unknown = _merge(conn, duck, batch, target, valid)
    finally:
        with suppress(duckdb.Error):  # a failed statement aborted the transaction: no matter
            duck.execute(f"DROP VIEW IF EXISTS {checked}")
            duck.execute(f"DROP TABLE IF EXISTS {rejected}")
            _unstage(duck, batch, staged)
    deleted = states.get("delete", 0)
    result = BatchResult(
        table=batch.table,
        source=source,
        batch_id=batch_id,
        read=quarantined + sum(states.values()),
        inserted=states.get("new", 0),
        updated=states.get("changed", 0) + deleted,
        unchanged=sum(states.get(s, 0) for s in ("same", "kept", "stale", "absent")),
        quarantined=quarantined,
        deleted=deleted,
        unknown_references=unknown,
    )
    log.info("loaded %s from %s: %s", batch.table, source, result.counts())
    for column, found in unknown.items():
        log.info(
            "%s from %s: %d %s value(s) with no row in %s, e.g. %s",
            batch.table,
            source,
            found["values"],
            column,
            found["table"],
            ", ".join(map(str, found["examples"])),
        )
    return result


def _quarantine(
    conn: Connection,
    duck: duckdb.DuckDBPyConnection,
    table: str,
    rejected: str,
    prerejected: pd.DataFrame | None,
    source: str,
    batch_id: str,
    now: datetime,
) -> int:
    """Write the batch's rejected rows to ``quarantine``; return how many there were."""
    rows = duck.execute(
        f"SELECT {ROW} AS row_number, {REASONS} AS reason, {RAW} AS raw FROM {rejected} "
        f"ORDER BY {ROW}"
    ).df()
    if not rows.empty:  # the raw row without the staging column
        rows["raw"] = rows["raw"].map(_without_row)
    if prerejected is not None and not prerejected.empty:
        extra = prerejected.rename(columns={"row": "row_number"})
        extra = extra.assign(raw=extra["raw"].map(_dumps))
        rows = pd.concat([rows, extra[["row_number", "reason", "raw"]]], ignore_index=True)
    if rows.empty:
        return 0
    ids = [
        _quarantine_id(table, source, int(r), raw)
        for r, raw in zip(rows["row_number"], rows["raw"], strict=True)
    ]
    frame = pd.DataFrame(
        {
            "quarantine_id": ids,
            "table_name": table,
            "reason": rows["reason"].astype(str),
            "source": source[:512],
            "batch_id": batch_id,
            "row_number": rows["row_number"].astype("Int64"),
            "raw": rows["raw"],
            "quarantined_at": now,
        }
    ).drop_duplicates("quarantine_id")
    if _insert_missing(conn, schema.quarantine, frame):
        conn.info["auterity_quarantined"] = True
    return len(rows)


def _without_row(raw: str) -> str:
    """A staged row's JSON without the staging column ``_row``."""
    value = json.loads(raw)
    value.pop(ROW, None)
    return json.dumps(value, sort_keys=False, default=str)


def _dumps(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _quarantine_id(table: str, source: str, row: int, raw: str) -> str:
    """Stable per source row: the same file loaded twice quarantines its rows once."""
    digest = hashlib.sha256(f"{table}\x1f{source}\x1f{row}\x1f{raw}".encode()).hexdigest()
    return digest[:32]


def _insert_missing(conn: Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Insert the rows whose (single-column) key is not in ``table`` yet; how many."""
    key = next(iter(table.primary_key.columns))
    have: set[Any] = set()
    values = frame[key.name].tolist()
    for start in range(0, len(values), 5_000):
        chunk = values[start : start + 5_000]
        have.update(conn.execute(sa.select(key).where(key.in_(chunk))).scalars())
    fresh = frame[~frame[key.name].isin(have)]
    if not fresh.empty:
        write_frame(conn, table.name, fresh)
    return len(fresh)


def _merge(
    conn: Connection,
    duck: duckdb.DuckDBPyConnection,
    batch: Batch,
    target: sa.Table,
    valid: str,
) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """Compare valid rows (``valid``: a SELECT of the table's columns and ``_deleted``)
    with the table by key, write what changed; count each state; report values of
    referencing columns with no row in the table they refer to."""
    columns = [c.name for c in target.columns]
    listed = ", ".join(quote(c) for c in columns)
    if conn.dialect.name == "duckdb":
        incoming = f"({valid})"
    else:
        incoming = _copy_into_temp(conn, duck, target, valid)
    keys = [quote(c.name) for c in target.primary_key.columns]
    joined = " AND ".join(f"v.{k} = t.{k}" for k in keys)
    same = " AND ".join(f"v.{quote(c)} IS NOT DISTINCT FROM t.{quote(c)}" for c in columns)
    states = [
        f"WHEN t.{keys[0]} IS NULL AND v.{DELETED} THEN 'absent'",
        f"WHEN t.{keys[0]} IS NULL THEN 'new'",
        f"WHEN v.{DELETED} THEN 'delete'",
        f"WHEN {same} THEN 'same'",
    ]
    if batch.on_existing == "keep":
        states.append("WHEN TRUE THEN 'kept'")
    if batch.version_column:
        version = quote(batch.version_column)
        states.append(f"WHEN t.{version} > v.{version} THEN 'stale'")
    merged = f"_merge_{uuid.uuid4().hex[:12]}"
    table = conn.dialect.identifier_preparer.quote(target.name)
    not_in_table = " AND ".join(f"t.{k} = v.{k}" for k in keys)
    # Rows whose key the table has (none on a first load) are compared one by one; rows
    # whose key is new go straight in, before anything is deleted, without being copied.
    # An empty table has no such rows: no join at all.
    occupied = bool(conn.exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {table})").scalar())
    if occupied:
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE {merged} AS SELECT v.*, CASE {' '.join(states[2:])} "
            f"ELSE 'changed' END AS _state FROM {incoming} v JOIN {table} t ON {joined}"
        )
    try:
        counts: dict[str, int] = (
            dict(
                conn.exec_driver_sql(f"SELECT _state, count(*) FROM {merged} GROUP BY _state").all()
            )
            if occupied
            else {}
        )
        rolled = target.name == schema.inference_events.name
        span = ", min(v.ts), max(v.ts)" if rolled else ""
        valid_rows, deleted_rows, *touched = conn.exec_driver_sql(
            f"SELECT count(*), count(*) FILTER (WHERE {DELETED}){span} FROM {incoming} v"
        ).one()
        counts["absent"] = int(deleted_rows) - counts.get("delete", 0)
        if int(valid_rows) - sum(counts.values()):
            # against the matched rows, not the whole table: hundreds of millions of keys
            # would be hashed to find the few a batch shares with it
            fresh = (
                f" AND NOT EXISTS (SELECT 1 FROM {merged} t WHERE {not_in_table})"
                if occupied and sum(counts.values()) - counts["absent"]
                else ""
            )
            inserted = conn.exec_driver_sql(
                f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {incoming} v "
                f"WHERE NOT v.{DELETED}{fresh}"
            )
            counts["new"] = int(inserted.rowcount)
        if counts.get("changed") or counts.get("delete"):
            matched = " AND ".join(f"m.{k} = {table}.{k}" for k in keys)
            if rolled:  # the days the replaced rows were in change too
                touched += conn.exec_driver_sql(
                    f"SELECT min(ts), max(ts) FROM {table} WHERE EXISTS (SELECT 1 FROM "
                    f"{merged} m WHERE {matched} AND m._state IN ('changed', 'delete'))"
                ).one()
            conn.exec_driver_sql(
                f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM {merged} m WHERE {matched} "
                "AND m._state IN ('changed', 'delete'))"
            )
        if counts.get("changed"):
            conn.exec_driver_sql(
                f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {merged} "
                "WHERE _state = 'changed'"
            )
        unknown = _unknown_references(conn, target, incoming)
        if rolled:
            _touch(conn, [t for t in touched if t is not None])
    finally:
        with suppress(sa.exc.DBAPIError):  # a failed statement aborted the transaction
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {merged}")
            if incoming.startswith("_incoming_"):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {incoming}")
    return {str(k): int(v) for k, v in counts.items()}, unknown


def _touch(conn: Connection, instants: Sequence[datetime]) -> None:
    """Remember, for this transaction, the span of event times a batch wrote or replaced."""
    if not instants:
        return
    seen = conn.info.get(TOUCHED_KEY)
    if seen is not None:
        instants = [*instants, *seen]
    conn.info[TOUCHED_KEY] = (min(instants), max(instants))


def _unknown_references(
    conn: Connection, target: sa.Table, incoming: str
) -> dict[str, dict[str, Any]]:
    """Values of the batch's referencing columns that the referenced table lacks."""
    found: dict[str, dict[str, Any]] = {}
    for column, (ref_table, ref_key) in validate.references(target).items():
        ref, key, col = (
            conn.dialect.identifier_preparer.quote(n) for n in (ref_table, ref_key, column)
        )
        # distinct values first: a batch of millions of rows has a few thousand customers
        row = conn.exec_driver_sql(
            f"SELECT count(*), min(v.{col}), max(v.{col}) FROM (SELECT DISTINCT {col} "
            f"FROM {incoming} i WHERE NOT i.{DELETED}) v WHERE v.{col} IS NOT NULL AND NOT "
            f"EXISTS (SELECT 1 FROM {ref} r WHERE r.{key} = v.{col})"
        ).one()
        if row[0]:
            examples = [row[1]] if row[1] == row[2] else [row[1], row[2]]
            found[column] = {"values": int(row[0]), "examples": examples, "table": ref_table}
    return found


def _copy_into_temp(
    conn: Connection, duck: duckdb.DuckDBPyConnection, target: sa.Table, valid: str
) -> str:
    """Move checked rows from DuckDB into a temporary table of the warehouse; its name."""
    name = f"_incoming_{uuid.uuid4().hex[:12]}"
    table = conn.dialect.identifier_preparer.quote(target.name)
    conn.exec_driver_sql(f"CREATE TEMP TABLE {name} AS SELECT * FROM {table} WHERE 1 = 0")
    conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {DELETED} BOOLEAN")
    columns = [c.name for c in target.columns] + [DELETED]
    listed = ", ".join(quote(c) for c in columns)
    cursor = duck.execute(valid)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        pg = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
        with pg.cursor() as pgc, pgc.copy(f"COPY {name} ({listed}) FROM STDIN") as copy:
            while rows := cursor.fetchmany(PG_CHUNK_ROWS):
                for row in rows:
                    copy.write_row(row)
        return name
    insert = sa.text(
        f"INSERT INTO {name} ({listed}) VALUES ({', '.join(f':p{i}' for i in range(len(columns)))})"
    )
    while rows := cursor.fetchmany(10_000):
        conn.execute(insert, [{f"p{i}": v for i, v in enumerate(row)} for row in rows])
    return name


def quarantined(
    table: str | None = None,
    *,
    source: str | None = None,
    limit: int = 100,
    url: str | URL | None = None,
) -> pd.DataFrame:
    """The newest quarantined rows, with their reasons and raw values.

    Parameters
    ----------
    table, source : str, optional
        Only rows meant for this table / from this source.
    limit : int
        At most this many rows (newest first).
    url : str or URL, optional
        Warehouse URL; default from the settings.

    Returns
    -------
    pandas.DataFrame
        The ``quarantine`` table's columns.
    """
    q = schema.quarantine
    statement = sa.select(q).order_by(q.c.quarantined_at.desc(), q.c.row_number).limit(limit)
    if table:
        statement = statement.where(q.c.table_name == table)
    if source:
        statement = statement.where(q.c.source == source)
    with connect(url) as conn:
        return pd.DataFrame(conn.execute(statement).mappings().all(), columns=list(q.c.keys()))
