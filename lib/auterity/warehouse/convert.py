"""Turn a plain DuckDB warehouse file into an encrypted one, and back.

The copy is DuckDB's own: both files are attached to one in-memory DuckDB and
``COPY FROM DATABASE`` writes every table, view and sequence into a new file beside the old
one, which then replaces it with an atomic rename (readers see the old file or the new one,
never half of either). The conversion holds the file's rebuild lock and its writer turn
(:func:`auterity.warehouse.engine.announce_write`), so no rebuild, ingest or run record is
lost meanwhile. The old file is kept as a backup only when asked.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from auterity.config import ENV_DB_URL, get_settings
from auterity.errors import ConfigError, DatabaseUnavailable
from auterity.redact import first_line, mask_url
from auterity.warehouse import encryption
from auterity.warehouse.engine import (
    announce_write,
    database_url,
    dispose_engines,
    duckdb_path,
    is_lock_error,
)
from auterity.warehouse.writes import exclusive_rebuild


@dataclass(frozen=True)
class Conversion:
    """What :func:`encrypt_warehouse` or :func:`decrypt_warehouse` did.

    Attributes
    ----------
    path
        The warehouse file (now encrypted, or now plain).
    tables
        Rows per table, the same in the old file and the new one.
    seconds
        How long the copy and the swap took.
    backup
        Where the old file was kept, or None.
    crypto
        ``openssl`` or ``builtin``: what wrote (or read) the encrypted side.
    """

    path: Path
    tables: dict[str, int]
    seconds: float
    backup: Path | None
    crypto: str


def encrypt_warehouse(url: str | None = None, *, keep_backup: bool = False) -> Conversion:
    """Encrypt the plain DuckDB warehouse file with ``AUTERITY_DB_KEY``.

    Parameters
    ----------
    url
        Warehouse URL (default: ``AUTERITY_DB_URL``); must be a DuckDB file.
    keep_backup
        Keep the old, unencrypted file as ``<file>.unencrypted`` (it holds the data in
        the clear: delete it once the encrypted one is checked).

    Returns
    -------
    Conversion
        The file, rows per table, time taken and the backup.

    Raises
    ------
    ConfigError
        No key, not a DuckDB file, no such file, or the file is already encrypted.
    """
    return _convert(url, encrypt=True, keep_backup=keep_backup)


def decrypt_warehouse(url: str | None = None, *, keep_backup: bool = False) -> Conversion:
    """Decrypt the encrypted DuckDB warehouse file (its key in ``AUTERITY_DB_KEY``).

    Afterwards unset ``AUTERITY_DB_KEY``: a plain file opened with a key set is refused.
    ``keep_backup`` keeps the old encrypted file as ``<file>.encrypted``. Raises like
    :func:`encrypt_warehouse`.
    """
    return _convert(url, encrypt=False, keep_backup=keep_backup)


def _convert(url: str | None, *, encrypt: bool, keep_backup: bool) -> Conversion:
    """Copy the warehouse file into a new one with or without the key, then swap it in."""
    parsed = database_url(url)
    path = duckdb_path(parsed)
    verb = "encrypt" if encrypt else "decrypt"
    if path is None:
        raise ConfigError(
            f"only an embedded DuckDB warehouse file can be {verb}ed; {ENV_DB_URL}="
            f"{mask_url(parsed)} (a PostgreSQL server encrypts its storage and connections "
            "itself: see Encryption at rest in the README)"
        )
    key = encryption.db_key()
    if key is None:
        raise ConfigError(
            f"set {encryption.ENV_DB_KEY} to the key to {verb} {path} with (in the environment "
            "or .env, never on the command line)"
        )
    if not path.is_file():
        raise ConfigError(f"there is no warehouse file {path} to {verb}")
    if encryption.is_encrypted(path) == encrypt:
        state = "already encrypted" if encrypt else "not encrypted"
        raise ConfigError(f"the warehouse file {path} is {state}; nothing to do")
    suffix = ".unencrypted" if encrypt else ".encrypted"
    backup = path.with_name(path.name + suffix) if keep_backup else None
    if backup is not None and backup.exists():
        raise ConfigError(f"{backup} exists already; move it away or convert without a backup")
    target = path.with_name(path.name + ".converting")
    started = time.perf_counter()
    with exclusive_rebuild(path), announce_write(path):
        for leftover in (target, target.with_name(target.name + ".wal")):
            leftover.unlink(missing_ok=True)
        try:
            tables, crypto = _copy(
                path,
                target,
                source_key=None if encrypt else key,
                target_key=key if encrypt else None,
            )
            if path.with_name(path.name + ".wal").exists():
                raise DatabaseUnavailable(
                    f"{path} still has a write-ahead log after its checkpoint; nothing was "
                    "changed: try again when no other process writes to it"
                )
            if backup is not None:
                os.link(path, backup)
            os.replace(target, path)
        finally:
            target.unlink(missing_ok=True)
            dispose_engines()
    return Conversion(path, tables, time.perf_counter() - started, backup, crypto)


def _copy(
    path: Path, target: Path, *, source_key: str | None, target_key: str | None
) -> tuple[dict[str, int], str]:
    """``COPY FROM DATABASE`` ``path`` into the new file ``target``; rows per table."""
    raw = duckdb.connect(config={"temp_directory": f"{path}.tmp"})  # as the engine's
    try:
        crypto = encryption.enable_crypto(raw, write=True)
        _attach_waiting(raw, path, source_key)
        # fold the old file's write-ahead log in: the new file replaces both
        raw.execute("CHECKPOINT source")
        encryption.attach(raw, target, "target", key=target_key, read_only=False)
        raw.execute("COPY FROM DATABASE source TO target")
        tables = _row_counts(raw, "source")
        copied = _row_counts(raw, "target")
        if copied != tables:
            raise DatabaseUnavailable(
                f"the copy of {path} does not match it ({copied} rows, not {tables}); "
                "nothing was changed"
            )
        raw.execute("CHECKPOINT target")
        raw.execute("DETACH target")
        raw.execute("DETACH source")
    except duckdb.Error as exc:
        message = first_line(exc)
        if is_lock_error(message):
            raise DatabaseUnavailable(
                f"the warehouse file {path} stayed locked by another process for "
                f"{get_settings().lock_timeout_s:g} s; nothing was changed: try again later"
            ) from None
        explained = encryption.explain_open_error(message, path)
        raise ConfigError(explained or f"cannot convert {path}: {message}") from None
    finally:
        raw.close()
    return tables, crypto


def _attach_waiting(raw: Any, path: Path, key: str | None) -> None:
    """Attach ``path`` read-write as ``source``, waiting while other processes let go of it."""
    deadline = time.monotonic() + get_settings().lock_timeout_s
    delay = 0.02
    while True:
        try:
            encryption.attach(raw, path, "source", key=key, read_only=False)
            return
        except duckdb.Error as exc:
            if not is_lock_error(str(exc)) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 1.6, 0.25)


def _row_counts(raw: Any, catalog: str) -> dict[str, int]:
    """Rows per base table of an attached catalog."""
    names = [
        row[0]
        for row in raw.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
            "WHERE database_name = ? ORDER BY 1",
            [catalog],
        ).fetchall()
    ]
    counts = {}
    for name in names:
        schema_name, table = name.split(".", 1)
        quoted = f'{catalog}."{schema_name}"."{table.replace(chr(34), chr(34) * 2)}"'
        shown = table if schema_name == "main" else name
        counts[shown] = int(raw.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])
    return counts
