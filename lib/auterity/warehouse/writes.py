"""Every write to the warehouse: frames, metadata, the data version, audit rows, rebuilds.

Writing through here keeps the rules in one place: every write bumps the *data version*
(:func:`mark_data_changed`, which is what the result cache keys on) and leaves an audit
row. A full rebuild (:func:`replace_data`) builds a new DuckDB file beside the old one and
swaps it in with an atomic rename (readers never wait for it nor see half-written data;
run history and audit rows are carried over), and it is exclusive: an ``flock`` on
``<file>.rebuild-lock`` (on PostgreSQL a transaction-level advisory lock) makes a second
rebuild fail at once with one line naming the running one, before it changed anything.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from auterity._time import utcnow
from auterity.config import get_settings
from auterity.errors import ConfigError, DatabaseUnavailable
from auterity.redact import mask_url
from auterity.warehouse import custom, encryption, rollups, schema
from auterity.warehouse.engine import (
    CARRIED_OVER_TABLES,
    announce_write,
    check_writable_file,
    connect,
    database_url,
    dispose_engines,
    duckdb_path,
    ensure_schema,
)

if TYPE_CHECKING:  # pragma: no cover
    import psycopg
    from duckdb_engine import ConnectionWrapper

log = logging.getLogger("auterity.warehouse")


DATA_VERSION_KEY = "data_version"


DATA_UPDATED_KEY = "data_updated_at"


def _quote(conn: Connection, name: str) -> str:
    """Quote an identifier for the connection's dialect."""
    return conn.dialect.identifier_preparer.quote(name)


def _table(name: str) -> sa.Table:
    """The warehouse table called ``name`` (contract or declared); ConfigError if none."""
    table = custom.find_table(name)
    if table is None:
        known = ", ".join(sorted([*schema.metadata.tables, *custom.custom_tables()]))
        raise ConfigError(f"unknown warehouse table {name!r} (known: {known})")
    return table


def write_frame(conn: Connection, table: str, frame: Any) -> int:
    """Append the rows of a pandas DataFrame to a warehouse table inside ``conn``'s transaction.

    Uses each database's bulk path: DuckDB reads the DataFrame directly, PostgreSQL takes
    ``COPY``, anything else gets batched ``INSERT`` statements.

    Parameters
    ----------
    conn : Connection
        A write connection from :func:`connect` (``write=True``).
    table : str
        Name of a table in :mod:`auterity.schema`.
    frame : pandas.DataFrame
        Columns named as the table's columns (a subset is fine; the rest get defaults).

    Returns
    -------
    int
        Rows written.
    """
    target = _table(table)
    unknown = [c for c in frame.columns if c not in target.c]
    if unknown:
        raise ConfigError(f"table {table!r} has no column(s) {', '.join(map(str, unknown))}")
    if frame.empty:
        return 0
    columns = ", ".join(_quote(conn, c) for c in frame.columns)
    quoted_table = _quote(conn, table)
    dialect = conn.dialect.name
    if dialect == "duckdb":
        raw = _duckdb_raw(conn)
        view = f"_auterity_in_{uuid.uuid4().hex}"
        raw.register(view, frame)
        try:
            conn.exec_driver_sql(
                f"INSERT INTO {quoted_table} ({columns}) SELECT {columns} FROM {view}"
            )
        finally:
            with suppress(Exception):  # fails only if the insert already aborted the transaction
                raw.unregister(view)
    elif dialect == "postgresql" and conn.dialect.driver == "psycopg":
        # On a live connection the DBAPI connection is set (SQLAlchemy types it Optional).
        pg = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
        with (
            pg.cursor() as cursor,
            cursor.copy(f"COPY {quoted_table} ({columns}) FROM STDIN (FORMAT csv)") as copy,
        ):
            step = 200_000
            for start in range(0, len(frame), step):
                copy.write(frame.iloc[start : start + step].to_csv(index=False, header=False))
    else:
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        for start in range(0, len(records), 10_000):
            conn.execute(target.insert(), records[start : start + 10_000])
    return len(frame)


def set_meta(conn: Connection, key: str, value: str) -> None:
    """Insert or update one ``warehouse_meta`` entry inside ``conn``'s transaction."""
    meta = schema.warehouse_meta
    conn.execute(sa.delete(meta).where(meta.c.key == key))
    conn.execute(sa.insert(meta).values(key=key, value=value, updated_at=utcnow()))


def get_meta(key: str, url: str | URL | None = None) -> str | None:
    """Read one ``warehouse_meta`` value, or None if it is not set."""
    meta = schema.warehouse_meta
    with connect(url) as conn:
        return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()


def mark_data_changed(conn: Connection, *, rollups_unaffected: bool = False) -> str:
    """Record that analysed data changed (new data version); caches keyed on it go stale.

    Every write of analysed data must call this inside its transaction. The rollups
    (:mod:`auterity.warehouse.rollups`) stay in use only if the transaction refreshed them
    or, with ``rollups_unaffected``, changed nothing they hold; after any other write
    (your own SQL, say) readers use the raw events until the next write of events
    rebuilds them.
    """
    old = conn.execute(
        sa.select(schema.warehouse_meta.c.value).where(
            schema.warehouse_meta.c.key == DATA_VERSION_KEY
        )
    ).scalar()
    version = uuid.uuid4().hex
    set_meta(conn, DATA_VERSION_KEY, version)
    set_meta(conn, DATA_UPDATED_KEY, utcnow().isoformat(timespec="seconds"))
    rollups.mark_current(conn, old, version, rollups_unaffected=rollups_unaffected)
    return version


def _instant(value: Any) -> datetime:
    """A naive UTC datetime from a frame's timestamp (pandas or Python)."""
    import pandas as pd  # only appends of events need it

    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return cast(datetime, stamp.to_pydatetime())


def data_version(url: str | URL | None = None) -> str | None:
    """The current data version (changes whenever analysed data is written)."""
    return get_meta(DATA_VERSION_KEY, url)


def audit(
    conn: Connection,
    action: str,
    *,
    actor: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> str:
    """Append an ``audit_log`` row inside ``conn``'s transaction and return its id."""
    audit_id = uuid.uuid4().hex
    conn.execute(
        sa.insert(schema.audit_log).values(
            audit_id=audit_id,
            ts=utcnow(),
            actor=actor or get_settings().user,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=json.dumps(details, default=str, sort_keys=True) if details else None,
        )
    )
    return audit_id


def append_data(
    table: str, frame: Any, *, url: str | URL | None = None, action: str = "data.append"
) -> int:
    """Append rows to one data table in a single transaction, with data version and audit.

    Returns
    -------
    int
        Rows written.
    """
    with connect(url, write=True) as conn:
        written = write_frame(conn, table, frame)
        events = table == schema.inference_events.name
        if events and written:
            times = frame["ts"]
            rollups.refresh_range(conn, _instant(times.min()), _instant(times.max()))
        mark_data_changed(conn, rollups_unaffected=not events)
        audit(conn, action, object_type="table", object_id=table, details={"rows": written})
    return written


ProgressCallback = Callable[[str, int], None]


@dataclass
class LoadResult:
    """What :func:`replace_data` wrote: rows per table and the new data version."""

    rows: dict[str, int]
    data_version: str


def _write_chunks(
    conn: Connection,
    chunks: Iterable[tuple[str, Any]],
    progress: ProgressCallback | None,
) -> dict[str, int]:
    """Write ``(table, frame)`` chunks in order; report each to ``progress``."""
    rows: dict[str, int] = {}
    for table, frame in chunks:
        written = write_frame(conn, table, frame)
        rows[table] = rows.get(table, 0) + written
        if progress is not None:
            progress(table, written)
    return rows


def replace_data(
    chunks: Iterable[tuple[str, Any]],
    *,
    url: str | URL | None = None,
    meta: dict[str, str] | None = None,
    action: str = "data.replace",
    details: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> LoadResult:
    """Replace all analysed data with the given chunks, atomically for readers.

    Run history, audit rows and other metadata are kept. On DuckDB the new data is built
    in a new file that replaces the old one with an atomic rename; elsewhere one
    transaction deletes and rewrites the data tables.

    Parameters
    ----------
    chunks : iterable of (table, DataFrame)
        Rows to write, in order; may be a generator (memory stays bounded).
    url : str or URL, optional
        Database URL; default from the settings.
    meta : dict, optional
        ``warehouse_meta`` entries to set in the same transaction.
    action, details : optional
        What the ``audit_log`` row records.
    progress : callable, optional
        Called as ``progress(table, rows_written)`` after each chunk.

    Returns
    -------
    LoadResult
        Rows written per table and the new data version.
    """
    parsed = url if isinstance(url, URL) else database_url(url)
    path = duckdb_path(parsed)
    if path is None:
        ensure_schema(parsed)
        with connect(parsed, write=True) as conn:
            _claim_rebuild_in_database(conn, parsed)
            for table in reversed(schema.DATA_TABLES):
                conn.execute(sa.delete(schema.metadata.tables[table]))
            rows = _write_chunks(conn, chunks, progress)
            rollups.rebuild(conn)
            for key, value in (meta or {}).items():
                set_meta(conn, key, value)
            version = mark_data_changed(conn)
            audit(conn, action, object_type="warehouse", details={**(details or {}), **rows})
        return LoadResult(rows=rows, data_version=version)

    check_writable_file(path)
    building = path.with_name(path.name + ".building")
    with exclusive_rebuild(path):
        # Leftovers of a rebuild that crashed; no other rebuild can be using them now.
        for leftover in (building, building.with_name(building.name + ".wal")):
            leftover.unlink(missing_ok=True)
        building_url = parsed.set(database=str(building))
        try:
            custom.ensure_custom_tables(building_url)
            with connect(building_url, write=True) as conn:
                rows = _write_chunks(conn, chunks, progress)
                rollups.rebuild(conn)
                for key, value in (meta or {}).items():
                    set_meta(conn, key, value)
                # the new file's rollup zone wins over the old file's
                built = {rollups.TZ_KEY: rollups.built_tz(conn) or "", **(meta or {})}
            with announce_write(path):
                version = _swap_in(parsed, path, building, built)
            with connect(parsed, write=True) as conn:
                audit(conn, action, object_type="warehouse", details={**(details or {}), **rows})
        finally:
            dispose_engines()
            building.unlink(missing_ok=True)
    return LoadResult(rows=rows, data_version=version)


REBUILD_LOCK_KEY = "auterity_rebuild"
"""PostgreSQL advisory lock (``hashtext`` of this) held by the transaction of a rebuild."""


def _rebuild_refused(where: str, holder: str = "") -> DatabaseUnavailable:
    """The one-line error of a rebuild that found another one running."""
    return DatabaseUnavailable(
        f"another rebuild of {where} is running{holder}; this one stopped before changing "
        "anything: run it again once that one has finished"
    )


@contextmanager
def exclusive_rebuild(path: Path) -> Iterator[None]:
    """Hold ``<path>.rebuild-lock`` (``flock``) for a rebuild, or refuse at once.

    The kernel drops an ``flock`` when its process ends, so a crashed rebuild never
    leaves a stale lock; the file itself stays (removing it could race a new rebuild).
    It holds the holder's pid and start time, for the message of a refused rebuild.
    """
    lock_path = path.with_name(path.name + ".rebuild-lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").split()
            detail = f" (pid {holder[0]}, started {' '.join(holder[1:])})" if holder else ""
            raise _rebuild_refused(str(path), detail) from None
        started = utcnow().isoformat(sep=" ", timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {started} UTC\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def _claim_rebuild_in_database(conn: Connection, url: URL) -> None:
    """On PostgreSQL, take the rebuild's advisory lock for its transaction, or refuse."""
    if conn.dialect.name != "postgresql":
        return  # other servers serialise the deletes and inserts themselves
    claimed = conn.execute(
        sa.text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"), {"key": REBUILD_LOCK_KEY}
    ).scalar()
    if not claimed:
        raise _rebuild_refused(mask_url(url))


def _duckdb_raw(conn: Connection) -> ConnectionWrapper:
    """The duckdb_engine DBAPI connection under ``conn`` (it passes on DuckDB's own methods)."""
    # On a live connection the DBAPI connection is set (SQLAlchemy types it Optional).
    return cast("ConnectionWrapper", conn.connection.dbapi_connection)


def _duckdb_columns(raw: Any, table: str) -> set[str]:
    """Column names of a table in the main DuckDB catalog (SQLAlchemy reflection is partial)."""
    rows = raw.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_name = ?",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


def _swap_in(url: URL, path: Path, building: Path, new_meta: dict[str, str]) -> str:
    """Carry history from ``path`` into ``building``, then rename ``building`` over ``path``.

    Holds the old file's write lock while copying, so no run row written meanwhile is lost.
    """
    if not path.exists():
        with connect(url.set(database=str(building)), write=True) as conn:
            version = mark_data_changed(conn)
            rollups.set_version(conn, version)  # rebuilt from every row of the new file
        dispose_engines()
        os.replace(building, path)
        return version
    ensure_schema(url)
    with connect(url, write=True) as conn:
        raw = _duckdb_raw(conn)
        # bound path and key: any character is fine; encrypted like the file it replaces
        encryption.attach(raw, building, "fresh", key=encryption.db_key(), read_only=False)
        try:
            declared = custom.custom_tables()
            for table in (*CARRIED_OVER_TABLES, *declared):
                old_cols = _duckdb_columns(raw, table)
                if not old_cols:  # a declared table that was never created
                    continue
                target = declared.get(table, schema.metadata.tables.get(table))
                assert target is not None
                cols = ", ".join(_quote(conn, c.name) for c in target.c if c.name in old_cols)
                name = _quote(conn, table)
                where, params = "", []
                if table == "warehouse_meta" and new_meta:
                    params = list(new_meta)
                    where = f" WHERE key NOT IN ({', '.join('?' for _ in params)})"
                raw.execute(
                    f"INSERT INTO fresh.{name} ({cols}) SELECT {cols} FROM {name}{where}", params
                )
            version = uuid.uuid4().hex
            now = utcnow()
            raw.execute(
                "DELETE FROM fresh.warehouse_meta WHERE key IN (?, ?, ?)",
                [DATA_VERSION_KEY, DATA_UPDATED_KEY, rollups.VERSION_KEY],
            )
            raw.execute(
                "INSERT INTO fresh.warehouse_meta VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)",
                [
                    DATA_VERSION_KEY,
                    version,
                    now,
                    DATA_UPDATED_KEY,
                    now.isoformat(timespec="seconds"),
                    now,
                    rollups.VERSION_KEY,  # rebuilt from every row of the new file
                    version,
                    now,
                ],
            )
        finally:
            raw.execute("DETACH fresh")
        os.replace(building, path)
    return version


def table_summary(url: str | URL | None = None) -> dict[str, dict[str, Any]]:
    """Row counts and time ranges of the data tables (one small query per table).

    Returns
    -------
    dict
        ``{table: {"rows": int, "first": datetime | None, "last": datetime | None}}``.
    """
    out: dict[str, dict[str, Any]] = {}
    with connect(url) as conn:
        for name in schema.DATA_TABLES:
            table = schema.metadata.tables[name]
            time_col = schema.TIME_COLUMNS.get(name)
            if time_col:
                query = sa.select(
                    sa.func.count(), sa.func.min(table.c[time_col]), sa.func.max(table.c[time_col])
                )
                count, first, last = conn.execute(query).one()
            else:
                count, first, last = (
                    conn.execute(sa.select(sa.func.count()).select_from(table)).scalar(),
                    None,
                    None,
                )
            out[name] = {"rows": int(count), "first": first, "last": last}
    return out


def data_freshness(url: str | URL | None = None) -> datetime | None:
    """The newest event time (UTC) across the analysed tables (None when they are empty).

    Parameters
    ----------
    url
        Warehouse URL (default: ``AUTERITY_DB_URL``).

    Returns
    -------
    datetime or None
        The latest ``last`` of :func:`table_summary`, from one statement of ``max`` per
        timed table (no row counts: it is asked on every report, dashboard and API
        default period, and counting every table cost most of a cached API call).
    """
    newest = [
        sa.select(sa.func.max(schema.metadata.tables[name].c[column])).scalar_subquery()
        for name, column in schema.TIME_COLUMNS.items()
        if name in schema.DATA_TABLES
    ]
    if not newest:
        return None
    with connect(url) as conn:
        lasts = [v for v in conn.execute(sa.select(*newest)).one() if v is not None]
    return max(lasts) if lasts else None
