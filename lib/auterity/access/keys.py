"""Secrets a local setup generates once and keeps: from the environment, else a file.

The pseudonym key (``AUTERITY_PII_KEY``, else ``data/.pii_key``) and the session secret
that signs sign-in cookies (``AUTERITY_SESSION_SECRET``, else ``data/.session_secret``)
are made this way: given in the environment (at least :data:`MIN_KEY_LENGTH`
characters), or generated at first use into an owner-only file so every process of the
setup agrees on it and it survives restarts.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from auterity import redact
from auterity.errors import ConfigError

MIN_KEY_LENGTH = 32


def stored_secret(env_name: str, given: str | None, path: Path) -> bytes:
    """``given`` (the value of ``env_name``) if set, else the secret kept in ``path``
    (made once, owner-only). Registered so it is masked in every message.

    Raises
    ------
    ConfigError
        ``given`` is set but shorter than :data:`MIN_KEY_LENGTH` characters.
    """
    if given:
        if len(given) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"{env_name} is {len(given)} characters: use at least {MIN_KEY_LENGTH} "
                'random ones (python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        key = given.encode()
    else:
        try:
            key = path.read_bytes().strip()
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            key = secrets.token_urlsafe(32).encode()
            try:  # O_EXCL: two processes starting together agree on the first key written
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                key = path.read_bytes().strip()
            else:
                with os.fdopen(fd, "wb") as out:
                    out.write(key)
    redact.register_secret(key.decode())
    return key
