"""Encryption at rest of the embedded DuckDB warehouse: the key, the crypto, opening the file.

With ``AUTERITY_DB_KEY`` set and a DuckDB file as the warehouse, every connection of
:mod:`auterity.warehouse.engine` opens an in-memory DuckDB, ``ATTACH``es the file with the key
(``ENCRYPTION_KEY``, AES-GCM-256; a new file is created encrypted) and makes it the default
catalog with ``USE``. DuckDB cannot take the key in ``duckdb.connect`` itself (its config knows
no such option), which is why the file is attached. The file, its write-ahead log and the
files a large query spills (``temp_file_encryption``, off by default in DuckDB 2.0) are
encrypted; the key never appears in a URL, a log, an error or a repr.

The crypto
----------
DuckDB reads encrypted files with the crypto it carries (mbedTLS), but refuses to *write*
them with it: its nonces would come from a random generator that is not cryptographically
secure, and a nonce repeated under one key weakens AES-GCM. Writing wants DuckDB's ``httpfs``
extension (OpenSSL), loaded here from DuckDB's local extension directory. Where that extension
is not installed (no network to DuckDB's extension repository), ``AUTERITY_DB_CRYPTO=builtin``
accepts DuckDB's own crypto for writing (its ``force_mbedtls_unsafe`` setting): the data is
still unreadable without the key, with the weakness above. Without either, a write is refused
with a message that says so; reads always work.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import duckdb

from auterity.config import value
from auterity.errors import ConfigError

ENV_DB_KEY = "AUTERITY_DB_KEY"
ENV_DB_CRYPTO = "AUTERITY_DB_CRYPTO"
KEY_MIN_LENGTH = 32
CATALOG = "warehouse"
"""The name an encrypted warehouse file is attached under (``current_database()``)."""
CRYPTO_MODES = ("openssl", "builtin")

_DUCKDB_MAGIC = b"DUCK"
_ENCRYPTED_FLAG = 1  # bit 0 of the first flags word of DuckDB's main file header


def db_key() -> str | None:
    """The warehouse's encryption key from ``AUTERITY_DB_KEY`` (None when unset or empty).

    Raises
    ------
    ConfigError
        If the key is shorter than :data:`KEY_MIN_LENGTH` characters (the key itself is
        never shown).
    """
    key = value(ENV_DB_KEY) or None
    if key is not None and len(key) < KEY_MIN_LENGTH:
        raise ConfigError(
            f"{ENV_DB_KEY} is {len(key)} characters long; the warehouse encryption key needs "
            f"at least {KEY_MIN_LENGTH} (e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return key


def key_fingerprint(key: str | None) -> str:
    """A short one-way tag of ``key`` (engines are cached per key; the key is not kept)."""
    if key is None:
        return "plain"
    return hashlib.sha256(b"auterity-db-key:" + key.encode()).hexdigest()[:16]


def crypto_mode() -> str:
    """``AUTERITY_DB_CRYPTO``: ``openssl`` (default) or ``builtin`` (DuckDB's own crypto)."""
    mode = (value(ENV_DB_CRYPTO) or "openssl").strip().lower()
    if mode not in CRYPTO_MODES:
        raise ConfigError(f"{ENV_DB_CRYPTO}={mode!r} must be one of {', '.join(CRYPTO_MODES)}")
    return mode


def is_encrypted(path: Path) -> bool:
    """True if ``path`` is an encrypted DuckDB file (read from its header; no lock taken).

    Returns False for a missing, empty or non-DuckDB file.
    """
    try:
        with path.open("rb") as handle:
            header = handle.read(28)
    except OSError:
        return False
    if len(header) < 28 or header[8:12] != _DUCKDB_MAGIC:
        return False
    return bool(int.from_bytes(header[20:28], "little") & _ENCRYPTED_FLAG)


def _load_openssl(raw: Any) -> bool:
    """Load DuckDB's httpfs extension (OpenSSL crypto) if it is installed locally."""
    try:
        raw.execute("LOAD httpfs")
    except duckdb.Error:  # not installed (or not loadable) here
        return False
    return True


def enable_crypto(raw: Any, *, write: bool) -> str:
    """Give a fresh DuckDB connection a crypto module that can write encrypted files.

    Parameters
    ----------
    raw
        A DuckDB connection (nothing attached yet).
    write
        True if it will write (a read works with DuckDB's built-in crypto).

    Returns
    -------
    str
        ``"openssl"``, ``"builtin"`` or ``"read-only"`` (a read without either).

    Raises
    ------
    ConfigError
        A write without httpfs while ``AUTERITY_DB_CRYPTO`` is not ``builtin``.
    """
    mode = crypto_mode()
    # DuckDB 2.0 leaves the files a large query spills to disk unencrypted unless told
    raw.execute("SET temp_file_encryption = true")
    if _load_openssl(raw):
        return "openssl"
    if mode == "builtin":
        raw.execute("SET force_mbedtls_unsafe = true")
        return "builtin"
    if not write:
        return "read-only"  # reads work; a read that must spill to disk is refused
    raise ConfigError(
        "writing the encrypted warehouse needs DuckDB's httpfs extension (OpenSSL), which "
        "is not installed: install it where DuckDB's extension repository is reachable "
        "(`python -c \"import duckdb; duckdb.sql('INSTALL httpfs')\"`), or set "
        f"{ENV_DB_CRYPTO}=builtin to accept DuckDB's built-in crypto (its nonces come from a "
        "random generator that is not cryptographically secure; see the README)"
    )


def attach(raw: Any, path: Path | str, alias: str, *, key: str | None, read_only: bool) -> None:
    """``ATTACH`` the DuckDB file ``path`` as ``alias``, with ``key`` if one is given.

    The path and key are bound parameters, never part of the statement's text.
    """
    options = []
    params: list[str] = [str(path)]
    if key is not None:
        options.append("ENCRYPTION_KEY ?")
        params.append(key)
    if read_only:
        options.append("READ_ONLY")
    suffix = f" ({', '.join(options)})" if options else ""
    raw.execute(f"ATTACH ? AS {alias}{suffix}", params)


def open_encrypted(dialect: Any, cparams: dict[str, Any], key: str) -> Any:
    """A DuckDB DBAPI connection whose default catalog is the encrypted file.

    For the ``do_connect`` event of a DuckDB engine: ``cparams`` are the ones duckdb_engine
    would connect with (``database``, ``read_only``, ``config``...).
    """
    params = dict(cparams)
    database = params.pop("database")
    read_only = bool(params.pop("read_only", False))
    # where DuckDB spills large queries for a file it opens itself (not the working directory)
    params["config"] = {"temp_directory": f"{database}.tmp", **params.get("config", {})}
    raw = dialect.connect(database=":memory:", **params)
    try:
        enable_crypto(raw, write=not read_only)
        attach(raw, Path(database), CATALOG, key=key, read_only=read_only)
        raw.execute(f"USE {CATALOG}")
    except BaseException:
        raw.close()
        raise
    return raw


def explain_open_error(message: str, path: Path) -> str | None:
    """The clear message for a DuckDB error about a file's encryption, else None.

    Parameters
    ----------
    message
        DuckDB's error (first line).
    path
        The warehouse file.
    """
    lowered = message.lower()
    if "without a key" in lowered and "encrypted" in lowered:
        return (
            f"the warehouse file {path} is encrypted: set {ENV_DB_KEY} to its key "
            "(in the environment or .env of every process that reads it)"
        )
    if "wrong encryption key" in lowered:
        return (
            f"{ENV_DB_KEY} is not the key the warehouse file {path} was encrypted with; "
            "set the right one"
        )
    if "key is explicitly specified" in lowered and "not encrypted" in lowered:
        return (
            f"the warehouse file {path} is not encrypted, but {ENV_DB_KEY} is set: encrypt "
            f"it with `auterity db encrypt`, or unset {ENV_DB_KEY} to use it unencrypted"
        )
    return None
