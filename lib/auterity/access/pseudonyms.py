"""Stable pseudonyms for personal data: what a role without PII permission sees.

A customer's email and name are replaced by a keyed HMAC-SHA256 of the value, shortened
(``cust-3f9a1c0b7d2e``): the same value always gets the same pseudonym under one key, so
joins, counts and "top customers" still work, but it cannot be turned back into the
email or name without the key, and guessing (hashing every plausible email) needs the
key too.

The key comes from ``AUTERITY_PII_KEY`` (at least 32 characters; e.g. ``python -c
"import secrets; print(secrets.token_urlsafe(32))"``). Without it, a key is generated
once into ``data/.pii_key`` (owner-only permissions) so a local setup's pseudonyms stay
stable between runs; a server shared by a team should set the variable, and keep it
out of the repository like any secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from auterity import config
from auterity.errors import ConfigError

ENV_PII_KEY = config.ENV_PII_KEY
MIN_KEY_LENGTH = 32
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
        ``AUTERITY_PII_KEY`` set but shorter than :data:`MIN_KEY_LENGTH` characters.
    """
    given = config.value(ENV_PII_KEY) or ""
    if given:
        if len(given) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"{ENV_PII_KEY} is {len(given)} characters: use at least {MIN_KEY_LENGTH} "
                'random ones (python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        return given.encode()
    path = key_file()
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_urlsafe(32).encode()
    try:  # O_EXCL: two processes starting together agree on the first key written
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(fresh)
    return fresh


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
        e.g. ``email-3f9a1c0b7d2e``.
    """
    if value is None:
        return None
    if kind not in PREFIXES:
        raise ValueError(f"kind {kind!r}: one of {', '.join(PREFIXES)}")
    digest = hmac.new(key or pii_key(), f"{kind}\x1f{value}".encode(), hashlib.sha256)
    return f"{PREFIXES[kind]}-{digest.hexdigest()[:DIGITS]}"
