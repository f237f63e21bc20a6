"""The warehouse engine: URLs, engines, short-lived connections, locking, schema upgrades.

The embedded default is a DuckDB file under ``data/``; any SQLAlchemy URL can be set with
``AUTERITY_DB_URL`` (PostgreSQL is tested for real). Every connection comes from
:func:`connect`, so DuckDB's locking rules are handled in one place; every write goes
through :mod:`auterity.warehouse.writes` (cache invalidation, audit rows, rebuilds).

DuckDB and concurrent processes
-------------------------------
A DuckDB file can be opened by one read-write process *or* by any number of read-only
processes. Dashboards, report kernels and ingest are separate processes, so:

* connections are short-lived (no pool): a reader holds the file only while it queries;
* readers open the file read-only, so any number of them read at the same time;
* a process that finds the file locked retries with backoff for
  ``AUTERITY_DB_LOCK_TIMEOUT`` seconds before it reports the warehouse busy;
* a writer first announces itself with a note of its own beside the file
  (``<file>.write-intent.<ticket>``): readers let go of the file and new reads wait for the
  writers announced before them, and writers take turns in the order they announced
  themselves, so neither a stream of reads nor a busy writer (the OTLP receiver flushing
  several times a second) starves an ingest or a sync;
* a full rebuild (:func:`replace_data`) writes a new file beside the old one and swaps it
  in with an atomic rename, so readers are never blocked for the length of a rebuild and
  never see half-written data. Run history and audit rows are carried over.
* rebuilds are exclusive: a rebuild holds an ``flock`` on ``<file>.rebuild-lock`` (on
  PostgreSQL a transaction-level advisory lock) from start to finish, and a second one
  fails at once with one line naming the running one, before it changed anything.

Encryption at rest
------------------
With ``AUTERITY_DB_KEY`` set, a DuckDB warehouse file is opened (and created) encrypted:
see :mod:`auterity.warehouse.encryption`. Opening an encrypted file without the key, with a
wrong key, or a plain file with a key raises a :class:`ConfigError` that says what to set.

Secrets
-------
URLs are only ever shown through :func:`auterity.redact.mask_url`; error messages pass
through :func:`auterity.redact.mask_secrets`, and every log record is masked.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from auterity.config import ENV_DB_URL, get_settings
from auterity.errors import ConfigError, DatabaseUnavailable
from auterity.redact import first_line, mask_secrets, mask_url
from auterity.warehouse import encryption

log = logging.getLogger("auterity.warehouse")


_LOCK_MESSAGE = re.compile(r"could not set lock|conflicting lock", re.IGNORECASE)


def is_lock_error(message: str) -> bool:
    """True if a DuckDB error says another process holds the file's lock."""
    return bool(_LOCK_MESSAGE.search(message))


_engines: dict[tuple[str, bool], Engine] = {}


_engines_lock = threading.Lock()


CARRIED_OVER_TABLES = (
    "report_runs",
    "schedule_slots",
    "audit_log",
    "warehouse_meta",
    "quarantine",
    "users",
)
"""Tables that a full data rebuild keeps: history (and rows held back on the way in) is
never lost. Tables declared in sources.yml are kept too, as their sync watermarks are."""


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


def check_writable_file(path: Path) -> None:
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
    db_key = encryption.db_key() if duckdb_path(parsed) is not None else None
    # one engine per URL, mode and key (a fingerprint: the key itself is kept only by the
    # engine's connect hook)
    key = (
        f"{parsed.render_as_string(hide_password=False)}#{encryption.key_fingerprint(db_key)}",
        read_only,
    )
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
        if db_key is not None:
            _open_encrypted_with(engine, db_key)
        _engines[key] = engine
        return engine


def _open_encrypted_with(engine: Engine, db_key: str) -> None:
    """Make ``engine`` open its DuckDB file encrypted with ``db_key`` (attached, then USE)."""

    @sa.event.listens_for(engine, "do_connect")
    def _attach_encrypted(dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> Any:
        return encryption.open_encrypted(dialect, cparams, db_key)


def dispose_engines() -> None:
    """Close every cached engine (tests and long-running processes that switch URLs)."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        with _instance_lock(duckdb_path(engine.url)):
            engine.dispose()


def _open(engine: Engine, *, write: bool) -> Connection:
    """Connect, retrying while another process holds a DuckDB file; map errors to one line."""
    url = engine.url
    path = duckdb_path(url)
    if path is not None and write:
        check_writable_file(path)
    if path is not None and not write and not path.exists():
        raise ConfigError(
            f"the warehouse file {path} does not exist yet; build it with "
            "`auterity demo-data` or create an empty one with `auterity db upgrade`"
        )
    deadline = time.monotonic() + get_settings().lock_timeout_s
    delay = 0.02
    while True:
        try:
            with _instance_lock(path):
                return engine.connect()
        except sa.exc.DBAPIError as exc:
            message = first_line(exc)
            explained = encryption.explain_open_error(message, path) if path else None
            if explained is not None:
                raise ConfigError(explained) from None
            if path is not None and is_lock_error(message):
                if time.monotonic() >= deadline:
                    raise DatabaseUnavailable(
                        f"the warehouse file {path} stayed locked by another process for "
                        f"{get_settings().lock_timeout_s:g} s; try again later or raise "
                        "AUTERITY_DB_LOCK_TIMEOUT"
                    ) from None
                time.sleep(delay)
                # short: the holder is about to let go (readers do when a writer waits,
                # and writers take turns), and every moment the file lies unused after that
                # stalls the readers and writers queued behind this one
                delay = min(delay * 1.6, 0.05)
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


INTENT_SUFFIX = ".write-intent"
"""A writer waiting for a DuckDB file ``f`` announces itself with ``f.write-intent.<ticket>``
(``<ticket>``: the time it announced itself, its pid, a random part); the file holds
``"<pid> <ticket>"``. One file per writer, so one writer's note never hides another's."""


def _intent_files(path: Path) -> list[Path]:
    """Every writer's note for ``path`` (also the single ``f.write-intent`` of older
    versions), oldest first."""
    pattern = glob.escape(path.name) + INTENT_SUFFIX + "*"
    try:
        return sorted(path.parent.glob(pattern), key=lambda p: p.name)
    except OSError:
        return []


def _intent_alive(intent: Path) -> bool:
    """True while the process that wrote ``intent`` lives (a stale note is removed)."""
    try:
        owner = int(intent.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False  # vanished, or being written: not a writer (yet)
    if owner != os.getpid():
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            intent.unlink(missing_ok=True)
            return False
        except PermissionError:
            pass
    return True


def _waiting_writers(path: Path, before: str | None = None) -> list[Path]:
    """The live writers' notes for ``path`` (only those older than ticket ``before``)."""
    return [
        intent
        for intent in _intent_files(path)
        if (before is None or intent.name < before) and _intent_alive(intent)
    ]


def _writer_waiting(path: Path) -> bool:
    """True while a live writer has announced it wants ``path`` (stale notes are removed)."""
    return bool(_waiting_writers(path))


_instance_locks: dict[Path, threading.RLock] = {}


def _instance_lock(path: Path | None) -> Any:
    """The in-process lock under which DuckDB instances of ``path`` are opened and closed.

    DuckDB locks its file with POSIX ``fcntl`` locks, which belong to the process: when
    one of its descriptors of the file closes, the kernel drops every lock the process
    holds on that file. A thread opening a new instance (taking the shared lock) while
    another closed the last connection of an old one (the idle reaper, a disposed pool)
    was left reading without a lock, and a writer in another process could then rewrite
    the blocks under it ("Could not read enough bytes", seen once in three CI runs of the
    concurrency test). Opening and closing one at a time keeps the lock held.
    """
    if path is None:
        return nullcontext()
    with _engines_lock:
        return _instance_locks.setdefault(path, threading.RLock())


def release_readers(path: Path) -> None:
    """Close this process's pooled read connections to ``path``."""
    with _engines_lock:
        engines = [e for (_, ro), e in _engines.items() if ro and duckdb_path(e.url) == path]
    with _instance_lock(path):
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
                release_readers(path)


def _note_read(path: Path) -> None:
    """Record a read of ``path`` and make sure the idle reaper runs."""
    global _reaper
    _read_last_use[path] = time.monotonic()
    if _reaper is None or not _reaper.is_alive():
        _reaper = threading.Thread(target=_reap_idle_readers, name="auterity-reaper", daemon=True)
        _reaper.start()


def _wait_for(notes: list[Path], deadline: float) -> None:
    """Wait until the writers behind ``notes`` are done (or ``deadline``)."""
    delay = 0.005
    while notes and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)
        notes = [n for n in notes if n.exists() and _intent_alive(n)]


def _wait_while_writer_waits(path: Path) -> None:
    """Let the writers announced before this read go first (bounded by the lock timeout).

    Only those: a writer announced later waits for this read instead (it lets go of the
    file when it ends), so a steady stream of writers cannot starve readers, nor readers
    writers.
    """
    if path in getattr(_writing, "paths", set()):
        return
    waiting = _waiting_writers(path)
    if not waiting:
        return
    release_readers(path)
    _wait_for(waiting, time.monotonic() + get_settings().lock_timeout_s)


@contextmanager
def announce_write(path: Path | None) -> Iterator[None]:
    """Tell readers of a DuckDB file (other processes too) that a writer is waiting, and
    wait for the writers that announced themselves earlier: writers take turns in the
    order they came (a writer that retried for long is not overtaken by newer ones)."""
    if path is None:
        yield
        return
    lock = _file_lock(path)
    lock.acquire_write()
    paths: set[Path] = getattr(_writing, "paths", set())
    if path in paths:  # this thread's own turn already (a write inside a write)
        try:
            yield
        finally:
            lock.release_write()
        return
    ticket = f"{time.time_ns():020d}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    intent = path.with_name(path.name + INTENT_SUFFIX + "." + ticket)
    try:
        with suppress(OSError):  # a read-only directory: then no one else can write either
            intent.write_text(f"{os.getpid()} {ticket}")
        release_readers(path)
        deadline = time.monotonic() + get_settings().lock_timeout_s
        _wait_for(_waiting_writers(path, before=intent.name), deadline)
        if _waiting_writers(path, before=intent.name):
            raise DatabaseUnavailable(
                f"the warehouse file {path} stayed locked by another process for "
                f"{get_settings().lock_timeout_s:g} s; try again later or raise "
                "AUTERITY_DB_LOCK_TIMEOUT"
            )
        _writing.paths = paths | {path}
        yield
    finally:
        _writing.paths = paths
        with suppress(OSError):  # e.g. the folder is not one: nothing was written there
            intent.unlink(missing_ok=True)
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
        with announce_write(path):
            conn = _open(engine, write=True)
            try:
                with conn.begin():
                    yield conn
            finally:
                with _instance_lock(path):
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
        pool = engine.pool
        conn = _open(engine, write=False)
        try:
            yield conn
        finally:
            # Let go of the file now if the pool was let go of while this read ran (the idle
            # reaper, or a writer announcing itself) or a writer waits: returned to a
            # disposed pool, the connection would keep the file open until the garbage
            # collector found it, blocking writers in other processes (lock timeouts) and
            # in this one ("a different configuration").
            with _instance_lock(path):
                if engine.pool is not pool or _writer_waiting(path):
                    conn.invalidate()
                conn.close()
            _note_read(path)
    finally:
        lock.release_read()


def checkpoint(url: str | URL | None = None) -> None:
    """Fold a DuckDB warehouse's write-ahead log into its file (nothing elsewhere).

    After an erasure, the deleted values no longer sit in the ``.wal`` file beside it.
    """
    engine = get_engine(url, read_only=False)
    path = duckdb_path(engine.url)
    if path is None:
        return
    with announce_write(path):
        conn = _open(engine, write=True)
        try:
            raw: Any = conn.connection.dbapi_connection
            raw.execute("CHECKPOINT")
        finally:
            with _instance_lock(path):
                conn.close()


def alembic_config(conn: Connection) -> Any:
    """An Alembic config pointing at the packaged migrations, bound to ``conn``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "auterity.warehouse:migrations")
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    """The newest migration revision shipped with this version of the package."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", "auterity.warehouse:migrations")
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
        command.upgrade(alembic_config(conn), "head")
    return head
