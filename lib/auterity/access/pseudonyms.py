"""Stable pseudonyms for personal data: what a role without PII permission sees.

A customer's email and name are replaced by a keyed hash of the value, shortened
(``email-3f9a1c0b7d2e``): the same value always gets the same pseudonym under one key,
so joins, counts and "top customers" still work, but it cannot be turned back into the
email or name without the key, and guessing (hashing every plausible email) needs the
key too.

The hash is computed *inside the database* on every path (:func:`pseudonym_sql`, applied
by the row scope of :mod:`auterity.warehouse.scope`), so a role without PII permission
never receives the real value at all, and by Python for the same value
(:func:`pseudonym`) with the same result. It is HMAC's nested construction, keyed
SHA-256 of keyed SHA-256, ``sha256(key | sha256(key | kind | value))`` with ``|`` the
unit separator: the outer keyed hash is what makes HMAC immune to length extension, and
the construction needs nothing but SHA-256, which DuckDB and PostgreSQL both compute
(HMAC's padded key XOR is not portable SQL).

The key comes from ``AUTERITY_PII_KEY`` (at least 32 characters; e.g. ``python -c
"import secrets; print(secrets.token_urlsafe(32))"``). Without it, a key is generated
once into ``data/.pii_key`` (owner-only permissions) so a local setup's pseudonyms stay
stable between runs; a server shared by a team should set the variable, and keep it
out of the repository like any secret.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from auterity import config
from auterity.access.keys import stored_secret
from auterity.warehouse import dialect

ENV_PII_KEY = config.ENV_PII_KEY
KEY_FILE = ".pii_key"
DIGITS = 12
"""Hex digits of a pseudonym: 48 bits, no collision expected below millions of values."""

PREFIXES = {"email": "email", "name": "person", "customer": "cust"}
"""What a pseudonym starts with, by kind of value (so a reader sees what it stands for)."""


def key_file() -> Path:
    """Where a generated key is kept when ``AUTERITY_PII_KEY`` is not set."""
    return config.data_dir() / KEY_FILE


def pii_key() -> bytes:
    """The pseudonym key: ``AUTERITY_PII_KEY``, else the generated key file (made once).

    Raises
    ------
    ConfigError
        ``AUTERITY_PII_KEY`` set but shorter than 32 characters
        (:data:`auterity.access.keys.MIN_KEY_LENGTH`).
    """
    # it travels in SQL: registered as a secret, never in a message
    return stored_secret(ENV_PII_KEY, config.value(ENV_PII_KEY), key_file())


SEPARATOR = "\x1f"


def pseudonym(value: str | None, kind: str = "customer", *, key: bytes | None = None) -> str | None:
    """The stable pseudonym of a personal value (None stays None).

    Parameters
    ----------
    value : str or None
        An email, a name, a customer id.
    kind : str
        ``email``, ``name`` or ``customer``: part of the keyed input (the same text as an
        email and as a name gets different pseudonyms) and of the prefix.
    key : bytes, optional
        Default :func:`pii_key`.

    Returns
    -------
    str or None
        e.g. ``email-3f9a1c0b7d2e``; equal to what :func:`pseudonym_sql` computes.
    """
    if value is None:
        return None
    prefix = _prefix(kind)
    secret = (key or pii_key()).decode()
    inner = hashlib.sha256(SEPARATOR.join([secret, kind, str(value)]).encode()).hexdigest()
    outer = hashlib.sha256(SEPARATOR.join([secret, inner]).encode()).hexdigest()
    return f"{prefix}-{outer[:DIGITS]}"


def pseudonym_sql(
    column: ColumnElement[Any], kind: str = "customer", *, key: bytes | None = None
) -> ColumnElement[Any]:
    """SQL computing :func:`pseudonym` of a column inside the database (NULL stays NULL)."""
    prefix = _prefix(kind)
    secret = sa.literal((key or pii_key()).decode(), sa.String())
    sep = sa.literal(SEPARATOR, sa.String())
    text = sa.cast(column, sa.String())
    inner = dialect.sha256_hex(secret + sep + sa.literal(kind, sa.String()) + sep + text)
    outer = dialect.sha256_hex(secret + sep + inner)
    return sa.literal(prefix + "-", sa.String()) + sa.func.substr(outer, 1, DIGITS)


def _prefix(kind: str) -> str:
    if kind not in PREFIXES:
        raise ValueError(f"kind {kind!r}: one of {', '.join(PREFIXES)}")
    return PREFIXES[kind]
