"""The warehouse: one SQLAlchemy engine, the schema, and every write.

The embedded default is a DuckDB file under ``data/``; any SQLAlchemy URL can be set with
``AUTERITY_DB_URL`` (PostgreSQL is tested for real). All writes go through this module so
that cache invalidation, audit rows and DuckDB's locking rules are handled in one place.

DuckDB and concurrent processes
-------------------------------
A DuckDB file can be opened by one read-write process *or* by any number of read-only
processes. Dashboards, report kernels and ingest are separate processes, so:

* connections are short-lived (no pool): a reader holds the file only while it queries;
* readers open the file read-only, so any number of them read at the same time;
* a process that finds the file locked retries with backoff for
  ``AUTERITY_DB_LOCK_TIMEOUT`` seconds before it reports the warehouse busy;
* a full rebuild (:func:`replace_data`) writes a new file beside the old one and swaps it
  in with an atomic rename, so readers are never blocked for the length of a rebuild and
  never see half-written data. Run history and audit rows are carried over.
* rebuilds are exclusive: a rebuild holds an ``flock`` on ``<file>.rebuild-lock`` (on
  PostgreSQL a transaction-level advisory lock) from start to finish, and a second one
  fails at once with one line naming the running one, before it changed anything.

Secrets
-------
URLs are only ever shown through :func:`auterity.redact.mask_url`; error messages pass
through :func:`auterity.redact.mask_secrets`, and every log record is masked.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from auterity import schema
from auterity.config import ENV_DB_URL, get_settings
from auterity.errors import ConfigError, DatabaseUnavailable
from auterity.redact import mask_secrets, mask_url

log = logging.getLogger("auterity.warehouse")

_LOCK_MESSAGE = re.compile(r"could not set lock|conflicting lock", re.IGNORECASE)
_engines: dict[tuple[str, bool], Engine] = {}
_engines_lock = threading.Lock()

DATA_VERSION_KEY = "data_version"
DATA_UPDATED_KEY = "data_updated_at"
CARRIED_OVER_TABLES = ("report_runs", "schedule_slots", "audit_log", "warehouse_meta")
"""Tables that a full data rebuild keeps: history is never lost."""


# --------------------------------------------------------------------------- engines


def database_url(url: str | None = None) -> URL:
    """Parse the warehouse URL (``url``, else ``AUTERITY_DB_URL``, else the DuckDB default).

    Raises
    ------
    ConfigError
        If the text is not an SQLAlchemy URL.
    """
    text = url or get_settings().db_url
    try:
        return sa.make_url(text)
    except sa.exc.ArgumentError:
        raise ConfigError(
            f"{ENV_DB_URL}={mask_secrets(text)!r} is not a database URL "
            "(expected e.g. duckdb:///data/auterity.duckdb or "
            "postgresql+psycopg://user@host:5432/db)"
        ) from None


def is_duckdb(url: URL) -> bool:
    """True if ``url`` points at DuckDB."""
    return url.get_backend_name() == "duckdb"


def duckdb_path(url: URL) -> Path | None:
    """The file behind a DuckDB URL, or None for an in-memory database."""
    if not is_duckdb(url) or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser()


def _check_writable_file(path: Path) -> None:
    """Raise ConfigError unless ``path`` can be created or written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the warehouse file {path}: {exc.strerror or exc}; "
            f"set {ENV_DB_URL} to a writable location"
        ) from None
    target = path if path.exists() else path.parent
    if not os.access(target, os.W_OK):
        raise ConfigError(
            f"the warehouse file {path} is not writable; set {ENV_DB_URL} to a writable location"
        )


def get_engine(url: str | URL | None = None, *, read_only: bool = False) -> Engine:
    """Return the (cached) engine for the warehouse.

    Parameters
    ----------
    url : str or URL, optional
        Database URL; default from the settings.
    read_only : bool
        On DuckDB, open the file read-only so many processes can read at once.
        Ignored by other databases.

    Returns
    -------
    Engine
        An engine; connecting happens later, in :func:`connect`.

    Raises
    ------
    ConfigError
        Unknown dialect or missing driver.
    """
    parsed = url if isinstance(url, URL) else database_url(url)
    read_only = read_only and is_duckdb(parsed)
    key = (parsed.render_as_string(hide_password=False), read_only)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is not None:
            return engine
        try:
            if is_duckdb(parsed) and read_only:
                # Pooled: reopening a DuckDB file costs ~30-50 ms; see _ReaderRelease.
                engine = sa.create_engine(
                    parsed,
                    poolclass=sa.pool.QueuePool,
                    pool_size=4,
                    max_overflow=8,
                    connect_args={"read_only": True},
                )
            elif is_duckdb(parsed):
                engine = sa.create_engine(parsed, poolclass=sa.pool.NullPool)
            else:
                engine = sa.create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=4)
        except sa.exc.NoSuchModuleError:
            raise ConfigError(
                f"unknown database driver {parsed.drivername!r} in {ENV_DB_URL}="
                f"{mask_url(parsed)}; install its SQLAlchemy dialect or use duckdb:/// "
                "or postgresql+psycopg://"
            ) from None
        except ImportError as exc:
            raise ConfigError(
                f"the driver for {parsed.drivername!r} is not installed ({exc.name}); "
                f"{ENV_DB_URL}={mask_url(parsed)}"
            ) from None
        _engines[key] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached engine (tests and long-running processes that switch URLs)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _first_line(exc: BaseException) -> str:
    """The driver's own first line of an error, without SQLAlchemy's decorations."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return mask_secrets(text)


def _open(engine: Engine, *, write: bool) -> Connection:
    """Connect, retrying while another process holds a DuckDB file; map errors to one line."""
    url = engine.url
    path = duckdb_path(url)
    if path is not None and write:
        _check_writable_file(path)
    if path is not None and not write and not path.exists():
        raise ConfigError(
            f"the warehouse file {path} does not exist yet; build it with "
            "`auterity demo-data` or create an empty one with `auterity db upgrade`"
        )
    deadline = time.monotonic() + get_settings().lock_timeout_s
    delay = 0.02
    while True:
        try:
            return engine.connect()
        except sa.exc.DBAPIError as exc:
            message = _first_line(exc)
            if path is not None and _LOCK_MESSAGE.search(message):
                if time.monotonic() >= deadline:
                    raise DatabaseUnavailable(
                        f"the warehouse file {path} stayed locked by another process for "
                        f"{get_settings().lock_timeout_s:g} s; try again later or raise "
                        "AUTERITY_DB_LOCK_TIMEOUT"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 1.6, 0.5)
                continue
            if path is not None:
                raise ConfigError(f"cannot open the warehouse file {path}: {message}") from None
            raise DatabaseUnavailable(
                f"cannot connect to the database at {mask_url(url)}: {message}"
            ) from None


READ_IDLE_S = 1.0
"""Pooled DuckDB read connections are closed after this long without use."""

_read_last_use: dict[Path, float] = {}
_reaper: threading.Thread | None = None
_writing = threading.local()


class _FileLock:
    """In-process readers-writer lock for one DuckDB file.

    DuckDB refuses a read-write connection while the same process holds a read-only one
    (and vice versa), so threads of one process (parallel report runs, a scheduler) must
    take turns: any number of readers, or one writer (re-entrant for its own thread).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer: int | None = None
        self._depth = 0
        self._local = threading.local()

    def acquire_read(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                raise RuntimeError("a DuckDB read connection inside this thread's own write")
            while self._writer is not None:
                self._cond.wait()
            self._readers += 1
            self._local.reads = getattr(self._local, "reads", 0) + 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            self._local.reads -= 1
            self._cond.notify_all()

    def acquire_write(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._depth += 1
                return
            if getattr(self._local, "reads", 0):
                raise RuntimeError("a DuckDB write while this thread holds a read connection")
            while self._writer is not None or self._readers > 0:
                self._cond.wait()
            self._writer, self._depth = me, 1

    def release_write(self) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._writer = None
                self._cond.notify_all()


_file_locks: dict[Path, _FileLock] = {}


def _file_lock(path: Path) -> _FileLock:
    """The in-process lock of a DuckDB file."""
    with _engines_lock:
        return _file_locks.setdefault(path, _FileLock())


def _intent_file(path: Path) -> Path:
    """The file a writer creates to ask readers of ``path`` to let go of it."""
    return path.with_name(path.name + ".write-intent")


def _writer_waiting(path: Path) -> bool:
    """True while a live writer has announced it wants ``path`` (stale notes are removed)."""
    intent = _intent_file(path)
    try:
        owner = int(intent.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    if owner != os.getpid():
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            intent.unlink(missing_ok=True)
            return False
        except PermissionError:
            pass
    return True


def _release_readers(path: Path) -> None:
    """Close this process's pooled read connections to ``path``."""
    with _engines_lock:
        engines = [e for (_, ro), e in _engines.items() if ro and duckdb_path(e.url) == path]
    for engine in engines:
        engine.dispose()


def _reap_idle_readers() -> None:
    """Background loop: close pooled read connections idle for READ_IDLE_S."""
    while True:
        time.sleep(READ_IDLE_S / 4)
        now = time.monotonic()
        for path, last in list(_read_last_use.items()):
            if now - last < READ_IDLE_S:
                continue
            with _engines_lock:
                busy = any(
                    ro and duckdb_path(e.url) == path and e.pool.checkedout()  # type: ignore[attr-defined]
                    for (_, ro), e in _engines.items()
                )
            if not busy:
                _read_last_use.pop(path, None)
                _release_readers(path)


def _note_read(path: Path) -> None:
    """Record a read of ``path`` and make sure the idle reaper runs."""
    global _reaper
    _read_last_use[path] = time.monotonic()
    if _reaper is None or not _reaper.is_alive():
        _reaper = threading.Thread(target=_reap_idle_readers, name="auterity-reaper", daemon=True)
        _reaper.start()


def _wait_while_writer_waits(path: Path) -> None:
    """Let an announced writer go first (bounded by the lock timeout)."""
    if path in getattr(_writing, "paths", set()) or not _writer_waiting(path):
        return
    _release_readers(path)
    deadline = time.monotonic() + get_settings().lock_timeout_s
    while _writer_waiting(path) and time.monotonic() < deadline:
        time.sleep(0.02)


@contextmanager
def _announce_write(path: Path | None) -> Iterator[None]:
    """Tell readers of a DuckDB file (other processes too) that a writer is waiting."""
    if path is None:
        yield
        return
    lock = _file_lock(path)
    lock.acquire_write()
    intent = _intent_file(path)
    token = f"{os.getpid()} {uuid.uuid4().hex}"
    try:
        intent.write_text(token)
    except OSError:
        token = ""
    _release_readers(path)
    paths = getattr(_writing, "paths", set())
    _writing.paths = paths | {path}
    try:
        yield
    finally:
        _writing.paths = paths
        with suppress(OSError):
            if token and intent.read_text() == token:
                intent.unlink()
        lock.release_write()


@contextmanager
def connect(url: str | URL | None = None, *, write: bool = False) -> Iterator[Connection]:
    """Open a connection to the warehouse for the length of a ``with`` block.

    Parameters
    ----------
    url : str or URL, optional
        Database URL; default from the settings.
    write : bool
        False (default): a read connection (read-only on DuckDB, so readers never block
        each other). True: a transaction that commits when the block ends without error
        and rolls back otherwise.

    Yields
    ------
    Connection
        A SQLAlchemy connection, returned when the block ends.

    Notes
    -----
    On DuckDB, read connections are pooled per process (opening the file is the slow
    part of a small query) and let go of the file when idle for ``READ_IDLE_S`` or as soon
    as a writer announces itself with a ``.write-intent`` file beside the database; the
    writer then takes the file lock with retries. So readers share the file, writers are
    not starved, and no reader holds the file for long.
    """
    engine = get_engine(url, read_only=not write)
    path = duckdb_path(engine.url)
    if write:
        with _announce_write(path):
            conn = _open(engine, write=True)
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.close()
        return
    if path is None:
        with _open(engine, write=False) as conn:
            yield conn
        return
    _wait_while_writer_waits(path)
    lock = _file_lock(path)
    lock.acquire_read()
    try:
        _note_read(path)
        conn = _open(engine, write=False)
        try:
            yield conn
        finally:
            conn.close()
            _note_read(path)
    finally:
        lock.release_read()


# --------------------------------------------------------------------------- schema


def _alembic_config(conn: Connection) -> Any:
    """An Alembic config pointing at the packaged migrations, bound to ``conn``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "auterity:migrations")
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    """The newest migration revision shipped with this version of the package."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", "auterity:migrations")
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The migration revision the database is at, or None if it has no schema yet."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def ensure_schema(url: str | URL | None = None) -> str:
    """Create or upgrade the schema to the newest revision; safe to call any number of times.

    Concurrent callers are serialised (DuckDB's file lock, PostgreSQL's advisory lock).

    Returns
    -------
    str
        The revision the database is at afterwards.
    """
    head = head_revision()
    with connect(url, write=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('auterity_schema'))"))
        current = current_revision(conn)
        if current == head:
            return head
        from alembic import command

        log.info("upgrading warehouse schema %s -> %s", current or "(empty)", head)
        command.upgrade(_alembic_config(conn), "head")
    return head


# --------------------------------------------------------------------------- writes


def _quote(conn: Connection, name: str) -> str:
    """Quote an identifier for the connection's dialect."""
    return conn.dialect.identifier_preparer.quote(name)


def _table(name: str) -> sa.Table:
    """The schema table called ``name``; ConfigError if there is none."""
    try:
        return schema.metadata.tables[name]
    except KeyError:
        known = ", ".join(sorted(schema.metadata.tables))
        raise ConfigError(f"unknown warehouse table {name!r} (known: {known})") from None


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
        raw = conn.connection.dbapi_connection
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
        raw = conn.connection.dbapi_connection
        with (
            raw.cursor() as cursor,
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


def _utcnow() -> datetime:
    """Current UTC time without a zone, as stored in the warehouse."""
    return datetime.now(UTC).replace(tzinfo=None)


def set_meta(conn: Connection, key: str, value: str) -> None:
    """Insert or update one ``warehouse_meta`` entry inside ``conn``'s transaction."""
    meta = schema.warehouse_meta
    conn.execute(sa.delete(meta).where(meta.c.key == key))
    conn.execute(sa.insert(meta).values(key=key, value=value, updated_at=_utcnow()))


def get_meta(key: str, url: str | URL | None = None) -> str | None:
    """Read one ``warehouse_meta`` value, or None if it is not set."""
    meta = schema.warehouse_meta
    with connect(url) as conn:
        return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()


def mark_data_changed(conn: Connection) -> str:
    """Record that analysed data changed (new data version); caches keyed on it go stale.

    Every write of analysed data must call this inside its transaction.
    """
    version = uuid.uuid4().hex
    set_meta(conn, DATA_VERSION_KEY, version)
    set_meta(conn, DATA_UPDATED_KEY, _utcnow().isoformat(timespec="seconds"))
    return version


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
            ts=_utcnow(),
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
        mark_data_changed(conn)
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
            for key, value in (meta or {}).items():
                set_meta(conn, key, value)
            version = mark_data_changed(conn)
            audit(conn, action, object_type="warehouse", details={**(details or {}), **rows})
        return LoadResult(rows=rows, data_version=version)

    _check_writable_file(path)
    building = path.with_name(path.name + ".building")
    with _exclusive_rebuild(path):
        # Leftovers of a rebuild that crashed; no other rebuild can be using them now.
        for leftover in (building, building.with_name(building.name + ".wal")):
            leftover.unlink(missing_ok=True)
        building_url = parsed.set(database=str(building))
        try:
            ensure_schema(building_url)
            with connect(building_url, write=True) as conn:
                rows = _write_chunks(conn, chunks, progress)
                for key, value in (meta or {}).items():
                    set_meta(conn, key, value)
            with _announce_write(path):
                version = _swap_in(parsed, path, building, meta or {})
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
def _exclusive_rebuild(path: Path) -> Iterator[None]:
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
        started = _utcnow().isoformat(sep=" ", timespec="seconds")
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
        dispose_engines()
        os.replace(building, path)
        return version
    ensure_schema(url)
    with connect(url, write=True) as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("ATTACH ? AS fresh", [str(building)])  # a bound path: any character is fine
        try:
            for table in CARRIED_OVER_TABLES:
                old_cols = _duckdb_columns(raw, table)
                cols = ", ".join(
                    _quote(conn, c.name)
                    for c in schema.metadata.tables[table].c
                    if c.name in old_cols
                )
                name = _quote(conn, table)
                where, params = "", []
                if table == "warehouse_meta" and new_meta:
                    params = list(new_meta)
                    where = f" WHERE key NOT IN ({', '.join('?' for _ in params)})"
                raw.execute(
                    f"INSERT INTO fresh.{name} ({cols}) SELECT {cols} FROM {name}{where}", params
                )
            version = uuid.uuid4().hex
            now = _utcnow()
            raw.execute(
                "DELETE FROM fresh.warehouse_meta WHERE key IN (?, ?)",
                [DATA_VERSION_KEY, DATA_UPDATED_KEY],
            )
            raw.execute(
                "INSERT INTO fresh.warehouse_meta VALUES (?, ?, ?), (?, ?, ?)",
                [
                    DATA_VERSION_KEY,
                    version,
                    now,
                    DATA_UPDATED_KEY,
                    now.isoformat(timespec="seconds"),
                    now,
                ],
            )
        finally:
            raw.execute("DETACH fresh")
        os.replace(building, path)
    return version


# --------------------------------------------------------------------------- reads


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
